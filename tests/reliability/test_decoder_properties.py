"""Property-based tests of the FlatBuffers event decoder against hostile input: arbitrary bytes, mutated valid
events and hand-built FlatBuffers with random offsets never raise anything but EventDecodeError, never hang,
and whatever the decoder accepts re-encodes to an event with the same values."""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta

import flatbuffers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from satlake.telemetry.codec import (
    EventDecodeError,
    TelemetryReading,
    decode_event,
    decode_event_columns,
    decode_event_fields,
    encode_event,
)
from satlake.telemetry.ingest import event_day_hint

# A decode takes microseconds; 250 ms per example only fails for a hang or a pathological loop.
DEADLINE = timedelta(milliseconds=250)
REASON_CODES = {"empty_payload", "truncated", "malformed_flatbuffer", "missing_field:satellite_name", "invalid_utf8"}
RECEIVED_NS = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1e9)

names = st.text(min_size=0, max_size=40)
doubles = st.floats(allow_nan=True, allow_infinity=True)
readings = st.builds(
    TelemetryReading,
    satellite_name=names,
    timestamp_ns=st.integers(min_value=0, max_value=2**64 - 1),
    temp_c=doubles,
    battery_charge_pct=doubles,
    altitude_km=doubles,
    sensor1=doubles,
    sensor2=doubles,
    sensor3=doubles,
)
# Values that break offset arithmetic: zero, sign boundaries, all ones, and small lengths.
HOSTILE_U32 = st.sampled_from([0, 1, 3, 4, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0xFFFF_FFFC, 64, 255, 1 << 20])


def assert_decodes_or_refuses(payload: bytes) -> TelemetryReading | None:
    """Decode ``payload``: a reading of the right types, or EventDecodeError with a known code and a detail."""
    try:
        reading = decode_event(payload)
    except EventDecodeError as error:
        assert error.reason_code in REASON_CODES, error.reason_code
        assert error.detail, "a rejection must say what was wrong"
        return None
    assert isinstance(reading.satellite_name, str)
    assert isinstance(reading.timestamp_ns, int) and 0 <= reading.timestamp_ns < 2**64
    assert all(isinstance(value, float) for value in _measures(reading))
    return reading


def _measures(reading: TelemetryReading) -> tuple[float, ...]:
    return (
        reading.temp_c,
        reading.battery_charge_pct,
        reading.altitude_km,
        reading.sensor1,
        reading.sensor2,
        reading.sensor3,
    )


def same_values(a: TelemetryReading, b: TelemetryReading) -> bool:
    """Equal field by field, NaN equal to NaN (bit patterns compared so -0.0 and NaN payloads count)."""
    pack = struct.Struct("<6d").pack
    return (a.satellite_name, a.timestamp_ns) == (b.satellite_name, b.timestamp_ns) and pack(*_measures(a)) == pack(
        *_measures(b)
    )


@settings(max_examples=400, deadline=DEADLINE)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_decode_or_raise_event_decode_error(payload: bytes) -> None:
    assert_decodes_or_refuses(payload)


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("u32"), st.integers(0, 10_000), HOSTILE_U32),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.just(0)),
)


