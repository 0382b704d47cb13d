"""Decode a batch of CCSDS space packets with a mission database into the bronze rows: one row per packet
(``packets``), one table per packet type with a column per parameter (``tables``), one row per parameter value
with its alarm verdict (``parameters``), and what cannot be decoded with the reason (``rejects``).

Every input row gives a packet row, a reject row, or both: a packet with a valid primary header is a packet row
even when it cannot be decoded (unknown APID, shorter than its definition, undefined enumeration value: then
``decode_error`` is set and the same reason is a reject row); no header, a broken one, or an idle packet is a
reject only. A packet longer than its definition is decoded and keeps a ``decode_error`` that says so.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from satlake.ground.epochs import iso_utc
from satlake.ground.layouts import CsvLayout
from satlake.ground.xtce import MissionDatabase, PacketType, ParameterInfo

IDLE_APID = 2047
HEADER_BYTES = 6
EARLIEST_EVENT_US = 631152000 * 1_000_000  # 1990-01-01: an onboard time before it is a clock not yet set
MAX_AHEAD_US = 86400 * 1_000_000  # an onboard time more than a day after reception is not believed
_TS = pa.timestamp("us", tz="UTC")
_COMMON = [
    pa.field("mission", pa.string()),
    pa.field("apid", pa.int32()),
    pa.field("packet_type", pa.string()),
    pa.field("sequence_count", pa.int32()),
]
_WHERE = [
    pa.field("topic", pa.string()),
    pa.field("partition", pa.int32()),
    pa.field("offset", pa.int64()),
]
PACKETS_SCHEMA = pa.schema(
    [
        *_COMMON,
        pa.field("sequence_flags", pa.int8()),
        pa.field("packet_length", pa.int32(), metadata={"doc": "bytes, primary header included"}),
        pa.field("packet_time", _TS, metadata={"doc": "onboard time of the secondary header, in UTC"}),
        pa.field("ground_time", _TS),
        pa.field("station", pa.string()),
        *_WHERE,
        pa.field("decode_error", pa.string(), metadata={"doc": "null when decoded"}),
        pa.field("event_date", pa.date32()),
    ]
)
PARAMETERS_SCHEMA = pa.schema(
    [
        *_COMMON,
        pa.field("packet_time", _TS),
        pa.field("ground_time", _TS),
        pa.field("station", pa.string()),
        pa.field("parameter", pa.string()),
        pa.field("raw_value", pa.float64()),
        pa.field("eng_value", pa.float64(), metadata={"doc": "enumerations: the number; times: POSIX seconds"}),
        pa.field("eng_text", pa.string(), metadata={"doc": "enumeration label, string, ISO time"}),
        pa.field("unit", pa.string()),
        pa.field("alarm_severity", pa.string(), metadata={"doc": "null: within limits or no alarm defined"}),
        pa.field("alarm_limit", pa.float64()),
        pa.field("alarm_min_violations", pa.int32()),
        *_WHERE,
        pa.field("event_date", pa.date32()),
    ]
)
PACKET_REJECTS_SCHEMA = pa.schema(
    [
        pa.field("mission", pa.string()),
        *_WHERE,
        pa.field("station", pa.string()),
        pa.field("ground_time", _TS),
        pa.field("apid", pa.int32()),
        pa.field("reason", pa.string()),
        pa.field("packet", pa.binary()),
        pa.field("event_date", pa.date32()),
    ]
)
_TABLE_COMMON = ["mission", "apid", "sequence_count", "packet_time", "ground_time", "station", "topic", "partition"]
_TABLE_COMMON += ["offset", "event_date"]
_ENG_TYPES = {"int": pa.int64(), "float": pa.float64(), "string": pa.string(), "bool": pa.bool_(), "time": _TS}
_RAW_TYPES = {"int": pa.int64(), "float": pa.float64(), "binary": pa.binary()}


def packet_table_schema(packet_type: PacketType) -> pa.Schema:
    """The schema of ``bronze/<mission>_<packet type table>``: where the packet came from, then per parameter
    its engineering value ``<column>`` and its raw value ``<column>_raw``."""
    fixed = {f.name: f for f in (*PACKETS_SCHEMA, *PARAMETERS_SCHEMA)}
    fields = [fixed[name] for name in _TABLE_COMMON]
    for p in packet_type.parameters:
        doc = {"doc": f"{p.name}{' [' + p.unit + ']' if p.unit else ''}"}
        fields.append(pa.field(p.column, _ENG_TYPES.get(p.kind, pa.binary()), metadata=doc))
        fields.append(pa.field(f"{p.column}_raw", _RAW_TYPES[p.raw_kind], metadata={"doc": f"{p.name} raw"}))
    return pa.schema(fields)


@dataclass(frozen=True)
class DecodedBatch:
    """The rows of one decoded batch; ``tables`` holds the packet types present, by table name."""

    packets: pa.Table
    tables: dict[str, pa.Table]
    parameters: pa.Table
    rejects: pa.Table


@dataclass
class _Decoded:
    """One packet: (raw, engineering) per parameter and the values alarms compare, or why it failed."""

    values: dict[str, tuple[object, object]] = field(default_factory=dict)
    context: Mapping[str, object] = field(default_factory=dict)
    error: str | None = None
    note: str | None = None


def decode_batch(db: MissionDatabase, mission: str, batch: pa.Table) -> DecodedBatch:
    """Decode ``batch`` (columns topic, partition, offset, station, ground_time, packet) of ``mission``."""
    where = {name: batch.column(name).to_pylist() for name in ("topic", "partition", "offset", "station")}
    ground = pc.cast(batch.column("ground_time"), _TS)
    ground_us = pc.cast(ground, pa.int64()).to_pylist()
    packets = [bytes(p) if p is not None else b"" for p in batch.column("packet").to_pylist()]
    headers = [_header(p) for p in packets]
    known = [i for i, h in enumerate(headers) if not isinstance(h, str) and h[0] in db.packet_types]
    if db.format == "ccsdspy-csv":
        decoded = _decode_ccsdspy(db, [(i, packets[i]) for i in known], headers)
    else:
        decoded = _decode_xtce(db, [(i, packets[i]) for i in known], headers)

    rows: dict[str, list] = {f.name: [] for f in PACKETS_SCHEMA}
    source: list[int] = []  # the input row of each packet row
    rejected: list[tuple[int, int | None, str]] = []  # (input row, APID, reason)
    for i, (raw, header) in enumerate(zip(packets, headers, strict=True)):
        if isinstance(header, str):
            rejected.append((i, None, header))
            continue
        apid, flags, count = header
        if apid == IDLE_APID:
            rejected.append((i, apid, "idle packet"))
            continue
        packet_type = db.packet_types.get(apid)
        result = decoded.get(i) or _Decoded(error=f"unknown APID {apid}")
        if result.error:
            rejected.append((i, apid, result.error))
        time = result.values.get(packet_type.time_parameter) if packet_type and packet_type.time_parameter else None
        rows["apid"].append(apid)
        rows["packet_type"].append(packet_type.name if packet_type else None)
        rows["sequence_count"].append(count)
        rows["sequence_flags"].append(flags)
        rows["packet_length"].append(len(raw))
        rows["packet_time"].append(time[1] if time else None)
        rows["decode_error"].append(result.error or result.note)
        source.append(i)
    for name in ("topic", "partition", "offset", "station"):
        rows[name] = [where[name][i] for i in source]
    rows["ground_time"] = [ground_us[i] for i in source]
    rows["mission"] = [mission] * len(source)
    rows["event_date"] = [None] * len(source)
    packet_table = _event_dates(pa.table(rows, schema=PACKETS_SCHEMA))
    reject_table = _rejects_table(rejected, packets, mission, where, ground_us)
    parameters, tables = _parameter_rows(db, packet_table, [decoded.get(i) for i in source])
    return DecodedBatch(packet_table, tables, parameters, reject_table)


def _header(raw: bytes) -> tuple[int, int, int] | str:
    """(APID, sequence flags, sequence count) of a packet whose primary header holds, else the reason."""
    if len(raw) < HEADER_BYTES:
        return f"truncated primary header ({len(raw)} of {HEADER_BYTES} bytes)"
    if raw[0] >> 5:
        return f"invalid primary header: version {raw[0] >> 5} (space packets are version 0)"
    length = ((raw[4] << 8) | raw[5]) + 7
    if length != len(raw):
        return f"invalid primary header: its length field gives {length} bytes, the packet has {len(raw)}"
    return ((raw[0] & 0x07) << 8) | raw[1], raw[2] >> 6, ((raw[2] & 0x3F) << 8) | raw[3]


def _rejects_table(
    rejected: list[tuple[int, int | None, str]], packets: list[bytes], mission: str, where: dict, ground_us: list
) -> pa.Table:
    """Reject rows; their ``event_date`` is the day the ground received them."""
    index = [i for i, _, _ in rejected]
    columns: dict[str, object] = {name: [where[name][i] for i in index] for name in ("topic", "partition", "offset")}
    ground = pa.array([ground_us[i] for i in index], pa.int64()).cast(_TS)
    columns |= {"mission": [mission] * len(index), "station": [where["station"][i] for i in index]}
    columns |= {"ground_time": ground, "apid": [apid for _, apid, _ in rejected]}
    columns |= {"reason": [reason for _, _, reason in rejected], "packet": [packets[i] for i in index]}
    columns["event_date"] = pc.cast(ground, pa.date32())
    return pa.table({f.name: columns[f.name] for f in PACKET_REJECTS_SCHEMA}, schema=PACKET_REJECTS_SCHEMA)


def _event_dates(packets: pa.Table) -> pa.Table:
    """``event_date``: the onboard time's UTC day when it is believable (after 1990, at most a day after the
    ground received it), else the ground time's day."""
    packet_us = pc.cast(packets.column("packet_time"), pa.int64())
    ground_us = pc.cast(packets.column("ground_time"), pa.int64())
    believable = pc.and_kleene(
        pc.greater_equal(packet_us, EARLIEST_EVENT_US),
        pc.or_kleene(pc.is_null(ground_us), pc.less_equal(packet_us, pc.add(ground_us, MAX_AHEAD_US))),
    )
    chosen = pc.if_else(pc.fill_null(believable, False), packets.column("packet_time"), packets.column("ground_time"))
    index = packets.schema.get_field_index("event_date")
    return packets.set_column(index, PACKETS_SCHEMA.field("event_date"), pc.cast(chosen, pa.date32()))


