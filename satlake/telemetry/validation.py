"""Validation rules of the telemetry contract: which decoded events cannot be a reading, with which stable
code and which readable reason. Pure functions, no I/O.

An event is a reading when it decodes, names its satellite and carries a plausible time, with finite values
inside any hard range its mission's limits set. Values outside the alarm bands are readings too: they are kept
and flagged (``limits``), never rejected here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from urllib.parse import quote, unquote

from satlake.telemetry.codec import DecodedColumns, EventDecodeError, TelemetryReading
from satlake.telemetry.limits import TelemetryLimits
from satlake.telemetry.limits_file import load_limits
from satlake.telemetry.tables import MEASURES

# Satellite names as fleets write them (sat0, SAT-001, NOAA-20, Sentinel-2A, ISS (ZARYA), NORAD numbers such
# as 25544): any text of 1 to MAX_SATELLITE_NAME_CHARS characters that is not only spaces and holds no control
# character (C0, DEL, C1, line and paragraph separators: they break logs, CSV lines and labels).
MAX_SATELLITE_NAME_CHARS = 64
_CONTROL_RANGES = ((0x00, 0x1F), (0x7F, 0x9F), (0x2028, 0x2029))
CONTROL_CHARACTER_CLASS = "[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in _CONTROL_RANGES) + "]"
_CONTROL_CHARACTER = re.compile(CONTROL_CHARACTER_CLASS)
SATELLITE_NAME_RULE = (
    f"1 to {MAX_SATELLITE_NAME_CHARS} characters, not only spaces, no control characters "
    "(U+0000-U+001F, U+007F-U+009F, U+2028, U+2029)"
)
# timestamp_ns is an unsigned 64-bit field: a producer writing a negative signed time lands at 2**63 or above.
_SIGNED_TIME_LIMIT = 1 << 63
# A name becomes a file stem this way: everything but these characters is percent-encoded (reversibly).
_FILE_SAFE = "-_.() "


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event is not a reading: ``code`` is stable (for grouping and checks), ``reason`` is for people."""

    code: str
    reason: str


def satellite_name_problem(satellite_name: str) -> str | None:
    """What makes ``satellite_name`` unusable as a satellite's identity, or None when it is a name."""
    if not satellite_name.strip(" "):
        return "is empty" if not satellite_name else "is only spaces"
    if len(satellite_name) > MAX_SATELLITE_NAME_CHARS:
        return f"has {len(satellite_name)} characters, more than {MAX_SATELLITE_NAME_CHARS}"
    control = _CONTROL_CHARACTER.search(satellite_name)
    if control:
        return f"holds the control character U+{ord(control.group()):04X} at position {control.start()}"
    return None


def satellite_file_stem(satellite_name: str) -> str:
    """``satellite_name`` as a file stem on any file system: '/', '\\', ':', '%' and the like percent-encoded,
    and a leading '.' too (no hidden files, no '..'). ``satellite_name_from_file_stem`` reverses it."""
    stem = quote(satellite_name, safe=_FILE_SAFE)
    return "%2E" + stem[1:] if stem.startswith(".") else stem


def satellite_name_from_file_stem(stem: str) -> str:
    """The satellite a file stem names: percent-escapes decoded (``ISS%20%28ZARYA%29`` or ``ISS (ZARYA)``)."""
    return unquote(stem)


def _describe_time(timestamp_ns: int) -> str:
    try:
        return datetime.fromtimestamp(timestamp_ns / 1e9, tz=UTC).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return "beyond year 9999"


def _name_violation(satellite_name: str) -> tuple[str, str] | None:
    problem = satellite_name_problem(satellite_name)
    if problem is None:
        return None
    return ("invalid_satellite_name", f"satellite_name {satellite_name!r} {problem} (a name is {SATELLITE_NAME_RULE})")


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
            f"at most {max_clock_skew_ns / 1e9:g} s of clock skew is allowed (max_future_skew_s in the limits file)",
        )
    return None


def _value_violations(
    satellite_name: str | None, values: Sequence[float], limits: TelemetryLimits
) -> list[tuple[str, str]]:
    violations: list[tuple[str, str]] = []
    for name, value in zip(MEASURES, values, strict=True):
        if math.isnan(value):
            violations.append(("non_finite_value", f"{name} is NaN (not a number)"))
        elif math.isinf(value):
            violations.append(("non_finite_value", f"{name} is {'+' if value > 0 else '-'}infinite"))
    if satellite_name is None:  # no identity: there is no satellite whose hard limits would apply
        return violations
    for name, value, band, unit in limits.hard_violations(satellite_name, values):
        violations.append((
            "outside_hard_limit",
            f"{name}={value!r} is outside its hard limit {band.describe(unit)} ({limits.source}: physically "
            "impossible for this mission)",
        ))  # fmt: skip
    return violations


def reject_reason_for_values(
    satellite_name: str,
    timestamp_ns: int,
    values: Sequence[float],
    now_ns: int,
    limits: TelemetryLimits | None = None,
) -> Rejection | None:
    """``reject_reason`` on plain values; ``values`` are the six measurements in ``MEASURES`` order."""
    limits = limits or default_limits()
    violations: list[tuple[str, str]] = []
    name_violation = _name_violation(satellite_name)
    if name_violation:
        violations.append(name_violation)
    timestamp_violation = _timestamp_violation(timestamp_ns, now_ns, limits.max_future_skew_ns)
    if timestamp_violation:
        violations.append(timestamp_violation)
    violations.extend(_value_violations(None if name_violation else satellite_name, values, limits))
    if not violations:
        return None
    return Rejection(code=violations[0][0], reason="; ".join(reason for _code, reason in violations))


def reject_reason(reading: TelemetryReading, now_ns: int, limits: TelemetryLimits | None = None) -> Rejection | None:
    """Why ``reading`` cannot be a reading, or ``None`` when it is one (whatever alarms its values raise).

    Every violation is named in one reason; the code is that of the first, in the order satellite name,
    timestamp, non-finite values, hard limits. ``now_ns`` is the ingestion clock: events more than the limits'
    ``max_future_skew_s`` ahead of it are in the future. ``limits`` default to the shipped ones.
    """
    return reject_reason_for_values(
        reading.satellite_name,
        reading.timestamp_ns,
        tuple(getattr(reading, measure) for measure in MEASURES),
        now_ns,
        limits,
    )


def reject_reasons(
    columns: DecodedColumns, now_ns: int, limits: TelemetryLimits | None = None
) -> list[Rejection | None]:
    """``reject_reason`` for every row of ``columns`` (as ``decode_event_columns`` returns them)."""
    return [
        reject_reason_for_values(name, timestamp_ns, values, now_ns, limits)
        for name, timestamp_ns, *values in zip(
            columns.satellite_name,
            columns.timestamp_ns,
            *(getattr(columns, measure) for measure in MEASURES),
            strict=True,
        )
    ]


def rejection_from_decode_error(error: EventDecodeError) -> Rejection:
    """The rejection for a payload that could not be decoded: the decoder's code, and a reason saying so."""
    return Rejection(code=error.reason_code, reason=f"payload is not a readable event.Event: {error.detail}")


@cache
def default_limits() -> TelemetryLimits:
    """The shipped limits (read once)."""
    return load_limits()
