"""Maintenance of bronze telemetry: once a day is closed, its partition is rewritten clustered by (satellite, time)
with small row groups, so a one-satellite-one-hour query reads a small share of the day.

``days_to_cluster`` decides from the table's commit history which days need it; the op, its job and its daily
schedule only call it and ``satlake.resources.table_maintenance``.
"""

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
from deltalake.exceptions import CommitFailedError

from satlake.resources.lakehouse import Lakehouse
from satlake.resources.table_maintenance import (
    CLUSTERED_PARTITION_KEY,
    MAINTENANCE_OPERATION_KEY,
    TELEMETRY_SORT_KEY,
    cluster_date_partition,
    files_per_date_partition,
)
from satlake.telemetry.assets import BRONZE_KEY
from satlake.telemetry.tables import BRONZE_TELEMETRY

# Late events re-run their bronze day, which undoes its clustering; waiting this long after a day ends makes that
# rare (and when it happens, the next pass sees the newer write and clusters the day again).
CLOSED_AFTER = timedelta(hours=6)
# The commit metadata bronze_telemetry writes with every window of days it replaces ("first..last").
BRONZE_WINDOW_KEY = "satlake.window"
# Days written longer ago than this many commits are not looked at again (the schedule runs every day).
HISTORY_COMMITS = 1000


def last_closed_day(now: datetime, closed_after: timedelta = CLOSED_AFTER) -> date:
    """The newest UTC day that ended at least ``closed_after`` before ``now``."""
    return (now.astimezone(UTC) - closed_after).date() - timedelta(days=1)


def days_to_cluster(
    history: Iterable[Mapping[str, Any]], days_with_files: Iterable[date], closed_through: date
) -> list[date]:
    """Days holding files, closed (on or before ``closed_through``), whose newest write in ``history`` is newer
    than their newest clustering. ``history``: commit infos, newest first, as ``DeltaTable.history`` gives them."""
    candidates = {day for day in days_with_files if day <= closed_through}
    needs_clustering: dict[date, bool] = {}
    for commit in history:
        if commit.get(MAINTENANCE_OPERATION_KEY) == "cluster":
            needs_clustering.setdefault(date.fromisoformat(commit[CLUSTERED_PARTITION_KEY]), False)
        elif window := commit.get(BRONZE_WINDOW_KEY):
            first, last = (date.fromisoformat(part) for part in str(window).split(".."))
            for day in candidates:
                if first <= day <= last:
                    needs_clustering.setdefault(day, True)
    return sorted(day for day, needed in needs_clustering.items() if needed and day in candidates)


@dg.op(
    out={},
    pool="bronze_telemetry",  # never at the same time as a bronze run, whose rewrite of a day would conflict
    description="Rewrites each closed day of bronze telemetry written since it was last clustered, sorted by "
    "(satellite_name, event_time) with 8,192-row Parquet groups, one Delta commit per day. Rows never change.",
)
def cluster_closed_bronze_days(
    context: dg.OpExecutionContext, lakehouse: dg.ResourceParam[Lakehouse]
) -> Iterator[dg.AssetObservation]:
    table = lakehouse.open(BRONZE_TELEMETRY)
    if table is None:
        context.log.info(f"{BRONZE_TELEMETRY}: not written yet, nothing to cluster")
        return
    closed_through = last_closed_day(datetime.now(UTC))
    days = days_to_cluster(table.history(HISTORY_COMMITS), files_per_date_partition(table), closed_through)
    context.log.info(f"{BRONZE_TELEMETRY}: {len(days)} closed days (through {closed_through}) to cluster: {days}")
    uri = lakehouse.uri(BRONZE_TELEMETRY)
    for day in days:
        try:
            report = cluster_date_partition(
                uri, day, sort_by=TELEMETRY_SORT_KEY, storage_options=lakehouse.storage_options
            )
        except CommitFailedError as error:
            # A bronze run rewrote the day meanwhile; the next pass sees that newer write and clusters it then.
            context.log.warning(f"{BRONZE_TELEMETRY} {day}: left for the next pass, a concurrent write won ({error})")
            continue
        context.log.info(
            f"{BRONZE_TELEMETRY} {day}: {report.rows} rows, {report.files_before} -> {report.files_after} files, "
            f"delta v{report.version}, {report.seconds:.1f} s"
        )
        yield dg.AssetObservation(
            asset_key=BRONZE_KEY,
            partition=day.isoformat(),
            metadata={
                "clustered_by": ", ".join(TELEMETRY_SORT_KEY),
                "rows": report.rows,
                "files_before": report.files_before,
                "files_after": report.files_after,
                "delta_version": report.version if report.version is not None else -1,
            },
        )


@dg.job(description="Cluster the closed days of bronze telemetry by (satellite, time)")
def cluster_telemetry_days_job() -> None:
    cluster_closed_bronze_days()


cluster_telemetry_days_schedule = dg.ScheduleDefinition(
    job=cluster_telemetry_days_job,
    cron_schedule="0 7 * * *",  # after CLOSED_AFTER has passed for yesterday
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Once a day, clusters the bronze telemetry days that closed or were re-run since the last pass.",
)
