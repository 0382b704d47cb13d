from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError

from satlake.resources.lakehouse import Lakehouse, TableRef

DAY1, DAY2, DAY3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)
TABLE = TableRef("bronze", "example")


def rows(values: list[int], days: list[date]) -> pa.Table:
    return pa.table({"value": pa.array(values, pa.int64()), "event_date": pa.array(days, pa.date32())})


def sorted_rows(lakehouse: Lakehouse) -> list[tuple[int, date]]:
    table = lakehouse.read(TABLE)
    assert table is not None
    return sorted(zip(table.column("value").to_pylist(), table.column("event_date").to_pylist(), strict=True))


def test_replacing_a_window_touches_only_that_window(tmp_path: Path) -> None:
    lakehouse = Lakehouse(str(tmp_path))
    lakehouse.replace_date_partitions(
        TABLE, rows([1, 2, 3], [DAY1, DAY2, DAY3]), partition_column="event_date", first=DAY1, last=DAY3
    )
    lakehouse.replace_date_partitions(
        TABLE, rows([20, 21], [DAY2, DAY2]), partition_column="event_date", first=DAY2, last=DAY2
    )
    assert sorted_rows(lakehouse) == [(1, DAY1), (3, DAY3), (20, DAY2), (21, DAY2)]


def test_replacing_twice_is_idempotent_and_empty_data_clears_the_window(tmp_path: Path) -> None:
    lakehouse = Lakehouse(str(tmp_path))
    data = rows([1, 2], [DAY1, DAY2])
    for _ in range(2):
        lakehouse.replace_date_partitions(TABLE, data, partition_column="event_date", first=DAY1, last=DAY2)
    assert sorted_rows(lakehouse) == [(1, DAY1), (2, DAY2)]
    lakehouse.replace_date_partitions(TABLE, data.slice(0, 0), partition_column="event_date", first=DAY1, last=DAY1)
    assert sorted_rows(lakehouse) == [(2, DAY2)]


def test_empty_first_write_still_creates_the_table(tmp_path: Path) -> None:
    lakehouse = Lakehouse(str(tmp_path))
    lakehouse.replace_date_partitions(TABLE, rows([], []), partition_column="event_date", first=DAY1, last=DAY1)
    assert lakehouse.exists(TABLE)
    assert lakehouse.list_tables() == [TABLE]


def test_rows_outside_the_window_are_refused(tmp_path: Path) -> None:
    lakehouse = Lakehouse(str(tmp_path))
    with pytest.raises(ValueError, match=r"outside 2026-01-01\.\.2026-01-01"):
        lakehouse.replace_date_partitions(
            TABLE, rows([1, 2], [DAY1, DAY2]), partition_column="event_date", first=DAY1, last=DAY1
        )


def test_application_transactions_commit_with_the_rows_and_reject_a_racing_writer(tmp_path: Path) -> None:
    lakehouse = Lakehouse(str(tmp_path))
    raw = TableRef("raw", "events")
    lakehouse.append_exactly_once(raw, rows([1], [DAY1]), partition_by=["event_date"], app_transactions={"p0": 1})
    stale = DeltaTable(lakehouse.uri(raw))  # a second writer that read the same offsets
    lakehouse.append_exactly_once(raw, rows([2], [DAY1]), partition_by=["event_date"], app_transactions={"p0": 2})
    assert lakehouse.transaction_versions(raw, ["p0", "p1"]) == {"p0": 2, "p1": None}
    with pytest.raises(CommitFailedError):
        write_deltalake(
            stale, rows([2], [DAY1]), mode="append",
            commit_properties=CommitProperties(app_transactions=[Transaction(app_id="p0", version=2)]),
        )  # fmt: skip
    assert lakehouse.read(raw).num_rows == 2  # type: ignore[union-attr]


def test_table_written_hook_sees_every_commit(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    lakehouse = Lakehouse(str(tmp_path), on_table_written=lambda t, uri: seen.append((t.path, uri)))
    lakehouse.replace_date_partitions(TABLE, rows([1], [DAY1]), partition_column="event_date", first=DAY1, last=DAY1)
    lakehouse.replace_date_partitions(TABLE, rows([1], [DAY1]), partition_column="event_date", first=DAY1, last=DAY1)
    assert seen == [("bronze/example", f"{tmp_path}/bronze/example")] * 2
