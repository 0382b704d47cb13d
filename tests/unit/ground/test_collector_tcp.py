"""The collector's TCP front over real sockets, publishing into the embedded log: AUTH and anonymous streams,
refusals that publish nothing, health checks, every kind of bad stream, frames, backpressure while the log is
behind, retries, two collectors on one log, graceful stop."""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from satlake.ground.collector_tcp import READ_CHUNK_BYTES, Refused, parse_auth_line
from satlake.ground.envelope import Kind
from satlake.ground.frames import build_frames
from tests.fixtures.ground.collector.support import (
    STATION,
    TOPIC,
    BlockingLog,
    auth,
    envelopes,
    local_log,
    packet,
    packets,
    published_packets,
    published_rejects,
    running_collector,
    sequence_counts,
    tcp_exchange,
)

pytestmark = pytest.mark.timeout(120)


def test_an_authenticated_stream_is_published_with_station_and_ground_time(tmp_path: Path) -> None:
    log = local_log(tmp_path)
    sent = packets(20) + packets(5, apid=200, size=30)
    before = time.time_ns()
    with running_collector(log) as collector:
        assert collector.ports is not None and collector.ports.tcp
        answer = tcp_exchange(collector.ports.tcp, auth() + b"".join(sent))
    after = time.time_ns()
    assert answer == [b"OK demosat", b'DONE {"accepted": 25, "rejected": 0, "reasons": {}}']
    published = envelopes(log)
    assert sorted(e.payload for e in published) == sorted(sent)
    assert [p for p in published_packets(log) if p[1] == 100] == sent[:20]  # one APID stays in order
    assert {e.station for e in published} == {STATION} and {e.kind for e in published} == {Kind.PACKET}
    assert all(before <= e.received_ns <= after for e in published)
    keys = {record.key for record in log.read(TOPIC, {}, 100)}
    assert keys == {b"100", b"200"}


