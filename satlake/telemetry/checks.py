"""Data-quality rules for the telemetry tables, as pure functions over Arrow tables.

Each returns a ``CheckOutcome`` with the counts and example rows a person needs to act; the Dagster wiring
turns them into asset-check results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from satlake.telemetry.limits import SEVERITIES, SEVERITY_LEVEL, TelemetryLimits, hard_limit_breaches
from satlake.telemetry.tables import MEASURES

EXAMPLE_ROWS = 5
# A satellite's critical alarm rate fails the check only when chance cannot explain it: when a satellite whose
# true rate were the limits' maximum would show as many critical readings less than 1 time in 100. A rate
# judged on the first few readings of a day (one fault in 59 readings is 1.7 %) is not evidence of anything.
ALARM_RATE_SIGNIFICANCE = 0.01


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the chance of ``k`` or more events in ``n`` trials of probability ``p``.

    Summed in log space (``math.lgamma``) over the smaller tail, from its end nearest the mode outwards,
    stopping once the terms no longer change the sum: exact to float precision for any ``n``."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    if k > n * p:
        return _tail_sum(k, n, p, upwards=True)
    return 1.0 - _tail_sum(k - 1, n, p, upwards=False)


def _tail_sum(start: int, n: int, p: float, *, upwards: bool) -> float:
    """Binomial probabilities from ``start`` away from the mode (up to ``n`` or down to 0), summed."""
    log_term = (math.lgamma(n + 1) - math.lgamma(start + 1) - math.lgamma(n - start + 1)
                + start * math.log(p) + (n - start) * math.log1p(-p))  # fmt: skip
    odds = p / (1.0 - p)
    total, term, i = 0.0, math.exp(log_term), start
    while 0 <= i <= n and term > 0.0:
        total += term
        if term < total * 1e-17:
            break
        term *= (n - i) / (i + 1) * odds if upwards else i / (n - i + 1) / odds
        i += 1 if upwards else -1
    return min(total, 1.0)


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


def check_limit_alarms(rows: pa.Table, limits: TelemetryLimits, partition: pa.Table | None = None) -> CheckOutcome:
    """Limit alarms by severity and satellite. Alarms are data, not failures: the check fails only where a
    stored row breaks a hard range of ``limits``, or where a satellite's share of readings with a critical or
    severe alarm is above the limits' ``max_critical_alarm_rate`` beyond chance (one-sided binomial test at
    ``ALARM_RATE_SIGNIFICANCE``: one critical reading among the first 59 of a day is not over a 1 % rate).

    ``rows`` are the rows a run wrote (judged for hard ranges and limits versions); ``partition`` (its
    ``satellite_name`` and ``alarm_severity``, default ``rows``) is what the counts and rates are judged on:
    the whole days written to, so that a small incremental batch with one critical reading is not a rate."""
    con = duckdb.connect()
    con.register("t", rows.select(["satellite_name", "event_time", "alarm_severity", "limits_version", *MEASURES]))
    con.register("p", (partition if partition is not None else rows).select(["satellite_name", "alarm_severity"]))
    by_satellite: dict[str, dict[str, int]] = {}
    for name, severity, count in con.execute(
        "SELECT satellite_name, coalesce(alarm_severity, 'none'), count(*) FROM p GROUP BY ALL ORDER BY ALL"
    ).fetchall():
        by_satellite.setdefault(name, {})[severity] = int(count)
    by_severity = {s: sum(counts.get(s, 0) for counts in by_satellite.values()) for s in SEVERITIES}
    critical = [s for s in SEVERITIES if SEVERITY_LEVEL[s] >= SEVERITY_LEVEL["critical"]]
    criticals = {name: (sum(counts.get(s, 0) for s in critical), sum(counts.values()))
                 for name, counts in by_satellite.items()}  # fmt: skip
    rates = {name: k / n for name, (k, n) in criticals.items()}
    chances = {name: binomial_upper_tail(k, n, limits.max_critical_alarm_rate) for name, (k, n) in criticals.items()}
    over = {name: rate for name, rate in rates.items()
            if rate > limits.max_critical_alarm_rate and chances[name] < ALARM_RATE_SIGNIFICANCE}  # fmt: skip
    values = np.column_stack([rows.column(m).to_numpy(zero_copy_only=False) for m in MEASURES]) if rows.num_rows else (
        np.zeros((0, len(MEASURES))))  # fmt: skip
    breaches = np.flatnonzero(hard_limit_breaches(limits, rows.column("satellite_name"), values))
    hard_examples = [
        {"satellite_name": rows.column("satellite_name")[i].as_py(), "event_time": rows.column("event_time")[i].as_py()
         .isoformat(), **{m: rows.column(m)[i].as_py() for m in MEASURES}}
        for i in breaches[:EXAMPLE_ROWS].tolist()
    ]  # fmt: skip
    stale = int(con.execute("SELECT count(*) FROM t WHERE limits_version IS DISTINCT FROM ?", [limits.version])
                .fetchone()[0])  # type: ignore[index]  # fmt: skip
    alarms = sum(by_severity.values())
    readings = sum(sum(counts.values()) for counts in by_satellite.values())
    problems = []
    if breaches.size:
        problems.append(f"{breaches.size} rows break a hard limit")
    if over:
        problems.append(
            f"{len(over)} satellites over the critical alarm rate {limits.max_critical_alarm_rate:g}: "
            + ", ".join(f"{name} {rate:.2%} of {criticals[name][1]} readings" for name, rate in sorted(over.items()))
        )
    summary = ", ".join(f"{by_severity[s]} {s}" for s in SEVERITIES if by_severity[s]) or "none"
    return CheckOutcome(
        passed=not problems,
        description=(f"{readings} readings, {alarms} with a limit alarm ({summary})"
                     + (f"; {'; '.join(problems)}" if problems else "")),
        metadata={"readings": readings, "rows_written": rows.num_rows, "alarms_by_severity": by_severity,
                  "alarms_by_satellite": {n: {s: c for s, c in counts.items() if s != "none"}
                                          for n, counts in by_satellite.items()},
                  "critical_alarm_rate_by_satellite": {n: round(r, 6) for n, r in rates.items()},
                  "critical_alarm_rate_chance_by_satellite": {n: float(f"{c:.3g}") for n, c in chances.items()},
                  "alarm_rate_significance": ALARM_RATE_SIGNIFICANCE,
                  "max_critical_alarm_rate": limits.max_critical_alarm_rate, "hard_limit_breaches": int(breaches.size),
                  "hard_limit_examples": hard_examples, "rows_judged_by_other_limits": stale,
                  "limits_version": limits.version, "limits_file": limits.source},
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
