"""Partitioning shared across domains: daily by the event's own UTC day."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

# end_offset=1 keeps today's partition available, so live telemetry lands in bronze before midnight.
DAILY_PARTITIONS = dg.DailyPartitionsDefinition(start_date="2020-01-01", end_offset=1, timezone="UTC")


def partition_dates(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """First and last day (inclusive) of the partition window a run covers (one day, or a backfill range)."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()