def mutate(payload: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(payload)
    for kind, position, value in mutations:
        if not data:
            break
        index = position % len(data)
        if kind == "flip":
            data[index] ^= 1 << value
        elif kind == "set":
            data[index] = value
        elif kind == "u32" and index + 4 <= len(data):
            data[index : index + 4] = struct.pack("<I", value)
        elif kind == "truncate":
            del data[index:]
        elif kind == "insert":
            data.insert(index, value)
        elif kind == "delete":
            del data[index]
    return bytes(data)


@settings(max_examples=300, deadline=DEADLINE)
@given(readings, st.lists(mutation, min_size=1, max_size=6))
def test_mutated_valid_events_decode_or_raise_event_decode_error(
    reading: TelemetryReading, mutations: list[tuple[str, int, int]]
) -> None:
    assert_decodes_or_refuses(mutate(encode_event(reading), mutations))


@st.composite
def hand_built_flatbuffers(draw: st.DrawFn) -> bytes:
    """A root offset, a vtable with random field offsets and a table region: exercises the general (non
    canonical) decoding path with every offset under the attacker's control."""
    slots = draw(st.lists(st.integers(0, 80), min_size=0, max_size=10))
    vtable_size = draw(st.sampled_from([4 + 2 * len(slots), draw(st.integers(0, 70))]))
    table_size = draw(st.integers(0, 120))
    vtable = struct.pack("<HH", vtable_size, table_size) + struct.pack(f"<{len(slots)}H", *slots)
    body = draw(st.binary(min_size=0, max_size=160))
    name_offset = draw(st.one_of(HOSTILE_U32, st.integers(0, 200)))
    table_pos = 4 + len(vtable)
    soffset = draw(st.sampled_from([table_pos - 4, -draw(st.integers(0, 300)), draw(st.integers(-(2**31), 2**31 - 1))]))
    root = draw(st.one_of(st.just(table_pos), HOSTILE_U32, st.integers(0, 400)))
    table = struct.pack("<iI", soffset, name_offset) + body
    return struct.pack("<I", root) + vtable + table


@settings(max_examples=300, deadline=DEADLINE, suppress_health_check=[HealthCheck.too_slow])
@given(hand_built_flatbuffers())
def test_hand_built_flatbuffers_with_hostile_offsets_never_escape(payload: bytes) -> None:
    assert_decodes_or_refuses(payload)


@settings(max_examples=250, deadline=DEADLINE)
@given(readings, st.sets(st.integers(0, 7), max_size=8), st.booleans())
def test_events_built_by_the_flatbuffers_builder_with_fields_left_out_decode_to_their_values(
    reading: TelemetryReading, left_out: set[int], force_defaults: bool
) -> None:
    """A producer using the generic Builder (not satlake's encoder) may omit fields or write them in any order."""
    builder = flatbuffers.Builder(64)
    builder.ForceDefaults(force_defaults)
    name = builder.CreateString(reading.satellite_name)
    builder.StartObject(8)
    values = [reading.timestamp_ns, *_measures(reading)]
    for slot in range(7, 0, -1):
        if slot in left_out:
            continue
        if slot == 1:
            builder.PrependUint64Slot(1, values[0], 0)
        else:
            builder.PrependFloat64Slot(slot, values[slot - 1], 0.0)
    if 0 not in left_out:
        builder.PrependUOffsetTRelativeSlot(0, name, 0)
    builder.Finish(builder.EndObject())
    payload = bytes(builder.Output())

    if 0 in left_out:
        try:
            decode_event(payload)
        except EventDecodeError as error:
            assert error.reason_code == "missing_field:satellite_name"
        else:
            raise AssertionError("an event without satellite_name was accepted")
        return
    # Without ForceDefaults the Builder drops values equal to the default (so -0.0 arrives as 0.0).
    dropped = left_out | ({slot for slot in range(1, 8) if values[slot - 1] == 0} if not force_defaults else set())
    expected_values = [0 if 1 in dropped else values[0]] + [
        0.0 if slot in dropped else values[slot - 1] for slot in range(2, 8)
    ]
    expected = TelemetryReading(reading.satellite_name, *expected_values)  # type: ignore[arg-type]
    assert same_values(decode_event(payload), expected)


@settings(max_examples=400, deadline=DEADLINE)
@given(readings, st.lists(mutation, min_size=0, max_size=4))
def test_whatever_is_accepted_re_encodes_to_the_same_values(
    reading: TelemetryReading, mutations: list[tuple[str, int, int]]
) -> None:
    decoded = assert_decodes_or_refuses(mutate(encode_event(reading), mutations))
    if decoded is not None:
        assert same_values(decode_event(encode_event(decoded)), decoded)
    if not mutations:
        assert decoded is not None and same_values(decoded, reading)


@settings(max_examples=200, deadline=DEADLINE)
@given(st.lists(st.one_of(st.binary(max_size=120), readings.map(encode_event)), max_size=30))
def test_batch_decoding_accounts_for_every_payload_exactly_once(payloads: list[bytes]) -> None:
    columns = decode_event_columns(payloads)
    failed = [index for index, _error in columns.errors]
    assert sorted([*columns.source_index, *failed]) == list(range(len(payloads)))
    for row, index in enumerate(columns.source_index):
        assert columns.satellite_name[row] == decode_event_fields(payloads[index])[0]
    for index, error in columns.errors:
        assert isinstance(error, EventDecodeError) and error.reason_code in REASON_CODES, index


@settings(max_examples=300, deadline=DEADLINE)
@given(st.one_of(st.binary(max_size=200), readings.map(encode_event)))
def test_event_day_routing_never_fails_and_stays_near_arrival(payload: bytes) -> None:
    """Ingestion routes every payload (even garbage) to a day; a future-dated or unreadable one to its arrival."""
    day = event_day_hint(payload, RECEIVED_NS)
    arrival = datetime.fromtimestamp(RECEIVED_NS / 1e9, UTC).date()
    assert day <= arrival + timedelta(days=1)


def test_the_mutation_helper_really_changes_payloads() -> None:
    """Guard against a vacuous property: the mutations above must reach the decoder's error paths."""
    payload = encode_event(TelemetryReading("SAT-1", RECEIVED_NS, 1.0, 50.0, 500.0, 0.1, 0.2, 0.3))
    codes = set()
    for position in range(len(payload)):
        for value in (0, 0xFFFF_FFFF, 0x7FFF_FFFF):
            try:
                decode_event(mutate(payload, [("u32", position, value)]))
            except EventDecodeError as error:
                codes.add(error.reason_code)
    assert {"truncated", "malformed_flatbuffer"} <= codes
    assert not math.isnan(decode_event(payload).temp_c)
