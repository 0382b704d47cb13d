"""CCSDS TM transfer frames (132.0-B-3) as a ground station delivers them: a byte stream of fixed-length frames,
each checked against its frame error control field (CRC-16/CCITT-FALSE), the space packets of each virtual
channel put back together across frames with the first header pointer. Also ``build_frames``, the reverse, for
tests, replays and the demo.

spacepackets parses frame headers and checks the CRC; extracting packets per virtual channel is not in any
library we use, so it is here.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from spacepackets.ccsds.spacepacket import SpacePacket, SpacePacketHeader
from spacepackets.ccsds.tm_frame import (
    MasterChannelId,
    TmFramePrimaryHeader,
    TmTransferFrame,
    TransferFrameDataFieldStatus,
)
from spacepackets.exceptions import InvalidCrcCcitt16Error

from satlake.ground.framing import IDLE_APID, MAX_PACKET_LENGTH, PacketSplitter, Reject, SplitResult

PRIMARY_HEADER_LENGTH = 6
FECF_LENGTH = 2
NO_PACKET_STARTS = 0x7FF  # first header pointer: the whole data field continues a packet
IDLE_DATA_ONLY = 0x7FE  # first header pointer: the data field holds only idle data
# spacepackets refuses frames of 2048 bytes and more (TmTransferFrame: "length < 2048").
MAX_FRAME_LENGTH = 2047
FRAME_COUNT_MODULUS = 256
MAX_SPACECRAFT_ID = 0x3FF
MAX_VC_ID = 7
# A segment length id of 0b11: the data field carries whole or spanning packets, not segments.
_NO_SEGMENTS = 0b11


def min_frame_length(fecf: bool) -> int:
    """The shortest frame that carries at least one data byte."""
    return PRIMARY_HEADER_LENGTH + (FECF_LENGTH if fecf else 0) + 1


def check_frame_length(frame_length: int, fecf: bool) -> None:
    low = min_frame_length(fecf)
    if not low <= frame_length <= MAX_FRAME_LENGTH:
        raise ValueError(f"frame length must be {low}..{MAX_FRAME_LENGTH} bytes, got {frame_length}")


def fecf_for(frame_without_fecf: bytes) -> bytes:
    """The frame error control field: CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of the rest of the frame."""
    return struct.pack(">H", binascii.crc_hqx(frame_without_fecf, 0xFFFF))


def _orphan_reason(count: int, where: str) -> str:
    return f"{count} bytes continue a packet whose start was not received ({where})"


@dataclass
class _Channel:
    """What one virtual channel carries over from frame to frame."""

    splitter: PacketSplitter
    next_count: int | None = None  # the frame count the next frame of this channel should have
    synced: bool = False  # whether the splitter holds the start of the packet now continuing


@dataclass
class FrameStats:
    frames: int = 0
    bad_crc: int = 0
    count_jumps: int = 0
    idle_frames: int = 0
    per_channel: dict[int, int] = field(default_factory=dict)


class FrameDemultiplexer:
    """Incremental: ``feed`` pieces of a stream of ``frame_length``-byte frames, ``finish`` at its end. The
    packets of every virtual channel come out through a ``PacketSplitter`` of that channel (same checks as a
    raw packet stream); rejected frames and lost pieces of packets come out as rejects with the reason."""

    def __init__(
        self,
        frame_length: int,
        fecf: bool = True,
        *,
        max_packet_length: int = MAX_PACKET_LENGTH,
        known_apids: Collection[int] | None = None,
    ) -> None:
        check_frame_length(frame_length, fecf)
        self.frame_length = frame_length
        self.fecf = fecf
        self.max_packet_length = max_packet_length
        self.known_apids = known_apids
        self.stats = FrameStats()
        self._buffer = bytearray()
        self._channels: dict[int, _Channel] = {}

    def feed(self, data: bytes) -> SplitResult:
        self._buffer += data
        result = SplitResult()
        whole = len(self._buffer) - len(self._buffer) % self.frame_length
        for start in range(0, whole, self.frame_length):
            self._frame(bytes(self._buffer[start : start + self.frame_length]), result)
        del self._buffer[:whole]
        return result

    def finish(self) -> SplitResult:
        """End of the stream: a partial frame and every channel's unfinished packet become rejects."""
        result = SplitResult()
        if self._buffer:
            left = len(self._buffer)
            result.rejects.append(
                Reject(bytes(self._buffer), f"truncated stream: {left} bytes left, the frame needs {self.frame_length}")
            )
            self._buffer.clear()
        for vc_id, channel in sorted(self._channels.items()):
            result.extend(channel.splitter.finish(cut=f"truncated stream (VC {vc_id})"))
            channel.synced = False
        return result

    # ---- one frame --------------------------------------------------------------------------------

    def _channel(self, vc_id: int) -> _Channel:
        channel = self._channels.get(vc_id)
        if channel is None:
            channel = _Channel(PacketSplitter(self.max_packet_length, self.known_apids))
            self._channels[vc_id] = channel
        return channel

    def _lose_partial(self, channel: _Channel, result: SplitResult, why: str) -> None:
        """The channel's packet stream breaks here: complete packets still held go out, the open one is rejected."""
        result.extend(channel.splitter.finish(cut=f"packet cut by {why}"))
        channel.synced = False

    def _frame(self, frame: bytes, result: SplitResult) -> None:
        self.stats.frames += 1
        header = TmFramePrimaryHeader.unpack(frame)
        vc_id, count = header.vc_id, header.vc_frame_count
        where = f"VC {vc_id}, frame count {count}"
        version = header.master_channel_id.transfer_frame_version
        if version != 0:
            reason = f"not a TM transfer frame: version number field {version}, TM frames have 0 ({where})"
            result.rejects.append(Reject(frame, reason))
            return
        try:
            parsed = TmTransferFrame.unpack(frame, self.frame_length, self.fecf)
        except InvalidCrcCcitt16Error:
            self.stats.bad_crc += 1
            result.rejects.append(Reject(frame, f"frame CRC mismatch ({where})"))
            channel = self._channels.get(vc_id)
            if channel is not None:
                self._lose_partial(channel, result, f"a frame that failed the CRC check ({where})")
                channel.next_count = None  # the count in a corrupt header proves nothing
            return
        except ValueError as error:  # BytesTooShortError and a secondary header longer than the frame
            result.rejects.append(Reject(frame, f"not a valid TM transfer frame: {error} ({where})"))
            return
        self.stats.per_channel[vc_id] = self.stats.per_channel.get(vc_id, 0) + 1
        channel = self._channel(vc_id)
        if channel.next_count is not None and count != channel.next_count:
            self.stats.count_jumps += 1
            expected = (channel.next_count - 1) % FRAME_COUNT_MODULUS
            self._lose_partial(channel, result, f"a gap in VC {vc_id} frame counts ({expected} to {count})")
        channel.next_count = (count + 1) % FRAME_COUNT_MODULUS
        self._extract(channel, frame, parsed, where, result)

    def _extract(self, channel: _Channel, raw: bytes, frame: TmTransferFrame, where: str, result: SplitResult) -> None:
        pointer = frame.primary_header.frame_datafield_status.first_header_pointer
        data = bytes(frame.data_field)
        if pointer == IDLE_DATA_ONLY:
            self.stats.idle_frames += 1
            return
        if pointer == NO_PACKET_STARTS:
            if channel.synced:
                result.extend(channel.splitter.feed(data))
            else:
                result.rejects.append(Reject(data, _orphan_reason(len(data), where)))
            return
        if pointer >= len(data):
            result.rejects.append(
                Reject(raw, f"first header pointer {pointer} is past the {len(data)}-byte data field ({where})")
            )
            self._lose_partial(channel, result, f"a frame with an invalid first header pointer ({where})")
            return
        head, tail = data[:pointer], data[pointer:]
        if channel.synced:
            result.extend(channel.splitter.feed(head))
            # The pointer says a packet starts here: whatever is still open did not end where it should.
            result.extend(channel.splitter.finish(cut=f"packet cut by the first header pointer ({where})"))
        elif head:
            result.rejects.append(Reject(head, _orphan_reason(len(head), where)))
        channel.synced = True
        result.extend(channel.splitter.feed(tail))