# Decoders: by packet row, the decoded values or the reason ----------------------------------------------------


def _decode_xtce(db: MissionDatabase, items: list[tuple[int, bytes]], headers: list) -> dict[int, _Decoded]:
    from space_packet_parser.exceptions import UnrecognizedPacketTypeError

    definition = db.definition
    results: dict[int, _Decoded] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, raw in items:
            packet_type = db.packet_types[headers[i][0]]
            seen = len(caught)
            try:
                parsed = definition.parse_bytes(raw)  # type: ignore[attr-defined]
            except UnrecognizedPacketTypeError:
                results[i] = _Decoded(error=f"the header matches no packet type of {db.source} for this APID")
                continue
            except ValueError as exc:
                results[i] = _Decoded(error=_value_error(str(exc), packet_type, len(raw)))
                continue
            except Exception as exc:  # a definition space_packet_parser cannot apply to these bytes
                results[i] = _Decoded(error=f"cannot decode: {type(exc).__name__}: {exc}")
                continue
            try:
                values = {p.name: _typed(p, getattr(parsed[p.name], "raw_value", None), parsed[p.name])
                          for p in packet_type.parameters}  # fmt: skip
            except (ValueError, OverflowError) as exc:  # a time that is NaN or beyond datetime's range
                results[i] = _Decoded(error=f"cannot decode: {exc}")
                continue
            results[i] = _Decoded(values, parsed, None, _trailing(caught[seen:]))
    return results