@pytest.mark.parametrize(
    ("stream", "why"),
    [
        (b"".join(packets(3)), "does not start with an AUTH line"),
        (auth(token="wrong") + b"".join(packets(3)), "token is wrong"),
        (auth(station="gs-nobody") + b"".join(packets(3)), "'gs-nobody' is unknown"),
        (auth(station="gs-other", token="other") + b"".join(packets(3)), "may not send 'demosat'"),
        (auth(mission="nosat") + b"".join(packets(3)), "unknown mission 'nosat'"),
        (b"AUTH only-two\n" + b"".join(packets(3)), "malformed AUTH line"),
        (auth(options=" speed=9") + b"".join(packets(3)), "unknown AUTH option 'speed=9'"),
    ],
)
def test_refused_streams_are_closed_and_publish_nothing(
    tmp_path: Path, stream: bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = local_log(tmp_path)
    with caplog.at_level(logging.WARNING, "satlake.ground.collector"), running_collector(log) as collector:
        assert collector.ports is not None and collector.ports.tcp
        answer = tcp_exchange(collector.ports.tcp, stream)
    assert len(answer) == 1 and answer[0].startswith(b"ERR ") and why in answer[0].decode()
    assert envelopes(log) == []
    assert any(why in record.getMessage() for record in caplog.records)


def test_wrong_credentials_are_counted(tmp_path: Path) -> None:
    with running_collector(local_log(tmp_path)) as collector:
        assert collector.ports is not None and collector.ports.tcp
        tcp_exchange(collector.ports.tcp, auth(token="wrong") + packet(100, 0))
        assert collector.metrics.auth_failures.labels("tcp")._value.get() == 1


def test_anonymous_streams_when_the_link_is_trusted(tmp_path: Path) -> None:
    log = local_log(tmp_path)
    with running_collector(log, anonymous_station="gs-trusted", anonymous_mission="demosat") as collector:
        assert collector.ports is not None and collector.ports.tcp
        assert tcp_exchange(collector.ports.tcp, b"".join(packets(4))) == []  # a raw link gets no answers
        time.sleep(0.2)
    assert published_packets(log) == packets(4)
    assert {e.station for e in envelopes(log)} == {"gs-trusted"}


def test_an_empty_connection_is_a_silent_health_check(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = local_log(tmp_path)
    with caplog.at_level(logging.INFO, "satlake.ground.collector"), running_collector(log) as collector:
        assert collector.ports is not None and collector.ports.tcp
        for _ in range(3):
            socket.create_connection(("127.0.0.1", collector.ports.tcp)).close()
        time.sleep(0.3)
        assert tcp_exchange(collector.ports.tcp, auth() + packet(100, 0))[0] == b"OK demosat"
    connection_lines = [r.getMessage() for r in caplog.records if "TCP" in r.getMessage()]
    assert connection_lines and all("127.0.0.1" in line and "station gs-kiruna" in line for line in connection_lines)
    assert published_packets(log) == [packet(100, 0)]


def test_bad_streams_keep_their_good_packets_and_reject_the_rest(tmp_path: Path) -> None:
    log = local_log(tmp_path)
    good = packets(8)
    liar = packet(100, 50)[:4] + (36 - 7).to_bytes(2, "big") + packet(100, 50)[6:]  # claims 36 bytes, has 16
    garbage = b"\xff\xfe\xfd\xfc" * 3
    stream = good[0] + good[1] + garbage + good[2] + liar + good[3] + good[4] + packet(300, 1) + good[5] + good[6]
    stream += good[7][:9]  # the stream ends inside a packet
    with running_collector(log) as collector:
        assert collector.ports is not None and collector.ports.tcp
        answer = tcp_exchange(collector.ports.tcp, auth() + stream)
    assert answer[-1].startswith(b'DONE {"accepted": 8, "rejected": 3')
    assert sorted(published_packets(log)) == sorted([*good[:7], packet(300, 1)])  # unknown APID 300 is kept
    assert sorted((r.payload, r.reason) for r in published_rejects(log)) == sorted([
        (garbage, "12 bytes are not a packet: version 7 header at offset 32"),
        (liar, "16 bytes are not a packet: the header at offset 60 gives a length of 36 bytes, but a packet starts "
               "16 bytes in"),
        (good[7][:9], "truncated stream: 9 bytes left, the packet needs 16"),
    ])  # fmt: skip


def test_frames_over_tcp(tmp_path: Path) -> None:
    log = local_log(tmp_path)
    sent = packets(12, size=40)
    frames = build_frames(sent, spacecraft_id=42, vc_id=1, frame_length=64)
    frames[5] = frames[5][:20] + bytes([frames[5][20] ^ 0x55]) + frames[5][21:]
    with running_collector(log) as collector:
        assert collector.ports is not None and collector.ports.tcp
        answer = tcp_exchange(collector.ports.tcp, auth(options=" frames=64") + b"".join(frames))
    assert answer[0] == b"OK demosat"
    assert sequence_counts(published_packets(log)) == [0, 1, 2, 3, 4, 5, 8, 9, 10, 11]
    reasons = sorted(r.reason for r in published_rejects(log))
    assert "frame CRC mismatch (VC 1, frame count 5)" in reasons


def test_auth_line_options_parse() -> None:
    assert (
        parse_auth_line("AUTH gs tok sat frames=1115 fecf=0")[3]
        == parse_auth_line("AUTH gs tok sat frames=1115 fecf=no")[3]
    )
    frames = parse_auth_line("AUTH gs tok sat frames=1115")[3]
    assert frames is not None and (frames.length, frames.fecf) == (1115, True)
    with pytest.raises(Refused, match="frame length must be"):
        parse_auth_line("AUTH gs tok sat frames=5")
    with pytest.raises(Refused, match="fecf= needs frames"):
        parse_auth_line("AUTH gs tok sat fecf=0")


def test_the_collector_stops_reading_while_the_log_is_behind(tmp_path: Path) -> None:
    behind = BlockingLog(local_log(tmp_path))
    data = auth() + b"".join(packets(16_000, size=1000))  # 16 MB: more than the socket buffers hold
    sent = threading.Event()
    with running_collector(behind) as collector:
        assert collector.ports is not None and collector.ports.tcp
        connection = socket.create_connection(("127.0.0.1", collector.ports.tcp), timeout=30)

        def send() -> None:
            connection.sendall(data)
            connection.shutdown(socket.SHUT_WR)
            sent.set()

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        assert behind.entered.wait(10)
        time.sleep(1.0)
        read_so_far = collector.metrics.bytes.labels("demosat", "tcp")._value.get()
        assert not sent.is_set(), "the sender should be held back while the log is behind"
        assert read_so_far <= READ_CHUNK_BYTES  # one read, then nothing until the append returns
        behind.release.set()
        assert sent.wait(60)
        answer = connection.makefile("rb").read().splitlines()
        connection.close()
    assert answer[-1] == b'DONE {"accepted": 16000, "rejected": 0, "reasons": {}}'
    assert len(published_packets(behind)) == 16_000


def test_a_refused_append_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    flaky = BlockingLog(local_log(tmp_path))
    flaky.release.set()
    flaky.fail_next = 2
    with running_collector(flaky) as collector:
        assert collector.ports is not None and collector.ports.tcp
        answer = tcp_exchange(collector.ports.tcp, auth() + b"".join(packets(10)))
        assert collector.metrics.publish_failures._value.get() == 2
    assert answer[-1].startswith(b'DONE {"accepted": 10')
    assert published_packets(flaky) == packets(10)


def test_two_collectors_side_by_side_on_one_log(tmp_path: Path) -> None:
    log_a, log_b = local_log(tmp_path), local_log(tmp_path)  # two handles on one directory, as two processes
    with running_collector(log_a, name="col1") as one, running_collector(log_b, name="col2") as two:
        assert one.ports is not None and two.ports is not None and one.ports.tcp != two.ports.tcp
        threads = [
            threading.Thread(target=tcp_exchange, args=(port, auth() + b"".join(packets(500, first=first))))
            for port, first in ((one.ports.tcp, 0), (two.ports.tcp, 500), (one.ports.tcp, 1000))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sorted(sequence_counts(published_packets(local_log(tmp_path)))) == list(range(1500))


def test_stopping_publishes_what_was_read(tmp_path: Path) -> None:
    log = local_log(tmp_path)
    with running_collector(log) as collector:
        assert collector.ports is not None and collector.ports.tcp
        connection = socket.create_connection(("127.0.0.1", collector.ports.tcp), timeout=10)
        connection.sendall(auth() + b"".join(packets(30)) + packet(100, 99)[:5])
        assert connection.recv(100) == b"OK demosat\n"
        time.sleep(0.3)
    # the stream was still open: the collector stopped it, published the packets and the cut-off bytes
    assert published_packets(log) == packets(30)
    assert [r.reason for r in published_rejects(log)] == ["truncated stream: 5 bytes left, a packet header needs 6"]
    connection.close()


def test_no_input_crashes_the_collector(tmp_path: Path) -> None:
    log = local_log(tmp_path)
    rng = random.Random(7)
    with running_collector(log, anonymous_station="gs-trusted", anonymous_mission="demosat") as collector:
        assert collector.ports is not None and collector.ports.tcp and collector.ports.http
        for _ in range(20):
            junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3000)))
            tcp_exchange(collector.ports.tcp, junk, timeout_s=15)
        tcp_exchange(collector.ports.tcp, b"AUTH " + bytes(range(256)) * 8)  # no end of line, not ASCII
        assert tcp_exchange(collector.ports.tcp, auth() + packet(100, 1))[0] == b"OK demosat"
        metrics = requests.get(f"http://127.0.0.1:{collector.ports.http}/metrics", timeout=10).text
    assert 'satlake_collector_packets_total{mission="demosat",transport="tcp"}' in metrics
    assert packet(100, 1) in published_packets(log)


