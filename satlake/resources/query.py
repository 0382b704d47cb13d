"""SQL over the lakehouse: DuckDB on the Delta tables (embedded) or Trino's ``lake`` catalog (stack).

Both engines name tables ``<zone>.<table>`` (``bronze.telemetry``), so a query runs unchanged on either.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from satlake.resources.lakehouse import Lakehouse

if TYPE_CHECKING:
    from satlake.resources.trino import TrinoLake


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def format_table(self, max_rows: int = 50, max_width: int = 40) -> str:
        """A plain-text table for terminals (values cut at ``max_width`` characters)."""

        def cell(value: Any) -> str:
            text = value.hex()[:16] + "…" if isinstance(value, bytes | bytearray) else str(value)
            return text if len(text) <= max_width else text[: max_width - 1] + "…"

        shown = [[cell(v) for v in row] for row in self.rows[:max_rows]]
        widths = [max([len(c), *(len(r[i]) for r in shown)]) for i, c in enumerate(self.columns)]
        line = "  ".join("-" * w for w in widths)
        out = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True)), line]
        out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in shown]
        if len(self.rows) > max_rows:
            out.append(f"… {len(self.rows) - max_rows} more rows")
        out.append(f"({len(self.rows)} row{'s' if len(self.rows) != 1 else ''})")
        return "\n".join(out)


class QueryEngine(ABC):
    name: str

    @abstractmethod
    def query(self, sql: str, parameters: list[Any] | None = None) -> QueryResult:
        """Run one SQL statement and return all its rows."""


class DuckDbLakeQuery(QueryEngine):
    """DuckDB with every Delta table of the lakehouse exposed as ``<zone>.<table>``.

    Tables are read through delta-rs as Arrow datasets (filters and projections pushed down), so no DuckDB
    extension has to be downloaded at run time.
    """

    name = "duckdb"

    def __init__(self, lakehouse: Lakehouse) -> None:
        self.lakehouse = lakehouse

    def connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        for table in self.lakehouse.list_tables():
            delta_table = self.lakehouse.open(table)
            if delta_table is None:
                continue
            arrow_name = f"__delta_{table.zone}_{table.name}"
            con.register(arrow_name, delta_table.to_pyarrow_dataset())
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{table.zone}"')
            con.execute(f'CREATE OR REPLACE VIEW "{table.zone}"."{table.name}" AS SELECT * FROM "{arrow_name}"')
        return con

    def query(self, sql: str, parameters: list[Any] | None = None) -> QueryResult:
        con = self.connect()
        try:
            cursor = con.execute(sql, parameters or [])
            columns = [d[0] for d in cursor.description or []]
            return QueryResult(columns=columns, rows=cursor.fetchall())
        finally:
            con.close()


class TrinoQueryEngine(QueryEngine):
    """Trino's ``lake`` catalog, where every Delta table is registered as ``<zone>.<table>``."""

    name = "trino"

    def __init__(self, trino: TrinoLake) -> None:
        self.trino = trino

    def query(self, sql: str, parameters: list[Any] | None = None) -> QueryResult:
        columns, rows = self.trino.query(sql, parameters=parameters)
        return QueryResult(columns=columns, rows=[tuple(r) for r in rows])
