"""Validation rules of the telemetry contract: what cannot be a reading, its boundaries, and readable reasons."""

from __future__ import annotations

import dataclasses
import math

import pytest

from satlake.telemetry.codec import EventDecodeError, TelemetryReading, decode_event_columns, encode_event
from satlake.telemetry.limits_file import parse_limits
from satlake.telemetry.producer import BAD_SATELLITE_NAMES
from satlake.telemetry.tables import MEASURES
from satlake.telemetry.validation import (
    MAX_SATELLITE_NAME_CHARS,
    Rejection,
    default_limits,
    reject_reason,
    reject_reasons,
    rejection_from_decode_error,
    satellite_file_stem,
    satellite_name_from_file_stem,
)

NOW_NS = 1_718_000_000_000_000_000
VALID = TelemetryReading("SAT-001", NOW_NS - 10**9, 21.5, 80.0, 550.0, 0.1, 0.2, 0.3)
DESIGN_RANGES = {
    "temp_c": (-100.0, 120.0),
    "battery_charge_pct": (0.0, 100.0),
    "altitude_km": (160.0, 2000.0),
    "sensor1": (-1.0, 1.0),
    "sensor2": (-1.0, 1.0),
    "sensor3": (-1.0, 1.0),
}


def with_value(field: str, value: object) -> TelemetryReading:
    return dataclasses.replace(VALID, **{field: value})


def test_a_plausible_reading_is_valid() -> None:
    assert reject_reason(VALID, NOW_NS) is None


def test_the_shipped_critical_bands_are_the_documented_ranges() -> None:
    shipped = default_limits()
    bands = {m: p.bands["critical"] for m, p in zip(MEASURES, shipped.for_satellite("any"), strict=True)}
    assert {m: (b.low.value, b.high.value) for m, b in bands.items()} == DESIGN_RANGES  # type: ignore[union-attr]
    assert all(b.low.inclusive and b.high.inclusive for b in bands.values())  # type: ignore[union-attr]
    assert all(p.hard is None for p in shipped.for_satellite("any"))  # nothing is rejected for its value


@pytest.mark.parametrize("field", list(DESIGN_RANGES))
def test_values_outside_every_range_are_still_readings(field: str) -> None:
    low, high = DESIGN_RANGES[field]
    for value in (low, high, math.nextafter(low, -math.inf), math.nextafter(high, math.inf), -1e12, 1e12):
        assert reject_reason(with_value(field, value), NOW_NS) is None


@pytest.mark.parametrize("field", list(DESIGN_RANGES))
def test_non_finite_values_are_rejected_saying_which(field: str) -> None:
    nan = reject_reason(with_value(field, math.nan), NOW_NS)
    assert nan == Rejection("non_finite_value", f"{field} is NaN (not a number)")
    assert reject_reason(with_value(field, math.inf), NOW_NS) == Rejection("non_finite_value", f"{field} is +infinite")
    assert reject_reason(with_value(field, -math.inf), NOW_NS) == Rejection("non_finite_value", f"{field} is -infinite")


def test_a_hard_limit_rejects_naming_value_range_and_file() -> None:
    limits = parse_limits(
        "mission: m\nparameters:\n  battery_charge_pct: {unit: '%', hard: {min: 0, max: 100}}\n", "m.yaml"
    )
    assert reject_reason(with_value("battery_charge_pct", 100.0), NOW_NS, limits) is None
    rejection = reject_reason(with_value("battery_charge_pct", 100.5), NOW_NS, limits)
    assert rejection == Rejection(
        "outside_hard_limit",
        "battery_charge_pct=100.5 is outside its hard limit [0..100] % "
        "(m.yaml: physically impossible for this mission)",
    )


@pytest.mark.parametrize(
    "name",
    ["sat0", "SAT-001", "NOAA-20", "Sentinel-2A", "ISS (ZARYA)", "25544", "SAT 001", "Ünïcode", "sat/../001",
     "SAT-001;DROP TABLE telemetry", " padded ", "S" * MAX_SATELLITE_NAME_CHARS],
)  # fmt: skip
def test_names_as_fleets_write_them_are_accepted(name: str) -> None:
    assert reject_reason(with_value("satellite_name", name), NOW_NS) is None


@pytest.mark.parametrize("name", [*BAD_SATELLITE_NAMES, "S" * (MAX_SATELLITE_NAME_CHARS + 1), "SAT-001\t", "\x85"])
def test_empty_control_character_and_over_long_names_are_rejected(name: str) -> None:
    rejection = reject_reason(with_value("satellite_name", name), NOW_NS)
    assert rejection is not None
    assert rejection.code == "invalid_satellite_name"
    assert repr(name) in rejection.reason


def test_the_name_rejection_says_what_is_wrong() -> None:
    reasons = {name: reject_reason(with_value("satellite_name", name), NOW_NS).reason  # type: ignore[union-attr]
               for name in ("", "  ", "S" * 65, "SAT\n1")}  # fmt: skip
    assert "is empty" in reasons[""]
    assert "is only spaces" in reasons["  "]
    assert "has 65 characters, more than 64" in reasons["S" * 65]
    assert "holds the control character U+000A at position 3" in reasons["SAT\n1"]


