"""Split a byte stream of concatenated CCSDS space packets (Yamcs' TCP framing, an HTTP body, a recorded file)
into packets, and the bytes that are not packets into rejects with the reason.

A packet is accepted when its primary header is plausible (version 0, a length within the maximum) and nothing
contradicts its length: the bytes after it start another plausible header, or the data ends there, or (for an
APID the mission lists) at least no confirmed packet starts inside the bytes it claims. Bytes that fail are
skipped up to the next offset where a confirmed packet of a known APID starts, and the skipped bytes become one
reject with the reason. Packets of APIDs the mission does not list are kept (the decoder reports them); known
APIDs guide the resynchronisation. Idle packets (APID 2047) are dropped and counted.

A length that runs over good packets is detected, and those packets are kept. A length that is too short, or
that runs only over garbage, or that ends exactly where a chunk of a live stream ends, is not detectable here:
the packet goes out with the length it claims (the decoder then finds it shorter or longer than its definition)
and the bytes around it are rejected as garbage.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import NamedTuple

from spacepackets.ccsds.spacepacket import CCSDS_HEADER_LEN, SpacePacketHeader

IDLE_APID = 0x7FF
# The largest packet the CCSDS length field can describe: 65,536 data octets + the 6-byte header.
MAX_PACKET_LENGTH = 65542
# The three version bits of a CCSDS version-0 packet are zero, so its first byte is below 0x20: a cheap
# pre-check (with the low byte of the APID) before a header is unpacked while scanning for the next packet.
_VERSION_ZERO_LIMIT = 0x20


class Reject(NamedTuple):
    """Bytes that are not a packet, and why."""

    data: bytes
    reason: str


@dataclass
class SplitResult:
    """What a piece of stream gave: packets and rejects (each in stream order), idle packets dropped, and the
    stream offset after each unit (packet, idle packet or reject) in order, for senders that cut the stream
    only between units."""

    packets: list[bytes] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    idle: int = 0
    ends: list[int] = field(default_factory=list)

    def extend(self, other: SplitResult) -> SplitResult:
        self.packets.extend(other.packets)
        self.rejects.extend(other.rejects)
        self.idle += other.idle
        self.ends.extend(other.ends)
        return self

    def __bool__(self) -> bool:
        return bool(self.packets or self.rejects or self.idle)


class _Wait(Exception):
    """Internal: the decision needs bytes that have not arrived yet."""


class PacketSplitter:
    """Incremental splitter: ``feed`` each piece of the stream as it arrives, ``finish`` at its end.

    ``known_apids`` (``None``: any APID) are the APIDs worth resynchronising on after garbage. A packet that
    ends exactly where the bytes received so far end is accepted at once: waiting for the next packet to
    confirm its length would hold back a live stream by a packet interval."""

    def __init__(self, max_packet_length: int = MAX_PACKET_LENGTH, known_apids: Collection[int] | None = None) -> None:
        if not CCSDS_HEADER_LEN + 1 <= max_packet_length <= MAX_PACKET_LENGTH:
            raise ValueError(f"max_packet_length must be 7..{MAX_PACKET_LENGTH} bytes, got {max_packet_length}")
        self.max_packet_length = max_packet_length
        self.known_apids = frozenset(known_apids) if known_apids else None
        self._apid_low_bytes = {apid & 0xFF for apid in self.known_apids | {IDLE_APID}} if self.known_apids else None
        self._buffer = bytearray()
        self._base = 0  # stream offset of the buffer's first byte
        self._bad_reason: str | None = None  # the buffer starts with bytes being skipped, for this reason
        self._scan_from = 1  # where the search for the next packet resumes (buffer offset)
        self._headers: dict[int, SpacePacketHeader] = {}

    @property
    def pending(self) -> int:
        """Bytes received but not yet given out as a packet or reject."""
        return len(self._buffer)

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet given out."""
        return self._base

    def feed(self, data: bytes) -> SplitResult:
        self._buffer += data
        return self._split(final=False)

    def finish(self, cut: str = "truncated stream") -> SplitResult:
        """End of the stream: what is left becomes packets confirmed by the end, and rejects ("<cut>: N bytes
        left, the packet needs M"). The splitter can be fed again afterwards."""
        result = self._split(final=True, cut=cut)
        self._bad_reason, self._scan_from = None, 1
        return result

    def drop_pending(self) -> bytes:
        """Take the bytes not yet given out (e.g. a partial packet whose continuation was lost) and start over."""
        dropped = bytes(self._buffer)
        self._consume(len(dropped))
        self._bad_reason, self._scan_from = None, 1
        return dropped

    # ---- internals ---------------------------------------------------------------------------------

    def _consume(self, count: int) -> None:
        del self._buffer[:count]
        self._base += count
        self._headers = {}

    def _header(self, position: int) -> SpacePacketHeader:
        header = self._headers.get(position)
        if header is None:
            header = SpacePacketHeader.unpack(self._buffer[position : position + CCSDS_HEADER_LEN])
            self._headers[position] = header
        return header

    def _problem(self, header: SpacePacketHeader, position: int) -> str | None:
        if header.ccsds_version != 0:
            return f"version {header.ccsds_version} header at offset {self._base + position}"
        if header.packet_len > self.max_packet_length:
            return (
                f"the header at offset {self._base + position} gives a length of {header.packet_len} bytes, "
                f"over the maximum of {self.max_packet_length}"
            )
        return None

    def _known(self, header: SpacePacketHeader) -> bool:
        return self.known_apids is None or header.apid in self.known_apids or header.apid == IDLE_APID

    def _plausible_at(self, position: int, final: bool) -> bool:
        """Whether a plausible header starts at ``position`` (the end of the data counts: the stream may end
        between packets, and so may a remainder too short for a header, rejected on its own at the end).
        Raises ``_Wait`` when the bytes are not there yet."""
        size = len(self._buffer)
        if position == size:
            return True
        if size - position < CCSDS_HEADER_LEN:
            if final:
                return True
            raise _Wait
        header = self._header(position)
        if self._problem(header, position) is not None:
            return False
        if self._known(header):
            return True
        # A packet of an APID the mission does not list: believe it when the header after it is plausible too.
        end = position + header.packet_len
        if end > size:
            if final:
                return False
            raise _Wait
        if end == size:
            return True
        if size - end < CCSDS_HEADER_LEN:
            if final:
                return True
            raise _Wait
        return self._problem(self._header(end), end) is None

    def _packet_at(self, position: int, final: bool, known_only: bool) -> int | None:
        """The length of a confirmed packet (a plausible header follows it) starting at ``position``, or None.
        Raises ``_Wait``."""
        header = self._header(position)
        if self._problem(header, position) is not None or (known_only and not self._known(header)):
            return None
        end = position + header.packet_len
        if end > len(self._buffer):
            if final:
                return None
            raise _Wait
        return header.packet_len if self._plausible_at(end, final) else None

    def _packet_inside(self, position: int, limit: int, final: bool) -> int | None:
        """Buffer offset of a confirmed packet of a known APID starting after ``position`` and before ``limit``."""
        for inner in range(position + 1, min(limit, len(self._buffer) - CCSDS_HEADER_LEN + 1)):
            if self._may_start(inner) and self._packet_at(inner, final, known_only=True):
                return inner
        return None

    def _may_start(self, position: int) -> bool:
        """Cheap test before unpacking: can a version-0 header of a known APID start at ``position``?"""
        if self._buffer[position] >= _VERSION_ZERO_LIMIT:
            return False
        return self._apid_low_bytes is None or self._buffer[position + 1] in self._apid_low_bytes

    def _resync(self, final: bool) -> int | None:
        """Buffer offset of the next confirmed packet of a known APID after the bad bytes at 0, or None.
        Raises ``_Wait`` (remembering where to resume) when more bytes are needed to decide."""
        size = len(self._buffer)
        position = self._scan_from
        while position + CCSDS_HEADER_LEN <= size:
            if self._may_start(position):
                try:
                    if self._packet_at(position, final, known_only=True) is not None:
                        return position
                except _Wait:
                    self._scan_from = position
                    raise
            position += 1
        self._scan_from = max(position, 1)
        if final:
            return None
        raise _Wait

    def _split(self, final: bool, cut: str = "") -> SplitResult:
        result = SplitResult()
        while self._buffer:
            try:
                if self._bad_reason is None:
                    self._take_packets(result, final)
                if self._bad_reason is None:
                    break  # the buffer is empty or holds the start of a packet still arriving
                resume = self._resync(final)
            except _Wait:
                self._bound_skipped(result)
                break
            self._reject(result, resume if resume is not None else len(self._buffer))
        if final and self._buffer:
            self._reject_truncated(result, cut)
        return result

    def _take_packets(self, result: SplitResult, final: bool) -> None:
        """Give out packets from the buffer start until bad bytes (sets ``_bad_reason``) or more data is needed.

        A length is believed unless there is evidence against it: a packet of a known APID confirmed inside the
        bytes it claims. An unconfirmed packet followed by garbage is kept when its APID is known (the garbage
        becomes a reject of its own); when it is not, it is garbage until confirmed."""
        position = 0
        size = len(self._buffer)
        try:
            while size - position >= CCSDS_HEADER_LEN:
                header = self._header(position)
                problem = self._problem(header, position)
                if problem is None:
                    end = position + header.packet_len
                    if end > size and not final:
                        raise _Wait
                    if end <= size and self._plausible_at(end, final):
                        self._give_packet(result, header, position, header.packet_len)
                        position = end
                        continue
                    inside = self._packet_inside(position, end, final)
                    if inside is None and end > size:
                        break  # the stream ends inside this packet: a truncated packet, rejected as such
                    if inside is None and self._known(header):
                        self._give_packet(result, header, position, header.packet_len)
                        position = end
                        continue
                    problem = (
                        f"the header at offset {self._base + position} gives a length of {header.packet_len} bytes"
                    )
                    problem += f", but a packet starts {inside - position} bytes in" if inside else (
                        ", and no packet header follows them")  # fmt: skip
                self._bad_reason = problem
                break
        finally:
            self._consume(position)

    def _give_packet(self, result: SplitResult, header: SpacePacketHeader, position: int, length: int) -> None:
        if header.apid == IDLE_APID:
            result.idle += 1
        else:
            result.packets.append(bytes(self._buffer[position : position + length]))
        result.ends.append(self._base + position + length)

    def _reject(self, result: SplitResult, count: int) -> None:
        reason = f"{count} bytes are not a packet: {self._bad_reason}"
        result.rejects.append(Reject(bytes(self._buffer[:count]), reason))
        self._consume(count)
        result.ends.append(self._base)
        self._bad_reason, self._scan_from = None, 1

    def _bound_skipped(self, result: SplitResult) -> None:
        # Garbage that goes on and on: give out what is certainly skipped, so the buffer stays bounded.
        if self._bad_reason is not None and self._scan_from > self.max_packet_length:
            self._reject(result, self._scan_from)  # the rest is looked at afresh on the next feed

    def _reject_truncated(self, result: SplitResult, cut: str) -> None:
        left = len(self._buffer)
        if left < CCSDS_HEADER_LEN:
            reason = f"{cut}: {left} bytes left, a packet header needs {CCSDS_HEADER_LEN}"
        else:
            reason = f"{cut}: {left} bytes left, the packet needs {self._header(0).packet_len}"
        result.rejects.append(Reject(bytes(self._buffer), reason))
        self._consume(left)
        result.ends.append(self._base)
