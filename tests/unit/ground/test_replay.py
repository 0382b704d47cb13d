"""Replaying recorded packet and frame files: straight into the log, through a collector over TCP and HTTP
(pieces of whole packets, retries on 429 and 503), pacing, and the errors a person sees."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

import pytest
import requests

from satlake.cli_support import CliError
from satlake.ground.collector_core import FrameOptions
from satlake.ground.envelope import Kind
from satlake.ground.frames import build_frames
from satlake.ground.replay import Pacer, ReplayError, parse_via, pieces, replay_over_tcp, replay_to_log
from satlake.ground.replay_http import replay_over_http
from tests.fixtures.ground.collector.support import (
    MISSION,
    STATION,
    TOKEN,
    TOPIC,
    BlockingLog,
    envelopes,
    local_log,
    packet,
    packets,
    published_packets,
    published_rejects,
    running_collector,
    sequence_counts,
)

pytestmark = pytest.mark.timeout(120)
GOOD = packets(200, size=30)
BAD_TAIL = packet(100, 999, size=30)[:20]


@pytest.fixture
def recordings(tmp_path: Path) -> list[Path]:
    """Two recorded passes: a clean one, and one with garbage inside and a cut-off last packet."""
    first, second = tmp_path / "pass1.bin", tmp_path / "pass2.bin"
    first.write_bytes(b"".join(GOOD[:100]))
    second.write_bytes(b"".join(GOOD[100:150]) + b"\xfe" * 11 + b"".join(GOOD[150:]) + BAD_TAIL)
    return [first, second]


def check_published(log: object, station: str, garbage_offset: int = 1800) -> None:
    assert sorted(sequence_counts(published_packets(log))) == list(range(200))  # type: ignore[arg-type]
    rejects = published_rejects(log)  # type: ignore[arg-type]
    assert sorted(r.reason for r in rejects) == [
        f"11 bytes are not a packet: version 7 header at offset {garbage_offset}",
        "truncated stream: 20 bytes left, the packet needs 36",
    ]
    assert {e.station for e in envelopes(log)} == {station}  # type: ignore[arg-type]


def test_pieces_are_whole_packets_and_keep_every_byte(recordings: list[Path]) -> None:
    data = recordings[1].read_bytes()
    cut = list(pieces(recordings[1], None, max_bytes=100, max_units=1000))
    assert b"".join(piece for piece, _ in cut) == data
    assert all(len(piece) <= 100 for piece, _ in cut)
    assert sum(units for _, units in cut) == 100 + 2  # packets, the garbage and the cut-off tail
    assert [units for _, units in pieces(recordings[0], None, max_units=7)][:3] == [7, 7, 7]
    frames = build_frames(GOOD[:20], spacecraft_id=1, vc_id=0, frame_length=100)
    path = recordings[0].with_name("frames.bin")
    path.write_bytes(b"".join(frames) + frames[0][:40])
    framed = list(pieces(path, FrameOptions(100), max_bytes=250))
    assert [(len(piece), units) for piece, units in framed] == [(200, 2), (200, 2), (200, 2), (240, 3)]


def test_replay_straight_into_the_log(recordings: list[Path], tmp_path: Path) -> None:
    log = local_log(tmp_path)
    progress: list[int] = []
    summary = replay_to_log(log, TOPIC, recordings, known_apids=(100,), progress=progress.append)
    check_published(log, "replay")
    assert (summary.files, summary.packets, summary.rejects) == (2, 200, 2)
    assert progress[-1] == summary.bytes == sum(p.stat().st_size for p in recordings)
    assert "200 packets, 2 rejects (1 x 11 bytes are not a packet" in summary.line()


def test_replay_frames_straight_into_the_log(tmp_path: Path) -> None:
    log = local_log(tmp_path)
    recording = tmp_path / "frames.bin"
    frames = build_frames(GOOD, spacecraft_id=42, vc_id=2, frame_length=223, fecf=False)
    recording.write_bytes(b"".join(frames))
    summary = replay_to_log(log, TOPIC, [recording], station="gs-x", frames=FrameOptions(223, fecf=False))
    assert published_packets(log) == GOOD and summary.idle == 1
    assert {e.station for e in envelopes(log)} == {"gs-x"}


def test_replay_through_tcp(recordings: list[Path], tmp_path: Path) -> None:
    log = local_log(tmp_path)
    with running_collector(log) as collector:
        assert collector.ports is not None and collector.ports.tcp
        summary = replay_over_tcp("127.0.0.1", collector.ports.tcp, recordings, mission=MISSION, station=STATION,
                                  token=TOKEN)  # fmt: skip
    check_published(log, STATION)
    assert (summary.files, summary.packets, summary.rejects) == (2, 200, 2)


def test_replay_frames_through_tcp(tmp_path: Path) -> None:
    log = local_log(tmp_path)
    recording = tmp_path / "frames.bin"
    recording.write_bytes(b"".join(build_frames(GOOD, spacecraft_id=42, vc_id=2, frame_length=300)))
    with running_collector(log) as collector:
        assert collector.ports is not None and collector.ports.tcp
        summary = replay_over_tcp("127.0.0.1", collector.ports.tcp, [recording], mission=MISSION, station=STATION,
                                  token=TOKEN, frames=FrameOptions(300))  # fmt: skip
    assert summary.packets == 200 and published_packets(log) == GOOD


def test_replay_through_http_in_pieces_of_whole_packets(recordings: list[Path], tmp_path: Path) -> None:
    log = local_log(tmp_path)
    with running_collector(log) as collector:
        assert collector.ports is not None
        summary = replay_over_http(f"http://127.0.0.1:{collector.ports.http}", recordings, mission=MISSION,
                                   station=STATION, token=TOKEN, chunk_bytes=500)  # fmt: skip
    check_published(log, STATION, garbage_offset=1800 - 1404)  # no packet cut in two; offsets count in a POST
    assert (summary.packets, summary.rejects) == (200, 2)


def test_replay_through_http_retries_on_429_and_503(recordings: list[Path], tmp_path: Path) -> None:
    behind = BlockingLog(local_log(tmp_path))
    behind.fail_next = 0
    waits: list[float] = []
    with running_collector(behind, max_inflight_bytes=1000, retry_after_s=3) as collector:
        assert collector.ports is not None
        base = f"http://127.0.0.1:{collector.ports.http}"
        blocker = threading.Thread(
            target=requests.post,
            args=(f"{base}/v1/missions/{MISSION}/packets",),
            kwargs={"data": b"".join(packets(50, first=5000)), "headers": {"Authorization": f"Bearer {TOKEN}",
                    "X-Satlake-Station": STATION}, "timeout": 60},
        )  # fmt: skip
        blocker.start()
        assert behind.entered.wait(10)

        def sleep(seconds: float) -> None:  # the broker catches up while the replay waits
            waits.append(seconds)
            if len(waits) == 1:
                behind.fail_next = 1  # and then refuses one append: a 503
                behind.release.set()
                blocker.join(30)

        summary = replay_over_http(base, recordings[:1], mission=MISSION, station=STATION, token=TOKEN, sleep=sleep)
    assert waits[0] == 3.0  # the Retry-After of the 429
    assert waits[1] >= 0.5 and len(waits) == 2  # the 503, retried after a backoff
    assert summary.packets == 100
    assert sorted(sequence_counts(published_packets(behind))) == [*range(100), *range(5000, 5050)]


def test_refused_credentials_and_unknown_missions_are_clear_errors(recordings: list[Path], tmp_path: Path) -> None:
    log = local_log(tmp_path)
    with running_collector(log) as collector:
        assert collector.ports is not None and collector.ports.tcp
        tcp, http = collector.ports.tcp, f"http://127.0.0.1:{collector.ports.http}"
        with pytest.raises(ReplayError, match=r"refused station 'gs-kiruna' for mission 'demosat': .*token is wrong"):
            replay_over_tcp("127.0.0.1", tcp, recordings, mission=MISSION, station=STATION, token="wrong")
        with pytest.raises(ReplayError, match=r"refused .*does not start with an AUTH line"):
            replay_over_tcp("127.0.0.1", tcp, recordings, mission=MISSION)
        with pytest.raises(ReplayError, match="refused the credentials of station 'gs-kiruna'"):
            replay_over_http(http, recordings, mission=MISSION, station=STATION, token="wrong")
        with pytest.raises(ReplayError, match=r"unknown mission 'nosat'.*register the mission first"):
            replay_over_http(http, recordings, mission="nosat", station=STATION, token=TOKEN)
    assert envelopes(log) == []
    with pytest.raises(ReplayError, match=r"no such file: .*missing\.bin"):
        replay_to_log(log, TOPIC, [tmp_path / "missing.bin"])
    with pytest.raises(ReplayError, match=r"cannot connect to the collector at tcp://127\.0\.0\.1:1"):
        replay_over_tcp("127.0.0.1", 1, recordings, mission=MISSION)
    with pytest.raises(ReplayError, match="use tcp://HOST:PORT or http://HOST:PORT"):
        parse_via("udp://host:1")
    assert parse_via("tcp://127.0.0.1:10015") == ("tcp", "127.0.0.1", 10015)


def test_pacing_holds_the_replay_to_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(100.0, sleep=sleep, clock=lambda: now[0])
    assert pacer.units_per_piece == 10
    for _ in range(10):
        now[0] += 0.01  # sending takes a little time
        pacer(10)
    assert now[0] == pytest.approx(1.0)  # 100 packets at 100 per second take a second
    assert len(slept) == 10
    with pytest.raises(ReplayError, match="positive"):
        Pacer(0)


def _produce_args(*argv: str) -> argparse.Namespace:
    from satlake.ground.collector_commands import add_replay_command

    parser = argparse.ArgumentParser()
    add_replay_command(parser.add_subparsers(dest="what"))
    return parser.parse_args(["packets", *argv])


def test_the_produce_packets_command(recordings: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from satlake.ground.collector_commands import cmd_produce_packets
    from satlake.ground.registry import add_mission
    from satlake.resources import build_resources
    from satlake.settings import Settings

    monkeypatch.setenv("SATLAKE_ROOT", str(tmp_path / "root"))
    with pytest.raises(CliError, match="no such file"):
        cmd_produce_packets(_produce_args(str(tmp_path / "nope.bin"), "--mission", MISSION))
    with pytest.raises(CliError, match="no mission named 'demosat'"):
        cmd_produce_packets(_produce_args(*map(str, recordings), "--mission", MISSION))
    with pytest.raises(CliError, match="--frames needs --frame-length"):
        cmd_produce_packets(_produce_args(str(recordings[0]), "--mission", MISSION, "--frames"))
    settings = Settings.from_env()
    xtce = Path(__file__).resolve().parents[3] / "satlake" / "ground" / "missions" / "demosat.xml"
    add_mission(build_resources(settings).lakehouse, settings, MISSION, xtce)
    assert cmd_produce_packets(_produce_args(*map(str, recordings), "--mission", MISSION)) == 0
    log = build_resources(settings).event_log
    check_published(log, "replay")
    assert all(e.kind is Kind.PACKET or e.reason for e in envelopes(log))
