"""Data-quality rules for the telemetry tables, as pure functions over Arrow tables.

Each returns a ``CheckOutcome`` with the counts and example rows a person needs to act; the Dagster wiring
turns them into asset-check results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from satlake.telemetry.validation import CONTRACT_RANGES

EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _examples(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    columns = [d[0] for d in cursor.description or []]
    return [
        {c: (v.isoformat() if hasattr(v, "isoformat") else v) for c, v in zip(columns, row, strict=True)}
        for row in cursor.fetchmany(EXAMPLE_ROWS)
    ]


def check_keys_not_null_and_unique(rows: pa.Table) -> CheckOutcome:
    """(satellite_name, timestamp_ns) identifies a reading: never null, never twice."""
    con = duckdb.connect()
    con.register("t", rows)
    nulls = con.execute("SELECT count(*) FROM t WHERE satellite_name IS NULL OR timestamp_ns IS NULL").fetchone()
    duplicated = con.execute(
        "SELECT count(*) FROM (SELECT 1 FROM t GROUP BY satellite_name, timestamp_ns HAVING count(*) > 1)"
    ).fetchone()
    null_keys, duplicate_keys = int(nulls[0]), int(duplicated[0])  # type: ignore[index]
    examples = _examples(
        con,
        "SELECT satellite_name, timestamp_ns, count(*) AS copies FROM t GROUP BY ALL HAVING count(*) > 1 "
        "ORDER BY copies DESC, satellite_name, timestamp_ns",
    )
    return CheckOutcome(
        passed=null_keys == 0 and duplicate_keys == 0,
        description=f"{rows.num_rows} rows: {null_keys} with a null key, {duplicate_keys} duplicated keys",
        metadata={"rows": rows.num_rows, "null_keys": null_keys, "duplicate_keys": duplicate_keys,
                  "examples": examples},
    )  # fmt: skip


def check_values_in_range(rows: pa.Table) -> CheckOutcome:
    """Every measure lies inside the telemetry contract's plausible range."""
    con = duckdb.connect()
    con.register("t", rows)
    conditions = {m: f"NOT ({m} BETWEEN {r.low} AND {r.high})" for m, r in CONTRACT_RANGES.items()}
    counts = {m: int(con.execute(f"SELECT count(*) FROM t WHERE {c}").fetchone()[0]) for m, c in conditions.items()}  # type: ignore[index]
    examples = _examples(
        con,
        f"SELECT satellite_name, event_time, {', '.join(CONTRACT_RANGES)} FROM t WHERE "
        + " OR ".join(conditions.values()),
    )
    out_of_range = sum(counts.values())
    return CheckOutcome(
        passed=out_of_range == 0,
        description=f"{out_of_range} values outside the contract ranges in {rows.num_rows} rows",
        metadata={"rows": rows.num_rows, "out_of_range_by_measure": counts, "examples": examples,
                  "ranges": {m: [r.low, r.high] for m, r in CONTRACT_RANGES.items()}},
    )  # fmt: skip


def check_row_count_reconciliation(raw: pa.Table, bronze: pa.Table, rejects: pa.Table) -> CheckOutcome:
    """For every ingestion batch, events consumed = bronze rows + rejected rows (nothing silently dropped)."""
    con = duckdb.connect()
    con.register("raw", raw.select(["batch_id"]))
    con.register("bronze", bronze.select(["batch_id"]))
    con.register("rejects", rejects.select(["batch_id"]))
    mismatches = con.execute(
        """
        WITH r AS (SELECT batch_id, count(*) AS consumed FROM raw GROUP BY ALL),
             b AS (SELECT batch_id, count(*) AS bronze_rows FROM bronze GROUP BY ALL),
             j AS (SELECT batch_id, count(*) AS rejected FROM rejects GROUP BY ALL)
        SELECT coalesce(r.batch_id, b.batch_id, j.batch_id) AS batch_id, coalesce(consumed, 0) AS consumed,
               coalesce(bronze_rows, 0) AS bronze_rows, coalesce(rejected, 0) AS rejected
        FROM r FULL JOIN b USING (batch_id) FULL JOIN j USING (batch_id)
        ORDER BY batch_id
        """
    ).fetchall()
    per_batch = [{"batch_id": b, "consumed": c, "bronze_rows": g, "rejected": r} for b, c, g, r in mismatches]
    broken = [row for row in per_batch if row["consumed"] != row["bronze_rows"] + row["rejected"]]
    return CheckOutcome(
        passed=not broken,
        description=(
            f"{len(per_batch)} batches: consumed {raw.num_rows} = {bronze.num_rows} bronze + "
            f"{rejects.num_rows} rejected" if not broken else f"{len(broken)} batches do not reconcile"
        ),
        metadata={"batches": len(per_batch), "consumed": raw.num_rows, "bronze_rows": bronze.num_rows,
                  "rejected": rejects.num_rows, "unreconciled_batches": broken[:EXAMPLE_ROWS]},
    )  # fmt: skip


def check_latest_partition_fresh(
    latest_event_time: datetime | None, now: datetime, max_age: timedelta = timedelta(hours=6)
) -> CheckOutcome:
    """The newest reading in the table is recent: ingestion and the daily partitions keep up."""
    if latest_event_time is None:
        return CheckOutcome(False, "the table holds no readings yet", {"max_age_hours": max_age / timedelta(hours=1)})
    age = now.astimezone(UTC) - latest_event_time.astimezone(UTC)
    return CheckOutcome(
        passed=age <= max_age,
        description=f"newest reading {latest_event_time.isoformat()} is {age} old (limit {max_age})",
        metadata={"latest_event_time": latest_event_time.isoformat(), "age_minutes": round(age.total_seconds() / 60, 1),
                  "max_age_hours": max_age / timedelta(hours=1)},
    )  # fmt: skip


def check_schema_unchanged(actual: pa.Schema, expected: pa.Schema) -> CheckOutcome:
    """The stored table schema is the contract: same column names, order and types (nullability aside)."""
    actual_columns = [(f.name, _logical_type(f.type)) for f in actual]
    expected_columns = [(f.name, _logical_type(f.type)) for f in expected]
    missing = [c for c in expected_columns if c not in actual_columns]
    unexpected = [c for c in actual_columns if c not in expected_columns]
    return CheckOutcome(
        passed=not missing and not unexpected,
        description="schema matches the contract" if not missing and not unexpected
        else f"{len(missing)} expected columns missing or retyped, {len(unexpected)} unexpected",
        metadata={"missing_or_retyped": [f"{n} {t}" for n, t in missing],
                  "unexpected": [f"{n} {t}" for n, t in unexpected]},
    )  # fmt: skip


def _logical_type(data_type: pa.DataType) -> str:
    """Type name without physical variants that Delta readers choose freely (large_/view string and binary)."""
    if pa.types.is_large_string(data_type) or pa.types.is_string_view(data_type):
        return "string"
    if pa.types.is_large_binary(data_type) or pa.types.is_binary_view(data_type):
        return "binary"
    return str(data_type)
