"""TM transfer frames: building them (FHP, frame counts, FECF checked by spacepackets), and taking packets out of
a frame stream per virtual channel: packets spanning frames, bad CRCs, frame-count jumps, truncated ends."""

from __future__ import annotations

import binascii

import pytest
from spacepackets.ccsds.tm_frame import TmTransferFrame
from spacepackets.exceptions import InvalidCrcCcitt16Error

from satlake.ground.frames import NO_PACKET_STARTS, FrameDemultiplexer, build_frames
from satlake.ground.framing import SplitResult
from tests.fixtures.ground.collector.support import packet, packets, sequence_counts

FRAME = 64  # 6-byte header + 56-byte data field + 2-byte FECF
SPANNING = packets(10, size=40)  # 46-byte packets: most span two frames


def demultiplex(frames: list[bytes], **kwargs: object) -> tuple[SplitResult, FrameDemultiplexer]:
    demux = FrameDemultiplexer(FRAME, known_apids=(100,), **kwargs)  # type: ignore[arg-type]
    return demux.feed(b"".join(frames)).extend(demux.finish()), demux


def corrupt(frame: bytes, at: int = 10) -> bytes:
    return frame[:at] + bytes([frame[at] ^ 0xFF]) + frame[at + 1 :]


def test_built_frames_pass_spacepackets_crc_check_and_carry_the_first_header_pointer() -> None:
    frames = build_frames(SPANNING, spacecraft_id=42, vc_id=3, frame_length=FRAME, first_frame_count=254)
    assert all(len(f) == FRAME for f in frames)
    parsed = [TmTransferFrame.unpack(f, FRAME, True) for f in frames]
    header = parsed[0].primary_header
    assert (header.master_channel_id.spacecraft_id, header.vc_id) == (42, 3)
    assert [p.primary_header.vc_frame_count for p in parsed[:3]] == [254, 255, 0]
    assert [p.primary_header.frame_datafield_status.first_header_pointer for p in parsed[:4]] == [0, 36, 26, 16]
    assert binascii.crc_hqx(frames[0], 0xFFFF) == 0  # CRC-16/CCITT-FALSE over the frame with its FECF is 0
    with pytest.raises(InvalidCrcCcitt16Error):
        TmTransferFrame.unpack(corrupt(frames[0]), FRAME, True)


def test_a_frame_with_no_packet_start_says_so() -> None:
    frames = build_frames([packet(100, 0, size=150)], spacecraft_id=1, vc_id=0, frame_length=FRAME)
    pointers = [TmTransferFrame.unpack(f, FRAME, True).primary_header.frame_datafield_status.first_header_pointer
                for f in frames]  # fmt: skip
    assert pointers == [0, NO_PACKET_STARTS, 44]  # the last frame starts the idle filler


def test_packets_spanning_frames_come_out_whole_in_order() -> None:
    frames = build_frames(SPANNING, spacecraft_id=42, vc_id=1, frame_length=FRAME)
    result, demux = demultiplex(frames)
    assert result.packets == SPANNING
    assert result.rejects == [] and result.idle == 1  # the filler at the end
    assert demux.stats.frames == len(frames) and demux.stats.per_channel == {1: len(frames)}


def test_frames_fed_a_byte_at_a_time() -> None:
    data = b"".join(build_frames(SPANNING, spacecraft_id=42, vc_id=1, frame_length=FRAME))
    demux = FrameDemultiplexer(FRAME, known_apids=(100,))
    result = SplitResult()
    for byte in data:
        result.extend(demux.feed(bytes([byte])))
    assert result.extend(demux.finish()).packets == SPANNING


def test_a_bad_crc_rejects_the_frame_and_drops_the_packet_it_was_carrying() -> None:
    frames = build_frames(SPANNING, spacecraft_id=42, vc_id=1, frame_length=FRAME)
    result, demux = demultiplex([*frames[:3], corrupt(frames[3]), *frames[4:]])
    # frame 3 holds the end of packet 3 and the start of packet 4: both are lost, the others kept
    assert sequence_counts(result.packets) == [0, 1, 2, 5, 6, 7, 8, 9]
    assert [(len(r.data), r.reason) for r in result.rejects] == [
        (64, "frame CRC mismatch (VC 1, frame count 3)"),
        (
            30,
            "packet cut by a frame that failed the CRC check (VC 1, frame count 3): 30 bytes left, the packet needs 46",
        ),
        (6, "6 bytes continue a packet whose start was not received (VC 1, frame count 4)"),
    ]
    assert demux.stats.bad_crc == 1


