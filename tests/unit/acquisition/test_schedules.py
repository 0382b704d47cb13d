"""The daily schedule's requests: one per active AOI, from the last day its search ran to the end (or its
``since`` day, or yesterday) to today; removed AOIs are not asked for."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from shapely.geometry import box

from satlake.acquisition.aoi import new_aoi
from satlake.acquisition.aoi_table import add_aoi, load_aois, remove_aoi
from satlake.acquisition.request import new_request, parse_request
from satlake.acquisition.schedules import (
    SCHEDULE_REQUESTER,
    SEARCHED,
    daily_acquisition_requests_job,
    due_requests,
    last_searched_day,
)
from satlake.acquisition.tables import (
    ACQUISITION_REQUESTS,
    ACQUISITION_REQUESTS_SCHEMA,
    ACQUISITIONS,
    ACQUISITIONS_SCHEMA,
)
from satlake.resources import build_resources
from satlake.settings import Settings

TODAY = date(2024, 6, 20)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"SATLAKE_ROOT": str(tmp_path)})


def add(settings: Settings, name: str, since: date | None = None) -> None:
    aoi, source = new_aoi(settings, name, box(13.86, 50.50, 13.90, 50.53), created_by="test", since=since)
    add_aoi(build_resources(settings).lakehouse, aoi, source.url)


def record_search(settings: Settings, aoi: str, window: str, searched: bool) -> None:
    """A request for ``aoi`` over ``window`` as the sensor and the downloader would have recorded it."""
    lakehouse = build_resources(settings).lakehouse
    request = new_request(aoi, window, now=datetime(2024, 6, 1, tzinfo=UTC))
    requested = [{"request_id": request.request_id, "aoi": aoi, "request_json": request.to_json(), "topic": "t",
                  "partition": 0, "offset": 0, "received_at": datetime.now(UTC)}]  # fmt: skip
    outcome = [{"request_id": request.request_id, "aoi": aoi, "source": "earth-search", "item_id": None,
                "status": SEARCHED if searched else "rejected", "reason": "x", "bytes_fetched": 0,
                "acquired_at": datetime.now(UTC)}]  # fmt: skip
    for table, rows, schema in ((ACQUISITION_REQUESTS, requested, ACQUISITION_REQUESTS_SCHEMA),
                                (ACQUISITIONS, outcome, ACQUISITIONS_SCHEMA)):  # fmt: skip
        lakehouse.append_exactly_once(
            table, pa.Table.from_pylist(rows, schema=schema), partition_by=[], app_transactions={}
        )


def test_each_active_aoi_is_asked_for_the_days_since_its_last_full_search(settings: Settings) -> None:
    add(settings, "searched")
    add(settings, "new-with-since", since=date(2024, 6, 1))
    add(settings, "new")
    add(settings, "gone")
    lakehouse = build_resources(settings).lakehouse
    remove_aoi(lakehouse, "gone")
    record_search(settings, "searched", "2024-06-01/2024-06-15", searched=True)
    record_search(settings, "searched", "2024-06-01/2024-06-18", searched=False)  # cut off: does not count

    last = last_searched_day(lakehouse)
    assert last == {"searched": date(2024, 6, 15)}
    due = {r.aoi: r for r in due_requests(load_aois(lakehouse), last, TODAY)}
    assert sorted(due) == ["new", "new-with-since", "searched"]
    assert due["searched"].datetime == "2024-06-15/2024-06-20"  # the last day again: late items are skipped
    assert due["new-with-since"].datetime == "2024-06-01/2024-06-20"
    assert due["new"].datetime == "2024-06-19/2024-06-20"
    assert all(r.requested_by == SCHEDULE_REQUESTER for r in due.values())
    assert len({r.request_id for r in due.values()}) == 3


def test_the_scheduled_job_publishes_them_on_the_requests_topic(settings: Settings) -> None:
    add(settings, "park")
    resources = build_resources(settings)
    result = daily_acquisition_requests_job.execute_in_process(
        resources={"settings": settings, "event_log": resources.event_log, "lakehouse": resources.lakehouse},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    (record,) = resources.event_log.read(settings.acquisition_topic, {0: 0}, 10, timeout_s=1.0)
    request = parse_request(record.value)
    assert request.aoi == "park" and request.requested_by == SCHEDULE_REQUESTER
