"""The envelope collectors publish: the exact binary layout of the design, round trips, keys, and errors that
say which field is wrong."""

from __future__ import annotations

import struct

import pytest

from satlake.ground.envelope import REJECT_KEY, Envelope, EnvelopeError, Kind, unwrap, wrap
from tests.fixtures.ground.collector.support import packet


def test_packet_envelope_has_the_documented_layout() -> None:
    raw = packet(100, 7)
    value = wrap(Envelope.packet(raw, "gs-kiruna", 1_700_000_000_123_456_789))
    expected = b"SLP1" + bytes([0]) + struct.pack(">q", 1_700_000_000_123_456_789)
    expected += struct.pack(">H", 9) + b"gs-kiruna" + struct.pack(">H", 0) + raw
    assert value == expected


def test_reject_round_trip_keeps_reason_station_time_and_bytes() -> None:
    original = Envelope.reject(b"\xff\x00garbage", "9 bytes are not a packet: version 7 header at offset 0", "gs-ü", 5)
    back = unwrap(wrap(original))
    assert back == original
    assert back.kind is Kind.REJECT and back.reason.startswith("9 bytes")


def test_keys_are_the_ascii_apid_for_packets_and_reject_for_rejects() -> None:
    assert Envelope.packet(packet(100, 1), "s", 0).key == b"100"
    assert Envelope.packet(packet(2000, 1), "s", 0).key == b"2000"
    assert Envelope.reject(packet(100, 1), "why", "s", 0).key == REJECT_KEY
    record = Envelope.packet(packet(200, 1), "s", 1_500_000_000_999_999_999).to_record()
    assert record.key == b"200" and record.timestamp_ms == 1_500_000_000_999
    assert unwrap(record.value).payload == packet(200, 1)


def test_empty_payload_and_station_survive() -> None:
    envelope = Envelope.reject(b"", "nothing", "", -1)
    assert unwrap(wrap(envelope)) == envelope


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"SLP", "shorter than its 13-byte fixed header"),
        (b"XXXX" + bytes(9), "magic b'XXXX'"),
        (b"SLP1" + bytes([9]) + bytes(8), "kind 9 is unknown"),
        (b"SLP1" + bytes([0]) + bytes(8) + b"\x00", "ends inside the length of its station"),
        (b"SLP1" + bytes([0]) + bytes(8) + b"\x00\x05ab", "ends inside its station"),
        (b"SLP1" + bytes([0]) + bytes(8) + b"\x00\x01\xff\x00\x00", "station is not UTF-8"),
        (b"SLP1" + bytes([0]) + bytes(8) + b"\x00\x00\x00\x02no", "a packet envelope carries a reason"),
    ],
)
def test_unwrap_names_what_is_wrong(value: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message.replace("(", r"\(").replace("[", r"\[")):
        unwrap(value)


def test_wrap_refuses_what_cannot_be_encoded() -> None:
    with pytest.raises(EnvelopeError, match="carries no reason"):
        wrap(Envelope(Kind.PACKET, "s", 0, b"", "a reason"))
    with pytest.raises(EnvelopeError, match="station is 70000 bytes"):
        wrap(Envelope.reject(b"", "r", "x" * 70_000, 0))
    with pytest.raises(EnvelopeError, match="not a 64-bit integer"):
        wrap(Envelope.packet(b"", "s", 2**63))