def test_a_complete_packet_right_before_a_bad_frame_is_kept() -> None:
    # 12 packets of 46 bytes: packet 5 ends 4 bytes before the end of frame 4, packet 6 starts there
    sent = packets(12, size=40)
    frames = build_frames(sent, spacecraft_id=42, vc_id=1, frame_length=FRAME)
    result, _ = demultiplex([*frames[:5], corrupt(frames[5], 20), *frames[6:]])
    assert sequence_counts(result.packets) == [0, 1, 2, 3, 4, 5, 8, 9, 10, 11]
    assert [len(r.data) for r in result.rejects] == [64, 4, 32]  # the bad frame, the starts of 6 and 7 are lost


def test_a_frame_count_jump_drops_the_carried_partial_packet() -> None:
    frames = build_frames(SPANNING, spacecraft_id=42, vc_id=1, frame_length=FRAME)
    result, demux = demultiplex(frames[:4] + frames[5:])
    assert sequence_counts(result.packets) == [0, 1, 2, 3, 7, 8, 9]
    assert [(len(r.data), r.reason) for r in result.rejects] == [
        (40, "packet cut by a gap in VC 1 frame counts (3 to 5): 40 bytes left, the packet needs 46"),
        (42, "42 bytes continue a packet whose start was not received (VC 1, frame count 5)"),
    ]
    assert demux.stats.count_jumps == 1


def test_frame_counts_wrap_modulo_256_without_a_jump() -> None:
    many = packets(300, size=50)
    frames = build_frames(many, spacecraft_id=7, vc_id=0, frame_length=FRAME, first_frame_count=200)
    result, demux = demultiplex(frames)
    assert result.packets == many and demux.stats.count_jumps == 0


def test_virtual_channels_are_reassembled_separately() -> None:
    first = build_frames(SPANNING, spacecraft_id=42, vc_id=1, frame_length=FRAME)
    second_packets = packets(4, apid=100, size=70, first=100)
    second = build_frames(second_packets, spacecraft_id=42, vc_id=2, frame_length=FRAME)
    interleaved = [f for pair in zip(first, second + [b""] * len(first), strict=False) for f in pair if f]
    result, demux = demultiplex(interleaved)
    assert [p for p in result.packets if p in SPANNING] == SPANNING
    assert [p for p in result.packets if p in second_packets] == second_packets
    assert demux.stats.per_channel == {1: len(first), 2: len(second)}


def test_starting_mid_packet_rejects_the_orphan_bytes() -> None:
    frames = build_frames(SPANNING, spacecraft_id=42, vc_id=1, frame_length=FRAME)
    result, _ = demultiplex(frames[2:])
    assert sequence_counts(result.packets) == [3, 4, 5, 6, 7, 8, 9]
    assert result.rejects[0].reason == "26 bytes continue a packet whose start was not received (VC 1, frame count 2)"


def test_a_truncated_stream_rejects_the_partial_frame_and_the_open_packet() -> None:
    frames = build_frames(SPANNING, spacecraft_id=42, vc_id=1, frame_length=FRAME)
    result, _ = demultiplex([*frames[:-1], frames[-1][:30]])
    assert sequence_counts(result.packets) == list(range(9))
    assert [r.reason for r in result.rejects] == [
        "truncated stream: 30 bytes left, the frame needs 64",
        "truncated stream (VC 1): 34 bytes left, the packet needs 46",
    ]


def test_frames_without_fecf_and_other_frame_faults() -> None:
    plain = build_frames(SPANNING, spacecraft_id=42, vc_id=1, frame_length=FRAME, fecf=False)
    demux = FrameDemultiplexer(FRAME, fecf=False)
    assert demux.feed(b"".join(plain)).extend(demux.finish()).packets == SPANNING
    frames = build_frames(SPANNING, spacecraft_id=42, vc_id=1, frame_length=FRAME)
    aos = bytes([frames[0][0] | 0x40]) + frames[0][1:]  # version field 1 (an AOS frame)
    result, _ = demultiplex([aos])
    assert result.rejects[0].reason.startswith("not a TM transfer frame: version number field 1")


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match=r"frame length must be 9\.\.2047"):
        FrameDemultiplexer(8)
    with pytest.raises(ValueError, match=r"frame length must be 9\.\.2047"):
        build_frames(SPANNING, spacecraft_id=1, vc_id=0, frame_length=2048)
    with pytest.raises(ValueError, match="virtual channel id"):
        build_frames(SPANNING, spacecraft_id=1, vc_id=8, frame_length=FRAME)
    with pytest.raises(ValueError, match="spacecraft id"):
        build_frames(SPANNING, spacecraft_id=1024, vc_id=0, frame_length=FRAME)
    assert build_frames([], spacecraft_id=1, vc_id=0, frame_length=FRAME) == []
