"""The event codec: round trips, byte compatibility with flatc-generated code and flatc output, and payloads
that are empty, truncated, garbage or hostile."""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import json
import math
import pickle
import re
import struct
from pathlib import Path
from types import ModuleType

import flatbuffers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from satlake.telemetry import codec
from satlake.telemetry.codec import (
    EventDecodeError,
    TelemetryReading,
    decode_event,
    decode_event_columns,
    decode_events,
    encode_event,
    encode_event_with_builder,
)

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
FIELDS = TelemetryReading.__slots__  # type: ignore[attr-defined]
READING = TelemetryReading("SAT-042", 1_718_000_000_123_456_789, -12.5, 87.25, 551.375, 0.125, 0.5, 0.984375)


def load_flatc_event_module() -> ModuleType:
    """The flatc-generated ``event.Event`` module, loaded by path, keeping its package name private."""
    path = HERE / "flatc_generated" / "event" / "Event.py"
    spec = importlib.util.spec_from_file_location("flatc_generated_event_Event", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


flatc_event = load_flatc_event_module()


def float_bits(value: float) -> bytes:
    return struct.pack("<d", value)


def same_reading(left: TelemetryReading, right: TelemetryReading) -> bool:
    """Equal field by field, comparing floats by their bits (so NaN equals NaN and -0.0 differs from 0.0)."""
    for field in FIELDS:
        a, b = getattr(left, field), getattr(right, field)
        if isinstance(a, float):
            if float_bits(a) != float_bits(b):
                return False
        elif a != b:
            return False
    return True


def build_with_flatc_code(
    values: dict[str, object], order: list[str] | None = None, force_defaults: bool = False
) -> bytes:
    """Bytes built with the flatc-generated builder API, adding ``values`` in ``order`` (default: schema)."""
    builder = flatbuffers.Builder(0)
    builder.ForceDefaults(force_defaults)
    name = values.get("satellite_name")
    name_offset = builder.CreateString(name) if name is not None else None
    adders = {
        "satellite_name": lambda: flatc_event.EventAddSatelliteName(builder, name_offset),
        "timestamp_ns": lambda: flatc_event.EventAddTimestampNs(builder, values["timestamp_ns"]),
        "temp_c": lambda: flatc_event.EventAddTempC(builder, values["temp_c"]),
        "battery_charge_pct": lambda: flatc_event.EventAddBatteryChargePct(builder, values["battery_charge_pct"]),
        "altitude_km": lambda: flatc_event.EventAddAltitudeKm(builder, values["altitude_km"]),
        "sensor1": lambda: flatc_event.EventAddSensor1(builder, values["sensor1"]),
        "sensor2": lambda: flatc_event.EventAddSensor2(builder, values["sensor2"]),
        "sensor3": lambda: flatc_event.EventAddSensor3(builder, values["sensor3"]),
    }
    flatc_event.EventStart(builder)
    for field in order or list(FIELDS):
        if field in values and values[field] is not None:
            adders[field]()
    builder.Finish(flatc_event.EventEnd(builder))
    return bytes(builder.Output())


def read_with_flatc_code(payload: bytes) -> TelemetryReading:
    event = flatc_event.Event.GetRootAs(payload, 0)
    return TelemetryReading(
        event.SatelliteName().decode("utf-8"),
        event.TimestampNs(),
        event.TempC(),
        event.BatteryChargePct(),
        event.AltitudeKm(),
        event.Sensor1(),
        event.Sensor2(),
        event.Sensor3(),
    )


def as_values(reading: TelemetryReading) -> dict[str, object]:
    return {field: getattr(reading, field) for field in FIELDS}


readings = st.builds(
    TelemetryReading,
    satellite_name=st.text(max_size=80),
    timestamp_ns=st.integers(min_value=0, max_value=2**64 - 1),
    temp_c=st.floats(),
    battery_charge_pct=st.floats(),
    altitude_km=st.floats(),
    sensor1=st.floats(),
    sensor2=st.floats(),
    sensor3=st.floats(),
)


# Round trips and compatibility


@given(readings)
def test_any_reading_survives_encode_then_decode(reading: TelemetryReading) -> None:
    assert same_reading(decode_event(encode_event(reading)), reading)


@given(readings)
def test_fast_encoder_writes_exactly_the_flatbuffers_builder_bytes(reading: TelemetryReading) -> None:
    assert encode_event(reading) == encode_event_with_builder(reading)


@pytest.mark.parametrize("name_length", range(0, 70))
def test_fast_encoder_matches_builder_for_every_name_alignment(name_length: int) -> None:
    reading = TelemetryReading("é" * (name_length // 2) + "x" * (name_length % 2), 7, 1.5, 2.5, 3.5, 0.1, 0.2, 0.3)
    payload = encode_event(reading)
    assert payload == encode_event_with_builder(reading)
    assert len(payload) % 8 == 0
    assert decode_event(payload) == reading


def test_encode_event_writes_the_same_bytes_as_flatc_for_a_full_event() -> None:
    assert encode_event(READING) == (GOLDEN / "event_sat042.bin").read_bytes()


@pytest.mark.parametrize(
    "order",
    [
        list(FIELDS),
        list(reversed(FIELDS)),
        [
            "temp_c",
            "satellite_name",
            "sensor3",
            "timestamp_ns",
            "sensor1",
            "altitude_km",
            "sensor2",
            "battery_charge_pct",
        ],
    ],
    ids=["schema-order", "reverse-order", "shuffled"],
)
def test_events_built_by_flatc_generated_code_decode_to_the_same_values(order: list[str]) -> None:
    payload = build_with_flatc_code(as_values(READING), order)
    assert decode_event(payload) == READING


def test_fields_left_out_by_flatc_generated_code_decode_as_schema_defaults() -> None:
    payload = build_with_flatc_code({"satellite_name": "SAT-007", "timestamp_ns": 5, "sensor2": 0.75})
    assert decode_event(payload) == TelemetryReading("SAT-007", 5, 0.0, 0.0, 0.0, 0.0, 0.75, 0.0)


def test_default_values_are_omitted_by_flatc_code_and_still_decode() -> None:
    zeros = TelemetryReading("SAT-001", 1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    payload = build_with_flatc_code(as_values(zeros))
    assert len(payload) < len(encode_event(zeros))  # flatc's builder really did leave the zeros out
    assert decode_event(payload) == zeros


@given(readings)
def test_flatc_generated_accessors_read_what_encode_event_writes(reading: TelemetryReading) -> None:
    assert same_reading(read_with_flatc_code(encode_event(reading)), reading)


@given(readings)
def test_decoder_reads_flatc_builder_output_with_defaults_omitted(reading: TelemetryReading) -> None:
    payload = build_with_flatc_code(as_values(reading), list(reversed(FIELDS)))
    decoded = decode_event(payload)
    # flatc's builder drops -0.0 like 0.0 (it equals the default), so compare values, not bits, for zeros.
    for field in FIELDS:
        expected, actual = getattr(reading, field), getattr(decoded, field)
        assert actual == expected or (isinstance(expected, float) and math.isnan(expected) and math.isnan(actual))


@pytest.mark.parametrize("golden", ["event_sat042", "event_sat007_defaults"])
def test_decoding_flatc_binary_output_gives_the_json_values(golden: str) -> None:
    expected = json.loads((GOLDEN / f"{golden}.json").read_text())
    decoded = decode_event((GOLDEN / f"{golden}.bin").read_bytes())
    assert as_values(decoded) == {field: expected.get(field, 0) for field in FIELDS}


def test_flatc_golden_with_defaults_has_a_short_vtable() -> None:
    payload = (GOLDEN / "event_sat007_defaults.bin").read_bytes()
    (table_pos,) = struct.unpack_from("<I", payload, 0)
    (soffset,) = struct.unpack_from("<i", payload, table_pos)
    (vtable_size,) = struct.unpack_from("<H", payload, table_pos - soffset)
    assert vtable_size < 4 + 2 * 8  # the trailing absent field is not in the vtable at all
    assert decode_event(payload).sensor3 == 0.0


def test_the_schema_file_declares_the_fields_the_codec_reads_in_slot_order() -> None:
    schema = codec.SCHEMA_PATH.read_text()
    assert re.search(r"^namespace event;$", schema, re.MULTILINE)
    assert re.search(r"^root_type Event;$", schema, re.MULTILINE)
    table = re.search(r"table Event \{(.*?)\}", schema, re.DOTALL)
    assert table is not None
    fields = re.findall(r"^\s*(\w+): (\w+);", table.group(1), re.MULTILINE)
    assert fields == [
        ("satellite_name", "string"),
        ("timestamp_ns", "ulong"),
        *((field, "double") for field in FIELDS[2:]),
    ]
    assert list(codec.FIELD_NAMES) == list(FIELDS)


def test_events_from_a_newer_schema_with_appended_fields_still_decode() -> None:
    # Schema evolution appends fields (slots 8, 9, ...); readers of the old schema ignore them.
    builder = flatbuffers.Builder(0)
    name = builder.CreateString("SAT-042")
    builder.StartObject(10)
    builder.PrependFloat64Slot(9, 99.5, 0.0)
    builder.PrependUint32Slot(8, 7, 0)
    for slot, field in reversed(list(enumerate(FIELDS))[1:]):
        value = getattr(READING, field)
        if field == "timestamp_ns":
            builder.PrependUint64Slot(slot, value, 0)
        else:
            builder.PrependFloat64Slot(slot, value, 0.0)
    builder.PrependUOffsetTRelativeSlot(0, name, 0)
    builder.Finish(builder.EndObject())
    assert decode_event(bytes(builder.Output())) == READING


# Bulk decoding


def test_decode_events_returns_one_reading_or_one_error_per_payload() -> None:
    payloads = [encode_event(READING), b"", b"\x01\x02", encode_event(READING)[:50]]
    readings_out, errors = decode_events(payloads)
    assert readings_out == [READING, None, None, None]
    assert errors[0] is None
    assert [error.reason_code for error in errors[1:] if error] == ["empty_payload", "truncated", "truncated"]


def test_decode_event_columns_accounts_for_every_payload_once() -> None:
    other = TelemetryReading("SAT-9", 9, 1.0, 2.0, 3.0, 0.4, 0.5, 0.6)
    payloads = [encode_event(READING), b"garbage!", encode_event(other), b""]
    columns = decode_event_columns(payloads)
    assert len(columns) == 2
    assert columns.source_index == (0, 2)
    assert columns.satellite_name == ("SAT-042", "SAT-9")
    assert columns.timestamp_ns == (READING.timestamp_ns, 9)
    assert columns.sensor3 == (READING.sensor3, 0.6)
    assert [(index, error.reason_code) for index, error in columns.errors] == [
        (1, "truncated"),
        (3, "empty_payload"),
    ]


def test_decode_event_columns_of_nothing_is_empty() -> None:
    columns = decode_event_columns([b"\xff" * 40])
    assert len(columns) == 0 and columns.satellite_name == () and len(columns.errors) == 1


# Bad input


def test_empty_and_missing_payloads_are_empty_payload() -> None:
    for payload in (b"", None, bytearray()):
        with pytest.raises(EventDecodeError) as raised:
            decode_event(payload)  # type: ignore[arg-type]
        assert raised.value.reason_code == "empty_payload"


def test_every_truncation_of_an_event_is_reported_as_truncated() -> None:
    payload = encode_event(READING)
    for length in range(1, len(payload)):
        with pytest.raises(EventDecodeError) as raised:
            decode_event(payload[:length])
        assert raised.value.reason_code == "truncated", (length, raised.value)
        assert f"{length}" in raised.value.detail


def test_bytearray_and_memoryview_payloads_decode() -> None:
    payload = encode_event(READING)
    assert decode_event(bytearray(payload)) == READING
    assert decode_event(memoryview(payload)) == READING  # type: ignore[arg-type]


def test_missing_satellite_name_is_reported_by_field() -> None:
    payload = build_with_flatc_code({"timestamp_ns": 5, "temp_c": 1.0})
    with pytest.raises(EventDecodeError) as raised:
        decode_event(payload)
    assert raised.value.reason_code == "missing_field:satellite_name"


def test_satellite_name_that_is_not_utf8_is_invalid_utf8() -> None:
    builder = flatbuffers.Builder(0)
    name = builder.CreateString(b"SAT-\xff\xfe")
    flatc_event.EventStart(builder)
    flatc_event.EventAddSatelliteName(builder, name)
    flatc_event.EventAddTimestampNs(builder, 1)
    builder.Finish(flatc_event.EventEnd(builder))
    with pytest.raises(EventDecodeError) as raised:
        decode_event(bytes(builder.Output()))
    assert raised.value.reason_code == "invalid_utf8"
    assert "byte 4" in raised.value.detail


def patched(payload: bytes, position: int, fmt: str, value: int) -> bytes:
    data = bytearray(payload)
    struct.pack_into(fmt, data, position, value)
    return bytes(data)


GOOD = encode_event(READING)  # root 24, vtable at 4 (size 20, table size 68), table at 24, name at 92
HOSTILE_PAYLOADS = {
    "root offset far outside": (patched(GOOD, 0, "<I", 0xFFFFFFF0), "malformed_flatbuffer"),
    "root offset into the header": (patched(GOOD, 0, "<I", 2), "malformed_flatbuffer"),
    "vtable before the payload": (patched(GOOD, 24, "<i", 1000), "malformed_flatbuffer"),
    "vtable far after the payload": (patched(GOOD, 24, "<i", -(2**31)), "malformed_flatbuffer"),
    "odd vtable size": (patched(GOOD, 4, "<H", 19), "malformed_flatbuffer"),
    "vtable size below its header": (patched(GOOD, 4, "<H", 2), "malformed_flatbuffer"),
    "vtable longer than the payload": (patched(GOOD, 4, "<H", 0xFFFE), "truncated"),
    "table longer than the payload": (patched(GOOD, 6, "<H", 0xFFFF), "truncated"),
    "overlapping fields": (patched(GOOD, 10, "<H", 12), "malformed_flatbuffer"),
    "field past the payload": (patched(GOOD, 22, "<H", 0xFFF0), "truncated"),
    "name offset zero": (patched(GOOD, 28, "<I", 0), "malformed_flatbuffer"),
    "name offset negative as signed": (patched(GOOD, 28, "<I", 0x80000000), "malformed_flatbuffer"),
    "name length 4 GiB": (patched(GOOD, 92, "<I", 0xFFFFFFFF), "malformed_flatbuffer"),
    "name length past the end": (patched(GOOD, 92, "<I", 9), "truncated"),
    "name not null-terminated": (patched(GOOD, 103, "<B", 0x41), "malformed_flatbuffer"),
}


@pytest.mark.parametrize("name", list(HOSTILE_PAYLOADS))
def test_hostile_offsets_are_rejected_with_a_reason(name: str) -> None:
    payload, expected_code = HOSTILE_PAYLOADS[name]
    with pytest.raises(EventDecodeError) as raised:
        decode_event(payload)
    assert raised.value.reason_code == expected_code, raised.value
    assert raised.value.detail


def test_vtable_after_the_table_is_valid_flatbuffers() -> None:
    # A negative soffset puts the vtable after the table; FlatBuffers allows it and so must the decoder.
    table = struct.pack("<iIQ", -16, 0, 0)  # soffset (patched below), name offset, timestamp_ns
    vtable = struct.pack("<HHHH", 8, 16, 4, 8)
    name = struct.pack("<I", 3) + b"abc\0"
    table_pos = 4
    vtable_pos = table_pos + len(table)
    name_pos = vtable_pos + len(vtable)
    payload = bytearray(struct.pack("<I", table_pos) + table + vtable + name)
    struct.pack_into("<i", payload, table_pos, table_pos - vtable_pos)
    struct.pack_into("<I", payload, table_pos + 4, name_pos - (table_pos + 4))
    struct.pack_into("<Q", payload, table_pos + 8, 42)
    assert decode_event(bytes(payload)) == TelemetryReading("abc", 42, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@settings(max_examples=1000)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_event_decode_error(payload: bytes) -> None:
    try:
        reading = decode_event(payload)
    except EventDecodeError as error:
        assert error.reason_code in {
            "empty_payload",
            "truncated",
            "malformed_flatbuffer",
            "invalid_utf8",
        } or (error.reason_code == "missing_field:satellite_name")
    else:
        assert isinstance(reading, TelemetryReading)


@settings(max_examples=400)
@given(
    st.lists(st.tuples(st.integers(min_value=0, max_value=len(GOOD) - 1), st.integers(0, 255)), max_size=6),
    st.integers(min_value=0, max_value=len(GOOD)),
)
def test_corrupted_events_never_raise_anything_but_event_decode_error(
    flips: list[tuple[int, int]], length: int
) -> None:
    # Mutating a real event reaches the deep checks (vtable, fields, string) that random bytes rarely do.
    data = bytearray(GOOD)
    for position, value in flips:
        data[position] = value
    with contextlib.suppress(EventDecodeError):
        decode_event(bytes(data[:length]))


def test_every_single_byte_corruption_of_an_event_decodes_or_raises_event_decode_error() -> None:
    outcomes: collections.Counter[str] = collections.Counter()
    for position in range(len(GOOD)):
        for value in (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, GOOD[position] ^ 0x04):
            data = bytearray(GOOD)
            data[position] = value
            try:
                decode_event(bytes(data))
            except EventDecodeError as error:
                outcomes[error.reason_code] += 1
            else:
                outcomes["decoded"] += 1
    # Broken headers, vtables and strings are caught; corrupted measurements decode (validation's job).
    assert {"decoded", "truncated", "malformed_flatbuffer", "invalid_utf8"} <= set(outcomes)


def test_distinct_hostile_vtables_do_not_grow_the_layout_cache_without_bound() -> None:
    for extra_table_bytes in range(2 * codec._MAX_CACHED_LAYOUTS):
        payload = patched(GOOD, 6, "<H", 68 + extra_table_bytes) + bytes(2000)
        assert decode_event(payload) == READING
    assert len(codec._layout_cache) <= codec._MAX_CACHED_LAYOUTS


def test_decode_error_keeps_code_and_detail_through_pickling() -> None:
    error = EventDecodeError("truncated", "table at bytes 24..92 lies past the end of the 50-byte payload")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason_code, copy.detail, str(copy)) == (error.reason_code, error.detail, str(error))
