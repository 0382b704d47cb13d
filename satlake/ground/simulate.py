"""Telemetry packets generated from an XTCE mission database, for demos and tests: an encoder driven by
space_packet_parser's definition objects (which only decode), and a simulated stream of every packet type.

The encoder covers the subset satlake's missions use: unsigned and two's complement integers of any size,
IEEE 754 floats of 16, 32 and 64 bits, enumerations (by label), booleans, fixed-length strings and binaries,
polynomial calibrators of degree 1 (inverted: raw = (eng - c0) / c1, rounded for integers) and absolute times
with a linear scale. The CCSDS primary header comes from spacepackets.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from satlake.ground.alarms import AlarmDefinition
from satlake.ground.xtce import APID_PARAMETER, ROOT_CONTAINER, MissionDatabase, PacketType, ParameterInfo
from satlake.telemetry.limits import SEVERITIES

ORBIT_PERIOD_S = 5640.0  # a 94-minute low Earth orbit
ORBIT_RADIUS_KM = 6878.0
ORBIT_SPEED_KM_S = 7.61
INCLINATION = math.radians(97.4)
MODE_HOLD_S = 600.0  # how long the simulated satellite stays in one enumeration state
PERIODS_S = (1.0, 2.0, 5.0)  # cadence of the packet types by APID order; later ones every 10 s
EVENTS = ("NOMINAL", "ECLIPSE ENTRY", "ECLIPSE EXIT", "HEATER CYCLE", "GNSS FIX OK")


def encode_packet(
    db: MissionDatabase,
    packet_type: str,
    values: Mapping[str, object],
    *,
    sequence_count: int,
    time: datetime | None = None,
) -> bytes:
    """The bytes of one packet of ``packet_type`` (container name) with engineering ``values`` by parameter name;
    ``time`` fills the secondary header time unless ``values`` has it; ``sequence_count`` is taken modulo 2^14.
    Raises ValueError for a value the definition cannot carry (out of range, unknown label, missing) or an
    encoding outside the subset."""
    from spacepackets.ccsds.spacepacket import SpacePacket, SpacePacketHeader

    if db.format != "xtce":
        raise ValueError(f"{db.source}: packets are generated from XTCE definitions only")
    kind = db.packet_type(packet_type)
    chain = _chain(db.definition, kind.name)
    bits, width, secondary_bits = 0, 0, 0
    for depth, container in enumerate(chain[1:], start=1):
        for entry in _flatten(container.entry_list):
            value = values.get(entry.name, time if entry.name == kind.time_parameter else None)
            if value is None:
                raise ValueError(f"no value for parameter {entry.name!r} of packet type {kind.name!r}")
            raw, size = _encode(entry.name, entry.parameter_type, kind.parameter(entry.name), value)
            bits, width = (bits << size) | raw, width + size
        if depth < len(chain) - 1:
            secondary_bits = width
    if width % 8:
        raise ValueError(f"packet type {kind.name!r} has {width} bits of data: not whole bytes")
    data = bits.to_bytes(width // 8, "big")
    cut = secondary_bits // 8 if secondary_bits % 8 == 0 else 0
    flag = _secondary_header_flag(db.definition, chain, kind)
    header = SpacePacketHeader.tm(kind.apid, sequence_count % 16384, len(data) - 1, sec_header_flag=flag)
    secondary, user = (data[:cut], data[cut:] or None) if flag else (None, data)
    return bytes(SpacePacket(header, secondary, user).pack())


def simulate_packets(
    db: MissionDatabase, *, start: datetime, seconds: int, seed: int = 7, alarm: bool = True
) -> list[bytes]:
    """``seconds`` of telemetry from ``start``: every packet type interleaved in time order (by APID order every
    1, 2, 5, then 10 s, a quarter second apart), each APID with its own 14-bit sequence count (started near the
    wrap), values that follow a low Earth orbit (sunlight and eclipse) within every alarm band. With ``alarm``,
    one alarmed parameter (``alarm_targets``) leaves its mildest band for minViolations + 1 consecutive samples
    a third into the run and comes back: exactly one alarm. Raises ValueError when no alarmed parameter has
    enough packets in the run for that."""
    rng = random.Random(seed)
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    phase0 = rng.uniform(0, 2 * math.pi)
    schedule: list[tuple[float, int]] = []
    for index, apid in enumerate(sorted(db.packet_types)):
        period, offset = PERIODS_S[index] if index < len(PERIODS_S) else 10.0, index * 0.25
        schedule += [(offset + k * period, apid) for k in range(max(math.ceil((seconds - offset) / period), 0))]
    schedule.sort()
    counts = {apid: 16384 - rng.randint(8, 64) for apid in db.packet_types}
    model = _Model(db, rng, phase0)
    samples = [(t, apid, model.values(db.packet_types[apid], t)) for t, apid in schedule]
    if alarm:
        _add_excursion(db, samples)
    packets = []
    for t, apid, values in samples:
        moment = start + timedelta(seconds=t)
        packets.append(encode_packet(db, db.packet_types[apid].name, values, sequence_count=counts[apid], time=moment))
        counts[apid] = (counts[apid] + 1) % 16384
    return packets


def alarm_targets(db: MissionDatabase) -> list[tuple[PacketType, ParameterInfo, AlarmDefinition]]:
    """The parameters a simulated excursion may move: numeric ones with a default alarm, those that need the
    most consecutive violations first (APID order on a tie)."""
    found = []
    for packet_type in db.packet_types.values():
        for p in packet_type.parameters:
            alarms = db.alarms.get(p.name)
            default = alarms.default if alarms else None
            if default is not None and default.limits is not None and default.limits.bands:
                found.append((packet_type, p, default))
    return sorted(found, key=lambda target: -target[2].min_violations)


# Encoding ----------------------------------------------------------------------------------------------------


def _chain(definition: object, name: str) -> list:
    containers = definition.containers  # type: ignore[attr-defined]
    chain = [containers[name]]
    while chain[-1].base_container_name:
        chain.append(containers[chain[-1].base_container_name])
    return chain[::-1]


def _flatten(entries: list) -> list:
    return [leaf for e in entries for leaf in (_flatten(e.entry_list) if hasattr(e, "entry_list") else [e])]


def _secondary_header_flag(definition: object, chain: list, kind: PacketType) -> bool:
    """The flag the definition's restriction criteria require (third primary header field), else whether the
    packet type has a secondary header time."""
    header = [entry.name for entry in _flatten(definition.containers[ROOT_CONTAINER].entry_list)]  # type: ignore[attr-defined]
    flag_name = header[2] if len(header) > 2 and header[3:4] == [APID_PARAMETER] else None
    for container in chain:
        for criterion in container.restriction_criteria:
            if getattr(criterion, "referenced_parameter", None) == flag_name:
                return str(criterion.required_value).strip() == "1"
    return kind.time_parameter is not None


def _encode(name: str, ptype: object, info: ParameterInfo, value: object) -> tuple[int, int]:
    """(bits, size in bits) of one engineering value."""
    type_name, encoding = type(ptype).__name__, ptype.encoding  # type: ignore[attr-defined]
    encoding_name = type(encoding).__name__
    if type_name == "AbsoluteTimeParameterType":
        seconds = info.epoch.from_datetime(value) if isinstance(value, datetime) else float(value)  # type: ignore[union-attr, arg-type]
        value = seconds
    elif type_name == "EnumeratedParameterType":
        labels = {label: raw for raw, label in ptype.enumeration.items()}  # type: ignore[attr-defined]
        if value not in labels and value not in ptype.enumeration:  # type: ignore[attr-defined]
            raise ValueError(f"{name}: {value!r} is not a label of its enumeration ({', '.join(labels)})")
        return _integer(name, encoding, labels.get(value, value))  # type: ignore[arg-type]
    elif type_name == "BooleanParameterType":
        return _integer(name, encoding, int(bool(value)))
    if encoding_name == "StringDataEncoding":
        return _fixed_bytes(name, encoding, str(value).encode(encoding.encoding), encoding.termination_character)
    if encoding_name == "BinaryDataEncoding":
        return _fixed_bytes(name, encoding, bytes(value), None)  # type: ignore[arg-type]
    raw = _uncalibrate(name, encoding, value if isinstance(value, int) else float(value))  # type: ignore[arg-type]
    if encoding_name == "FloatDataEncoding":
        if encoding.encoding not in ("IEEE754", "IEEE754_1985"):
            raise ValueError(f"{name}: cannot encode {encoding.encoding} floats")
        order = "<" if encoding.byte_order == "leastSignificantByteFirst" else ">"
        packed = struct.pack(order + {16: "e", 32: "f", 64: "d"}[encoding.size_in_bits], raw)
        return int.from_bytes(packed, "big"), encoding.size_in_bits
    return _integer(name, encoding, round(raw))


def _uncalibrate(name: str, encoding: object, eng: float) -> float:  # an int stays exact without a calibrator
    """Invert a degree-1 polynomial calibrator (none: the value is raw)."""
    calibrator = encoding.default_calibrator  # type: ignore[attr-defined]
    if encoding.context_calibrators:  # type: ignore[attr-defined]
        raise ValueError(f"{name}: cannot invert context calibrators")
    if calibrator is None:
        return eng
    terms = {int(term.exponent): float(term.coefficient) for term in getattr(calibrator, "coefficients", [])}
    if type(calibrator).__name__ != "PolynomialCalibrator" or set(terms) - {0, 1} or not terms.get(1):
        raise ValueError(f"{name}: only polynomial calibrators of degree 1 can be inverted")
    return (eng - terms.get(0, 0.0)) / terms[1]


def _integer(name: str, encoding: object, raw: int) -> tuple[int, int]:
    size, signed = encoding.size_in_bits, encoding.encoding != "unsigned"  # type: ignore[attr-defined]
    low, high = (-(1 << (size - 1)), (1 << (size - 1)) - 1) if signed else (0, (1 << size) - 1)
    if not low <= raw <= high:
        raise ValueError(f"{name}: raw value {raw} does not fit {size} bits ({low}..{high})")
    bits = raw & ((1 << size) - 1)
    if encoding.byte_order == "leastSignificantByteFirst" and size % 8 == 0:  # type: ignore[attr-defined]
        bits = int.from_bytes(bits.to_bytes(size // 8, "big"), "little")
    return bits, size


def _fixed_bytes(name: str, encoding: object, data: bytes, terminator: bytes | None) -> tuple[int, int]:
    size = getattr(encoding, "fixed_length", None) or getattr(encoding, "fixed_size_in_bits", None)
    if not size or size % 8:
        raise ValueError(f"{name}: only fixed-length strings and binaries of whole bytes can be encoded")
    data += terminator or b""
    if len(data) > size // 8:
        raise ValueError(f"{name}: {len(data)} bytes do not fit {size // 8}")
    return int.from_bytes(data.ljust(size // 8, b"\0"), "big"), size


# The simulated satellite --------------------------------------------------------------------------------------


class _Model:
    """Values of every parameter at a time of the run, from the orbit phase and the definition's alarm bands."""

    def __init__(self, db: MissionDatabase, rng: random.Random, phase0: float) -> None:
        self.db, self.rng, self.phase0 = db, rng, phase0
        self.boot = rng.randint(1_000, 500_000)

    def values(self, packet_type: PacketType, t: float) -> dict[str, object]:
        phase = self.phase0 + 2 * math.pi * t / ORBIT_PERIOD_S
        sun = math.cos(phase)
        values: dict[str, object] = {}
        axes = {"km": 0, "km/s": 0}
        for p in packet_type.parameters:
            if p.kind == "time":
                continue
            noise = self.rng.gauss(0, 1)
            if p.enumeration is not None:
                values[p.name] = self._label(p, t)
            elif p.kind == "bool":
                values[p.name] = sun < -0.4
            elif p.kind == "string":
                values[p.name] = EVENTS[int(t // 60) % len(EVENTS)]
            elif p.kind == "binary":
                values[p.name] = b""
            elif (band := self._safe_band(p)) is not None:
                center, half = band
                values[p.name] = center + half * (0.5 * sun + 0.05 * max(min(noise, 2), -2))
            elif p.unit in axes:
                scale = ORBIT_RADIUS_KM if p.unit == "km" else ORBIT_SPEED_KM_S
                values[p.name] = scale * _orbit_axis(phase + (math.pi / 2 if p.unit == "km/s" else 0), axes[p.unit])
                axes[p.unit] += 1
            else:
                values[p.name] = self._free(p, t, sun, noise)
        return values

    def _label(self, p: ParameterInfo, t: float) -> str:
        alarms = self.db.alarms.get(p.name)
        levels = alarms.default.levels if alarms and alarms.default else {}
        default = alarms.default.default_level if alarms and alarms.default else "normal"
        labels = [label for _, label in sorted(p.enumeration.items()) if levels.get(label, default) == "normal"]  # type: ignore[union-attr]
        return (labels or list(p.enumeration.values()))[int(t // MODE_HOLD_S) % max(len(labels), 1)]  # type: ignore[union-attr]

    def _safe_band(self, p: ParameterInfo) -> tuple[float, float] | None:
        """(center, half width) of the band inside every alarm band of the parameter, default and contexts."""
        alarms = self.db.alarms.get(p.name)
        definitions = [a for a in ([alarms.default] + [c.alarm for c in alarms.contexts] if alarms else []) if a]
        bands = [b for a in definitions if a.limits for b in a.limits.bands.values()]
        if not bands:
            return None
        low = max((b.low.value for b in bands if b.low), default=-math.inf)
        high = min((b.high.value for b in bands if b.high), default=math.inf)
        if math.isinf(low) and math.isinf(high):
            return None
        low, high = (high - 20.0 if math.isinf(low) else low), (low + 20.0 if math.isinf(high) else high)
        return (low + high) / 2, (high - low) / 2

    def _free(self, p: ParameterInfo, t: float, sun: float, noise: float) -> float | int:
        """A parameter without alarms: uptime-like counters, currents, temperatures, angles, else a slow wave."""
        if p.kind == "int":
            size = self.db.definition.parameters[p.name].parameter_type.encoding.size_in_bits  # type: ignore[attr-defined]
            return self.boot + int(t) if p.unit == "s" else int(t // 60) % min(100, 1 << (size - 1))
        signal = {
            "A": 2.4 * max(sun, 0.0) + 0.02 * abs(noise) if self._non_negative(p) else 1.5 * sun + 0.02 * noise,
            "degC": 20.0 + 15.0 * sun + 0.2 * noise,
            "V": 28.0 + 0.5 * sun + 0.01 * noise,
            "deg": 90.0 - 60.0 * sun,
            "dBm": -95.0 + 8.0 * sun + 0.5 * noise,
            "ms": 50.0 + 20.0 * math.sin(2 * math.pi * t / 600.0),
        }
        return signal.get(p.unit, math.sin(2 * math.pi * t / ORBIT_PERIOD_S) + 0.01 * noise)

    def _non_negative(self, p: ParameterInfo) -> bool:
        encoding = self.db.definition.parameters[p.name].parameter_type.encoding  # type: ignore[attr-defined]
        return getattr(encoding, "encoding", "") == "unsigned"


def _orbit_axis(phase: float, axis: int) -> float:
    """Component ``axis`` (0 x, 1 y, 2 z) of a unit vector on an inclined circular orbit."""
    return (math.cos(phase), math.sin(phase) * math.cos(INCLINATION), math.sin(phase) * math.sin(INCLINATION))[axis % 3]


def _add_excursion(db: MissionDatabase, samples: list[tuple[float, int, dict[str, object]]]) -> None:
    """Move the first alarm target with enough samples out of its mildest band (not past the next one) for
    minViolations + 1 samples, a third into the run."""
    for packet_type, p, default in alarm_targets(db):
        mine = [values for _, apid, values in samples if apid == packet_type.apid]
        length = default.min_violations + 1
        if len(mine) < length + 2:
            continue
        alarms = db.alarms[p.name]
        first = len(mine) // 3
        for values in mine[first : first + length]:
            values[p.name] = _outside_mildest(alarms.applicable(values) or default)
            if alarms.evaluate(values[p.name], values).severity is None:
                raise ValueError(f"{p.name}: the excursion value {values[p.name]} raises no alarm")
        return
    raise ValueError(f"{db.source}: no alarmed numeric parameter has enough packets in this run for an alarm")


def _outside_mildest(alarm: AlarmDefinition) -> float:
    bands = alarm.limits.bands  # type: ignore[union-attr]
    present = [s for s in SEVERITIES if s in bands]
    mildest, following = bands[present[0]], [bands[s] for s in present[1:]]
    if mildest.low is not None:
        beyond = next((b.low.value for b in following if b.low is not None), mildest.low.value - 1.0)
        return (mildest.low.value + beyond) / 2
    beyond = next((b.high.value for b in following if b.high is not None), mildest.high.value + 1.0)  # type: ignore[union-attr]
    return (mildest.high.value + beyond) / 2  # type: ignore[union-attr]
