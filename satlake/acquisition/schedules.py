"""The daily schedule that asks for each active area's new scenes: one request per AOI covering the days since
its last successful search (its ``since`` day, or yesterday, before the first)."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from satlake.acquisition.aoi import AreaOfInterest
from satlake.acquisition.aoi_table import load_aois
from satlake.acquisition.request import AcquisitionRequest, days_range, new_request, parse_request, publish_request
from satlake.acquisition.tables import ACQUISITION_REQUESTS, ACQUISITIONS
from satlake.resources.event_log import EventLog
from satlake.resources.lakehouse import Lakehouse
from satlake.settings import Settings

SEARCHED = "searched"  # the status of the row a request writes when its search ran to the end
SCHEDULE_REQUESTER = "satlake daily schedule"


def last_searched_day(lakehouse: Lakehouse) -> dict[str, date]:
    """Per AOI, the last day covered by a request whose search ran to the end."""
    searched = lakehouse.read(ACQUISITIONS, columns=["request_id", "status"], filters=[("status", "=", SEARCHED)])
    requests = lakehouse.read(ACQUISITION_REQUESTS, columns=["request_id", "request_json"])
    if searched is None or requests is None:
        return {}
    done = set(searched.column("request_id").to_pylist())
    last: dict[str, date] = {}
    for request_id, text in zip(*(requests.column(c).to_pylist() for c in ("request_id", "request_json")), strict=True):
        if request_id not in done:
            continue
        request = parse_request(text)
        end = (request.end or request.requested_at or datetime.now(UTC)).date()
        last[request.aoi] = max(last.get(request.aoi, end), end)
    return last


def due_requests(aois: list[AreaOfInterest], last: dict[str, date], today: date) -> list[AcquisitionRequest]:
    """One request per AOI from its last searched day (searched again: late items are skipped if landed) to today."""
    due = []
    for aoi in aois:
        first = last.get(aoi.name) or aoi.since or today - timedelta(days=1)
        due.append(new_request(aoi.name, days_range(min(first, today), today), requested_by=SCHEDULE_REQUESTER))
    return due


@dg.op(description="Publish one acquisition request per active area of interest, for the days since its last search")
def publish_due_requests(
    context: dg.OpExecutionContext,
    settings: dg.ResourceParam[Settings],
    event_log: dg.ResourceParam[EventLog],
    lakehouse: dg.ResourceParam[Lakehouse],
) -> None:
    requests = due_requests(load_aois(lakehouse), last_searched_day(lakehouse), datetime.now(UTC).date())
    for request in requests:
        publish_request(event_log, settings.acquisition_topic, request)
        context.log.info(f"published {request.request_id}: {request.aoi} {request.datetime}")
    if not requests:
        context.log.info("no active area of interest: nothing to request (`satlake aoi add`)")


@dg.job(description="Publish the daily acquisition requests of every active area of interest")
def daily_acquisition_requests_job() -> None:
    publish_due_requests()


daily_acquisition_schedule = dg.ScheduleDefinition(
    job=daily_acquisition_requests_job,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    description="Every day at 05:00 UTC: ask each active area of interest for the scenes of the days since its "
    "last successful search",
)
