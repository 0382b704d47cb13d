"""Partitioning shared across domains: daily by the event's own UTC day, from a first day that fits the data.

The first day is ``SATLAKE_PARTITIONS_START`` when set; otherwise the day recorded under the storage root
(``<root>/partitions-start``) when satlake first used it, which is ``DEFAULT_LOOKBACK_DAYS`` before that day:
the UI shows the days that hold data, not years of missing ones. Moving the start later hides the days before
it and moving it earlier shows them again; their materializations stay in the instance and their rows in the
lake either way.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from satlake.settings import Settings

# A fresh root starts its partitions this many days back: the span the demo produces.
DEFAULT_LOOKBACK_DAYS = 2
START_FILE = "partitions-start"


def partitions_start(settings: Settings, today: date | None = None) -> date:
    """The first daily partition for ``settings``: the setting, else the recorded day, else a new one."""
    if settings.partitions_start is not None:
        return settings.partitions_start
    recorded = settings.root / START_FILE
    if recorded.is_file():
        try:
            return date.fromisoformat(recorded.read_text().strip())
        except ValueError:
            pass  # a damaged record is replaced below
    start = (today or datetime.now(UTC).date()) - timedelta(days=DEFAULT_LOOKBACK_DAYS)
    try:
        recorded.parent.mkdir(parents=True, exist_ok=True)
        recorded.write_text(start.isoformat() + "\n")
    except OSError:
        pass  # a read-only root still gets partitions, just not a recorded start
    return start


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    # end_offset=1 keeps today's partition available, so live telemetry lands in bronze before midnight.
    return dg.DailyPartitionsDefinition(start_date=partitions_start(settings).isoformat(), end_offset=1, timezone="UTC")


# Read once, when the assets are defined (as the definitions are, from the environment).
DAILY_PARTITIONS = daily_partitions(Settings.from_env())


def partition_dates(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """First and last day (inclusive) of the partition window a run covers (one day, or a backfill range)."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()