def idle_packet(length: int) -> bytes:
    """An idle packet (APID 2047) of ``length`` bytes (at least 7), filled with zeros."""
    header = SpacePacketHeader.tm(apid=IDLE_APID, seq_count=0, data_len=length - 7)
    return bytes(SpacePacket(header, None, bytes(length - 6)).pack())


def build_frames(
    packets: Sequence[bytes],
    *,
    spacecraft_id: int,
    vc_id: int,
    frame_length: int,
    fecf: bool = True,
    first_frame_count: int = 0,
) -> list[bytes]:
    """The packets laid back to back in the data fields of consecutive frames of one virtual channel (packets
    span frames), the last frame filled up with an idle packet; each frame with its first header pointer,
    frame counts from ``first_frame_count`` (mod 256) and, with ``fecf``, its CRC."""
    check_frame_length(frame_length, fecf)
    if not 0 <= spacecraft_id <= MAX_SPACECRAFT_ID:
        raise ValueError(f"spacecraft id must be 0..{MAX_SPACECRAFT_ID}, got {spacecraft_id}")
    if not 0 <= vc_id <= MAX_VC_ID:
        raise ValueError(f"virtual channel id must be 0..{MAX_VC_ID}, got {vc_id}")
    if not packets:
        return []
    data_length = frame_length - PRIMARY_HEADER_LENGTH - (FECF_LENGTH if fecf else 0)
    starts: list[int] = []
    stream = bytearray()
    for packet in packets:
        starts.append(len(stream))
        stream += packet
    room = -len(stream) % data_length
    if room:
        starts.append(len(stream))
        stream += idle_packet(room if room >= 7 else room + data_length)  # an idle packet is 7 bytes or more
    frames = []
    next_start = 0
    for number, offset in enumerate(range(0, len(stream), data_length)):
        while next_start < len(starts) and starts[next_start] < offset:
            next_start += 1
        in_frame = next_start < len(starts) and starts[next_start] < offset + data_length
        pointer = starts[next_start] - offset if in_frame else NO_PACKET_STARTS
        count = (first_frame_count + number) % FRAME_COUNT_MODULUS
        header = TmFramePrimaryHeader(
            master_channel_id=MasterChannelId(0, spacecraft_id),
            vc_id=vc_id,
            ocf_flag=False,
            master_ch_frame_count=count,
            vc_frame_count=count,
            frame_datafield_status=TransferFrameDataFieldStatus(False, False, False, _NO_SEGMENTS, pointer),
        )
        body_length = frame_length - FECF_LENGTH if fecf else frame_length
        body = TmTransferFrame(body_length, header, None, bytes(stream[offset : offset + data_length]), None, None)
        packed = body.pack()
        frames.append(packed + fecf_for(packed) if fecf else packed)
    return frames
