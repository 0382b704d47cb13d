"""What the telemetry contract did to the data, for a person: readings kept, their limit alarms by severity
and satellite, and the rejects by reason. Read from the stored bronze tables."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pyarrow as pa

from satlake.resources.lakehouse import Lakehouse
from satlake.telemetry.limits import SEVERITIES, TelemetryLimits
from satlake.telemetry.tables import BRONZE_TELEMETRY, BRONZE_TELEMETRY_REJECTS


def _counts(table: pa.Table | None, columns: list[str]) -> Counter[tuple]:
    if table is None or table.num_rows == 0:
        return Counter()
    grouped = table.group_by(columns).aggregate([([], "count_all")])
    return Counter({tuple(row[c] for c in columns): row["count_all"] for row in grouped.to_pylist()})


def contract_report(
    lakehouse: Lakehouse, limits: TelemetryLimits, first: date | None = None, last: date | None = None
) -> list[str]:
    """Lines describing bronze for the days ``first..last`` (default: every day)."""
    window = [("event_date", ">=", first), ("event_date", "<=", last)] if first and last else None
    rows = lakehouse.read(BRONZE_TELEMETRY, filters=window, columns=["satellite_name", "alarm_severity"])
    rejects = lakehouse.read(BRONZE_TELEMETRY_REJECTS, filters=window, columns=["reason_code"])
    alarms = _counts(rows, ["satellite_name", "alarm_severity"])
    by_severity = Counter()
    for (_, severity), count in alarms.items():
        by_severity[severity] += count
    kept = rows.num_rows if rows is not None else 0
    alarmed = kept - by_severity[None]
    reasons = _counts(rejects, ["reason_code"])
    lines = [
        f"limits {limits.mission!r} (version {limits.version}, {limits.source})",
        f"  readings kept   {kept:>9,}   with a limit alarm: {alarmed:,} ("
        + ", ".join(f"{s} {by_severity[s]:,}" for s in SEVERITIES)
        + ")",
        f"  rejected        {sum(reasons.values()):>9,}   "
        + (", ".join(f"{code} {n:,}" for (code,), n in reasons.most_common()) or "none"),
    ]
    satellites = sorted({name for name, severity in alarms if severity is not None})
    per_satellite = [
        f"{name} " + ", ".join(f"{s} {alarms[(name, s)]:,}" for s in SEVERITIES if alarms[(name, s)])
        for name in satellites
    ]
    if per_satellite:
        lines.append("  alarms by satellite: " + "; ".join(per_satellite))
    return lines
