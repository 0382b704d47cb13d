"""HAProxy in front of the packet collectors: the ports and settings, the configuration rendered for the native
stack and for docker-compose.yml (both checked by `haproxy -c`), and a real HAProxy balancing raw TCP streams
and HTTP uploads over two stand-in collectors, leaving out one whose /healthz fails."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from satlake.settings import Settings, endpoint_environment
from satlake.stack.config import COLLECTORS, SERVERS, StackConfig
from satlake.stack.errors import StackError
from satlake.stack.haproxy import (
    COMPOSE_CONFIG,
    CollectorAddress,
    check_haproxy_config,
    compose_haproxy_config,
    find_haproxy,
    haproxy_config_text,
    install_haproxy,
    native_haproxy_config,
)
from satlake.stack.isolated import free_port_run
from tests.unit.infra.collector_standin import StandInCollector

REPO = Path(__file__).resolve().parents[3]
HAPROXY = find_haproxy()
needs_haproxy = pytest.mark.skipif(
    HAPROXY is None, reason="haproxy is not installed (Debian: apt-get install haproxy, or `satlake stack up`)"
)


def _config(tmp_path: Path, **environment: str) -> StackConfig:
    return StackConfig.from_settings(Settings.from_env({"SATLAKE_ROOT": str(tmp_path), **environment}), {})


def test_fronts_are_settings_and_the_collectors_listen_on_the_ports_after_them(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"SATLAKE_ROOT": str(tmp_path), "SATLAKE_COLLECTOR_TCP_PORT": "20015", "SATLAKE_COLLECTOR_HTTP_PORT": "18095"}
    )
    assert Settings.from_env(endpoint_environment(settings)).collector_tcp_port == 20015
    config = StackConfig.from_settings(settings, {})
    assert SERVERS[-3:] == (*COLLECTORS, "haproxy")  # the ingress starts last and stops first
    assert config.ports("haproxy") == {"tcp": 20015, "http": 18095}
    assert config.ports("collector1") == {"tcp": 20016, "http": 18096}
    assert config.ports("collector2") == {"tcp": 20017, "http": 18097}
    assert {config.host(name) for name in ("haproxy", *COLLECTORS)} == {"127.0.0.1"}


def test_default_ports_clash_with_no_other_server_nor_satlake_serve(tmp_path: Path) -> None:
    config = _config(tmp_path)
    ports = [port for server in SERVERS for port in config.ports(server).values()]
    assert len(ports) == len(set(ports)), sorted(ports)
    assert {10015, 10016, 10017, 8095, 8096, 8097} <= set(ports)
    # `satlake serve` (8080), the metrics exporter, Dagster's and Grafana's compose ports.
    assert not {8080, config.metrics_port, 3000, 3001} & set(ports)


def test_native_configuration_balances_both_fronts_over_every_collector(tmp_path: Path) -> None:
    text = native_haproxy_config(_config(tmp_path))
    tcp_backend = text.split("\nbackend collectors_tcp\n")[1].split("\n\n")[0]
    http_frontend = text.split("frontend packets_http\n")[1].split("\n\n")[0]
    http_backend = text.split("\nbackend collectors_http\n")[1]
    assert "bind 127.0.0.1:10015" in text and "bind 127.0.0.1:8095" in http_frontend
    assert "mode tcp" in tcp_backend and "balance leastconn" in tcp_backend and "timeout tunnel 1h" in tcp_backend
    assert "server collector1 127.0.0.1:10016 check port 8096" in tcp_backend
    assert "server collector2 127.0.0.1:10017 check port 8097" in tcp_backend
    assert "option forwardfor" in http_frontend
    assert "mode http" in http_backend and "balance roundrobin" in http_backend
    for backend in (tcp_backend, http_backend):
        assert "option httpchk" in backend and "http-check send meth GET uri /healthz" in backend
    assert "server collector1 127.0.0.1:8096 check" in http_backend
    assert "server collector2 127.0.0.1:8097 check" in http_backend


@needs_haproxy
def test_haproxy_accepts_the_native_configuration_without_warnings(tmp_path: Path) -> None:
    assert HAPROXY is not None
    config_file = tmp_path / "haproxy.cfg"
    config_file.write_text(native_haproxy_config(_config(tmp_path)))
    output = check_haproxy_config(HAPROXY, config_file)
    assert "Configuration file is valid" in output and "WARNING" not in output


def test_compose_configuration_is_the_rendered_one() -> None:
    on_disk = (REPO / COMPOSE_CONFIG).read_text()
    assert on_disk == compose_haproxy_config(), (
        f"regenerate with: python3 -m satlake.stack docker-haproxy {COMPOSE_CONFIG}"
    )
    assert "server collector1 collector1:10016 check port 8096" in on_disk
    assert "server collector2 collector2:8097 check" in on_disk
    assert "bind :10015" in on_disk and "bind :8095" in on_disk


@needs_haproxy
def test_haproxy_accepts_the_compose_configuration() -> None:
    assert HAPROXY is not None
    # Outside Docker the service names do not resolve: HAProxy starts with those servers down (init-addr none).
    output = check_haproxy_config(HAPROXY, REPO / COMPOSE_CONFIG)
    assert "Configuration file is valid" in output


@needs_haproxy
def test_a_configuration_haproxy_refuses_is_an_error_with_its_reasons(tmp_path: Path) -> None:
    assert HAPROXY is not None
    broken = tmp_path / "haproxy.cfg"
    broken.write_text(haproxy_config_text("127.0.0.1", 1, 2, []).replace("balance leastconn", "balance fastest"))
    with pytest.raises(StackError, match=r"(?s)HAProxy refuses .*haproxy\.cfg.*balance only supports"):
        check_haproxy_config(HAPROXY, broken)


def test_apt_installing_no_binary_is_an_error_naming_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("satlake.stack.haproxy.find_haproxy", lambda: None)
    monkeypatch.setattr("satlake.stack.haproxy.apt_install", lambda *args, **kwargs: None)
    log_file = tmp_path / "install-haproxy.log"
    with pytest.raises(StackError, match=rf"apt-get installed haproxy but no haproxy binary .*{log_file.name}"):
        install_haproxy(tmp_path / "cache", log_file, lambda _message: None)


# A real HAProxy over stand-in collectors.


@pytest.fixture
def balanced(tmp_path: Path) -> Iterator[tuple[CollectorAddress, list[StandInCollector]]]:
    """HAProxy on free loopback ports in front of two stand-in collectors; yields (its fronts, the collectors)."""
    if HAPROXY is None:
        pytest.skip("haproxy is not installed (Debian: apt-get install haproxy, or `satlake stack up`)")
    taken: set[int] = set()
    tcp, http = free_port_run(taken, 3), free_port_run(taken, 3)
    collectors = [
        StandInCollector(name, "127.0.0.1", tcp + n, http + n).start() for n, name in enumerate(COLLECTORS, 1)
    ]
    addresses = [CollectorAddress(c.name, c.host, c.tcp_port, c.http_port) for c in collectors]
    config_file = tmp_path / "haproxy.cfg"
    config_file.write_text(haproxy_config_text("127.0.0.1", tcp, http, addresses))
    # Its log goes to a file: a pipe nobody reads fills up and blocks HAProxy (then it cannot even stop).
    with (tmp_path / "haproxy.log").open("w") as log:
        process = subprocess.Popen([str(HAPROXY), "-db", "-f", str(config_file)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(http)
        yield CollectorAddress("haproxy", "127.0.0.1", tcp, http), collectors
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        for collector in collectors:
            collector.stop()


def _wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def _stream(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(payload)
        time.sleep(0.2)  # hold the connection open while the others are opened: least connections spreads them


def _post(port: int, body: bytes) -> dict[str, object]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/missions/demosat/packets", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _streams_settled(collectors: list[StandInCollector], expected: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(len(c.streams) for c in collectors) < expected and time.monotonic() < deadline:
        time.sleep(0.05)


def test_streams_and_uploads_reach_both_collectors_intact(
    balanced: tuple[CollectorAddress, list[StandInCollector]],
) -> None:
    front, collectors = balanced
    payloads = [b"AUTH gs1 token demosat\n" + bytes([n]) * (1000 + n) for n in range(6)]
    threads = [threading.Thread(target=_stream, args=(front.tcp_port, payload)) for payload in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bodies = [f"upload {n}".encode() * 50 for n in range(6)]
    served_by = [_post(front.http_port, body)["collector"] for body in bodies]
    _streams_settled(collectors, len(payloads))
    assert sorted(stream for c in collectors for stream in c.streams) == sorted(payloads)
    assert all(c.streams for c in collectors), [len(c.streams) for c in collectors]
    assert served_by.count("collector1") == served_by.count("collector2") == 3  # round robin
    uploads = [upload for c in collectors for upload in c.uploads]
    assert sorted(upload.body for upload in uploads) == sorted(bodies)
    assert {upload.forwarded_for for upload in uploads} == {"127.0.0.1"}
    assert {upload.path for upload in uploads} == {"/v1/missions/demosat/packets"}


def test_a_collector_whose_healthz_fails_gets_neither_streams_nor_uploads(
    balanced: tuple[CollectorAddress, list[StandInCollector]],
) -> None:
    front, (first, second) = balanced
    second.healthy = False
    # Three failed checks two seconds apart take it out of both backends.
    deadline = time.monotonic() + 20
    recent: list[object] = []
    while recent[-4:] != ["collector1"] * 4:
        assert time.monotonic() < deadline, f"HAProxy kept sending uploads to {second.name}: {recent[-8:]}"
        recent.append(_post(front.http_port, b"probe")["collector"])
        time.sleep(0.25)
    first_before, second_before = len(first.streams), len(second.streams)
    for n in range(4):
        _stream(front.tcp_port, bytes([n]) * 10)
    _streams_settled([first, second], first_before + second_before + 4)
    assert (len(first.streams), len(second.streams)) == (first_before + 4, second_before)
