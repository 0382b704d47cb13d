from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from satlake.resources.lakehouse import Lakehouse, TableRef
from satlake.resources.table_maintenance import (
    MAINTENANCE_OPERATION_KEY,
    TELEMETRY_SORT_KEY,
    cluster_date_partition,
    date_partitions_to_compact,
    files_per_date_partition,
    read_date_partition,
    write_date_partition_sorted,
)

TABLE = TableRef("raw", "micro_batches")
DAY1, DAY2 = date(2026, 1, 1), date(2026, 1, 2)
SATELLITES = ("sat-b", "sat-a", "sat-c")  # not in sorted order, so a sort has something to do
ROW_GROUP_ROWS = 16


def micro_batch(first_second: int, seconds: int, day: date) -> pa.Table:
    """Readings of every satellite for ``seconds`` seconds from ``first_second`` of ``day``, in arrival order."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    times = [start + timedelta(seconds=first_second + s) for s in range(seconds) for _ in SATELLITES]
    names = [name for _ in range(seconds) for name in SATELLITES]
    return pa.table(
        {
            "satellite_name": pa.array(names),
            "event_time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "event_date": pa.array([day] * len(names), pa.date32()),
            "temp_c": pa.array([float(i % 17) for i in range(len(names))]),
        }
    )


def append_micro_batches(lakehouse: Lakehouse, batches: int, day: date, first_txn: int = 1) -> None:
    for number in range(batches):
        lakehouse.append_exactly_once(
            TABLE,
            micro_batch(number * 10, 10, day),
            partition_by=["event_date"],
            app_transactions={"ingest/0": first_txn + number},
        )


def all_rows(uri: str) -> list[tuple[object, ...]]:
    table = DeltaTable(uri).to_pyarrow_table()
    return sorted(zip(*(table.column(name).to_pylist() for name in table.column_names), strict=True))


def test_clustering_a_day_keeps_every_row_and_leaves_one_sorted_file(tmp_path: Path) -> None:
    lakehouse = Lakehouse(str(tmp_path))
    append_micro_batches(lakehouse, 6, DAY1)
    append_micro_batches(lakehouse, 2, DAY2, first_txn=7)
    uri = lakehouse.uri(TABLE)
    rows_before = all_rows(uri)
    day2_files_before = {a for a in DeltaTable(uri).file_uris() if "2026-01-02" in a}

    report = cluster_date_partition(uri, DAY1, sort_by=TELEMETRY_SORT_KEY, row_group_rows=ROW_GROUP_ROWS)

    assert (report.files_before, report.files_after, report.rows) == (6, 1, 6 * 10 * len(SATELLITES))
    assert all_rows(uri) == rows_before  # the same rows, nothing lost or duplicated
    after = DeltaTable(uri)
    assert files_per_date_partition(after) == {DAY1: 1, DAY2: 2}
    assert {a for a in after.file_uris() if "2026-01-02" in a} == day2_files_before  # other days untouched
    assert after.transaction_version("ingest/0") == 8  # ingestion offsets survive the rewrite
    assert after.history(1)[0].get(MAINTENANCE_OPERATION_KEY) == "cluster"

    (day1_file,) = [a for a in after.file_uris() if "2026-01-01" in a]
    parquet = pq.ParquetFile(day1_file)
    order = [
        (name, time)
        for group in range(parquet.metadata.num_row_groups)
        for name, time in zip(
            *parquet.read_row_group(group, columns=list(TELEMETRY_SORT_KEY)).to_pydict().values(), strict=True
        )
    ]
    assert order == sorted(order)
    groups = [parquet.metadata.row_group(g) for g in range(parquet.metadata.num_row_groups)]
    assert len(groups) == -(-report.rows // ROW_GROUP_ROWS) and all(g.num_rows <= ROW_GROUP_ROWS for g in groups)
    time_column = parquet.schema_arrow.get_field_index("event_time")
    assert "DELTA_BINARY_PACKED" in groups[0].column(time_column).encodings  # ascending within each satellite
    name_column = parquet.schema_arrow.get_field_index("satellite_name")
    # Row-group statistics are what let a reader skip: most groups hold one satellite only.
    single_satellite = [g.column(name_column).statistics for g in groups]
    assert all(s is not None and s.has_min_max for s in single_satellite)
    assert sum(s.min == s.max for s in single_satellite) >= len(groups) - len(SATELLITES)
    actions = pa.table(after.get_add_actions(flatten=True))
    day1_action = actions.filter(pc.equal(actions.column("partition.event_date"), pa.scalar(DAY1)))
    assert day1_action.column("num_records").to_pylist() == [report.rows]
    assert day1_action.column("min.satellite_name").to_pylist() == ["sat-a"]  # Delta file statistics kept


def test_an_append_to_the_same_day_during_clustering_fails_the_commit_instead_of_being_lost(tmp_path: Path) -> None:
    lakehouse = Lakehouse(str(tmp_path))
    append_micro_batches(lakehouse, 3, DAY1)
    uri = lakehouse.uri(TABLE)
    pinned = DeltaTable(uri)
    rows = read_date_partition(pinned, DAY1)
    append_micro_batches(lakehouse, 1, DAY1, first_txn=4)  # arrives after the read, before the rewrite commits

    with pytest.raises(CommitFailedError, match="concurrent"):
        write_date_partition_sorted(pinned, DAY1, rows, sort_by=TELEMETRY_SORT_KEY)
    assert DeltaTable(uri).to_pyarrow_table().num_rows == 4 * 10 * len(SATELLITES)

    retried = cluster_date_partition(uri, DAY1, sort_by=TELEMETRY_SORT_KEY)
    assert (retried.rows, retried.files_after) == (4 * 10 * len(SATELLITES), 1)


def test_only_days_with_many_files_need_compaction_and_an_empty_day_is_left_alone(tmp_path: Path) -> None:
    lakehouse = Lakehouse(str(tmp_path))
    append_micro_batches(lakehouse, 3, DAY1)
    append_micro_batches(lakehouse, 1, DAY2, first_txn=4)
    uri = lakehouse.uri(TABLE)
    assert date_partitions_to_compact(uri, min_files=2) == [DAY1]
    version = DeltaTable(uri).version()

    nothing = cluster_date_partition(uri, date(2026, 1, 9), sort_by=TELEMETRY_SORT_KEY)

    assert (nothing.rows, nothing.files_before, nothing.version) == (0, 0, None)
    assert DeltaTable(uri).version() == version


def test_unknown_sort_columns_and_tables_not_partitioned_by_one_date_are_refused(tmp_path: Path) -> None:
    lakehouse = Lakehouse(str(tmp_path))
    append_micro_batches(lakehouse, 1, DAY1)
    with pytest.raises(ValueError, match=r"cannot sort by \['altitude'\]"):
        cluster_date_partition(lakehouse.uri(TABLE), DAY1, sort_by=["altitude"])
    unpartitioned = str(tmp_path / "flat")
    write_deltalake(unpartitioned, micro_batch(0, 2, DAY1))
    with pytest.raises(ValueError, match="partitioned by exactly one date column"):
        cluster_date_partition(unpartitioned, DAY1, sort_by=TELEMETRY_SORT_KEY)
