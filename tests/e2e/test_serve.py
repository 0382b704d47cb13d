"""``satlake serve`` as a user runs it: the command starts in the foreground on the given port with its startup
line, answers STAC searches over the root's catalog table, sends a browser at ``/`` to the map, and stops on
Ctrl-C (SIGINT, exit code 130) leaving the port free; and the API over the lakehouse of ``satlake demo`` passes
stac-api-validator."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from satlake.serving.server import build_app
from satlake.settings import Settings
from tests.unit.serving.stac_catalog import ALL_IDS, catalogued_root, free_port, served
from tests.unit.serving.stac_validator import run_stac_api_validator

REPO = Path(__file__).resolve().parents[2]
# Around the demo's simulated Earth tiles (central Europe).
DEMO_AREA = {"type": "Polygon", "coordinates": [[[13.0, 50.0], [21.0, 50.0], [21.0, 51.0], [13.0, 51.0], [13.0, 50.0]]]}


def request(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_serve_answers_searches_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    root = catalogued_root(tmp_path)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SATLAKE_")}
    env.update(SATLAKE_ROOT=str(root), SATLAKE_MODE="embedded")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "satlake", "serve", "--port", str(port)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as a script's background job starts
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


def test_stac_api_validator_passes_on_the_demo_lakehouse(demo_lakehouse: Path) -> None:
    """The issue's acceptance run: `satlake demo`, then the API over its lakehouse, validated for every declared
    conformance class, with the Mars scene found by its target and never by an Earth box."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SATLAKE_")}
    env.update(SATLAKE_ROOT=str(demo_lakehouse), SATLAKE_MODE="embedded")
    app = build_app(Settings.from_env(env), environ={})
    with served(app) as url:
        code, output, classes = run_stac_api_validator(url, "satlake-sim", DEMO_AREA, "properties.platform")
        assert {"core", "collections", "features", "item-search", "filter"} <= set(classes)
        assert code == 0 and "Errors: none" in output, output[-6000:]
        mars = search(url, {"filter": "A_CONTAINS(ssys:targets, ('mars'))"})
        # The synthetic Mars scene, and the rover photos and timelapses of the demo's Mars section.
        assert "satlake-sim-mars" in {item["collection"] for item in mars}
        assert all(item["collection"] == "satlake-sim-mars" or item["collection"].startswith("mars-") for item in mars)
        assert all(item["properties"]["ssys:targets"] == ["mars"] and item["geometry"] is None for item in mars
                   if item["collection"].startswith("mars-"))  # fmt: skip
        everywhere = search(url, {"bbox": "-180,-90,180,90", "limit": "100"})
        assert everywhere and all(item["collection"] != "satlake-sim-mars" for item in everywhere)


def search(url: str, params: dict[str, str]) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{url}/search?{urllib.parse.urlencode(params)}", timeout=30) as response:
        return json.load(response)["features"]


def test_serve_on_a_taken_port_says_so_and_exits_2(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SATLAKE_")}
    env.update(SATLAKE_ROOT=str(tmp_path), SATLAKE_MODE="embedded")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "satlake", "serve", "--port", str(port)], env=env, cwd=REPO,
                                capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"cannot listen on 127.0.0.1:{port} (Address already in use)" in result.stderr
    assert "--port" in result.stderr and "ready" not in result.stdout
