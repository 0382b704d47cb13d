"""Bringing a mission as a user does, on the embedded default: register its XTCE (a broken one is refused with
the file and element named), a station, replay a recorded archive straight into the log and through a running
`satlake collect`, run the pipeline and query the packets and the alarm."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from satlake.ground.simulate import simulate_packets
from satlake.ground.xtce import load_mission_database

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
DEMOSAT = REPO / "satlake" / "ground" / "missions" / "demosat.xml"
BAD = REPO / "tests" / "fixtures" / "ground" / "bad"


def satlake(root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SATLAKE_ROOT": str(root), "SATLAKE_MODE": "embedded"}
    return subprocess.run([sys.executable, "-m", "satlake", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_broken_mission_database_is_refused_naming_the_file_and_element(tmp_path: Path) -> None:
    result = satlake(tmp_path, "mission", "add", "badsat", "--xtce", str(BAD / "unknown_type.xml"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "unknown_type.xml" in result.stderr and "ParameterTypeRef" in result.stderr
    listed = satlake(tmp_path, "mission", "list")
    assert "no mission registered yet" in listed.stdout


def test_a_mission_from_registration_to_its_alarm(tmp_path: Path) -> None:
    added = satlake(tmp_path, "mission", "add", "demosat", "--xtce", str(DEMOSAT))
    assert added.returncode == 0, added.stderr
    assert re.search(r"mission demosat v1 registered .*HK \(APID 100\)", added.stdout)
    again = satlake(tmp_path, "mission", "add", "demosat", "--xtce", str(DEMOSAT))
    assert "is this file already" in again.stdout
    shown = satlake(tmp_path, "mission", "show", "demosat")
    assert "BATT_V" in shown.stdout and "bronze.demosat_hk" in shown.stdout
    station = satlake(tmp_path, "station", "add", "svalbard", "--missions", "demosat")
    assert station.returncode == 0, station.stderr
    token = station.stdout.strip().splitlines()[-1]

    packets = simulate_packets(load_mission_database(DEMOSAT), start=datetime.now(UTC) - timedelta(hours=1),
                               seconds=300)  # fmt: skip
    half = len(packets) // 2
    archive = tmp_path / "pass-1.bin"
    archive.write_bytes(b"".join(packets[:half]))
    direct = satlake(tmp_path, "produce", "packets", "--mission", "demosat", str(archive))
    assert direct.returncode == 0, direct.stderr

    # The second half through a running collector, over TCP, with the station's credentials.
    port = free_port()
    env = {**os.environ, "SATLAKE_ROOT": str(tmp_path), "SATLAKE_MODE": "embedded"}
    collector = subprocess.Popen(
        [sys.executable, "-m", "satlake", "collect", "--tcp-port", str(port), "--http-port", str(free_port())],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        archive2 = tmp_path / "pass-2.bin"
        archive2.write_bytes(b"".join(packets[half:]))
        wrong = satlake(tmp_path, "produce", "packets", "--mission", "demosat", str(archive2),
                        "--via", f"tcp://127.0.0.1:{port}", "--station", "svalbard", "--token", "wrong")  # fmt: skip
        assert wrong.returncode == 2 and "svalbard" in wrong.stderr
        sent = satlake(tmp_path, "produce", "packets", "--mission", "demosat", str(archive2),
                       "--via", f"tcp://127.0.0.1:{port}", "--station", "svalbard", "--token", token)  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(timeout=60)

    ran = satlake(tmp_path, "run")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    counted = satlake(tmp_path, "query", "SELECT count(*) AS n, count(DISTINCT station) AS stations "
                      "FROM bronze.packets WHERE mission = 'demosat'")  # fmt: skip
    assert re.search(rf"\b{len(packets)}\b", counted.stdout), counted.stdout
    alarms = satlake(tmp_path, "query", "SELECT parameter, status FROM gold.alarms")
    assert "returned_to_normal" in alarms.stdout, alarms.stdout
