"""Acquisition requests as published on the requests topic: a valid one round-trips through its JSON, every invalid
one is refused with a message naming what is wrong, and new requests get unique, safe ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from satlake.acquisition.request import (
    MAX_REQUEST_BYTES,
    AcquisitionRequest,
    RequestError,
    checked_request_id,
    new_request,
    parse_request,
)

VALID = {
    "type": "satlake.acquisition-request",
    "version": 1,
    "request_id": "forest-2024-r1",
    "aoi": "black-forest",
    "datetime": "2024-05-01T00:00:00Z/2024-06-01T00:00:00Z",
    "source": "planetary-computer",
    "collections": ["sentinel-2-l2a"],
    "cloud_cover_max": 20,
    "bands": ["red", "nir"],
    "requested_at": "2024-06-02T08:00:00Z",
    "requested_by": "ops",
}


def with_changes(**changes: object) -> str:
    document = {**VALID, **changes}
    return json.dumps({key: value for key, value in document.items() if value is not ...})


def test_a_valid_request_round_trips() -> None:
    request = parse_request(json.dumps(VALID))
    assert request.request_id == "forest-2024-r1" and request.aoi == "black-forest"
    assert (request.start, request.end) == (datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC))
    assert request.source == "planetary-computer" and request.collections == ("sentinel-2-l2a",)
    assert request.cloud_cover_max == 20 and request.cloud_cover_given and request.bands == ("red", "nir")
    assert request.requested_at == datetime(2024, 6, 2, 8, tzinfo=UTC) and request.requested_by == "ops"
    assert parse_request(request.to_json()) == request
    assert json.loads(request.to_json()) == VALID


def test_defaults_and_an_explicit_null_cloud_cover() -> None:
    minimal = parse_request(json.dumps({"request_id": "r1", "aoi": "a", "datetime": "2024-05-01"}))
    assert minimal.source is None and minimal.collections is None and not minimal.cloud_cover_given
    assert minimal.bands == ("blue", "green", "red", "nir", "cloud")
    assert minimal.start == datetime(2024, 5, 1, tzinfo=UTC) and minimal.end is not None
    assert minimal.end > minimal.start  # a bare date covers its whole day
    any_cover = parse_request(with_changes(cloud_cover_max=None))
    assert any_cover.cloud_cover_given and any_cover.cloud_cover_max is None
    assert parse_request(any_cover.to_json()) == any_cover  # "null" stays different from "missing"


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (b"{not json", "not JSON"),
        (b'{"request_id": "r\xff"}', "not UTF-8"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'"a string"', "must be a JSON object, got str"),
        (with_changes(request_id=...), "'request_id' is a required property"),
        (with_changes(aoi=...), "'aoi' is a required property"),
        (with_changes(datetime=...), "'datetime' is a required property"),
        (with_changes(priority="high"), "'priority' was unexpected"),
        (with_changes(request_id="../etc/passwd"), "request_id: '../etc/passwd' does not match"),
        (with_changes(request_id="x" * 65), "request_id:"),
        (with_changes(aoi="Black Forest"), "aoi: 'Black Forest' does not match"),
        (with_changes(datetime="last tuesday"), "datetime:"),
        (with_changes(datetime="2024-06-01/2024-05-01"), "datetime:"),
        (with_changes(cloud_cover_max=101), "cloud_cover_max: 101 is greater than the maximum of 100"),
        (with_changes(cloud_cover_max=-1), "cloud_cover_max: -1 is less than the minimum of 0"),
        (with_changes(bands=["red", "swir16"]), "bands.1: 'swir16' is not one of"),
        (with_changes(bands=[]), "bands:"),
        (with_changes(collections=["sentinel 2"]), "collections.0:"),
        (with_changes(version=2), "version: 1 was expected"),
        (with_changes(requested_at="yesterday"), "requested_at: 'yesterday' is not a 'date-time'"),
    ],
)
def test_an_invalid_request_is_refused_naming_the_problem(payload: str | bytes, named: str) -> None:
    with pytest.raises(RequestError) as refused:
        parse_request(payload)
    assert named in str(refused.value)


def test_an_oversized_request_is_refused_before_parsing() -> None:
    payload = with_changes(requested_by="x" * MAX_REQUEST_BYTES)
    with pytest.raises(RequestError, match=rf"bytes; the limit is {MAX_REQUEST_BYTES:,}"):
        parse_request(payload)


def test_new_requests_get_unique_valid_ids() -> None:
    moment = datetime(2024, 6, 2, 8, tzinfo=UTC)
    made = [new_request("black-forest", "2024-05-01/2024-05-31", now=moment, requested_by="ops") for _ in range(50)]
    assert len({request.request_id for request in made}) == 50
    assert all(checked_request_id(request.request_id) == request.request_id for request in made)
    assert all(r.request_id.startswith("black-forest-20240602T080000-") for r in made)
    assert made[0].start == datetime(2024, 5, 1, tzinfo=UTC) and made[0].requested_by == "ops"
    assert isinstance(parse_request(made[0].to_json()), AcquisitionRequest)


def test_new_request_refuses_what_the_topic_would_refuse() -> None:
    with pytest.raises(RequestError, match="datetime"):
        new_request("black-forest", "sometime")
    with pytest.raises(RequestError, match="aoi"):
        new_request("Black Forest", "2024-05-01")


@pytest.mark.parametrize("bad", ["", "-starts-with-dash", "has space", "quote'd", "x" * 65, "semi;colon"])
def test_checked_request_id_refuses_ids_unsafe_in_a_predicate(bad: str) -> None:
    with pytest.raises(RequestError, match="expected 1-64 letters, digits"):
        checked_request_id(bad)


def test_checked_request_id_accepts_the_schema_shape() -> None:
    assert checked_request_id("A1.b_c-d") == "A1.b_c-d"
    assert checked_request_id("x" * 64) == "x" * 64
