"""The collector's HTTP front over real sockets, publishing into the embedded log: answers only after the log
acknowledged, every status a station can get (200, 400, 401, 404, 413, 429, 503), frames, health and metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from satlake.ground.frames import build_frames
from tests.fixtures.ground.collector.support import (
    MISSION,
    STATION,
    TOKEN,
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
HEADERS = {"Authorization": f"Bearer {TOKEN}", "X-Satlake-Station": STATION}


def url(port: int | None, mission: str = MISSION) -> str:
    return f"http://127.0.0.1:{port}/v1/missions/{mission}/packets"


def post(port: int | None, body: bytes, headers: dict[str, str] | None = None, **params: str) -> requests.Response:
    return requests.post(url(port), data=body, headers=HEADERS if headers is None else headers, params=params,
                         timeout=60)  # fmt: skip


def test_a_post_is_published_and_answered_with_counts(tmp_path: Path) -> None:
    log = local_log(tmp_path)
    good = packets(6)
    body = good[0] + good[1] + b"\xee" * 7 + good[2] + packet(2047, 0) + b"".join(good[3:]) + good[0][:3]
    with running_collector(log) as collector:
        response = post(collector.ports.http if collector.ports else None, body)
    assert response.status_code == 200
    assert response.json() == {
        "accepted": 6,
        "rejected": 2,
        "idle": 1,
        "reasons": {
            "7 bytes are not a packet: version 7 header at offset 32": 1,
            "truncated stream: 3 bytes left, a packet header needs 6": 1,
        },
    }
    assert published_packets(log) == good
    assert {e.station for e in envelopes(log)} == {STATION}
    assert sorted(r.payload for r in published_rejects(log)) == sorted([b"\xee" * 7, good[0][:3]])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Satlake-Station": STATION},
        {"Authorization": f"Bearer {TOKEN}"},
        {"Authorization": "Bearer wrong", "X-Satlake-Station": STATION},
        {"Authorization": f"Basic {TOKEN}", "X-Satlake-Station": STATION},
        {"Authorization": "Bearer other", "X-Satlake-Station": "gs-other"},  # a station of another mission
    ],
)
def test_bad_credentials_get_401_and_publish_nothing(tmp_path: Path, headers: dict[str, str]) -> None:
    log = local_log(tmp_path)
    with running_collector(log) as collector:
        assert collector.ports is not None
        response = post(collector.ports.http, b"".join(packets(3)), headers)
        assert collector.metrics.auth_failures.labels("http")._value.get() == 1
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer <token>" in response.json()["error"]
    assert envelopes(log) == []


def test_unknown_mission_is_404(tmp_path: Path) -> None:
    with running_collector(local_log(tmp_path)) as collector:
        assert collector.ports is not None
        response = requests.post(url(collector.ports.http, "nosat"), data=packet(100, 0), headers=HEADERS, timeout=30)
    assert response.status_code == 404 and response.json() == {"error": "unknown mission 'nosat'"}


def test_a_body_over_the_limit_is_413_declared_or_streamed(tmp_path: Path) -> None:
    log = local_log(tmp_path)
    body = b"".join(packets(100))  # 1,600 bytes

    def chunked() -> Iterator[bytes]:  # no Content-Length: the collector counts while it reads
        yield body[:800]
        yield body[800:]

    with running_collector(log, max_body_bytes=1000) as collector:
        assert collector.ports is not None
        declared = post(collector.ports.http, body)
        streamed = requests.post(url(collector.ports.http), data=chunked(), headers=HEADERS, timeout=30)
        fits = post(collector.ports.http, body[:992])
    assert declared.status_code == 413 and "limit of 1000" in declared.json()["error"]
    assert streamed.status_code == 413
    assert fits.status_code == 200 and fits.json()["accepted"] == 62
    assert len(published_packets(log)) == 62


def test_429_while_the_log_is_behind_and_200_once_it_caught_up(tmp_path: Path) -> None:
    behind = BlockingLog(local_log(tmp_path))
    first_body, second_body = b"".join(packets(50)), b"".join(packets(50, first=50))  # 800 bytes each
    answers: list[requests.Response] = []
    with running_collector(behind, max_inflight_bytes=1000, retry_after_s=2) as collector:
        assert collector.ports is not None
        port = collector.ports.http
        first = threading.Thread(target=lambda: answers.append(post(port, first_body)))
        first.start()
        assert behind.entered.wait(10)
        throttled = post(port, second_body)
        assert first.is_alive(), "a POST is answered only once the log acknowledged it"
        behind.release.set()
        first.join(30)
        retried = post(port, second_body)
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"
    assert "the log is behind (800 bytes being published)" in throttled.json()["error"]
    assert answers[0].status_code == 200 and retried.status_code == 200
    assert sequence_counts(published_packets(behind)) == list(range(100))
    assert "satlake_collector_throttled_total 1.0" in metrics


def test_503_when_the_log_refuses_the_append(tmp_path: Path) -> None:
    flaky = BlockingLog(local_log(tmp_path))
    flaky.release.set()
    flaky.fail_next = 1
    with running_collector(flaky) as collector:
        assert collector.ports is not None
        refused = post(collector.ports.http, b"".join(packets(5)))
        retried = post(collector.ports.http, b"".join(packets(5)))
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert "the broker did not acknowledge" in refused.json()["error"]
    assert retried.status_code == 200
    assert published_packets(flaky) == packets(5)  # the refused POST left nothing behind


def test_frames_in_a_post(tmp_path: Path) -> None:
    log = local_log(tmp_path)
    sent = packets(10, size=40)
    frames = build_frames(sent, spacecraft_id=42, vc_id=1, frame_length=64)
    frames[3] = frames[3][:30] + bytes([frames[3][30] ^ 1]) + frames[3][31:]
    with running_collector(log) as collector:
        assert collector.ports is not None
        response = post(collector.ports.http, b"".join(frames), frames="true", frame_length="64", fecf="true")
        bad_query = post(collector.ports.http, b"".join(frames), frames="true")
        no_fecf = post(collector.ports.http, b"".join(frames), frames="maybe", frame_length="64")
    assert response.status_code == 200
    answer = response.json()
    assert answer["accepted"] == 8 and answer["reasons"]["frame CRC mismatch (VC 1, frame count 3)"] == 1
    assert sequence_counts(published_packets(log)) == [0, 1, 2, 5, 6, 7, 8, 9]
    assert bad_query.status_code == 400 and "frame_length" in bad_query.json()["error"]
    assert no_fecf.status_code == 400


def test_health_and_metrics(tmp_path: Path) -> None:
    with running_collector(local_log(tmp_path)) as collector:
        assert collector.ports is not None
        base = f"http://127.0.0.1:{collector.ports.http}"
        post(collector.ports.http, b"".join(packets(4)) + b"\xff" * 10)
        post(collector.ports.http, packet(100, 0), {"Authorization": "Bearer nope", "X-Satlake-Station": STATION})
        health = requests.get(f"{base}/healthz", timeout=10)
        head = requests.head(f"{base}/healthz", timeout=10)
        metrics = requests.get(f"{base}/metrics", timeout=10).text
    assert (health.status_code, health.text, head.status_code) == (200, "ok", 200)
    assert 'satlake_collector_packets_total{mission="demosat",transport="http"} 4.0' in metrics
    assert ('satlake_collector_rejects_total{mission="demosat",reason="N bytes are not a packet: version N header at '
            'offset N",transport="http"} 1.0') in metrics  # fmt: skip
    assert 'satlake_collector_auth_failures_total{transport="http"} 1.0' in metrics
    assert 'satlake_collector_bytes_total{mission="demosat",transport="http"} 74.0' in metrics
    assert "satlake_collector_publish_seconds_count 1.0" in metrics


def test_missions_and_stations_are_refreshed_from_their_providers(tmp_path: Path) -> None:
    from satlake.ground.collector import Collector
    from satlake.ground.collector_core import CollectorConfig
    from tests.fixtures.ground.collector.support import FakeMission, FakeStation

    log = local_log(tmp_path)
    missions: dict[str, FakeMission] = {}
    failing = threading.Event()

    def provide_missions() -> dict[str, FakeMission]:
        if failing.is_set():
            raise RuntimeError("the catalog is unreachable")
        return dict(missions)

    collector = Collector(log, provide_missions, lambda: {STATION: FakeStation(STATION, TOKEN)},
                          CollectorConfig(tcp_port=None, http_port=0))  # fmt: skip
    collector.directory.miss_refresh_s = 0.0
    collector.start()
    try:
        assert collector.ports is not None and collector.ports.tcp is None
        assert post(collector.ports.http, packet(100, 0)).status_code == 404
        missions[MISSION] = FakeMission(MISSION, "satlake.packets.demosat", (100,))
        assert post(collector.ports.http, packet(100, 1)).status_code == 200  # registered a moment ago
        failing.set()
        collector.directory.refresh_s = 0.0  # every request reloads, and the reload fails
        assert post(collector.ports.http, packet(100, 2)).status_code == 200  # the missions loaded before serve
    finally:
        collector.stop()
    assert sequence_counts(published_packets(log)) == [1, 2]
