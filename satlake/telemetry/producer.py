"""Simulated satellite telemetry for demos and tests, and publishing records to an event log in batches.

The simulation is deterministic for a seed: LEO orbits from Kepler's law, eclipses from the beta angle,
battery charge/discharge cycles, temperature swings, noisy sensors, rare in-contract excursions, and injected
faults (out-of-range values, truncated messages, garbage bytes, bad names, impossible timestamps).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from satlake.resources.event_log import EventLog, OutgoingRecord
from satlake.telemetry.codec import TelemetryReading, encode_event, encode_event_fields

EARTH_RADIUS_KM = 6371.0
EARTH_MU_KM3_S2 = 398_600.4418
NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S

FAULT_KINDS: tuple[str, ...] = (
    "out_of_range",
    "truncated",
    "garbage_bytes",
    "bad_satellite_name",
    "future_timestamp",
    "timestamp_before_1970",
)
# Names an upstream bug could send; each breaks the satellite name rule (validation.SATELLITE_NAME_RULE) in a
# different way: empty, only spaces, control characters, too long.
BAD_SATELLITE_NAMES: tuple[str, ...] = (
    "",
    "   ",
    "SAT-001\n",
    "SAT\x00001",
    "SAT-001\x1b[31m",
    "SAT\u2028001",
    "\x7f",
    "S" * 80,
)
# Share of readings with a real but unusual value (still inside the contract) for the anomaly models to find.
EXCURSION_RATE = 0.002
# Steps simulated per numpy batch: bounds memory for long simulations without slowing short ones.
_STEPS_PER_CHUNK = 4096
_MEASUREMENTS = ("temp_c", "battery_charge_pct", "altitude_km", "sensor1", "sensor2", "sensor3")
# Below and above the shipped limits' critical band of each measurement, far enough out to be a fault, not an
# excursion: bronze keeps them with a critical or severe alarm.
_SENSOR_OUT_OF_RANGE = ((-5.0, -1.05), (1.05, 5.0))
_OUT_OF_RANGE_VALUES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "temp_c": ((-273.0, -120.0), (130.0, 400.0)),
    "battery_charge_pct": ((-50.0, -0.5), (100.5, 150.0)),
    "altitude_km": ((0.0, 150.0), (2100.0, 40_000.0)),
    "sensor1": _SENSOR_OUT_OF_RANGE,
    "sensor2": _SENSOR_OUT_OF_RANGE,
    "sensor3": _SENSOR_OUT_OF_RANGE,
}


def satellite_name(index: int) -> str:
    """The simulated name of satellite ``index`` (1-based): SAT-001, SAT-002, ..."""
    return f"SAT-{index:03d}"


def orbital_period_s(altitude_km: float) -> float:
    """Period of a circular orbit at ``altitude_km`` (Kepler's third law)."""
    semi_major_axis_km = EARTH_RADIUS_KM + altitude_km
    return 2 * math.pi * math.sqrt(semi_major_axis_km**3 / EARTH_MU_KM3_S2)


def eclipse_half_angle_rad(altitude_km: float, beta_rad: float) -> float:
    """Half the arc of a circular orbit in Earth's (cylindrical) shadow; 0 if it is never eclipsed."""
    radius = EARTH_RADIUS_KM + altitude_km
    ratio = math.sqrt(altitude_km**2 + 2 * EARTH_RADIUS_KM * altitude_km) / (radius * math.cos(beta_rad))
    return math.acos(ratio) if ratio < 1 else 0.0


@dataclass(frozen=True, slots=True)
class SatelliteProfile:
    """The fixed traits of one simulated satellite, drawn from the seed."""

    name: str
    mean_altitude_km: float
    eccentricity: float
    period_s: float
    phase_rad: float
    beta_rad: float
    charge_pct_per_s: float
    discharge_pct_per_s: float
    sunlit_temp_c: float
    eclipse_temp_c: float
    thermal_time_constant_s: float
    initial_battery_pct: float


def draw_satellite_profile(index: int, seed: int) -> SatelliteProfile:
    """Traits of satellite ``index``: LEO altitude 400-1200 km, near-circular orbit, beta angle up to 50°."""
    rng = np.random.default_rng([seed, index, 0x5A7])
    mean_altitude_km = float(rng.uniform(400.0, 1200.0))
    eclipse_temp_c = float(rng.uniform(-30.0, -5.0))
    return SatelliteProfile(
        name=satellite_name(index),
        mean_altitude_km=mean_altitude_km,
        eccentricity=float(rng.uniform(0.0005, 0.003)),
        period_s=orbital_period_s(mean_altitude_km),
        phase_rad=float(rng.uniform(0.0, 2 * math.pi)),
        beta_rad=math.radians(float(rng.uniform(0.0, 50.0))),
        charge_pct_per_s=float(rng.uniform(0.010, 0.016)),
        discharge_pct_per_s=float(rng.uniform(0.008, 0.012)),
        sunlit_temp_c=float(rng.uniform(15.0, 35.0)),
        eclipse_temp_c=eclipse_temp_c,
        thermal_time_constant_s=float(rng.uniform(600.0, 1200.0)),
        initial_battery_pct=float(rng.uniform(70.0, 100.0)),
    )


def mean_anomaly_rad(profile: SatelliteProfile, elapsed_s: np.ndarray) -> np.ndarray:
    """Where the satellite is on its orbit, ``elapsed_s`` seconds after the start; the sun lies at 0."""
    return profile.phase_rad + 2 * math.pi * elapsed_s / profile.period_s


def altitude_km_at(profile: SatelliteProfile, elapsed_s: np.ndarray) -> np.ndarray:
    """Altitude on the slightly eccentric orbit (r = a(1 - e cos M), first order in e)."""
    semi_major_axis = EARTH_RADIUS_KM + profile.mean_altitude_km
    radius = semi_major_axis * (1 - profile.eccentricity * np.cos(mean_anomaly_rad(profile, elapsed_s)))
    return radius - EARTH_RADIUS_KM


def eclipsed(profile: SatelliteProfile, elapsed_s: np.ndarray) -> np.ndarray:
    """Whether the satellite is in Earth's shadow: the arc around anomaly pi, opposite the sun."""
    half_angle = eclipse_half_angle_rad(profile.mean_altitude_km, profile.beta_rad)
    from_anti_sun = np.abs((mean_anomaly_rad(profile, elapsed_s) % (2 * math.pi)) - math.pi)
    return from_anti_sun < half_angle


@dataclass(slots=True)
class _SatelliteState:
    """What carries over from one simulated chunk to the next."""

    profile: SatelliteProfile
    rng: np.random.Generator
    battery_pct: float
    temp_c: float


def _simulate_chunk(state: _SatelliteState, elapsed_s: np.ndarray, interval_s: float) -> tuple[list[float], ...]:
    """Measurements of one satellite at ``elapsed_s`` (seconds since the start): six lists, contract order."""
    profile, rng = state.profile, state.rng
    steps = len(elapsed_s)
    altitude = altitude_km_at(profile, elapsed_s) + rng.normal(0.0, 0.05, steps)
    mean_anomaly = mean_anomaly_rad(profile, elapsed_s)
    in_eclipse = eclipsed(profile, elapsed_s)

    load_noise = rng.normal(1.0, 0.1, steps).tolist()
    temp_noise = rng.normal(0.0, 0.3, steps).tolist()
    follow = 1 - math.exp(-interval_s / profile.thermal_time_constant_s)
    charge_per_step = profile.charge_pct_per_s * interval_s
    discharge_per_step = profile.discharge_pct_per_s * interval_s
    battery_pct, temp_c = state.battery_pct, state.temp_c
    battery: list[float] = []
    temperature: list[float] = []
    for in_shadow, load, temp_jitter in zip(in_eclipse.tolist(), load_noise, temp_noise, strict=True):
        if in_shadow:
            battery_pct -= discharge_per_step * load
            target_c = profile.eclipse_temp_c
        else:
            # Charging tapers as the cells fill up.
            battery_pct += charge_per_step * min(1.0, (101.0 - battery_pct) / 20.0)
            target_c = profile.sunlit_temp_c
        battery_pct = min(100.0, max(0.0, battery_pct))
        temp_c += follow * (target_c - temp_c) + temp_jitter
        battery.append(battery_pct)
        temperature.append(temp_c)
    state.battery_pct, state.temp_c = battery_pct, temp_c

    sensor1 = 0.5 + 0.25 * np.sin(mean_anomaly + 1.0) + rng.normal(0.0, 0.05, steps)
    sensor2 = np.where(in_eclipse, 0.2, 0.75) + rng.normal(0.0, 0.05, steps)
    sensor3 = rng.beta(2.0, 5.0, steps)
    measurements = np.vstack((temperature, battery, altitude, np.clip(sensor1, 0, 1), np.clip(sensor2, 0, 1), sensor3))
    _add_excursions(measurements, rng)
    return tuple(row.tolist() for row in measurements)


def _add_excursions(measurements: np.ndarray, rng: np.random.Generator) -> None:
    """Rare real-but-unusual values inside the contract ranges: heater spikes, sensor saturation, dips."""
    steps = measurements.shape[1]
    chosen = np.flatnonzero(rng.random(steps) < EXCURSION_RATE)
    kinds = rng.integers(0, 4, len(chosen))
    for step, kind in zip(chosen.tolist(), kinds.tolist(), strict=True):
        if kind == 0:
            measurements[0, step] = min(110.0, measurements[0, step] + rng.uniform(25.0, 45.0))
        elif kind == 1:
            measurements[1, step] = max(0.0, measurements[1, step] - rng.uniform(15.0, 30.0))
        elif kind == 2:
            measurements[2, step] += rng.choice((-1.0, 1.0)) * rng.uniform(20.0, 40.0)
        else:
            sensor = 3 + int(rng.integers(0, 3))
            measurements[sensor, step] = float(rng.choice((rng.uniform(0.0, 0.02), rng.uniform(0.98, 1.0))))


def _out_of_range_reading(reading: TelemetryReading, rng: np.random.Generator) -> TelemetryReading:
    field = _MEASUREMENTS[int(rng.integers(0, len(_MEASUREMENTS)))]
    if rng.random() < 0.2:
        value = float(rng.choice((math.nan, math.inf, -math.inf)))
    else:
        low, high = _OUT_OF_RANGE_VALUES[field][int(rng.integers(0, 2))]
        value = float(rng.uniform(low, high))
    return _replace_field(reading, field, value)


def _replace_field(reading: TelemetryReading, field: str, value: object) -> TelemetryReading:
    values = {name: getattr(reading, name) for name in TelemetryReading.__slots__}  # type: ignore[attr-defined]
    values[field] = value
    return TelemetryReading(**values)


def _faulty_record(kind: str, reading: TelemetryReading, end_ns: int, rng: np.random.Generator) -> OutgoingRecord:
    """A record for ``reading`` broken as fault ``kind`` says, keyed and stamped like a good one."""
    key = reading.satellite_name.encode()
    timestamp_ms = reading.timestamp_ns // 1_000_000
    if kind == "out_of_range":
        payload = encode_event(_out_of_range_reading(reading, rng))
    elif kind == "truncated":
        payload = encode_event(reading)
        # Cut before the satellite_name's terminator: losing only alignment padding would still decode.
        name_terminator = payload.rindex(key) + len(key)
        payload = payload[: int(rng.integers(1, name_terminator + 1))]
    elif kind == "garbage_bytes":
        payload = rng.bytes(int(rng.integers(1, 160)))
    elif kind == "bad_satellite_name":
        bad_name = BAD_SATELLITE_NAMES[int(rng.integers(0, len(BAD_SATELLITE_NAMES)))]
        payload = encode_event(_replace_field(reading, "satellite_name", bad_name))
        key = bad_name.encode() or None
    elif kind == "future_timestamp":
        # Ahead of both the record's own time and the end of the simulation, so ahead of any ingestion clock
        # that runs soon after producing.
        future_ns = max(reading.timestamp_ns, end_ns) + int(rng.integers(NS_PER_DAY, 30 * NS_PER_DAY))
        payload = encode_event(_replace_field(reading, "timestamp_ns", future_ns))
    elif kind == "timestamp_before_1970":
        # A producer writing a negative signed time, or none at all, into the unsigned field.
        before_1970_ns = (1 << 64) - int(rng.integers(NS_PER_S, 10**18)) if rng.random() < 0.7 else 0
        payload = encode_event(_replace_field(reading, "timestamp_ns", before_1970_ns))
    else:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
    return OutgoingRecord(value=payload, key=key, timestamp_ms=timestamp_ms)


def _check_simulation_arguments(
    satellites: int,
    start_ns: int,
    end_ns: int,
    interval_s: float,
    fault_rate: float,
    fault_kinds: Sequence[str],
) -> None:
    if satellites < 1:
        raise ValueError(f"satellites must be at least 1, got {satellites}")
    if end_ns <= start_ns:
        raise ValueError(f"end_ns ({end_ns}) must be after start_ns ({start_ns})")
    if not interval_s > 0:
        raise ValueError(f"interval_s must be positive, got {interval_s}")
    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError(f"fault_rate is a fraction of messages between 0 and 1, got {fault_rate}")
    unknown = sorted(set(fault_kinds) - set(FAULT_KINDS))
    if unknown or (fault_rate > 0 and not fault_kinds):
        raise ValueError(f"fault_kinds {list(fault_kinds)} must be a non-empty subset of {list(FAULT_KINDS)}")


def simulate_telemetry(
    satellites: int,
    start_ns: int,
    end_ns: int,
    interval_s: float,
    fault_rate: float,
    seed: int,
    fault_kinds: Sequence[str] = FAULT_KINDS,
) -> Iterator[OutgoingRecord]:
    """Telemetry records of ``satellites`` satellites, one reading each per ``interval_s`` in [start, end).

    Records come in event-time order across satellites (satellite ``i`` reads ``i / satellites`` of an
    interval after the first), keyed by satellite name, stamped with the event time in ms. About
    ``fault_rate`` of them are faults, of kinds drawn evenly from ``fault_kinds``. The same arguments always
    give the same records.
    """
    _check_simulation_arguments(satellites, start_ns, end_ns, interval_s, fault_rate, fault_kinds)
    interval_ns = round(interval_s * NS_PER_S)
    offsets_ns = [index * interval_ns // satellites for index in range(satellites)]
    total_steps = -(-(end_ns - start_ns) // interval_ns)
    states = [
        _SatelliteState(
            profile=(profile := draw_satellite_profile(index, seed)),
            rng=np.random.default_rng([seed, index, 0xD47A]),
            battery_pct=profile.initial_battery_pct,
            temp_c=(profile.sunlit_temp_c + profile.eclipse_temp_c) / 2,
        )
        for index in range(1, satellites + 1)
    ]
    names = [state.profile.name for state in states]
    keys = [name.encode() for name in names]
    fault_rng = np.random.default_rng([seed, 0xFA017])

    for chunk_start in range(0, total_steps, _STEPS_PER_CHUNK):
        steps = np.arange(chunk_start, min(total_steps, chunk_start + _STEPS_PER_CHUNK))
        columns = [
            _simulate_chunk(state, (steps * interval_ns + offset_ns) / NS_PER_S, interval_s)
            for state, offset_ns in zip(states, offsets_ns, strict=True)
        ]
        is_fault = (fault_rng.random((len(steps), satellites)) < fault_rate).tolist()
        for row, step in enumerate(steps.tolist()):
            step_ns = start_ns + step * interval_ns
            for sat in range(satellites):
                timestamp_ns = step_ns + offsets_ns[sat]
                if timestamp_ns >= end_ns:
                    continue
                temp, battery, altitude, sensor1, sensor2, sensor3 = columns[sat]
                values = (temp[row], battery[row], altitude[row], sensor1[row], sensor2[row], sensor3[row])
                if is_fault[row][sat]:
                    kind = fault_kinds[int(fault_rng.integers(0, len(fault_kinds)))]
                    reading = TelemetryReading(names[sat], timestamp_ns, *values)
                    yield _faulty_record(kind, reading, end_ns, fault_rng)
                else:
                    payload = encode_event_fields(names[sat], timestamp_ns, *values)
                    yield OutgoingRecord(payload, keys[sat], timestamp_ns // 1_000_000)


def publish_records(
    event_log: EventLog,
    topic: str,
    records: Iterable[OutgoingRecord],
    batch_size: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Append ``records`` to ``topic`` in batches of ``batch_size``; returns how many were appended.

    ``progress`` is called after every batch with the number appended so far.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    published = 0
    iterator = iter(records)
    while batch := list(itertools.islice(iterator, batch_size)):
        published += event_log.append(topic, batch)
        if progress is not None:
            progress(published)
    return published