def _value_error(message: str, packet_type: PacketType, length: int) -> str:
    if message.startswith("Tried to read beyond the end"):
        return f"packet shorter than its definition ({length} bytes)"
    found = re.match(r"Failed to find the value (\S+) in enum lookup list (.*)\.$", message)
    if found:
        names = [p.name for p in packet_type.parameters if p.enumeration and str(dict(p.enumeration)) == found[2]]
        return f"value {found[1]} is not in the enumeration of {' or '.join(names) or 'a parameter'}"
    return f"cannot decode: {message}"


def _trailing(caught: list[warnings.WarningMessage]) -> str | None:
    for warning in caught:
        found = re.search(
            r"parsed \((\d+)b\) did not match the length of data available \((\d+)b\)", str(warning.message)
        )
        if found:
            return f"{(int(found[2]) - int(found[1])) // 8} trailing bytes beyond the definition"
    return None


def _typed(p: ParameterInfo, raw: object, eng: object) -> tuple[object, object]:
    """(raw, engineering) as the Python values of their Arrow columns; times become POSIX microseconds."""
    raw_value = int(raw) if p.raw_kind == "int" else float(raw) if p.raw_kind == "float" else bytes(raw)  # type: ignore[arg-type]
    if p.kind == "time":
        return raw_value, p.epoch.to_unix_us(float(eng))  # type: ignore[union-attr, arg-type]
    if p.kind == "int":
        return raw_value, int(eng)  # type: ignore[call-overload]
    if p.kind == "float":
        return raw_value, float(eng)  # type: ignore[arg-type]
    if p.kind == "bool":
        return raw_value, bool(eng)
    if p.kind == "string":
        return raw_value, eng.decode("utf-8", "replace") if isinstance(eng, bytes) else str(eng)
    return raw_value, bytes(eng)  # type: ignore[arg-type]


