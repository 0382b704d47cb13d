"""``satlake serve`` as a user runs it: the command starts in the foreground on the given port with its startup
line, answers STAC searches over the root's catalog table, sends a browser at ``/`` to the map, and stops on
Ctrl-C (SIGINT, exit code 130) leaving the port free."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.unit.serving.stac_catalog import ALL_IDS, catalogued_root, free_port

REPO = Path(__file__).resolve().parents[2]


def request(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.skipif(
    "serving" not in {entry.name for entry in entry_points(group="satlake.cli")},
    reason="the satlake.cli entry point 'serving' is not installed; run pip install --no-deps -e .",
)
def test_serve_answers_searches_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    root = catalogued_root(tmp_path)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SATLAKE_")}
    env.update(SATLAKE_ROOT=str(root), SATLAKE_MODE="embedded")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "satlake", "serve", "--port", str(port)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + 90
        lines: list[str] = []
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            assert line or server.poll() is None, "".join(lines)
            lines.append(line)
            if line.startswith("satlake API ready"):
                break
        assert lines[-1].strip() == f"satlake API ready at http://127.0.0.1:{port} (STAC at /, map at /map)"

        status, _, body = request(port, "/search?limit=10")
        assert status == 200
        assert [feature["id"] for feature in json.loads(body)["features"]] == ALL_IDS
        status, headers, _ = request(port, "/", {"Accept": "text/html"})
        assert status == 303 and headers["location"] == "/map"
        status, _, body = request(port, "/search?bbox=1,2")
        assert status == 400 and json.loads(body)["parameter"] == "bbox"

        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 130
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # the port is free again
