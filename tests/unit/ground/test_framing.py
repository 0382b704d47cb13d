"""Splitting a byte stream into space packets: header and length checks, resynchronisation on garbage, good
packets kept around bad bytes, truncated ends, idle packets, any chunking of the stream."""

from __future__ import annotations

import random
import struct

import pytest
from spacepackets.ccsds.spacepacket import SpacePacketHeader

from satlake.ground.framing import MAX_PACKET_LENGTH, PacketSplitter, SplitResult
from tests.fixtures.ground.collector.support import packet, packets, sequence_counts

GARBAGE = b"\xff\xee\xdd" * 5  # version-7 bytes: never a header


def split(data: bytes, known: tuple[int, ...] | None = (100, 200), **kwargs: int) -> SplitResult:
    splitter = PacketSplitter(known_apids=known, **kwargs)
    return splitter.feed(data).extend(splitter.finish())


def split_in_chunks(data: bytes, sizes: list[int], known: tuple[int, ...] | None = (100, 200)) -> SplitResult:
    splitter = PacketSplitter(known_apids=known)
    result = SplitResult()
    position = 0
    for size in sizes:
        result.extend(splitter.feed(data[position : position + size]))
        position += size
    result.extend(splitter.feed(data[position:]))
    return result.extend(splitter.finish())


def with_length_field(raw: bytes, packet_length: int) -> bytes:
    """``raw`` with its length field rewritten to claim ``packet_length`` bytes."""
    return raw[:4] + struct.pack(">H", packet_length - 7) + raw[6:]


def test_back_to_back_packets_come_out_unchanged() -> None:
    stream = packets(5) + packets(3, apid=200, size=30)
    result = split(b"".join(stream))
    assert result.packets == stream
    assert result.rejects == [] and result.idle == 0
    assert result.ends[-1] == len(b"".join(stream))


def test_garbage_between_packets_is_one_reject_and_the_packets_around_it_stay() -> None:
    good = packets(4)
    result = split(good[0] + good[1] + GARBAGE + good[2] + good[3])
    assert result.packets == good
    assert [(r.data, r.reason) for r in result.rejects] == [
        (GARBAGE, "15 bytes are not a packet: version 7 header at offset 32")
    ]


