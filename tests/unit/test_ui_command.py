"""`satlake ui` as a process: it runs this interpreter's dagster, prints the URL once the server answers, and
Ctrl-C or SIGTERM stops it with every process it started, even when started in the background with SIGINT and
SIGTERM ignored (as a shell starts background jobs). A stand-in server keeps the test fast: it answers HTTP
like the webserver and starts a grandchild like the daemon does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from satlake.ui import WORKSPACE, ui_command

STAND_IN = """
import http.server, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[2], "w").write(str(child.pid))
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Answer).serve_forever()
"""

RUN_UI = """
import sys
import satlake.ui as ui
ui.ui_command = lambda host, port: [sys.executable, sys.argv[1], str(port), sys.argv[2]]
sys.exit(ui.serve_ui("127.0.0.1", int(sys.argv[3])))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_command_is_this_interpreters_dagster_on_the_project_workspace() -> None:
    command = ui_command("127.0.0.1", 3000)
    assert command[:4] == [sys.executable, "-m", "dagster", "dev"]
    assert command[command.index("-w") + 1] == str(WORKSPACE) and WORKSPACE.is_file()
    assert "location_name: satlake" in WORKSPACE.read_text()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_a_signal_stops_the_ui_and_its_children_even_when_started_with_signals_ignored(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    stand_in, pid_file, port = tmp_path / "server.py", tmp_path / "child.pid", free_port()
    stand_in.write_text(STAND_IN)

    def ignore_signals() -> None:  # what a non-interactive shell does for a background job
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    ui = subprocess.Popen(
        [sys.executable, "-c", RUN_UI, str(stand_in), str(pid_file), str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=ignore_signals,
    )  # fmt: skip
    try:
        assert ui.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while "ready at" not in line:
            line = ui.stdout.readline()
            assert line and time.monotonic() < deadline, "no ready line"
        assert f"Dagster UI ready at http://127.0.0.1:{port}" in line
        grandchild = int(pid_file.read_text())
        assert alive(grandchild)

        ui.send_signal(sig)
        assert ui.wait(timeout=60) == code
        assert "stopping the Dagster UI and daemon" in ui.stdout.read()
        deadline = time.monotonic() + 10
        while alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(grandchild), "a process the UI started outlived it"
    finally:
        if ui.poll() is None:
            ui.kill()
