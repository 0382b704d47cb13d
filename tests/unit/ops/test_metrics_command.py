"""`satlake metrics serve` as the CLI runs it: the startup line, /metrics over HTTP, a taken port refused."""

from __future__ import annotations

import argparse
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from satlake.cli_support import CliError
from satlake.ops.commands import add_ops_commands, cmd_metrics_serve


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="satlake")
    add_ops_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_serve_prints_where_and_answers_scrapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SATLAKE_ROOT", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    port = free_port()
    args = parse(["metrics", "serve", "--port", str(port), "--seconds", "8"])
    outcome: list[int] = []
    thread = threading.Thread(target=lambda: outcome.append(cmd_metrics_serve(args)))
    thread.start()
    text = fetch(f"http://127.0.0.1:{port}/metrics")
    thread.join(timeout=30)
    assert outcome == [0]
    assert f"serving http://127.0.0.1:{port}/metrics (embedded mode, root {tmp_path})" in capsys.readouterr().out
    assert 'satlake_scenes_total{outcome="quarantined"} 0.0' in text
    assert "satlake_exporter_scrape_errors_total 0.0" in text


def test_a_taken_port_is_refused_with_the_setting_that_moves_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SATLAKE_ROOT", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CliError, match=rf"127\.0\.0\.1:{port}.*--port or SATLAKE_METRICS_PORT"):
            cmd_metrics_serve(parse(["metrics", "serve", "--port", str(port), "--seconds", "1"]))