def test_an_auth_line_sent_on_its_own_then_the_packets(tmp_path: Path) -> None:
    log = local_log(tmp_path)
    with running_collector(log) as collector:
        assert collector.ports is not None and collector.ports.tcp
        with socket.create_connection(("127.0.0.1", collector.ports.tcp), timeout=20) as connection:
            answers = connection.makefile("rb")
            connection.sendall(auth()[:7])
            time.sleep(0.1)
            connection.sendall(auth()[7:])
            assert answers.readline() == b"OK demosat\n"
            for raw in packets(5):
                connection.sendall(raw)
            connection.shutdown(socket.SHUT_WR)
            assert answers.readline().startswith(b'DONE {"accepted": 5, "rejected": 0')
    assert published_packets(log) == packets(5)


def test_missions_that_cannot_be_loaded_refuse_streams(tmp_path: Path) -> None:
    from satlake.ground.collector import Collector
    from satlake.ground.collector_core import CollectorConfig

    def unreachable() -> dict[str, object]:
        raise RuntimeError("the catalog is unreachable")

    collector = Collector(local_log(tmp_path), unreachable, unreachable, CollectorConfig(tcp_port=0, http_port=0))  # type: ignore[arg-type]
    ports = collector.start()
    try:
        assert ports.tcp is not None
        answer = tcp_exchange(ports.tcp, auth() + packet(100, 0))
        response = requests.post(
            f"http://127.0.0.1:{ports.http}/v1/missions/demosat/packets",
            data=packet(100, 0),
            headers={"Authorization": "Bearer x", "X-Satlake-Station": STATION},
            timeout=30,
        )
    finally:
        collector.stop()
    assert answer == [b"ERR the missions and stations could not be loaded: the catalog is unreachable"]
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"


