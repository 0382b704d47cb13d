"""The log record a collector publishes for every packet it received and every run of bytes it rejected: the
bytes exactly as they arrived, the ground receive time and the station they came from.

Binary layout (big-endian)::

    magic       4 bytes   b"SLP1"
    kind        u8        0 packet, 1 reject
    received_ns i64       ground receive time, nanoseconds since the Unix epoch
    station     u16 length + UTF-8
    reason      u16 length + UTF-8 (empty for packets)
    payload     the rest: the packet, or the rejected bytes

The record key is the packet's APID in ASCII (``b"100"``), so the packets of one APID land on one partition and
stay in order; rejects share the key ``b"reject"``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from spacepackets.ccsds.spacepacket import get_apid_from_raw_space_packet

from satlake.resources.event_log import OutgoingRecord

MAGIC = b"SLP1"
REJECT_KEY = b"reject"
MAX_TEXT_BYTES = 0xFFFF
_FIXED = struct.Struct(">4sBq")
_TEXT_LENGTH = struct.Struct(">H")


class Kind(IntEnum):
    PACKET = 0
    REJECT = 1


class EnvelopeError(ValueError):
    """A log record that is not an envelope, or an envelope that cannot be encoded; the message says which
    field is wrong."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One packet (or one run of rejected bytes) as received by a ground station collector."""

    kind: Kind
    station: str
    received_ns: int
    payload: bytes
    reason: str = ""

    @classmethod
    def packet(cls, payload: bytes, station: str, received_ns: int) -> Envelope:
        return cls(Kind.PACKET, station, received_ns, bytes(payload))

    @classmethod
    def reject(cls, payload: bytes, reason: str, station: str, received_ns: int) -> Envelope:
        return cls(Kind.REJECT, station, received_ns, bytes(payload), reason)

    @property
    def key(self) -> bytes:
        """The record key: the APID in ASCII for a packet, ``b"reject"`` for rejected bytes."""
        if self.kind is Kind.REJECT or len(self.payload) < 6:
            return REJECT_KEY
        return str(get_apid_from_raw_space_packet(self.payload)).encode("ascii")

    def to_record(self) -> OutgoingRecord:
        """The record to append: keyed by APID, timestamped with the ground receive time (milliseconds)."""
        return OutgoingRecord(value=wrap(self), key=self.key, timestamp_ms=self.received_ns // 1_000_000)


def _encode_text(name: str, text: str) -> bytes:
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_TEXT_BYTES:
        raise EnvelopeError(f"envelope {name} is {len(encoded)} bytes of UTF-8; at most {MAX_TEXT_BYTES} fit")
    return _TEXT_LENGTH.pack(len(encoded)) + encoded


def wrap(envelope: Envelope) -> bytes:
    """The envelope's bytes (the Kafka record value)."""
    kind = Kind(envelope.kind)
    if kind is Kind.PACKET and envelope.reason:
        raise EnvelopeError(f"a packet envelope carries no reason, got {envelope.reason!r}")
    try:
        fixed = _FIXED.pack(MAGIC, kind, envelope.received_ns)
    except struct.error as error:
        raise EnvelopeError(f"envelope received_ns {envelope.received_ns!r} is not a 64-bit integer") from error
    return b"".join(
        (fixed, _encode_text("station", envelope.station), _encode_text("reason", envelope.reason), envelope.payload)
    )


def _decode_text(value: bytes, position: int, name: str) -> tuple[str, int]:
    if position + _TEXT_LENGTH.size > len(value):
        raise EnvelopeError(f"envelope of {len(value)} bytes ends inside the length of its {name}")
    (length,) = _TEXT_LENGTH.unpack_from(value, position)
    start = position + _TEXT_LENGTH.size
    if start + length > len(value):
        raise EnvelopeError(
            f"envelope of {len(value)} bytes ends inside its {name}, which should be {length} bytes from byte {start}"
        )
    try:
        return value[start : start + length].decode("utf-8"), start + length
    except UnicodeDecodeError as error:
        raise EnvelopeError(f"envelope {name} is not UTF-8: {error}") from error


def unwrap(value: bytes) -> Envelope:
    """The envelope in a record value; ``EnvelopeError`` says what is wrong when it is not one."""
    value = bytes(value)
    if len(value) < _FIXED.size:
        raise EnvelopeError(f"envelope of {len(value)} bytes is shorter than its {_FIXED.size}-byte fixed header")
    magic, kind, received_ns = _FIXED.unpack_from(value)
    if magic != MAGIC:
        raise EnvelopeError(f"not a satlake packet envelope: magic {magic!r}, expected {MAGIC!r}")
    if kind not in (Kind.PACKET, Kind.REJECT):
        raise EnvelopeError(f"envelope kind {kind} is unknown (0 packet, 1 reject)")
    station, position = _decode_text(value, _FIXED.size, "station")
    reason, position = _decode_text(value, position, "reason")
    if kind == Kind.PACKET and reason:
        raise EnvelopeError(f"a packet envelope carries a reason ({reason!r}); only rejects do")
    return Envelope(Kind(kind), station, received_ns, value[position:], reason)
