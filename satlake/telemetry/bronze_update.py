"""Bringing bronze telemetry up to date with the raw table: only the raw rows committed since the last update.

Each day's progress is a Delta application transaction in BOTH bronze tables, ``satlake.bronze/<day>``, whose
version is the raw table version that day has been built up to; it is set in the same commit as the rows it
covers. So a crash between the bronze commit and the rejects commit loses nothing: the table behind catches up
from its own marker next time, and the one ahead skips the rows it already holds.

An update reads only what the raw table's change data feed says was added since the older marker (the rows of
the new batches), plus the keys of stored bronze rows in the same span of event time, to reject duplicates. Its
cost follows the new rows, not the size of the day. A window of several days, a day never built, a raw table
whose feed does not reach back far enough, or an explicit request rebuilds the window from all its raw rows
instead (what a backfill does). So does a day whose stored rows were judged by other limits than the ones in
force (their ``limits_version``), or written before the limits contract: editing the limits file and running a
day re-evaluates it from its raw rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from satlake.resources.lakehouse import CHANGE_FEED_COLUMNS, ChangeFeedUnavailable, Lakehouse, scan
from satlake.telemetry.bronze import STORED_KEY_COLUMNS, BronzePartition, build_bronze_partition
from satlake.telemetry.limits import TelemetryLimits
from satlake.telemetry.tables import (
    BRONZE_TELEMETRY,
    BRONZE_TELEMETRY_REJECTS,
    RAW_TELEMETRY_EVENTS,
    RAW_TELEMETRY_EVENTS_SCHEMA,
)
from satlake.telemetry.validation import default_limits

INCREMENTAL = "incremental"
REBUILD = "rebuild"
UP_TO_DATE = "up to date"
_LOG_POSITION = ("topic", "partition", "offset")


def progress_app_id(day: date) -> str:
    """The application transaction recording up to which raw table version ``day`` is built."""
    return f"satlake.bronze/{day.isoformat()}"


@dataclass(frozen=True)
class BronzeUpdate:
    """What one update judged and wrote. ``raw`` holds the raw rows judged (all of the window's for a
    rebuild, the new ones for an incremental update); ``bronze_rows`` and ``rejects`` are what was written."""

    first: date
    last: date
    mode: str
    raw_version: int
    raw: pa.Table
    partition: BronzePartition
    bronze_version: int | None = None
    rejects_version: int | None = None
    reason: str = ""
    batch_ids: list[str] = field(default_factory=list)
    limits_version: str = ""

    @property
    def window(self) -> str:
        return f"{self.first}..{self.last}"


def update_bronze(
    lakehouse: Lakehouse,
    first: date,
    last: date,
    *,
    limits: TelemetryLimits | None = None,
    rebuild: bool = False,
    say: Callable[[str], None] = print,
) -> BronzeUpdate:
    """Bring bronze (rows and rejects) for the days ``first..last`` up to date with the raw table, judged by
    ``limits`` (default: the shipped ones)."""
    limits = limits or default_limits()
    raw_table = lakehouse.open(RAW_TELEMETRY_EVENTS)
    raw_version = raw_table.version() if raw_table is not None else -1
    if rebuild or first != last or raw_table is None:
        why = "requested" if rebuild else ("a window of several days" if first != last else "no raw table yet")
        return _rebuild(lakehouse, first, last, limits, why)
    app_id = progress_app_id(first)
    bronze_writer = lakehouse.exactly_once_writer(BRONZE_TELEMETRY)
    rejects_writer = lakehouse.exactly_once_writer(BRONZE_TELEMETRY_REJECTS)
    built_to = {
        "bronze": bronze_writer.transaction_versions([app_id])[app_id],
        "rejects": rejects_writer.transaction_versions([app_id])[app_id],
    }
    if None in built_to.values():
        return _rebuild(lakehouse, first, last, limits, "the day has no progress marker yet")
    judged_otherwise = _judged_by_other_limits(lakehouse, first, limits)
    if judged_otherwise:
        return _rebuild(lakehouse, first, last, limits, judged_otherwise)
    oldest = min(v for v in built_to.values() if v is not None)
    if oldest >= raw_version:
        empty = RAW_TELEMETRY_EVENTS_SCHEMA.empty_table()
        return BronzeUpdate(first, last, UP_TO_DATE, raw_version, empty, build_bronze_partition(empty, limits=limits),
                            limits_version=limits.version)  # fmt: skip
    try:
        changes = lakehouse.read_changes(
            RAW_TELEMETRY_EVENTS, oldest, raw_version, predicate=f"event_date = '{first.isoformat()}'"
        )
    except ChangeFeedUnavailable as error:
        return _rebuild(lakehouse, first, last, limits, f"the raw change feed cannot be read ({error})")
    kinds = set(changes.column("_change_type").to_pylist()) if changes.num_rows else set()
    if kinds - {"insert"}:
        return _rebuild(lakehouse, first, last, limits, f"raw rows were changed, not only added ({kinds})")

    commit_versions = changes.column("_commit_version").to_numpy()
    raw = _as_raw_rows(changes)
    partition = build_bronze_partition(raw, _stored_keys_lookup(lakehouse, first), limits=limits)
    say(
        f"{first}: {raw.num_rows} new raw events (raw v{oldest + 1}..v{raw_version}) -> "
        f"{partition.rows.num_rows} bronze rows, {partition.rejects.num_rows} rejects {partition.reject_counts}"
    )
    metadata = {"satlake.window": f"{first}..{last}", "satlake.mode": INCREMENTAL, **_limits_metadata(limits)}
    versions = {}
    for name, writer, rows in (
        ("bronze", bronze_writer, partition.rows),
        ("rejects", rejects_writer, partition.rejects),
    ):
        unseen = _committed_after(rows, raw, commit_versions, built_to[name])
        versions[name] = writer.append(
            unseen, partition_by=["event_date"], app_transactions={app_id: raw_version}, commit_metadata=metadata
        )
    return BronzeUpdate(
        first, last, INCREMENTAL, raw_version, raw, partition, versions["bronze"], versions["rejects"],
        batch_ids=sorted(set(raw.column("batch_id").to_pylist())), limits_version=limits.version,
    )  # fmt: skip


def _limits_metadata(limits: TelemetryLimits) -> dict[str, str]:
    return {"satlake.limits_version": limits.version, "satlake.limits_mission": limits.mission,
            "satlake.limits_file": limits.source}  # fmt: skip


def _judged_by_other_limits(lakehouse: Lakehouse, day: date, limits: TelemetryLimits) -> str:
    """Why the day's stored rows must be judged again under ``limits`` ("" when they need not): a table
    written before the limits contract, or rows whose limits version is another. Read from the Delta log's
    file statistics, without reading rows."""
    for table in (BRONZE_TELEMETRY, BRONZE_TELEMETRY_REJECTS):
        delta_table = lakehouse.open(table)
        if delta_table is None:
            continue
        if "limits_version" not in {f.name for f in delta_table.schema().fields}:
            return f"{table} was written before the limits contract (no limits_version column)"
        files = pa.table(delta_table.get_add_actions(flatten=True))
        if not files.num_rows:
            continue
        of_day = files.filter(pc.equal(files.column("partition.event_date"), pa.scalar(day, pa.date32())))
        if not of_day.num_rows:
            continue
        if "min.limits_version" not in of_day.column_names:  # no statistics: read the one column
            stored = lakehouse.read(table, filters=[("event_date", "=", day)], columns=["limits_version"])
            versions = set(stored.column("limits_version").to_pylist()) if stored is not None else set()
        else:
            nulls = pc.sum(of_day.column("null_count.limits_version")).as_py() or 0
            versions = {*of_day.column("min.limits_version").to_pylist(), *of_day.column("max.limits_version")
                        .to_pylist()} | ({None} if nulls else set())  # fmt: skip
        others = versions - {limits.version}
        if others:
            shown = ", ".join(sorted(str(v) for v in others))
            return f"{table} rows of {day} were judged by other limits ({shown}; now {limits.version})"
    return ""


def _rebuild(lakehouse: Lakehouse, first: date, last: date, limits: TelemetryLimits, reason: str) -> BronzeUpdate:
    raw_table = lakehouse.open(RAW_TELEMETRY_EVENTS)
    window = [("event_date", ">=", first), ("event_date", "<=", last)]
    raw = scan(raw_table, window) if raw_table is not None else RAW_TELEMETRY_EVENTS_SCHEMA.empty_table()
    raw_version = raw_table.version() if raw_table is not None else -1
    partition = build_bronze_partition(raw, limits=limits)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    markers = {progress_app_id(day): raw_version for day in days} if raw_version >= 0 else {}
    metadata = {"satlake.window": f"{first}..{last}", "satlake.mode": REBUILD, **_limits_metadata(limits)}
    written = [
        lakehouse.replace_date_partitions(
            table, rows, partition_column="event_date", first=first, last=last, commit_metadata=metadata,
            app_transactions=markers,
        )
        for table, rows in ((BRONZE_TELEMETRY, partition.rows), (BRONZE_TELEMETRY_REJECTS, partition.rejects))
    ]  # fmt: skip
    return BronzeUpdate(first, last, REBUILD, raw_version, raw, partition, written[0], written[1], reason,
                        limits_version=limits.version)  # fmt: skip


def _as_raw_rows(changes: pa.Table) -> pa.Table:
    """Change-feed rows as raw table rows (the feed adds its own columns and reads binary as views)."""
    rows = changes.drop_columns([c for c in CHANGE_FEED_COLUMNS if c in changes.column_names])
    return pa.table([rows.column(f.name).cast(f.type) for f in RAW_TELEMETRY_EVENTS_SCHEMA],
                    schema=RAW_TELEMETRY_EVENTS_SCHEMA)  # fmt: skip


def _stored_keys_lookup(lakehouse: Lakehouse, day: date) -> Callable[[int, int], pa.Table]:
    """Stored bronze keys of ``day`` in a span of timestamps; file statistics in the log prune the read, so it
    reads the files of that span, not the day."""

    def lookup(low: int, high: int) -> pa.Table:
        stored = lakehouse.read(
            BRONZE_TELEMETRY,
            filters=[("event_date", "=", day), ("timestamp_ns", ">=", low), ("timestamp_ns", "<=", high)],
            columns=STORED_KEY_COLUMNS,
        )
        return stored if stored is not None else pa.table({c: [] for c in STORED_KEY_COLUMNS})

    return lookup


def _committed_after(rows: pa.Table, raw: pa.Table, commit_versions: np.ndarray, built_to: int | None) -> pa.Table:
    """The ``rows`` (bronze or rejects, each from one raw row) whose raw row was committed after ``built_to``.

    Normally every row; after a crash between the two bronze commits, the table that is ahead already holds
    the rows of the raw versions it has seen."""
    if built_to is None or (commit_versions > built_to).all():
        return rows
    seen = raw.filter(pa.array(commit_versions <= built_to)).select(list(_LOG_POSITION))
    return rows.join(seen, keys=list(_LOG_POSITION), join_type="left anti", use_threads=False).select(rows.column_names)
