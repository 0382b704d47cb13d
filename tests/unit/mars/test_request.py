"""Mars requests as read from the topic, as `satlake mars fetch` makes them, and as the daily schedule asks."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from satlake.mars.request import (
    MAX_SOLS_PER_REQUEST,
    SOL_SECONDS,
    MarsRequestError,
    current_sol,
    new_request,
    parse_request,
    parse_sol_range,
)
from satlake.mars.rovers import rover_named
from satlake.mars.schedules import FIRST_LOOKBACK_SOLS, REFETCH_SOLS, due_requests
from satlake.mars.tables import MARS_RESPONSES, MARS_RESPONSES_SCHEMA
from satlake.resources import build_resources
from satlake.settings import Settings

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def request(**changes: object) -> bytes:
    document = {"type": "satlake.mars-request", "version": 1, "request_id": "r-1", "rover": "curiosity",
                "sols": {"first": 1000, "last": 1002}}  # fmt: skip
    document.update(changes)
    return json.dumps(document).encode()


def test_a_valid_request_reads_back_with_its_sols() -> None:
    parsed = parse_request(request(requested_by="ops"), now=NOW)
    assert (parsed.rover, list(parsed.sols), parsed.traverse, parsed.requested_by) == (
        "curiosity", [1000, 1001, 1002], True, "ops")  # fmt: skip
    assert parse_request(parsed.to_json(), now=NOW) == parsed


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (request(rover="sojourner"), "unknown rover 'sojourner'"),
        (request(sols={"first": 1000, "last": 999_999}), "99999"),  # past the schema's maximum sol, or the future
        (request(sols={"first": 5, "last": 4}), "the last sol 4 is before the first 5"),
        (request(sols={"first": 0, "last": MAX_SOLS_PER_REQUEST}), "split the range"),
        (b'{"type": "satlake.mars-request", "version": 1', "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (request(version=2), "version"),
        (request(request_id=""), "request_id"),
    ],
)
def test_a_bad_request_is_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(MarsRequestError, match=None) as raised:
        parse_request(payload, now=NOW)
    assert reason in str(raised.value) or reason.lower() in str(raised.value).lower(), str(raised.value)


def test_a_sol_after_the_rovers_current_sol_is_refused_before_any_request_reaches_the_api() -> None:
    rover = rover_named("perseverance")
    today = current_sol(rover, NOW)
    landed = datetime(2021, 2, 18, tzinfo=UTC)
    assert today == int((NOW - landed).total_seconds() // SOL_SECONDS)  # 88,775.244 s a sol
    assert parse_request(request(rover="perseverance", sols={"first": today, "last": today}), now=NOW)
    with pytest.raises(MarsRequestError, match=f"sol {today + 1} is in the future: Perseverance landed on 2021-02-18"):
        parse_request(request(rover="perseverance", sols={"first": today, "last": today + 1}), now=NOW)


def test_sol_ranges_on_the_command_line() -> None:
    assert parse_sol_range("1000:1010") == (1000, 1010)
    assert parse_sol_range("12") == (12, 12)
    for bad in ("10:5", "a:b", "-3:4", "1000-1010"):
        with pytest.raises(ValueError, match="--sols"):
            parse_sol_range(bad)


def test_new_request_ids_are_unique_and_checked_like_the_topic() -> None:
    first, second = new_request("Curiosity", 1, 2, now=NOW), new_request("curiosity", 1, 2, now=NOW)
    assert first.rover == "curiosity" and first.request_id != second.request_id
    with pytest.raises(MarsRequestError, match="unknown rover"):
        new_request("zhurong", 1, 2, now=NOW)


def plant_responses(settings: Settings, rover: str, sols: list[int], error: str | None = None) -> None:
    lakehouse = build_resources(settings).lakehouse
    rows = [{"response_id": f"{rover}-{sol}", "request_id": "r", "kind": "photos", "rover": rover, "sol": sol,
             "page": 1, "url": "http://replay/photos", "status": 200 if error is None else 500,
             "content_type": "application/json", "body": b"{}", "fetched_at": NOW - timedelta(days=2),
             "object_key": None, "error": error} for sol in sols]  # fmt: skip
    write_deltalake(
        lakehouse.uri(MARS_RESPONSES), pa.Table.from_pylist(rows, schema=MARS_RESPONSES_SCHEMA), mode="append"
    )


def test_the_schedule_asks_each_rover_from_a_few_sols_before_its_last_fetch_to_yesterday(tmp_path: Path) -> None:
    settings = Settings.from_env({"SATLAKE_ROOT": str(tmp_path), "SATLAKE_MARS_ROVERS": "curiosity,perseverance"})
    yesterday = {name: current_sol(rover_named(name), NOW) - 1 for name in ("curiosity", "perseverance")}
    fetched = yesterday["curiosity"] - 20
    plant_responses(settings, "curiosity", [fetched - 30, fetched - 1, fetched])
    plant_responses(settings, "curiosity", [fetched + 5], error="HTTP 500")  # a failed fetch is not a fetch
    due = {r.rover: r for r in due_requests(settings, build_resources(settings).lakehouse, NOW)}
    assert (due["curiosity"].first_sol, due["curiosity"].last_sol) == (
        fetched - REFETCH_SOLS + 1,
        yesterday["curiosity"],
    )
    # Never fetched: the last week of sols.
    perseverance = due["perseverance"]
    assert (perseverance.first_sol, perseverance.last_sol) == (
        yesterday["perseverance"] - FIRST_LOOKBACK_SOLS + 1, yesterday["perseverance"])  # fmt: skip
    assert all(r.requested_by == "satlake daily schedule" for r in due.values())


def test_the_schedule_never_asks_for_more_sols_than_one_request_takes(tmp_path: Path) -> None:
    settings = Settings.from_env({"SATLAKE_ROOT": str(tmp_path), "SATLAKE_MARS_ROVERS": "curiosity"})
    plant_responses(settings, "curiosity", [10])  # fetched long ago: the backlog is thousands of sols
    (due,) = due_requests(settings, build_resources(settings).lakehouse, NOW)
    assert due.last_sol - due.first_sol + 1 == MAX_SOLS_PER_REQUEST
