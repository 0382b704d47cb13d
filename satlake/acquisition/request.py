"""Acquisition requests: the JSON a service (or `satlake acquire`, or the daily schedule) publishes on the
requests topic, its schema (``request.schema.json``, shipped with the package) and its validation on read."""

from __future__ import annotations

import getpass
import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from satlake.acquisition.sources import BAND_ROLES
from satlake.catalog.search import parse_datetime_range
from satlake.resources.event_log import EventLog, OutgoingRecord

REQUEST_TYPE = "satlake.acquisition-request"
REQUEST_VERSION = 1
MAX_REQUEST_BYTES = 64 * 1024  # a request names an AOI; anything this large is not one
REQUESTS_PARTITIONS = 1  # one partition keeps requests in publication order; volumes are tiny


REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # as in request.schema.json


class RequestError(ValueError):
    """A record on the requests topic that is not a valid acquisition request; the message says why."""


@dataclass(frozen=True, slots=True)
class AcquisitionRequest:
    """One validated request. Fields left out of the JSON are None and default to the AOI's settings."""

    request_id: str
    aoi: str
    datetime: str
    start: datetime | None
    end: datetime | None
    source: str | None = None
    collections: tuple[str, ...] | None = None
    cloud_cover_max: float | None = None
    cloud_cover_given: bool = False  # an explicit null means "any cloud cover", unlike a missing field
    bands: tuple[str, ...] = BAND_ROLES
    requested_at: datetime | None = None
    requested_by: str | None = None

    def to_json(self) -> str:
        document: dict[str, Any] = {
            "type": REQUEST_TYPE,
            "version": REQUEST_VERSION,
            "request_id": self.request_id,
            "aoi": self.aoi,
            "datetime": self.datetime,
            "bands": list(self.bands),
        }
        if self.source is not None:
            document["source"] = self.source
        if self.collections is not None:
            document["collections"] = list(self.collections)
        if self.cloud_cover_given:
            document["cloud_cover_max"] = self.cloud_cover_max
        if self.requested_at is not None:
            document["requested_at"] = self.requested_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if self.requested_by is not None:
            document["requested_by"] = self.requested_by
        return json.dumps(document, sort_keys=True)


def checked_request_id(request_id: str) -> str:
    """``request_id`` when it has the schema's shape (then it is safe inside a quoted Delta predicate)."""
    if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
        raise RequestError(f"request id {request_id!r}: expected 1-64 letters, digits, '.', '_' or '-'")
    return request_id


@cache
def request_schema() -> dict[str, Any]:
    """The JSON Schema of a request (draft 2020-12), read from the package."""
    text = resources.files("satlake.acquisition").joinpath("request.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(request_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def parse_request(payload: bytes | str) -> AcquisitionRequest:
    """Validate one record's value against the schema; RequestError names every problem found."""
    raw = payload.encode("utf-8") if isinstance(payload, str) else payload
    if len(raw) > MAX_REQUEST_BYTES:
        raise RequestError(f"request is {len(raw):,} bytes; the limit is {MAX_REQUEST_BYTES:,}")
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise RequestError(f"request is not UTF-8 text ({error.reason} at byte {error.start})") from error
    except json.JSONDecodeError as error:
        raise RequestError(f"request is not JSON: {error.msg} at line {error.lineno} column {error.colno}") from error
    if not isinstance(document, dict):
        raise RequestError(f"request must be a JSON object, got {type(document).__name__}")
    problems = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    if problems:
        described = "; ".join(
            f"{'.'.join(str(p) for p in problem.absolute_path) or 'request'}: {problem.message}"
            for problem in problems[:5]
        )
        raise RequestError(f"request does not match the acquisition-request schema: {described}")
    try:
        start, end = parse_datetime_range(document["datetime"])
    except ValueError as error:
        raise RequestError(f"datetime: {error}") from error
    requested_at = None
    if "requested_at" in document:
        requested_at = datetime.fromisoformat(document["requested_at"].replace("Z", "+00:00"))
        requested_at = requested_at.replace(tzinfo=UTC) if requested_at.tzinfo is None else requested_at
    return AcquisitionRequest(
        request_id=document["request_id"],
        aoi=document["aoi"],
        datetime=document["datetime"],
        start=start,
        end=end,
        source=document.get("source"),
        collections=tuple(document["collections"]) if "collections" in document else None,
        cloud_cover_max=document.get("cloud_cover_max"),
        cloud_cover_given="cloud_cover_max" in document,
        bands=tuple(document.get("bands", BAND_ROLES)),
        requested_at=requested_at,
        requested_by=document.get("requested_by"),
    )


def requester() -> str:
    """Who asks: ``$SATLAKE_USER``, else the operating-system user."""
    try:
        return os.environ.get("SATLAKE_USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def new_request(
    aoi: str, datetime_range: str, now: datetime | None = None, requested_by: str | None = None
) -> AcquisitionRequest:
    """A request for ``aoi`` over ``datetime_range`` with a fresh id, checked like one read from the topic."""
    moment = now or datetime.now(UTC)
    request_id = f"{aoi[:40]}-{moment:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    draft = AcquisitionRequest(
        request_id=request_id, aoi=aoi, datetime=datetime_range, start=None, end=None,
        requested_at=moment, requested_by=requested_by or requester(),
    )  # fmt: skip
    return parse_request(draft.to_json())


def days_range(first: date, last: date) -> str:
    """The interval covering whole UTC days ``first`` to ``last`` (a bare date covers its whole day)."""
    return f"{first.isoformat()}/{last.isoformat()}"


def publish_request(event_log: EventLog, topic: str, request: AcquisitionRequest) -> None:
    """Append ``request`` to the requests topic (created with one partition when missing), keyed by its AOI."""
    if not event_log.partitions(topic):
        event_log.create_topic(topic, REQUESTS_PARTITIONS)
    event_log.append(topic, [OutgoingRecord(value=request.to_json().encode("utf-8"), key=request.aoi.encode())])