def _decode_ccsdspy(db: MissionDatabase, items: list[tuple[int, bytes]], headers: list) -> dict[int, _Decoded]:
    """Decode with ccsdspy, one ``FixedLength.load`` per APID (packets of the layout's length)."""
    results: dict[int, _Decoded] = {}
    by_apid: dict[int, list[tuple[int, bytes]]] = {}
    for i, raw in items:
        by_apid.setdefault(headers[i][0], []).append((i, raw))
    for apid, group in by_apid.items():
        layout: CsvLayout = db.definition[apid]  # type: ignore[index]
        packet_type = db.packet_types[apid]
        fitting: list[tuple[int, bytes, str | None]] = []
        for i, raw in group:
            extra = len(raw) - layout.length
            if extra < 0:
                results[i] = _Decoded(error=f"packet shorter than its definition ({len(raw)} bytes)")
            else:  # a longer packet is cut to its layout, its length field rewritten to match
                cut = raw[:4] + (layout.length - 7).to_bytes(2, "big") + raw[6 : layout.length]
                fitting.append((i, cut, f"{extra} trailing bytes beyond the definition" if extra else None))
        if not fitting:
            continue
        arrays = layout.ccsdspy_packet().load(io.BytesIO(b"".join(r for _, r, _ in fitting)))  # type: ignore[attr-defined]
        columns = {f.name: _csv_column(f, arrays[f.name]) for f in layout.fields if f.data_type != "fill"}
        for k, (i, _, note) in enumerate(fitting):
            values: dict[str, tuple[object, object]] = {}
            error = None
            for p in packet_type.parameters:
                raw_value, eng = columns[p.name][0][k], columns[p.name][1][k]
                if p.enumeration is not None:
                    eng = p.enumeration.get(raw_value)
                    if eng is None and error is None:
                        error = f"value {raw_value} is not in the enumeration of {p.name}"
                values[p.name] = _typed(p, raw_value, eng)
            results[i] = _Decoded(error=error) if error else _Decoded(values, {}, None, note)
    return results


