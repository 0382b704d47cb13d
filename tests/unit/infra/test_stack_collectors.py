"""The stack's packet collectors: their exact command line and environment, and `stack up | status | down` of the
ground stations' ingress (two collectors, then HAProxy) with stand-in collectors behind a real HAProxy."""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
from pathlib import Path

import pytest

from satlake.settings import Settings
from satlake.stack.collectors import SATLAKE_SOURCE, collector_health, prepare_collector
from satlake.stack.config import COLLECTORS, StackConfig
from satlake.stack.credentials import KeyPair
from satlake.stack.errors import StackError
from satlake.stack.haproxy import find_haproxy, haproxy_config_path
from satlake.stack.isolated import free_port_run
from satlake.stack.lifecycle import stack_down, stack_status, stack_up
from satlake.stack.process import owned_pid, process_alive
from satlake.stack.servers import markers
from tests.unit.infra.collector_standin import StandInCollector

STANDIN = Path(__file__).with_name("collector_standin.py")
INGRESS = (*COLLECTORS, "haproxy")
PIPELINE = KeyPair("pipeline-key", "pipeline-secret")


def _settings(tmp_path: Path) -> Settings:
    taken: set[int] = set()
    return Settings.from_env(
        {
            "SATLAKE_ROOT": str(tmp_path / "root"),
            "SATLAKE_MODE": "stack",
            "SATLAKE_KAFKA_BOOTSTRAP": "127.0.0.1:19092",
            "SATLAKE_S3_ENDPOINT": "http://127.0.0.1:19000",
            "SATLAKE_PACKETS_TOPIC_PREFIX": "it.packets",
            "SATLAKE_COLLECTOR_TCP_PORT": str(free_port_run(taken, 3)),
            "SATLAKE_COLLECTOR_HTTP_PORT": str(free_port_run(taken, 3)),
        }
    )


def test_a_collector_runs_satlake_collect_of_this_python_on_its_own_ports(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    config = StackConfig.from_settings(settings, {})
    launch = prepare_collector(config, "collector2", settings, PIPELINE)
    tcp, http = settings.collector_tcp_port + 2, settings.collector_http_port + 2
    assert launch.command == [
        sys.executable,
        "-m",
        "satlake",
        "collect",
        "--stack",
        "--name",
        "collector2",
        "--host",
        "127.0.0.1",
        "--tcp-port",
        str(tcp),
        "--http-port",
        str(http),
    ]
    assert launch.marker == markers(config)["collector2"] and launch.marker in " ".join(launch.command)
    assert launch.cwd == config.server_dir("collector2") and launch.cwd.is_dir()
    # `Settings.from_env()` in the collector finds this stack and only the pipeline's key.
    seen = Settings.from_env(launch.env)
    assert (seen.mode.value, seen.root, seen.kafka_bootstrap, seen.s3_endpoint) == (
        "stack",
        settings.root,
        "127.0.0.1:19092",
        "http://127.0.0.1:19000",
    )
    assert (seen.s3_access_key, seen.s3_secret_key, seen.packets_topic_prefix) == (
        "pipeline-key",
        "pipeline-secret",
        "it.packets",
    )
    assert launch.env["PYTHONPATH"].split(":")[0] == str(SATLAKE_SOURCE)


def test_collector_health_is_its_healthz(tmp_path: Path) -> None:
    taken: set[int] = set()
    tcp, http = free_port_run(taken, 1), free_port_run(taken, 1)
    healthy, detail = collector_health("collector1", "127.0.0.1", tcp, http)
    assert not healthy and f"127.0.0.1:{http}/healthz" in detail
    standin = StandInCollector("collector1", "127.0.0.1", tcp, http).start()
    try:
        assert collector_health("collector1", "127.0.0.1", tcp, http) == (
            True,
            f"collector1 takes packets on tcp://127.0.0.1:{tcp} and http://127.0.0.1:{http}",
        )
        standin.healthy = False
        healthy, detail = collector_health("collector1", "127.0.0.1", tcp, http)
        assert not healthy and "answered 503" in detail
    finally:
        standin.stop()


@pytest.fixture
def standin_collectors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`satlake collect` replaced by the stand-in script, with the same arguments (so the same marker)."""
    if find_haproxy() is None:
        pytest.skip("haproxy is not installed (Debian: apt-get install haproxy, or `satlake stack up`)")
    monkeypatch.setenv("SATLAKE_SERVERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(
        "satlake.stack.collectors.collector_command",
        lambda config, server: [sys.executable, str(STANDIN), *config.collector_arguments(server)],
    )


def _post(port: int) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/missions/demosat/packets", data=b"x", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())["collector"]


def _running(settings: Settings) -> dict[str, int | None]:
    statuses = [status for status in stack_status(settings) if status.name in INGRESS]
    assert all(status.running and status.healthy for status in statuses), statuses
    return {status.name: status.pid for status in statuses}


@pytest.mark.usefixtures("standin_collectors")
def test_up_status_and_down_of_the_collectors_behind_haproxy(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    config = StackConfig.from_settings(settings)
    messages: list[str] = []
    pids: list[int | None] = []
    try:
        stack_up(settings, servers=INGRESS, progress=messages.append)
        first = _running(settings)
        assert [status.port for status in stack_status(settings) if status.name in INGRESS] == [
            settings.collector_tcp_port + 1,
            settings.collector_tcp_port + 2,
            settings.collector_tcp_port,
        ]
        assert haproxy_config_path(config).read_text().count(" check") == 4
        assert {_post(settings.collector_http_port) for _ in range(4)} == set(COLLECTORS)
        assert f"packets tcp://127.0.0.1:{settings.collector_tcp_port}" in messages[-1]
        # A second `up` only checks them.
        again: list[str] = []
        stack_up(settings, servers=INGRESS, progress=again.append)
        assert sum("already running" in message for message in again) == len(INGRESS)
        assert _running(settings) == first
        # Moved ports restart every one of them on the new ports.
        moved = _settings(tmp_path)
        restarted: list[str] = []
        stack_up(moved, servers=INGRESS, progress=restarted.append)
        assert sum(message.startswith(f"{name}: restarting") for name in INGRESS for message in restarted) == 3
        second = _running(moved)
        pids = [*first.values(), *second.values()]
        assert not any(process_alive(pid) for pid in first.values() if pid is not None)
        assert {_post(moved.collector_http_port) for _ in range(4)} == set(COLLECTORS)
    finally:
        stack_down(settings, progress=messages.append)
    assert len(pids) == 2 * len(INGRESS) and all(pid is not None and not process_alive(pid) for pid in pids)
    assert all(owned_pid(config.pid_file(name), markers(config)[name]) is None for name in INGRESS)
    assert any(message.startswith("haproxy: stopped") for message in messages)


@pytest.mark.usefixtures("standin_collectors")
def test_a_taken_collector_port_names_the_setting_that_moves_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.collector_http_port + 1))
        squatter.listen()
        with pytest.raises(StackError) as raised:
            stack_up(settings, servers=("collector1",), progress=lambda _message: None)
    message = str(raised.value)
    assert f"port {settings.collector_http_port + 1} (http)" in message
    assert "SATLAKE_COLLECTOR_HTTP_PORT (the collectors listen on the ports after it)" in message
