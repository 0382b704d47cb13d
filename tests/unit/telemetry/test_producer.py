"""The telemetry simulator: determinism, order, physical plausibility, injected faults, and publishing."""

from __future__ import annotations

import collections
import math
from pathlib import Path

import numpy as np
import pytest

from satlake.resources.event_log import OutgoingRecord
from satlake.telemetry.codec import EventDecodeError, TelemetryReading, decode_event
from satlake.telemetry.limits import SEVERITY_LEVEL, alarm_level
from satlake.telemetry.producer import (
    FAULT_KINDS,
    draw_satellite_profile,
    eclipse_half_angle_rad,
    eclipsed,
    orbital_period_s,
    publish_records,
    simulate_telemetry,
)
from satlake.telemetry.tables import MEASURES
from satlake.telemetry.validation import default_limits, reject_reason

START_NS = 1_718_000_000_000_000_000
HOUR_NS = 3600 * 10**9
DAY_NS = 24 * HOUR_NS


def worst_alarm(reading: TelemetryReading) -> str | None:
    """The worst limit alarm the shipped limits give a reading (None: every value within limits)."""
    limits = default_limits().for_satellite(reading.satellite_name)
    severities = [alarm_level(p, getattr(reading, m))[0] for m, p in zip(MEASURES, limits, strict=True)]
    found = [s for s in severities if s is not None]
    return max(found, key=SEVERITY_LEVEL.__getitem__) if found else None


def record_rejection_code(record: OutgoingRecord) -> str | None:
    """What ingestion would say about a record, judged against the record's own timestamp as the clock: a
    reject code, ``alarm:<severity>`` for a reading kept with a critical or severe alarm, or None."""
    try:
        reading = decode_event(record.value)
    except EventDecodeError as error:
        return error.reason_code
    assert record.timestamp_ms is not None
    rejection = reject_reason(reading, now_ns=record.timestamp_ms * 1_000_000)
    if rejection:
        return rejection.code
    alarm = worst_alarm(reading)
    return f"alarm:{alarm}" if alarm in ("critical", "severe") else None


@pytest.fixture(scope="module")
def clean_day() -> list[TelemetryReading]:
    """Four satellites, one day, one reading every 10 s, no faults."""
    records = simulate_telemetry(4, START_NS, START_NS + DAY_NS, 10.0, 0.0, seed=3)
    return [decode_event(record.value) for record in records]


def by_satellite(readings: list[TelemetryReading]) -> dict[str, list[TelemetryReading]]:
    grouped: dict[str, list[TelemetryReading]] = collections.defaultdict(list)
    for reading in readings:
        grouped[reading.satellite_name].append(reading)
    return dict(grouped)


# Determinism and order


def test_the_same_seed_gives_the_same_records_and_another_seed_does_not() -> None:
    def run(seed: int) -> list[OutgoingRecord]:
        return list(simulate_telemetry(3, START_NS, START_NS + 2 * HOUR_NS, 10.0, 0.1, seed))

    first = run(seed=42)
    assert first == run(seed=42)
    assert first != run(seed=43)


def test_one_reading_per_satellite_per_interval_in_time_order(clean_day: list[TelemetryReading]) -> None:
    assert len(clean_day) == 4 * 8640
    timestamps = [reading.timestamp_ns for reading in clean_day]
    assert timestamps == sorted(timestamps) and len(set(timestamps)) == len(timestamps)
    assert timestamps[0] == START_NS and timestamps[-1] < START_NS + DAY_NS
    assert [reading.satellite_name for reading in clean_day[:5]] == [
        "SAT-001",
        "SAT-002",
        "SAT-003",
        "SAT-004",
        "SAT-001",
    ]
    for readings in by_satellite(clean_day).values():
        assert set(np.diff([reading.timestamp_ns for reading in readings])) == {10 * 10**9}


def test_records_are_keyed_by_satellite_and_stamped_with_event_time() -> None:
    for record in simulate_telemetry(2, START_NS, START_NS + HOUR_NS, 60.0, 0.0, seed=1):
        reading = decode_event(record.value)
        assert record.key == reading.satellite_name.encode()
        assert record.timestamp_ms == reading.timestamp_ns // 1_000_000


def test_the_end_is_exclusive_and_a_partial_interval_still_gets_a_reading() -> None:
    records = list(simulate_telemetry(1, START_NS, START_NS + 25 * 10**9, 10.0, 0.0, seed=1))
    assert [decode_event(r.value).timestamp_ns - START_NS for r in records] == [0, 10 * 10**9, 20 * 10**9]


# Physics


def test_orbital_period_follows_keplers_law() -> None:
    assert orbital_period_s(408.0) / 60 == pytest.approx(92.6, abs=0.2)  # the ISS
    assert orbital_period_s(35_786.0) / 3600 == pytest.approx(23.93, abs=0.01)  # geostationary: a sidereal day


