"""The telemetry event codec: ``TelemetryReading`` to and from FlatBuffers bytes of the ``event.Event`` table.

The decoder reads the FlatBuffers binary layout directly (root offset, vtable, fields) with a bounds check on
every offset, so garbage, truncated or hostile payloads raise ``EventDecodeError`` and nothing else.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import flatbuffers
import numpy as np
import pyarrow as pa

SCHEMA_PATH = Path(__file__).with_name("event.fbs")

# Kafka's default message.max.bytes: an offset reaching further than this cannot come from a real event that
# lost its tail, so it marks the payload as malformed rather than truncated.
MAX_EVENT_BYTES = 1 << 20

# Field slots of ``table Event`` in schema order: (name, size in bytes, struct code, default).
_FIELDS: tuple[tuple[str, int, str, object], ...] = (
    ("satellite_name", 4, "I", None),
    ("timestamp_ns", 8, "Q", 0),
    ("temp_c", 8, "d", 0.0),
    ("battery_charge_pct", 8, "d", 0.0),
    ("altitude_km", 8, "d", 0.0),
    ("sensor1", 8, "d", 0.0),
    ("sensor2", 8, "d", 0.0),
    ("sensor3", 8, "d", 0.0),
)
_SLOT_COUNT = len(_FIELDS)
_SCALAR_DEFAULTS: tuple[object, ...] = tuple(field[3] for field in _FIELDS[1:])
# The smallest FlatBuffer holding a table: root offset, an empty vtable and a table with only its soffset.
_MIN_BUFFER_BYTES = 12
_MAX_CACHED_LAYOUTS = 256
_UOFFSET_LIMIT = 1 << 31

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_VTABLE_HEADER = struct.Struct("<HH")


@dataclass(frozen=True, slots=True)
class TelemetryReading:
    """One telemetry event, as the ``event.Event`` FlatBuffers table carries it."""

    satellite_name: str
    timestamp_ns: int
    temp_c: float
    battery_charge_pct: float
    altitude_km: float
    sensor1: float
    sensor2: float
    sensor3: float


class EventDecodeError(ValueError):
    """A payload is not a readable ``event.Event``: ``reason_code`` is stable, ``detail`` says what was wrong.

    Reason codes: ``empty_payload``, ``truncated`` (a reference runs past the end of the payload),
    ``malformed_flatbuffer`` (offsets or sizes no FlatBuffers builder produces),
    ``missing_field:satellite_name``, ``invalid_utf8``.
    """

    def __init__(self, reason_code: str, detail: str) -> None:
        super().__init__(f"{reason_code}: {detail}")
        self.reason_code = reason_code
        self.detail = detail

    def __reduce__(self) -> tuple[type[EventDecodeError], tuple[str, str]]:
        return (EventDecodeError, (self.reason_code, self.detail))


def encode_event_with_builder(reading: TelemetryReading) -> bytes:
    """Encode ``reading`` with ``flatbuffers.Builder``, adding fields as flatc's C++ ``CreateEvent`` does
    (last slot first, so they lie in schema order) and writing defaults too. The reference for
    ``encode_event``."""
    builder = flatbuffers.Builder(128)
    builder.ForceDefaults(True)
    name = builder.CreateString(reading.satellite_name)
    builder.StartObject(_SLOT_COUNT)
    builder.PrependFloat64Slot(7, reading.sensor3, 0.0)
    builder.PrependFloat64Slot(6, reading.sensor2, 0.0)
    builder.PrependFloat64Slot(5, reading.sensor1, 0.0)
    builder.PrependFloat64Slot(4, reading.altitude_km, 0.0)
    builder.PrependFloat64Slot(3, reading.battery_charge_pct, 0.0)
    builder.PrependFloat64Slot(2, reading.temp_c, 0.0)
    builder.PrependUint64Slot(1, reading.timestamp_ns, 0)
    builder.PrependUOffsetTRelativeSlot(0, name, 0)
    builder.Finish(builder.EndObject())
    return bytes(builder.Output())


def encode_event(reading: TelemetryReading) -> bytes:
    """Encode ``reading`` as an ``event.Event`` FlatBuffer, byte for byte what ``encode_event_with_builder``
    (and flatc's C++ ``CreateEvent`` with defaults forced) writes, about 20 times faster.

    Every event has the same layout, defaults included (which also keeps ``-0.0``).
    """
    return encode_event_fields(
        reading.satellite_name,
        reading.timestamp_ns,
        reading.temp_c,
        reading.battery_charge_pct,
        reading.altitude_km,
        reading.sensor1,
        reading.sensor2,
        reading.sensor3,
    )


def encode_event_fields(
    satellite_name: str,
    timestamp_ns: int,
    temp_c: float,
    battery_charge_pct: float,
    altitude_km: float,
    sensor1: float,
    sensor2: float,
    sensor3: float,
) -> bytes:
    """``encode_event`` on plain values, for producers that do not need a ``TelemetryReading``."""
    name = satellite_name.encode("utf-8")
    name_len = len(name)
    # The builder aligns the string's end to 8 bytes, which decides whether 4 padding bytes end the table.
    layout = _CANONICAL_LAYOUTS[(name_len + 4) % 8 < 4]
    padding = -(layout.name_pos + 4 + name_len + 1) % 8
    header = layout.writer.pack(
        layout.head,
        timestamp_ns,
        temp_c,
        battery_charge_pct,
        altitude_km,
        sensor1,
        sensor2,
        sensor3,
        name_len,
    )
    return b"".join((header, name, _ZERO_PADDING[: padding + 1]))


@dataclass(frozen=True, slots=True)
class _TableLayout:
    """How to read the fields of tables sharing one vtable: one struct call for every field present."""

    reader: struct.Struct
    first_field_offset: int
    extent: int  # bytes from the table start that must lie inside the payload
    name_field_offset: int  # 0 when satellite_name is absent
    # Index into the reader's values for each scalar slot (timestamp_ns..sensor3), or -1 for a default.
    scalar_positions: tuple[int, ...]
    name_position: int
    scalars_in_schema_order: bool


_layout_cache: dict[bytes, _TableLayout] = {}


@dataclass(frozen=True, slots=True)
class _CanonicalLayout:
    """A layout flatc's C++ ``CreateEvent`` and ``encode_event`` write when every field is present: root
    offset 24, a 20-byte vtable at byte 4 (fields in slot order at table offsets 4, 8, 16, ..., 56), the table
    at byte 24, then the satellite_name string at ``name_pos``, right after the table."""

    head: bytes  # root offset, vtable, the table's soffset and its satellite_name offset
    name_pos: int
    # From byte 0: head, timestamp_ns, six doubles, satellite_name length (the reader skips the head).
    writer: struct.Struct
    reader: struct.Struct


def _canonical_layout(table_size: int) -> _CanonicalLayout:
    table_pos = 24
    name_field_pos = table_pos + 4
    name_pos = table_pos + table_size
    head = struct.pack(
        "<IHH8HiI", table_pos, 20, table_size, 4, 8, 16, 24, 32, 40, 48, 56, 20, name_pos - name_field_pos
    )
    table_padding = table_size - 64
    body = f"Q6d{table_padding}xI"
    return _CanonicalLayout(
        head, name_pos, struct.Struct(f"<{len(head)}s{body}"), struct.Struct(f"<{len(head)}x{body}")
    )


# Keyed by "the table ends with 4 padding bytes", which the satellite_name length decides.
_CANONICAL_LAYOUTS = {True: _canonical_layout(68), False: _canonical_layout(64)}
_CANONICAL_BY_HEAD = {layout.head: layout for layout in _CANONICAL_LAYOUTS.values()}
_CANONICAL_HEAD_LEN = 32
_ZERO_PADDING = bytes(8)


def _raise_out_of_bounds(what: str, start: int, size: int, payload_len: int) -> NoReturn:
    code = "truncated" if start + size <= MAX_EVENT_BYTES else "malformed_flatbuffer"
    raise EventDecodeError(
        code, f"{what} at bytes {start}..{start + size} lies past the end of the {payload_len}-byte payload"
    )


def _build_layout(vtable: bytes, table_size: int) -> _TableLayout:
    vtable_size = len(vtable)
    if vtable_size < 4 or vtable_size % 2:
        raise EventDecodeError("malformed_flatbuffer", f"vtable size {vtable_size} is not an even number >= 4")
    present_slots = min((vtable_size - 4) // 2, _SLOT_COUNT)
    field_offsets = struct.unpack_from(f"<{present_slots}H", vtable, 4) + (0,) * (_SLOT_COUNT - present_slots)
    present = sorted((offset, slot) for slot, offset in enumerate(field_offsets) if offset != 0)
    fmt = ["<"]
    position_of_slot = [-1] * _SLOT_COUNT
    first = present[0][0] if present else 0
    cursor = first
    for index, (offset, slot) in enumerate(present):
        if offset < cursor:
            raise EventDecodeError(
                "malformed_flatbuffer",
                f"field {_FIELDS[slot][0]} at table offset {offset} overlaps the previous field",
            )
        if offset > cursor:
            fmt.append(f"{offset - cursor}x")
        fmt.append(_FIELDS[slot][2])
        cursor = offset + _FIELDS[slot][1]
        position_of_slot[slot] = index
    scalar_positions = tuple(position_of_slot[1:])
    return _TableLayout(
        reader=struct.Struct("".join(fmt)),
        first_field_offset=first,
        extent=max(cursor, table_size, 4),
        name_field_offset=field_offsets[0],
        scalar_positions=scalar_positions,
        name_position=position_of_slot[0],
        scalars_in_schema_order=position_of_slot == list(range(_SLOT_COUNT)),
    )


def _table_layout(vtable: bytes, table_size: int) -> _TableLayout:
    layout = _layout_cache.get(vtable)
    if layout is None:
        layout = _build_layout(vtable, table_size)
        # Hostile payloads could each carry a new vtable: stop caching once the table is full.
        if len(_layout_cache) < _MAX_CACHED_LAYOUTS:
            _layout_cache[vtable] = layout
    return layout


def _locate_fields(payload: bytes) -> tuple[int, tuple[object, ...]]:
    """Walk root offset, vtable and table of any ``event.Event`` layout.

    Returns the position of the satellite_name string and the scalar fields in schema order."""
    payload_len = len(payload)
    if payload_len < _MIN_BUFFER_BYTES:
        raise EventDecodeError(
            "truncated",
            f"the payload has {payload_len} bytes, fewer than the {_MIN_BUFFER_BYTES} of the smallest FlatBuffer",
        )
    (table_pos,) = _U32.unpack_from(payload, 0)
    if table_pos < 4:
        raise EventDecodeError("malformed_flatbuffer", f"root table offset {table_pos} points into the header")
    if table_pos + 4 > payload_len:
        _raise_out_of_bounds("root table", table_pos, 4, payload_len)
    vtable_pos = table_pos - _I32.unpack_from(payload, table_pos)[0]
    if vtable_pos < 0:
        raise EventDecodeError("malformed_flatbuffer", f"vtable offset points before the payload ({vtable_pos})")
    if vtable_pos + 4 > payload_len:
        _raise_out_of_bounds("vtable", vtable_pos, 4, payload_len)
    vtable_size, table_size = _VTABLE_HEADER.unpack_from(payload, vtable_pos)
    vtable = payload[vtable_pos : vtable_pos + vtable_size]
    if len(vtable) != vtable_size:
        _raise_out_of_bounds("vtable", vtable_pos, vtable_size, payload_len)
    layout = _table_layout(vtable, table_size)
    if table_pos + layout.extent > payload_len:
        _raise_out_of_bounds("table", table_pos, layout.extent, payload_len)
    if layout.name_field_offset == 0:
        raise EventDecodeError("missing_field:satellite_name", "the event has no satellite_name")
    values = layout.reader.unpack_from(payload, table_pos + layout.first_field_offset)
    name_uoffset = values[layout.name_position]
    if name_uoffset == 0 or name_uoffset >= _UOFFSET_LIMIT:
        raise EventDecodeError("malformed_flatbuffer", f"satellite_name offset {name_uoffset} is invalid")
    name_pos = table_pos + layout.name_field_offset + name_uoffset
    if layout.scalars_in_schema_order:
        return name_pos, values[1:]
    scalars = tuple(
        values[i] if i >= 0 else default for i, default in zip(layout.scalar_positions, _SCALAR_DEFAULTS, strict=True)
    )
    return name_pos, scalars


def decode_event_fields(payload: bytes) -> tuple[str, int, float, float, float, float, float, float]:
    """Decode ``payload`` into a tuple in schema order, without building a ``TelemetryReading``.

    The fast path for columnar ingestion. Raises ``EventDecodeError`` for any payload that is not a readable
    ``event.Event``, and nothing else.
    """
    if not payload:
        raise EventDecodeError("empty_payload", "the payload has no bytes")
    if type(payload) is not bytes:
        payload = bytes(payload)
    payload_len = len(payload)
    # Nearly every event has a layout flatc's CreateEvent and encode_event write: one lookup of the header
    # then stands in for the root, vtable, table and string-offset checks, which it implies.
    canonical = _CANONICAL_BY_HEAD.get(payload[:_CANONICAL_HEAD_LEN])
    if canonical is not None and payload_len > canonical.name_pos + 4:
        # Unpacking into names avoids building intermediate tuples: this is the hottest line of ingestion.
        timestamp_ns, temp_c, battery, altitude, sensor1, sensor2, sensor3, name_len = canonical.reader.unpack_from(
            payload
        )
        name_pos = canonical.name_pos
        name_end = name_pos + 4 + name_len
        if name_end < payload_len and payload[name_end] == 0:
            try:
                name = payload[name_pos + 4 : name_end].decode("utf-8")
            except UnicodeDecodeError:
                pass  # the general checks below report it
            else:
                return (name, timestamp_ns, temp_c, battery, altitude, sensor1, sensor2, sensor3)
        scalars = (timestamp_ns, temp_c, battery, altitude, sensor1, sensor2, sensor3)
    else:
        name_pos, scalars = _locate_fields(payload)
    if name_pos + 4 > payload_len:
        _raise_out_of_bounds("satellite_name length", name_pos, 4, payload_len)
    (name_len,) = _U32.unpack_from(payload, name_pos)
    name_end = name_pos + 4 + name_len
    if name_end >= payload_len:
        _raise_out_of_bounds("satellite_name", name_pos, 4 + name_len + 1, payload_len)
    if payload[name_end] != 0:
        raise EventDecodeError("malformed_flatbuffer", f"satellite_name is not null-terminated at byte {name_end}")
    try:
        name = payload[name_pos + 4 : name_end].decode("utf-8")
    except UnicodeDecodeError as error:
        raise EventDecodeError(
            "invalid_utf8", f"satellite_name byte {error.start} is not valid UTF-8 ({error.reason})"
        ) from None
    return (name, *scalars)  # type: ignore[return-value]


def decode_event(payload: bytes) -> TelemetryReading:
    """Decode one ``event.Event`` FlatBuffer; absent scalar fields take the schema default 0.

    Raises ``EventDecodeError`` (and nothing else) for a payload that is empty, truncated, malformed, lacks
    ``satellite_name`` or carries a name that is not UTF-8.
    """
    return TelemetryReading(*decode_event_fields(payload))


def decode_events(
    payloads: Sequence[bytes],
) -> tuple[list[TelemetryReading | None], list[EventDecodeError | None]]:
    """Decode many payloads: two lists as long as ``payloads``, exactly one of them set at each index."""
    readings: list[TelemetryReading | None] = []
    errors: list[EventDecodeError | None] = []
    add_reading = readings.append
    add_error = errors.append
    for payload in payloads:
        try:
            add_reading(TelemetryReading(*decode_event_fields(payload)))
        except EventDecodeError as error:
            add_reading(None)
            add_error(error)
        else:
            add_error(None)
    return readings, errors


FIELD_NAMES: tuple[str, ...] = tuple(field[0] for field in _FIELDS)


@dataclass(frozen=True, slots=True)
class DecodedColumns:
    """Many decoded events as columns (schema order), ready for Arrow, plus the payloads that failed.

    ``source_index[i]`` is the position in the input of row ``i``; ``errors`` pairs each failed input position
    with its error, so every input is accounted for exactly once.
    """

    satellite_name: tuple[str, ...]
    timestamp_ns: tuple[int, ...]
    temp_c: tuple[float, ...]
    battery_charge_pct: tuple[float, ...]
    altitude_km: tuple[float, ...]
    sensor1: tuple[float, ...]
    sensor2: tuple[float, ...]
    sensor3: tuple[float, ...]
    source_index: tuple[int, ...]
    errors: tuple[tuple[int, EventDecodeError], ...]

    def __len__(self) -> int:
        return len(self.source_index)


def decode_event_columns(payloads: Sequence[bytes]) -> DecodedColumns:
    """Decode many payloads into columns without building one object per event: the ingestion hot path."""
    rows: list[tuple[str, int, float, float, float, float, float, float]] = []
    source_index: list[int] = []
    errors: list[tuple[int, EventDecodeError]] = []
    add_row = rows.append
    add_index = source_index.append
    decode = decode_event_fields
    for index, payload in enumerate(payloads):
        try:
            add_row(decode(payload))
        except EventDecodeError as error:
            errors.append((index, error))
        else:
            add_index(index)
    columns = tuple(zip(*rows, strict=True)) if rows else ((),) * _SLOT_COUNT
    return DecodedColumns(*columns, source_index=tuple(source_index), errors=tuple(errors))


def _binary_buffers(payloads: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The value offsets (one more than values) and the data bytes of a binary Arrow array, zero-copy."""
    if payloads.type != pa.binary():
        payloads = payloads.cast(pa.binary())
    _validity, offsets_buffer, data_buffer = payloads.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[payloads.offset : payloads.offset + len(payloads) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    return offsets, data


_CANONICAL_HEAD_WORDS = {
    layout.name_pos: np.frombuffer(layout.head, dtype="<u8") for layout in _CANONICAL_LAYOUTS.values()
}


def _unaligned(data: np.ndarray, dtype: str) -> np.ndarray:
    """``data`` read as ``dtype`` words starting at EVERY byte: ``view[i]`` is the word at byte ``i``.

    A zero-copy strided view, so reading one field of every payload is one gather of a word per payload."""
    size = np.dtype(dtype).itemsize
    return np.ndarray(shape=(max(len(data) - size + 1, 0),), dtype=dtype, buffer=data, strides=(1,))


def _canonical_heads(starts: np.ndarray, lengths: np.ndarray, words: np.ndarray) -> np.ndarray:
    """For each payload, the position of its satellite_name string when its header is canonical, else 0."""
    name_pos = np.zeros(len(lengths), dtype=np.int64)
    long_enough = np.flatnonzero(lengths > min(_CANONICAL_HEAD_WORDS) + 4)
    if long_enough.size == 0:
        return name_pos
    candidate_starts = starts[long_enough]
    for position, head in _CANONICAL_HEAD_WORDS.items():
        matches = lengths[long_enough] > position + 4
        for k, word in enumerate(head):
            matches &= words[candidate_starts + 8 * k] == word
        name_pos[long_enough[matches]] = position
    return name_pos


def canonical_timestamps(payloads: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The ``timestamp_ns`` of every payload in the canonical layout, read for the whole batch at once.

    Returns ``(timestamps, found)``: uint64 timestamps and a mask of the payloads whose canonical header was
    recognised (every event ``encode_event`` and flatc's ``CreateEvent`` write). Other payloads (foreign
    layouts, garbage) are left to ``decode_event_fields``. Used to route events to days without decoding them.
    """
    offsets, data = _binary_buffers(payloads)
    starts, lengths = offsets[:-1].astype(np.int64), np.diff(offsets)
    words = _unaligned(data, "<u8")
    found = _canonical_heads(starts, lengths, words) > 0
    timestamps = np.zeros(len(lengths), dtype=np.uint64)
    timestamps[found] = words[starts[found] + _CANONICAL_HEAD_LEN]
    return timestamps, found


@dataclass(frozen=True, slots=True)
class CanonicalEvents:
    """The events of a batch that ``decode_event_fields`` would read through its canonical fast path, decoded
    for the whole batch at once.

    ``found`` marks those payloads (one per input); the other columns hold one entry per ``found`` payload, in
    input order. Payloads not found (foreign layouts, names that are not UTF-8, garbage) are left to
    ``decode_event_fields``, which gives them the answer it always does.
    """

    found: np.ndarray  # bool, one per payload
    satellite_name: pa.StringArray
    timestamp_ns: np.ndarray  # uint64
    measures: np.ndarray  # float64, shape (found, 6), in schema order

    @property
    def positions(self) -> np.ndarray:
        return np.flatnonzero(self.found)


def canonical_event_columns(payloads: pa.Array) -> CanonicalEvents:
    """Decode every payload in the canonical layout (what ``encode_event`` and flatc's ``CreateEvent`` write)
    with numpy: the fields sit at fixed offsets, so a batch is a few gathers instead of one call per event.

    Exactly the payloads ``decode_event_fields`` decodes without its general walk are found: the header
    matches, the name's length and terminating NUL lie inside the payload and the name is UTF-8 (names with
    non-ASCII bytes are checked one by one). The values found are identical to ``decode_event_fields``'s.
    """
    offsets, data = _binary_buffers(payloads)
    starts, lengths = offsets[:-1].astype(np.int64), np.diff(offsets).astype(np.int64)
    words = _unaligned(data, "<u8")
    name_pos = _canonical_heads(starts, lengths, words)
    rows = np.flatnonzero(name_pos)
    length_at = starts[rows] + name_pos[rows]
    name_lengths = _unaligned(data, "<u4")[length_at].astype(np.int64)
    name_ends = name_pos[rows] + 4 + name_lengths
    terminated = name_ends < lengths[rows]
    terminated[terminated] = data[starts[rows[terminated]] + name_ends[terminated]] == 0
    rows, length_at, name_lengths = rows[terminated], length_at[terminated], name_lengths[terminated]

    name_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(name_lengths, out=name_offsets[1:])
    name_bytes = data[np.repeat(length_at + 4 - name_offsets[:-1], name_lengths) + np.arange(name_offsets[-1])]
    if name_bytes.size and name_bytes.max() >= 0x80:
        # Non-ASCII names are rare: check those one by one; the general decoder rejects the ones not UTF-8.
        has_high = np.add.reduceat(name_bytes >= 0x80, np.minimum(name_offsets[:-1], name_bytes.size - 1)) > 0
        has_high &= name_lengths > 0  # reduceat reads a neighbour's byte for an empty name
        utf8 = np.ones(len(rows), dtype=bool)
        for k in np.flatnonzero(has_high):
            try:
                name_bytes[name_offsets[k] : name_offsets[k + 1]].tobytes().decode("utf-8")
            except UnicodeDecodeError:
                utf8[k] = False
        if not utf8.all():
            keep_bytes = np.repeat(utf8, name_lengths)
            rows, name_lengths, name_bytes = rows[utf8], name_lengths[utf8], name_bytes[keep_bytes]
            name_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
            np.cumsum(name_lengths, out=name_offsets[1:])
    found = np.zeros(len(lengths), dtype=bool)
    found[rows] = True
    satellite_name = pa.StringArray.from_buffers(
        len(rows), pa.py_buffer(name_offsets.astype(np.int32)), pa.py_buffer(name_bytes)
    )
    field_at = starts[rows] + _CANONICAL_HEAD_LEN
    timestamp_ns = words[field_at]
    measures = np.stack([words[field_at + 8 * (1 + k)] for k in range(_SLOT_COUNT - 2)], axis=1).view("<f8")
    return CanonicalEvents(found, satellite_name, timestamp_ns, measures)