COLLECT = """
import argparse, sys
from satlake.ground.collector_commands import add_collector_commands
parser = argparse.ArgumentParser()
add_collector_commands(parser.add_subparsers(dest="command"))
args = parser.parse_args(["collect", "--tcp-port", "0", "--http-port", "0", "--name", "colx"])
sys.exit(args.func(args))
"""


def test_satlake_collect_serves_registered_stations_and_stops_on_sigterm(tmp_path: Path) -> None:
    import os
    import re
    import signal
    import subprocess
    import sys

    from satlake.ground.registry import add_mission, add_station
    from satlake.resources import build_resources
    from satlake.settings import Settings

    repository = Path(__file__).resolve().parents[3]
    environment = {**os.environ, "SATLAKE_ROOT": str(tmp_path / "root"), "PYTHONPATH": str(repository)}
    settings = Settings.from_env(environment)
    lakehouse = build_resources(settings).lakehouse
    add_mission(lakehouse, settings, "demosat", repository / "satlake" / "ground" / "missions" / "demosat.xml")
    _station, token = add_station(lakehouse, "gs-svalbard", ("demosat",))
    process = subprocess.Popen([sys.executable, "-c", COLLECT], env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        match = re.search(r"listening on tcp://127\.0\.0\.1:(\d+) and http://127\.0\.0\.1:(\d+)", ready)
        assert match, ready + (process.stderr.read() if process.stderr else "")
        tcp_port = int(match.group(1))
        sent = [packet(100, i) for i in range(10)] + [packet(101, i) for i in range(5)]
        answer = tcp_exchange(tcp_port, auth("gs-svalbard", token, "demosat") + b"".join(sent))
        assert answer[-1].startswith(b'DONE {"accepted": 15, "rejected": 0')
        refused = tcp_exchange(tcp_port, auth("gs-svalbard", "not-the-token", "demosat") + b"".join(sent))
        assert refused[0].startswith(b"ERR ")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert sorted(published_packets(build_resources(settings).event_log)) == sorted(sent)