def test_eclipse_fraction_of_a_low_orbit() -> None:
    assert eclipse_half_angle_rad(500.0, 0.0) / math.pi == pytest.approx(0.378, abs=0.005)
    assert eclipse_half_angle_rad(500.0, math.radians(30)) < eclipse_half_angle_rad(500.0, 0.0)
    assert eclipse_half_angle_rad(500.0, math.radians(80)) == 0.0  # a dawn-dusk orbit never enters the shadow


def test_every_simulated_value_is_a_reading_without_a_critical_alarm(clean_day: list[TelemetryReading]) -> None:
    assert [reading for reading in clean_day if reject_reason(reading, START_NS + DAY_NS)] == []
    assert {worst_alarm(reading) for reading in clean_day} <= {None, "watch", "warning"}
    altitudes = [reading.altitude_km for reading in clean_day]
    assert min(altitudes) > 350.0 and max(altitudes) < 1250.0


def test_altitude_oscillates_with_the_orbital_period(clean_day: list[TelemetryReading]) -> None:
    for name, readings in by_satellite(clean_day).items():
        profile = draw_satellite_profile(int(name.removeprefix("SAT-")), seed=3)
        altitude = np.array([reading.altitude_km for reading in readings])
        centered = altitude - np.median(altitude)
        amplitude = (6371.0 + profile.mean_altitude_km) * profile.eccentricity
        # Upward crossings with hysteresis, so noise and rare excursions do not count as orbits.
        crossings, below = [], False
        for index, value in enumerate(centered):
            if value < -amplitude / 2:
                below = True
            elif value > amplitude / 2 and below:
                crossings.append(index)
                below = False
        period_s = float(np.median(np.diff(crossings))) * 10.0
        assert period_s == pytest.approx(profile.period_s, rel=0.03), name


def test_battery_discharges_in_eclipse_and_charges_in_sunlight(clean_day: list[TelemetryReading]) -> None:
    for name, readings in by_satellite(clean_day).items():
        profile = draw_satellite_profile(int(name.removeprefix("SAT-")), seed=3)
        elapsed_s = np.array([(reading.timestamp_ns - START_NS) / 1e9 for reading in readings])
        in_shadow = eclipsed(profile, elapsed_s)[1:]
        change = np.diff([reading.battery_charge_pct for reading in readings])
        assert in_shadow.any() and (~in_shadow).any(), name
        assert (change[in_shadow] < 0).mean() > 0.98, name
        assert (change[~in_shadow] >= 0).mean() > 0.98, name
        orbits = 86_400 / profile.period_s
        eclipses = int(np.sum(np.diff(in_shadow.astype(int)) == 1))
        assert abs(eclipses - orbits) <= 1.5, name  # one charge/discharge cycle per orbit


def test_battery_cycles_are_deep_enough_to_see(clean_day: list[TelemetryReading]) -> None:
    for name, readings in by_satellite(clean_day).items():
        battery = np.array([reading.battery_charge_pct for reading in readings])
        assert battery.min() >= 0.0 and battery.max() <= 100.0
        assert battery.max() - battery.min() > 10.0, name


def test_satellites_are_colder_in_eclipse(clean_day: list[TelemetryReading]) -> None:
    for name, readings in by_satellite(clean_day).items():
        profile = draw_satellite_profile(int(name.removeprefix("SAT-")), seed=3)
        elapsed_s = np.array([(reading.timestamp_ns - START_NS) / 1e9 for reading in readings])
        in_shadow = eclipsed(profile, elapsed_s)
        temperature = np.array([reading.temp_c for reading in readings])
        assert temperature[in_shadow].mean() < temperature[~in_shadow].mean() - 5.0, name


def test_sensors_are_noisy_within_zero_to_one(clean_day: list[TelemetryReading]) -> None:
    for field in ("sensor1", "sensor2", "sensor3"):
        values = np.array([getattr(reading, field) for reading in clean_day])
        assert values.min() >= 0.0 and values.max() <= 1.0
        assert values.std() > 0.05
        assert len(set(values.tolist())) > len(values) * 0.9


def test_rare_in_contract_excursions_stand_out_as_outliers(clean_day: list[TelemetryReading]) -> None:
    # Normal readings change by a degree or two per 10 s; an excursion jumps by 25 °C or more.
    jumps = 0
    for readings in by_satellite(clean_day).values():
        temperature = np.array([reading.temp_c for reading in readings])
        jumps += int(np.sum(np.diff(temperature) > 20.0))
    assert 3 <= jumps <= 60
    assert all(-100.0 <= r.temp_c <= 120.0 for r in clean_day)  # inside the shipped critical band


# Faults


