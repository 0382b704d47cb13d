"""Validation rules of the telemetry contract: each rule, its boundaries, and readable reasons."""

from __future__ import annotations

import dataclasses
import math

import pytest

from satlake.telemetry.codec import EventDecodeError, TelemetryReading, decode_event_columns, encode_event
from satlake.telemetry.producer import BAD_SATELLITE_NAMES
from satlake.telemetry.validation import (
    CONTRACT_RANGES,
    DEFAULT_MAX_CLOCK_SKEW_NS,
    SATELLITE_NAME_PATTERN,
    Rejection,
    reject_reason,
    reject_reasons,
    rejection_from_decode_error,
)

NOW_NS = 1_718_000_000_000_000_000
VALID = TelemetryReading("SAT-001", NOW_NS - 10**9, 21.5, 80.0, 550.0, 0.1, 0.2, 0.3)


def with_value(field: str, value: object) -> TelemetryReading:
    return dataclasses.replace(VALID, **{field: value})


def test_a_plausible_reading_is_valid() -> None:
    assert reject_reason(VALID, NOW_NS) is None


def test_contract_ranges_are_the_documented_ones() -> None:
    assert {field: (r.low, r.high) for field, r in CONTRACT_RANGES.items()} == {
        "temp_c": (-100.0, 120.0),
        "battery_charge_pct": (0.0, 100.0),
        "altitude_km": (160.0, 2000.0),
        "sensor1": (0.0, 1.0),
        "sensor2": (0.0, 1.0),
        "sensor3": (0.0, 1.0),
    }


@pytest.mark.parametrize("field", list(CONTRACT_RANGES))
def test_range_boundaries_are_inclusive(field: str) -> None:
    value_range = CONTRACT_RANGES[field]
    assert reject_reason(with_value(field, value_range.low), NOW_NS) is None
    assert reject_reason(with_value(field, value_range.high), NOW_NS) is None


@pytest.mark.parametrize("field", list(CONTRACT_RANGES))
def test_values_just_outside_a_range_are_rejected_naming_field_value_and_range(field: str) -> None:
    value_range = CONTRACT_RANGES[field]
    for value in (math.nextafter(value_range.low, -math.inf), math.nextafter(value_range.high, math.inf)):
        rejection = reject_reason(with_value(field, value), NOW_NS)
        assert rejection is not None
        assert rejection.code == "value_out_of_range"
        assert f"{field}={value!r}" in rejection.reason
        assert f"{value_range.low:g}..{value_range.high:g}" in rejection.reason


def test_out_of_range_reason_reads_well() -> None:
    rejection = reject_reason(with_value("temp_c", 150.0), NOW_NS)
    assert rejection == Rejection("value_out_of_range", "temp_c=150.0 is outside -100..120 °C")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("field", list(CONTRACT_RANGES))
def test_non_finite_values_are_rejected(field: str, value: float) -> None:
    rejection = reject_reason(with_value(field, value), NOW_NS)
    assert rejection is not None
    assert rejection.code == "non_finite_value"
    assert rejection.reason == f"{field}={value} is not a finite number"


@pytest.mark.parametrize("name", ["SAT-001", "a", "0", "Sentinel-2A", "noaa_20", "x.y", "S" * 64])
def test_valid_satellite_names(name: str) -> None:
    assert reject_reason(with_value("satellite_name", name), NOW_NS) is None


@pytest.mark.parametrize("name", [*BAD_SATELLITE_NAMES, "S" * 65, "_SAT", "SAT-001\t", "SAT:1"])
def test_invalid_satellite_names_are_rejected(name: str) -> None:
    rejection = reject_reason(with_value("satellite_name", name), NOW_NS)
    assert rejection is not None
    assert rejection.code == "invalid_satellite_name"
    assert repr(name) in rejection.reason


def test_satellite_name_pattern_allows_no_trailing_newline() -> None:
    assert SATELLITE_NAME_PATTERN.fullmatch("SAT-001\n") is None


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
    assert DEFAULT_MAX_CLOCK_SKEW_NS == 300 * 10**9
    edge = NOW_NS + DEFAULT_MAX_CLOCK_SKEW_NS
    assert reject_reason(with_value("timestamp_ns", edge), NOW_NS) is None
    rejection = reject_reason(with_value("timestamp_ns", edge + 1), NOW_NS)
    assert rejection is not None
    assert rejection.code == "timestamp_in_future"
    assert "300.0 s ahead of the ingestion clock" in rejection.reason
    assert "at most 300 s of clock skew" in rejection.reason


def test_clock_skew_is_configurable() -> None:
    one_hour_ahead = with_value("timestamp_ns", NOW_NS + 3600 * 10**9)
    assert reject_reason(one_hour_ahead, NOW_NS) is not None
    assert reject_reason(one_hour_ahead, NOW_NS, max_clock_skew_ns=2 * 3600 * 10**9) is None


def test_the_latest_possible_future_timestamp_gets_a_readable_date() -> None:
    rejection = reject_reason(with_value("timestamp_ns", 2**63 - 1), NOW_NS)
    assert rejection is not None and rejection.code == "timestamp_in_future"
    assert "2262-04-11" in rejection.reason


def test_all_violations_are_named_in_one_reason_with_the_code_of_the_first() -> None:
    reading = TelemetryReading("bad name", 0, 500.0, math.nan, 100.0, -0.5, 0.5, 2.0)
    rejection = reject_reason(reading, NOW_NS)
    assert rejection is not None
    assert rejection.code == "invalid_satellite_name"
    parts = rejection.reason.split("; ")
    assert [part.split(" ")[0].split("=")[0] for part in parts] == [
        "satellite_name",
        "timestamp_ns",
        "temp_c",
        "battery_charge_pct",
        "altitude_km",
        "sensor1",
        "sensor3",
    ]


def test_code_follows_the_first_violation_in_rule_order() -> None:
    reading = TelemetryReading("SAT-001", NOW_NS, -150.0, math.inf, 550.0, 0.1, 0.2, 0.3)
    rejection = reject_reason(reading, NOW_NS)
    assert rejection is not None and rejection.code == "value_out_of_range"
    assert "temp_c=-150.0" in rejection.reason and "battery_charge_pct=inf" in rejection.reason


def test_reject_reasons_on_columns_matches_reject_reason_on_each_reading() -> None:
    readings = [
        VALID,
        with_value("altitude_km", 100.0),
        with_value("satellite_name", "SAT 2"),
        with_value("timestamp_ns", NOW_NS + 10**12),
    ]
    columns = decode_event_columns([encode_event(reading) for reading in readings])
    assert reject_reasons(columns, NOW_NS) == [reject_reason(reading, NOW_NS) for reading in readings]
    assert [r.code if r else None for r in reject_reasons(columns, NOW_NS)] == [
        None,
        "value_out_of_range",
        "invalid_satellite_name",
        "timestamp_in_future",
    ]


def test_a_decode_error_becomes_a_rejection_with_its_code() -> None:
    rejection = rejection_from_decode_error(EventDecodeError("truncated", "table at bytes 24..92 lies past the end"))
    assert rejection == Rejection(
        "truncated", "payload is not a readable event.Event: table at bytes 24..92 lies past the end"
    )