def _csv_column(csv_field: object, array: np.ndarray) -> tuple[list, list]:
    """(raw values, calibrated values) of one ccsdspy field; a string's raw value is its whole field (numpy
    dropped the trailing NULs), its value the text before the first NUL."""
    if array.dtype.kind == "S":
        size = csv_field.bit_length // 8  # type: ignore[attr-defined]
        raw = [bytes(v).ljust(size, b"\0") for v in array]
        return raw, [v.split(b"\0", 1)[0] for v in raw]
    native = array.astype(array.dtype.newbyteorder("="))
    coefficients = csv_field.coefficients  # type: ignore[attr-defined]
    eng = np.polynomial.polynomial.polyval(native.astype(np.float64), coefficients) if coefficients else native
    return native.tolist(), eng.tolist()


# Rows per parameter and per packet type ----------------------------------------------------------------------


def _parameter_rows(
    db: MissionDatabase, packets: pa.Table, results: list[_Decoded | None]
) -> tuple[pa.Table, dict[str, pa.Table]]:
    long: dict[str, list] = {name: [] for name in ("parameter", "raw_value", "eng_value", "eng_text", "unit")}
    long |= {"alarm_severity": [], "alarm_limit": [], "alarm_min_violations": []}
    long_source: list[int] = []
    wide: dict[int, tuple[list[int], dict[str, list]]] = {}
    apids = packets.column("apid").to_pylist()
    for row, result in enumerate(results):
        if result is None or result.error:
            continue
        packet_type = db.packet_types[apids[row]]
        wide_source, wide_columns = wide.setdefault(packet_type.apid, ([], {}))
        wide_source.append(row)
        for p in packet_type.parameters:
            raw, eng = result.values[p.name]
            wide_columns.setdefault(p.column, []).append(eng)
            wide_columns.setdefault(f"{p.column}_raw", []).append(raw)
            long_source.append(row)
            long["parameter"].append(p.name)
            long["raw_value"].append(float(raw) if isinstance(raw, int | float) else None)
            long["unit"].append(p.unit)
            number, text = _long_value(p, raw, eng)
            long["eng_value"].append(number)
            long["eng_text"].append(text)
            alarms = db.alarms.get(p.name)
            verdict = alarms.evaluate(result.context.get(p.name, eng), result.context) if alarms else None
            long["alarm_severity"].append(verdict.severity if verdict else None)
            long["alarm_limit"].append(verdict.limit if verdict else None)
            long["alarm_min_violations"].append(verdict.min_violations or None if verdict else None)
    common = packets.take(pa.array(long_source, pa.int64()))
    columns = {name: long[name] if name in long else common.column(name) for name in PARAMETERS_SCHEMA.names}
    parameters = pa.table(columns, schema=PARAMETERS_SCHEMA)
    tables = {}
    for apid, (wide_source, wide_columns) in sorted(wide.items()):
        packet_type = db.packet_types[apid]
        schema = packet_table_schema(packet_type)
        common = packets.take(pa.array(wide_source, pa.int64()))
        data = {name: common.column(name) if name in _TABLE_COMMON else wide_columns[name] for name in schema.names}
        tables[packet_type.table] = pa.table(data, schema=schema)
    return parameters, tables


def _long_value(p: ParameterInfo, raw: object, eng: object) -> tuple[float | None, str | None]:
    """(eng_value, eng_text) of the long table: numbers as numbers, labels and strings as text, times both."""
    if p.kind == "time":
        return eng / 1e6, iso_utc(eng)  # type: ignore[operator, arg-type]
    if p.enumeration is not None:
        return float(raw), str(eng)  # type: ignore[arg-type]
    if p.kind in ("int", "float", "bool"):
        return float(eng), None  # type: ignore[arg-type]
    if p.kind == "string":
        return None, str(eng)
    return None, None
