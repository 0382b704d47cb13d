"""Validation rules of the telemetry contract: which decoded readings are rejected, with which stable code and
which readable reason. Pure functions, no I/O."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from satlake.telemetry.codec import DecodedColumns, EventDecodeError, TelemetryReading

# A name starts with a letter or digit and stays short and path-safe (it becomes a key, a file stem, a label).
SATELLITE_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

DEFAULT_MAX_CLOCK_SKEW_NS = 5 * 60 * 1_000_000_000
# timestamp_ns is an unsigned 64-bit field: a producer writing a negative signed time lands at 2**63 or above.
_SIGNED_TIME_LIMIT = 1 << 63


@dataclass(frozen=True, slots=True)
class ValueRange:
    """Inclusive range a measured value must lie in."""

    low: float
    high: float
    unit: str

    def describe(self) -> str:
        return f"{self.low:g}..{self.high:g}{' ' + self.unit if self.unit else ''}"


CONTRACT_RANGES: dict[str, ValueRange] = {
    "temp_c": ValueRange(-100.0, 120.0, "°C"),
    "battery_charge_pct": ValueRange(0.0, 100.0, "%"),
    "altitude_km": ValueRange(160.0, 2000.0, "km"),
    "sensor1": ValueRange(0.0, 1.0, ""),
    "sensor2": ValueRange(0.0, 1.0, ""),
    "sensor3": ValueRange(0.0, 1.0, ""),
}
_RANGE_ITEMS = tuple((name, value_range.low, value_range.high) for name, value_range in CONTRACT_RANGES.items())


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a reading was rejected: ``code`` is stable (for grouping and checks), ``reason`` is for people."""

    code: str
    reason: str


def _describe_time(timestamp_ns: int) -> str:
    try:
        return datetime.fromtimestamp(timestamp_ns / 1e9, tz=UTC).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return "beyond year 9999"


def _name_violation(satellite_name: str) -> tuple[str, str] | None:
    if SATELLITE_NAME_PATTERN.fullmatch(satellite_name):
        return None
    return (
        "invalid_satellite_name",
        f"satellite_name {satellite_name!r} does not match {SATELLITE_NAME_PATTERN.pattern} "
        "(a letter or digit, then up to 63 of letters, digits, '.', '_' or '-')",
    )


def _timestamp_violation(timestamp_ns: int, now_ns: int, max_clock_skew_ns: int) -> tuple[str, str] | None:
    if timestamp_ns == 0:
        return ("timestamp_before_1970", "timestamp_ns is 0 (missing): the event carries no event time")
    if timestamp_ns >= _SIGNED_TIME_LIMIT:
        return (
            "timestamp_before_1970",
            f"timestamp_ns={timestamp_ns} is {timestamp_ns - (1 << 64)} as a signed 64-bit time, before 1970",
        )
    if timestamp_ns > now_ns + max_clock_skew_ns:
        return (
            "timestamp_in_future",
            f"timestamp_ns={timestamp_ns} ({_describe_time(timestamp_ns)}) is "
            f"{(timestamp_ns - now_ns) / 1e9:.1f} s ahead of the ingestion clock ({_describe_time(now_ns)}); "
            f"at most {max_clock_skew_ns / 1e9:g} s of clock skew is allowed",
        )
    return None


def _value_violations(values: Sequence[float]) -> list[tuple[str, str]]:
    violations: list[tuple[str, str]] = []
    for value, (name, low, high) in zip(values, _RANGE_ITEMS, strict=True):
        if low <= value <= high:
            continue
        if not math.isfinite(value):
            violations.append(("non_finite_value", f"{name}={value} is not a finite number"))
        else:
            violations.append(("value_out_of_range", f"{name}={value!r} is outside {CONTRACT_RANGES[name].describe()}"))
    return violations


def reject_reason_for_values(
    satellite_name: str,
    timestamp_ns: int,
    values: Sequence[float],
    now_ns: int,
    max_clock_skew_ns: int = DEFAULT_MAX_CLOCK_SKEW_NS,
) -> Rejection | None:
    """``reject_reason`` on plain values; ``values`` are the six measurements in ``CONTRACT_RANGES`` order."""
    violations: list[tuple[str, str]] = []
    name_violation = _name_violation(satellite_name)
    if name_violation:
        violations.append(name_violation)
    timestamp_violation = _timestamp_violation(timestamp_ns, now_ns, max_clock_skew_ns)
    if timestamp_violation:
        violations.append(timestamp_violation)
    violations.extend(_value_violations(values))
    if not violations:
        return None
    return Rejection(code=violations[0][0], reason="; ".join(reason for _code, reason in violations))


def reject_reason(
    reading: TelemetryReading, now_ns: int, max_clock_skew_ns: int = DEFAULT_MAX_CLOCK_SKEW_NS
) -> Rejection | None:
    """Why ``reading`` breaks the telemetry contract, or ``None`` when it is valid.

    Every violation is named in one reason (field, value, allowed range); the code is that of the first, in
    the order satellite name, timestamp, then the measurements in schema order. ``now_ns`` is the ingestion
    clock: events more than ``max_clock_skew_ns`` ahead of it are in the future.
    """
    return reject_reason_for_values(
        reading.satellite_name,
        reading.timestamp_ns,
        (
            reading.temp_c,
            reading.battery_charge_pct,
            reading.altitude_km,
            reading.sensor1,
            reading.sensor2,
            reading.sensor3,
        ),
        now_ns,
        max_clock_skew_ns,
    )


def reject_reasons(
    columns: DecodedColumns, now_ns: int, max_clock_skew_ns: int = DEFAULT_MAX_CLOCK_SKEW_NS
) -> list[Rejection | None]:
    """``reject_reason`` for every row of ``columns`` (as ``decode_event_columns`` returns them)."""
    return [
        reject_reason_for_values(name, timestamp_ns, values, now_ns, max_clock_skew_ns)
        for name, timestamp_ns, *values in zip(
            columns.satellite_name,
            columns.timestamp_ns,
            columns.temp_c,
            columns.battery_charge_pct,
            columns.altitude_km,
            columns.sensor1,
            columns.sensor2,
            columns.sensor3,
            strict=True,
        )
    ]


def rejection_from_decode_error(error: EventDecodeError) -> Rejection:
    """The rejection for a payload that could not be decoded: the decoder's code, and a reason saying so."""
    return Rejection(code=error.reason_code, reason=f"payload is not a readable event.Event: {error.detail}")
