"""The daily schedule that asks for each followed rover's new sols (``SATLAKE_MARS_ROVERS``).

Each rover is asked from a few sols before the last one fetched (photos of a sol keep arriving for days after it,
as the rover downlinks them) to yesterday's sol; a rover whose manifest says its mission is complete is not asked.
"""

from datetime import UTC, datetime

import dagster as dg
import pyarrow.compute as pc

from satlake.mars.request import MAX_SOLS_PER_REQUEST, MarsRequest, current_sol, new_request, publish_request
from satlake.mars.rovers import UnknownRover, rover_named
from satlake.mars.tables import MARS_MANIFESTS, MARS_RESPONSES
from satlake.resources.event_log import EventLog
from satlake.resources.lakehouse import Lakehouse
from satlake.settings import Settings

SCHEDULE_REQUESTER = "satlake daily schedule"
REFETCH_SOLS = 3  # the last sols fetched are asked again: their photo counts still grow
FIRST_LOOKBACK_SOLS = 7  # a rover never fetched starts this many sols back


def last_fetched_sol(lakehouse: Lakehouse, rover: str) -> int | None:
    table = lakehouse.read(MARS_RESPONSES, filters=[("rover", "=", rover), ("kind", "=", "photos")],
                           columns=["sol", "error"])  # fmt: skip
    if table is None or not table.num_rows:
        return None
    usable = table.filter(pc.is_null(table["error"]))
    value = pc.max(usable["sol"]).as_py() if usable.num_rows else None
    return int(value) if value is not None else None


def mission_complete(lakehouse: Lakehouse, rover: str) -> bool:
    table = lakehouse.read(MARS_MANIFESTS, filters=[("rover_name", "=", rover)], columns=["status"])
    return table is not None and table.num_rows > 0 and table["status"][0].as_py() == "complete"


def due_requests(settings: Settings, lakehouse: Lakehouse, now: datetime) -> list[MarsRequest]:
    due = []
    for name in settings.mars_rovers:
        try:
            rover = rover_named(name)
        except UnknownRover as error:
            raise dg.Failure(f"SATLAKE_MARS_ROVERS: {error}") from None
        if mission_complete(lakehouse, rover.name):
            continue
        last = current_sol(rover, now) - 1
        fetched = last_fetched_sol(lakehouse, rover.name)
        first = max(0, fetched - REFETCH_SOLS + 1) if fetched is not None else max(0, last - FIRST_LOOKBACK_SOLS + 1)
        first = max(first, last - MAX_SOLS_PER_REQUEST + 1)
        if first <= last:
            due.append(new_request(rover.name, first, last, requested_by=SCHEDULE_REQUESTER, now=now))
    return due


@dg.op(description="Publish one Mars request per followed rover, for the sols since its last fetch")
def publish_due_mars_requests(
    context: dg.OpExecutionContext,
    settings: dg.ResourceParam[Settings],
    event_log: dg.ResourceParam[EventLog],
    lakehouse: dg.ResourceParam[Lakehouse],
) -> None:
    requests = due_requests(settings, lakehouse, datetime.now(UTC))
    for request in requests:
        publish_request(event_log, settings.mars_topic, request)
        context.log.info(
            f"published {request.request_id}: {request.rover} sols {request.first_sol}..{request.last_sol}"
        )
    if not requests:
        context.log.info("no followed rover with new sols (SATLAKE_MARS_ROVERS)")


@dg.job(description="Publish the daily Mars requests of every followed rover")
def daily_mars_requests_job() -> None:
    publish_due_mars_requests()


daily_mars_schedule = dg.ScheduleDefinition(
    job=daily_mars_requests_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    description="Every day at 06:00 UTC: ask each followed rover (SATLAKE_MARS_ROVERS) for its sols since the last "
    "fetch",
)
