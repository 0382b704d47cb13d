"""Mars requests: the JSON `satlake mars fetch` (or the daily schedule, or any service) publishes on the Mars
requests topic, its schema (``request.schema.json``, shipped with the package) and its validation on read.

A request names a rover and a range of sols: the run it starts fetches the rover's manifest first, then the
photos of each sol, then the rover's traverse. A sol after the rover's current sol (counted from its landing,
88,775.244 s per sol) cannot have photos yet and is refused here, before any request reaches the API.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from satlake.mars.rovers import Rover, rover_named
from satlake.resources.event_log import EventLog, OutgoingRecord

REQUEST_TYPE = "satlake.mars-request"
REQUEST_VERSION = 1
MAX_REQUEST_BYTES = 16 * 1024
MAX_SOLS_PER_REQUEST = 1000  # about 30,000 photo requests for Curiosity at its busiest: split longer backfills
REQUESTS_PARTITIONS = 1
SOL_SECONDS = 88_775.244  # a Martian solar day


class MarsRequestError(ValueError):
    """A record on the Mars requests topic that is not a valid request; the message says why."""


@dataclass(frozen=True, slots=True)
class MarsRequest:
    request_id: str
    rover: str
    first_sol: int
    last_sol: int
    traverse: bool = True
    requested_at: datetime | None = None
    requested_by: str | None = None

    @property
    def sols(self) -> range:
        return range(self.first_sol, self.last_sol + 1)

    def to_json(self) -> str:
        document: dict[str, Any] = {
            "type": REQUEST_TYPE, "version": REQUEST_VERSION, "request_id": self.request_id, "rover": self.rover,
            "sols": {"first": self.first_sol, "last": self.last_sol}, "traverse": self.traverse,
        }  # fmt: skip
        if self.requested_at is not None:
            document["requested_at"] = self.requested_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if self.requested_by is not None:
            document["requested_by"] = self.requested_by
        return json.dumps(document, sort_keys=True)


def current_sol(rover: Rover, now: datetime) -> int:
    """The rover's mission sol at ``now`` (sol 0 is its landing day; a rough count, exact to about a sol)."""
    landed = datetime(rover.landing_date.year, rover.landing_date.month, rover.landing_date.day, tzinfo=UTC)
    return int((now - landed).total_seconds() // SOL_SECONDS)


@cache
def _validator() -> Draft202012Validator:
    text = resources.files("satlake.mars").joinpath("request.schema.json").read_text(encoding="utf-8")
    return Draft202012Validator(json.loads(text), format_checker=Draft202012Validator.FORMAT_CHECKER)


def parse_request(payload: bytes | str, now: datetime | None = None) -> MarsRequest:
    """Validate one record's value; MarsRequestError names every problem found."""
    raw = payload.encode("utf-8") if isinstance(payload, str) else payload
    if len(raw) > MAX_REQUEST_BYTES:
        raise MarsRequestError(f"request is {len(raw):,} bytes; the limit is {MAX_REQUEST_BYTES:,}")
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise MarsRequestError(f"request is not UTF-8 text ({error.reason} at byte {error.start})") from error
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise MarsRequestError(f"request is not JSON: {error.msg} at {where}") from error
    if not isinstance(document, dict):
        raise MarsRequestError(f"request must be a JSON object, got {type(document).__name__}")
    if isinstance(document.get("rover"), str):
        try:  # the schema's enum says the same, less helpfully
            rover_named(document["rover"])
        except ValueError as error:
            raise MarsRequestError(str(error)) from None
    problems = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    if problems:
        described = "; ".join(
            f"{'.'.join(str(p) for p in problem.absolute_path) or 'request'}: {problem.message}"
            for problem in problems[:5]
        )
        raise MarsRequestError(f"request does not match the Mars request schema: {described}")
    rover = rover_named(document["rover"])
    first, last = document["sols"]["first"], document["sols"]["last"]
    if last < first:
        raise MarsRequestError(f"sols: the last sol {last} is before the first {first}")
    if last - first + 1 > MAX_SOLS_PER_REQUEST:
        raise MarsRequestError(
            f"sols: {last - first + 1} sols in one request; the limit is {MAX_SOLS_PER_REQUEST}, split the range"
        )
    today = current_sol(rover, now or datetime.now(UTC))
    if last > today:
        raise MarsRequestError(
            f"sol {last} is in the future: {rover.display_name} landed on {rover.landing_date} and is on sol "
            f"{today} now"
        )
    requested_at = None
    if "requested_at" in document:
        requested_at = datetime.fromisoformat(document["requested_at"].replace("Z", "+00:00"))
        requested_at = requested_at.replace(tzinfo=UTC) if requested_at.tzinfo is None else requested_at
    return MarsRequest(
        request_id=document["request_id"], rover=rover.name, first_sol=first, last_sol=last,
        traverse=document.get("traverse", True), requested_at=requested_at,
        requested_by=document.get("requested_by"),
    )  # fmt: skip


def parse_sol_range(text: str) -> tuple[int, int]:
    """``A:B`` (or one sol ``A``) as (first, last); ValueError with the expected shape otherwise."""
    first, _, last = text.partition(":")
    try:
        bounds = (int(first), int(last) if last else int(first))
    except ValueError:
        raise ValueError(f"--sols {text!r}: write a sol range as FIRST:LAST (e.g. 1000:1010) or one sol") from None
    if bounds[0] < 0 or bounds[1] < bounds[0]:
        raise ValueError(f"--sols {text!r}: sols start at 0 and the last is not before the first")
    return bounds


def new_request(
    rover: str, first_sol: int, last_sol: int, *, traverse: bool = True, requested_by: str | None = None,
    now: datetime | None = None,
) -> MarsRequest:  # fmt: skip
    """A request with a fresh id, checked like one read from the topic (raises MarsRequestError)."""
    moment = now or datetime.now(UTC)
    request_id = f"{rover[:20]}-{first_sol}-{last_sol}-{moment:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    draft = MarsRequest(request_id, rover.strip().lower(), first_sol, last_sol, traverse, moment, requested_by)
    return parse_request(draft.to_json(), now=moment)


def publish_request(event_log: EventLog, topic: str, request: MarsRequest) -> None:
    """Append ``request`` to the Mars requests topic (created with one partition when missing)."""
    if not event_log.partitions(topic):
        event_log.create_topic(topic, REQUESTS_PARTITIONS)
    event_log.append(topic, [OutgoingRecord(value=request.to_json().encode("utf-8"), key=request.rover.encode())])