@pytest.mark.parametrize("name", ["SAT-001", "ISS (ZARYA)", "sat/../001", "..", ".hidden", "a:b\\c%d", "Ünï"])
def test_a_name_becomes_a_safe_file_stem_and_back(name: str) -> None:
    stem = satellite_file_stem(name)
    assert "/" not in stem and "\\" not in stem and ":" not in stem and not stem.startswith(".")
    assert satellite_name_from_file_stem(stem) == name


def test_missing_timestamp_is_before_1970() -> None:
    rejection = reject_reason(with_value("timestamp_ns", 0), NOW_NS)
    assert rejection is not None
    assert rejection.code == "timestamp_before_1970"
    assert "missing" in rejection.reason


@pytest.mark.parametrize(("timestamp_ns", "signed"), [(2**63, -(2**63)), (2**64 - 1, -1), (2**64 - 10**9, -(10**9))])
def test_negative_signed_timestamps_are_before_1970(timestamp_ns: int, signed: int) -> None:
    rejection = reject_reason(with_value("timestamp_ns", timestamp_ns), NOW_NS)
    assert rejection is not None
    assert rejection.code == "timestamp_before_1970"
    assert f"is {signed} as a signed 64-bit time" in rejection.reason


def test_the_first_nanosecond_after_1970_is_accepted() -> None:
    assert reject_reason(with_value("timestamp_ns", 1), NOW_NS) is None
    assert reject_reason(with_value("timestamp_ns", 2**63 - 1), 2**63 - 1) is None


def test_timestamps_within_the_clock_skew_are_accepted_and_beyond_it_are_in_the_future() -> None:
    assert default_limits().max_future_skew_ns == 300 * 10**9
    edge = NOW_NS + default_limits().max_future_skew_ns
    assert reject_reason(with_value("timestamp_ns", edge), NOW_NS) is None
    rejection = reject_reason(with_value("timestamp_ns", edge + 1), NOW_NS)
    assert rejection is not None
    assert rejection.code == "timestamp_in_future"
    assert "300.0 s ahead of the ingestion clock" in rejection.reason
    assert "at most 300 s of clock skew" in rejection.reason


def test_clock_skew_is_configurable_in_the_limits_file() -> None:
    one_hour_ahead = with_value("timestamp_ns", NOW_NS + 3600 * 10**9)
    assert reject_reason(one_hour_ahead, NOW_NS) is not None
    patient = parse_limits("mission: m\nmax_future_skew_s: 7200\nparameters: {}\n")
    assert reject_reason(one_hour_ahead, NOW_NS, patient) is None


def test_the_latest_possible_future_timestamp_gets_a_readable_date() -> None:
    rejection = reject_reason(with_value("timestamp_ns", 2**63 - 1), NOW_NS)
    assert rejection is not None and rejection.code == "timestamp_in_future"
    assert "2262-04-11" in rejection.reason


def test_all_violations_are_named_in_one_reason_with_the_code_of_the_first() -> None:
    reading = TelemetryReading("", 0, 500.0, math.nan, 100.0, -math.inf, 0.5, 2.0)
    rejection = reject_reason(reading, NOW_NS)
    assert rejection is not None
    assert rejection.code == "invalid_satellite_name"
    parts = rejection.reason.split("; ")
    assert [part.split(" ")[0].split("=")[0] for part in parts] == [
        "satellite_name",
        "timestamp_ns",
        "battery_charge_pct",
        "sensor1",
    ]


def test_code_follows_the_first_violation_in_rule_order() -> None:
    reading = TelemetryReading("SAT-001", NOW_NS, -150.0, math.inf, 550.0, math.nan, 0.2, 0.3)
    rejection = reject_reason(reading, NOW_NS)
    assert rejection is not None and rejection.code == "non_finite_value"
    assert rejection.reason == "battery_charge_pct is +infinite; sensor1 is NaN (not a number)"


def test_reject_reasons_on_columns_matches_reject_reason_on_each_reading() -> None:
    readings = [
        VALID,
        with_value("altitude_km", 100.0),
        with_value("satellite_name", "SAT\x002"),
        with_value("timestamp_ns", NOW_NS + 10**12),
        with_value("sensor2", math.nan),
    ]
    columns = decode_event_columns([encode_event(reading) for reading in readings])
    assert reject_reasons(columns, NOW_NS) == [reject_reason(reading, NOW_NS) for reading in readings]
    assert [r.code if r else None for r in reject_reasons(columns, NOW_NS)] == [
        None,
        None,
        "invalid_satellite_name",
        "timestamp_in_future",
        "non_finite_value",
    ]


def test_a_decode_error_becomes_a_rejection_with_its_code() -> None:
    rejection = rejection_from_decode_error(EventDecodeError("truncated", "table at bytes 24..92 lies past the end"))
    assert rejection == Rejection(
        "truncated", "payload is not a readable event.Event: table at bytes 24..92 lies past the end"
    )
