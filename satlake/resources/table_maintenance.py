"""Delta table maintenance: compact a date partition's many small files into a few and cluster its rows, so a
selective query (one satellite, one hour) reads a small share of the table.

A day is clustered by rewriting it sorted (for telemetry: by satellite, then time) with small Parquet row groups,
in one Delta commit that removes the day's old files and adds the new ones. Sorting, unlike Z-ordering, gives the
leading column whole row groups of its own, so a reader's row-group statistics skip everything else.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
from deltalake import ColumnProperties, CommitProperties, DeltaTable, WriterProperties, write_deltalake

# Small enough that one satellite-hour of 1 Hz telemetry (3,600 rows) spans one or two row groups, large enough
# that each column chunk stays tens of kilobytes (compression and per-group metadata remain efficient).
DEFAULT_ROW_GROUP_ROWS = 8_192
TELEMETRY_SORT_KEY = ("satellite_name", "event_time")
# Recorded in the commit's metadata, so the history says which commits were maintenance, not new data.
MAINTENANCE_OPERATION_KEY = "satlake.maintenance"
CLUSTERED_PARTITION_KEY = "satlake.partition"


@dataclass(frozen=True, slots=True)
class PartitionClustering:
    """What clustering one date partition did."""

    partition: date
    rows: int
    files_before: int
    files_after: int
    version: int | None  # the rewrite's table version; None when the partition held no files
    seconds: float


def date_partition_column(table: DeltaTable) -> str:
    """The table's only partition column; maintenance works a day at a time, so it needs exactly one."""
    columns = table.metadata().partition_columns
    if len(columns) != 1:
        raise ValueError(
            f"{table.table_uri}: partitioned by {columns or 'nothing'}; date-partition maintenance needs a table "
            "partitioned by exactly one date column"
        )
    return columns[0]


def files_per_date_partition(table: DeltaTable) -> dict[date, int]:
    """How many live data files each date partition of ``table`` holds, by day."""
    column = date_partition_column(table)
    actions = pa.table(table.get_add_actions(flatten=True))
    counts: dict[date, int] = {}
    for value in actions.column(f"partition.{column}").to_pylist():
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
        counts[day] = counts.get(day, 0) + 1
    return dict(sorted(counts.items()))


def date_partitions_to_compact(
    table_uri: str, storage_options: dict[str, str] | None = None, *, min_files: int = 2
) -> list[date]:
    """Days holding at least ``min_files`` data files: the ones a compaction would shrink."""
    table = DeltaTable(table_uri, storage_options=storage_options or None)
    return [day for day, files in files_per_date_partition(table).items() if files >= min_files]


def clustered_writer_properties(schema: pa.Schema, sort_by: Sequence[str], row_group_rows: int) -> WriterProperties:
    """Parquet settings for rows sorted by ``sort_by``: small row groups, and delta encoding (no dictionary) for
    the integer and timestamp sort columns after the first, which the sort makes ascending within each run of
    the leading column (a timestamp per reading would otherwise defeat the dictionary and be stored plain)."""
    ascending_runs = ColumnProperties(dictionary_enabled=False, encoding="DELTA_BINARY_PACKED")
    columns = {
        name: ascending_runs
        for name in sort_by[1:]
        if pa.types.is_integer(schema.field(name).type) or pa.types.is_timestamp(schema.field(name).type)
    }
    return WriterProperties(max_row_group_size=row_group_rows, column_properties=columns or None)


def read_date_partition(table: DeltaTable, day: date) -> pa.Table:
    """Every row of the ``day`` partition at ``table``'s version (only that day's files are opened)."""
    column = date_partition_column(table)
    return table.to_pyarrow_dataset(file_pruning_predicate=[(column, "=", day.isoformat())]).to_table()


def write_date_partition_sorted(
    table: DeltaTable,
    day: date,
    rows: pa.Table,
    *,
    sort_by: Sequence[str],
    storage_options: dict[str, str] | None = None,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    target_file_size: int | None = None,
) -> None:
    """Replace the ``day`` partition with ``rows`` sorted by ``sort_by``, in ONE commit based on ``table``'s
    version: if another writer added rows to that day since, delta-rs refuses the commit (``CommitFailedError``,
    "a concurrent transaction added new data") instead of dropping them."""
    column = date_partition_column(table)
    write_deltalake(
        table,
        rows.sort_by([(name, "ascending") for name in sort_by]),
        mode="overwrite",
        predicate=f"{column} = '{day.isoformat()}'",
        partition_by=[column],
        storage_options=storage_options or None,
        target_file_size=target_file_size,
        writer_properties=clustered_writer_properties(rows.schema, sort_by, row_group_rows),
        commit_properties=CommitProperties(
            custom_metadata={
                MAINTENANCE_OPERATION_KEY: "cluster",
                CLUSTERED_PARTITION_KEY: day.isoformat(),
                "satlake.sort_by": ",".join(sort_by),
            }
        ),
    )


def cluster_date_partition(
    table_uri: str,
    day: date,
    *,
    sort_by: Sequence[str],
    storage_options: dict[str, str] | None = None,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    target_file_size: int | None = None,
) -> PartitionClustering:
    """Compact and cluster the ``day`` partition: rewrite it sorted by ``sort_by`` with ``row_group_rows``-row
    Parquet groups, in ONE commit that replaces exactly that day's files (other days are untouched).

    The rows are the same before and after, only their order and files change; Delta and Parquet statistics are
    written for the new files, and application transactions (ingestion offsets) are kept. A concurrent append to
    the same day makes the commit fail rather than be lost: call again. One day is held in memory while sorted.
    """
    started = time.perf_counter()
    table = DeltaTable(table_uri, storage_options=storage_options or None)
    known = {field.name for field in table.schema().fields}
    missing = [name for name in sort_by if name not in known]
    if missing:
        raise ValueError(f"{table_uri}: cannot sort by {missing}; the table has no such columns")
    files_before = files_per_date_partition(table).get(day, 0)
    if files_before == 0:
        return PartitionClustering(day, 0, 0, 0, None, time.perf_counter() - started)
    rows = read_date_partition(table, day)
    write_date_partition_sorted(
        table,
        day,
        rows,
        sort_by=sort_by,
        storage_options=storage_options,
        row_group_rows=row_group_rows,
        target_file_size=target_file_size,
    )
    after = DeltaTable(table_uri, storage_options=storage_options or None)
    return PartitionClustering(
        partition=day,
        rows=rows.num_rows,
        files_before=files_before,
        files_after=files_per_date_partition(after).get(day, 0),
        version=after.version(),
        seconds=time.perf_counter() - started,
    )


def cluster_date_partitions(
    table_uri: str,
    days: Sequence[date],
    *,
    sort_by: Sequence[str],
    storage_options: dict[str, str] | None = None,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    target_file_size: int | None = None,
) -> list[PartitionClustering]:
    """``cluster_date_partition`` for each day in turn: one commit per day keeps memory to one day's rows."""
    return [
        cluster_date_partition(
            table_uri,
            day,
            sort_by=sort_by,
            storage_options=storage_options,
            row_group_rows=row_group_rows,
            target_file_size=target_file_size,
        )
        for day in days
    ]