@pytest.mark.parametrize("chunk", [1, 2, 5, 7, 16, 17, 1000])
def test_any_chunking_gives_the_same_packets(chunk: int) -> None:
    good = packets(6, size=20)
    data = good[0] + GARBAGE + b"".join(good[1:])
    result = split_in_chunks(data, [chunk] * (len(data) // chunk))
    assert result.packets == good
    assert [r.data for r in result.rejects] == [GARBAGE]


def test_a_length_running_over_the_next_packets_is_rejected_and_they_are_kept() -> None:
    good = packets(4)
    liar = with_length_field(packet(100, 9), 36)  # 16 bytes on the wire, claims 36
    result = split(good[0] + liar + good[1] + good[2] + good[3])
    assert result.packets == good
    assert [(r.data, r.reason) for r in result.rejects] == [
        (liar, "16 bytes are not a packet: the header at offset 16 gives a length of 36 bytes, but a packet starts "
         "16 bytes in")
    ]  # fmt: skip


def test_a_length_past_the_end_of_the_body_is_a_truncated_packet() -> None:
    good = packets(2)
    result = split(good[0] + good[1][:8])
    assert result.packets == [good[0]]
    assert [(r.data, r.reason) for r in result.rejects] == [
        (good[1][:8], "truncated stream: 8 bytes left, the packet needs 16")
    ]


def test_a_body_ending_inside_a_header_is_truncated_too() -> None:
    result = split(packet(100, 0) + b"\x00\x64\xc0")
    assert result.rejects[0].reason == "truncated stream: 3 bytes left, a packet header needs 6"


def test_a_short_length_keeps_the_known_packet_and_rejects_the_rest_of_its_bytes() -> None:
    good = packets(3)
    short = with_length_field(packet(100, 9), 10)  # 16 bytes on the wire, claims 10
    result = split(good[0] + short + good[1] + good[2])
    assert sequence_counts(result.packets) == [0, 9, 1, 2]
    assert [r.data for r in result.rejects] == [short[10:]]


def test_unknown_apids_are_packets_not_rejects() -> None:
    stream = [packet(100, 0), packet(300, 0), packet(100, 1), packet(301, 5)]
    result = split(b"".join(stream))
    assert result.packets == stream
    assert result.rejects == []


def test_without_known_apids_every_plausible_packet_is_taken() -> None:
    stream = [packet(1, 0), packet(2, 0), packet(3, 0)]
    assert split(b"".join(stream), known=None).packets == stream


def test_idle_packets_are_dropped_and_counted() -> None:
    good = packets(2)
    result = split(good[0] + packet(2047, 0) + packet(2047, 1) + good[1])
    assert result.packets == good and result.idle == 2 and result.rejects == []


def test_wrong_version_and_oversized_headers_are_named() -> None:
    version_one = bytes([0x20]) + packet(100, 0)[1:]
    result = split(version_one + packet(100, 1))
    assert result.rejects[0].reason == "16 bytes are not a packet: version 1 header at offset 0"
    huge = with_length_field(packet(100, 0), 5000)
    result = split(huge + packet(100, 1), max_packet_length=1500)
    assert result.rejects[0].reason == (
        "16 bytes are not a packet: the header at offset 0 gives a length of 5000 bytes, over the maximum of 1500"
    )
    assert sequence_counts(result.packets) == [1]


def test_garbage_first_and_last_and_only() -> None:
    good = packets(2)
    assert split(GARBAGE + good[0] + good[1]).packets == good
    tail = split(good[0] + good[1] + GARBAGE)
    assert tail.packets == good and [r.data for r in tail.rejects] == [GARBAGE]
    only = split(GARBAGE * 100)
    assert only.packets == [] and [len(r.data) for r in only.rejects] == [1500]


def test_endless_garbage_is_given_out_in_bounded_rejects() -> None:
    splitter = PacketSplitter(max_packet_length=2000, known_apids=(100,))
    result = splitter.feed(bytes([0xE0 | i % 16 for i in range(100_000)]))
    assert splitter.pending < 2100
    assert sum(len(r.data) for r in result.rejects) + splitter.pending == 100_000
    assert len(splitter.finish().rejects) == 1


def test_a_packet_ending_at_the_end_of_the_bytes_so_far_is_given_out_at_once() -> None:
    splitter = PacketSplitter(known_apids=(100,))
    assert splitter.feed(packet(100, 0)).packets == [packet(100, 0)]
    waiting = splitter.feed(packet(100, 1) + packet(100, 2)[:3])
    assert waiting.packets == []  # packet 1 waits for the next header to confirm its length
    assert splitter.feed(packet(100, 2)[3:]).packets == [packet(100, 1), packet(100, 2)]


def test_drop_pending_and_offsets() -> None:
    splitter = PacketSplitter(known_apids=(100,))
    splitter.feed(packet(100, 0) + packet(100, 1)[:10])
    assert splitter.offset == 16 and splitter.pending == 10
    assert splitter.drop_pending() == packet(100, 1)[:10]
    assert splitter.pending == 0 and splitter.offset == 26
    assert splitter.feed(packet(100, 2)).packets == [packet(100, 2)]


def test_max_packet_length_is_checked() -> None:
    with pytest.raises(ValueError, match=r"7\.\.65542"):
        PacketSplitter(max_packet_length=MAX_PACKET_LENGTH + 1)


def test_random_streams_lose_no_byte() -> None:
    """Whatever the mix of packets and junk and however it is chunked, the stream comes out in order, every
    byte once: as a packet, a reject or a dropped idle packet."""
    rng = random.Random(23)
    for _ in range(60):
        parts: list[bytes] = []
        junk = False
        for _ in range(rng.randint(1, 30)):
            roll = rng.random()
            if roll < 0.7:
                parts.append(packet(rng.choice((100, 200, 300)), rng.randrange(16384), rng.randint(1, 60)))
            elif roll < 0.8:
                parts.append(packet(2047, 0, rng.randint(1, 20)))
            else:
                parts.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))))
                junk = True
        data = b"".join(parts)
        result = split_in_chunks(data, [rng.randint(1, 50) for _ in range(len(data) // 25)])
        assert result.ends == sorted(set(result.ends)) and result.ends[-1] == len(data)
        packet_index = reject_index = idle = 0
        for start, end in zip([0, *result.ends], result.ends, strict=False):
            unit = data[start:end]
            if packet_index < len(result.packets) and unit == result.packets[packet_index]:
                packet_index += 1
            elif reject_index < len(result.rejects) and unit == result.rejects[reject_index].data:
                reject_index += 1
            else:
                assert SpacePacketHeader.unpack(unit).apid == 2047
                idle += 1
        assert (packet_index, reject_index, idle) == (len(result.packets), len(result.rejects), result.idle)
        if not junk:
            assert result.rejects == []
            assert result.packets == [p for p in parts if SpacePacketHeader.unpack(p).apid != 2047]