def test_fault_rate_is_close_to_the_requested_one_and_uses_every_kind() -> None:
    records = list(simulate_telemetry(3, START_NS, START_NS + DAY_NS, 10.0, 0.05, seed=9))
    codes = collections.Counter(record_rejection_code(record) for record in records)
    faults = len(records) - codes.pop(None)
    assert faults / len(records) == pytest.approx(0.05, abs=0.005)
    assert {
        "alarm:critical",
        "non_finite_value",
        "truncated",
        "malformed_flatbuffer",
        "invalid_satellite_name",
        "timestamp_in_future",
        "timestamp_before_1970",
    } <= set(codes)
    assert codes["invalid_satellite_name"] == pytest.approx(faults / len(FAULT_KINDS), rel=0.3)


@pytest.mark.parametrize(
    ("kind", "expected_codes"),
    [
        ("out_of_range", {"alarm:critical", "alarm:severe", "non_finite_value"}),
        ("truncated", {"truncated"}),
        ("garbage_bytes", {"malformed_flatbuffer", "truncated"}),
        ("bad_satellite_name", {"invalid_satellite_name"}),
        ("future_timestamp", {"timestamp_in_future"}),
        ("timestamp_before_1970", {"timestamp_before_1970"}),
    ],
)
def test_every_injected_fault_is_rejected_or_alarmed_with_its_reason(kind: str, expected_codes: set[str]) -> None:
    records = list(simulate_telemetry(2, START_NS, START_NS + HOUR_NS, 10.0, 1.0, seed=5, fault_kinds=(kind,)))
    assert len(records) == 720
    codes = collections.Counter(record_rejection_code(record) for record in records)
    assert set(codes) <= expected_codes, codes


def test_faulty_records_keep_the_event_time_of_their_slot() -> None:
    records = list(simulate_telemetry(2, START_NS, START_NS + HOUR_NS, 10.0, 0.3, seed=5))
    stamps = [record.timestamp_ms for record in records]
    assert stamps == sorted(stamps)


def test_without_faults_every_record_is_valid() -> None:
    records = simulate_telemetry(5, START_NS, START_NS + 6 * HOUR_NS, 10.0, 0.0, seed=11)
    assert {record_rejection_code(record) for record in records} == {None}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"satellites": 0}, "satellites must be at least 1"),
        ({"end_ns": START_NS}, "must be after start_ns"),
        ({"interval_s": 0.0}, "interval_s must be positive"),
        ({"fault_rate": 1.5}, "fault_rate is a fraction"),
        ({"fault_kinds": ("meteor",)}, "fault_kinds"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(arguments: dict[str, object], message: str) -> None:
    call: dict[str, object] = {
        "satellites": 2,
        "start_ns": START_NS,
        "end_ns": START_NS + HOUR_NS,
        "interval_s": 10.0,
        "fault_rate": 0.1,
        "seed": 1,
    }
    with pytest.raises(ValueError, match=message):
        next(simulate_telemetry(**{**call, **arguments}))  # type: ignore[arg-type]


# Publishing


class RecordingLog:
    """An event log double that keeps the batches it was given."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[OutgoingRecord]]] = []

    def append(self, topic: str, records: list[OutgoingRecord]) -> int:
        self.batches.append((topic, list(records)))
        return len(records)


def test_publish_records_appends_in_batches_and_reports_progress() -> None:
    records = list(simulate_telemetry(1, START_NS, START_NS + 250 * 10**9, 10.0, 0.0, seed=1))
    log = RecordingLog()
    progress: list[int] = []
    published = publish_records(log, "satlake.telemetry", iter(records), batch_size=10, progress=progress.append)  # type: ignore[arg-type]
    assert published == 25
    assert progress == [10, 20, 25]
    assert [len(batch) for _topic, batch in log.batches] == [10, 10, 5]
    assert [record for _topic, batch in log.batches for record in batch] == records


def test_publish_records_into_the_embedded_log(tmp_path: Path) -> None:
    local_event_log = pytest.importorskip("satlake.resources.local_event_log")
    log = local_event_log.LocalEventLog(tmp_path / "log", fsync=False)
    log.create_topic("satlake.telemetry", 2)
    records = list(simulate_telemetry(3, START_NS, START_NS + HOUR_NS, 10.0, 0.05, seed=2))
    assert publish_records(log, "satlake.telemetry", records, batch_size=500) == len(records) == 1080
    assert sum(log.end_offsets("satlake.telemetry").values()) == 1080
    stored = log.read("satlake.telemetry", {}, max_records=2000, timeout_s=0.0)
    assert sorted(record.value for record in stored) == sorted(record.value for record in records)


def test_publish_records_refuses_an_empty_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        publish_records(RecordingLog(), "t", [], batch_size=0)  # type: ignore[arg-type]
