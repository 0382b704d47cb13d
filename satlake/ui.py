"""``satlake ui``: the Dagster webserver and daemon of satlake's own Python environment, on the project's
workspace and the storage root's instance, in the foreground: the URL is printed once the UI answers, and
Ctrl-C or SIGTERM stops it with all its children."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType

WORKSPACE = Path(__file__).resolve().parents[1] / "workspace.yaml"
READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 30.0


def ui_command(host: str, port: int) -> list[str]:
    """``dagster dev`` of this interpreter (not whichever ``dagster`` is first on PATH)."""
    return [sys.executable, "-m", "dagster", "dev", "-w", str(WORKSPACE), "-h", host, "-p", str(port)]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _default_signals() -> None:
    # A shell starts background jobs with SIGINT ignored, and children inherit that: restore the defaults so
    # the UI's processes stop when told to.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the whole process group (webserver, daemon, code servers), SIGKILL if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def serve_ui(host: str, port: int, say: Callable[[str], None] = print) -> int:
    """Run the UI until it exits or this process is asked to stop; returns the exit code."""
    url = f"http://{host}:{port}"
    home = os.environ.get("DAGSTER_HOME")
    say(f"starting the Dagster UI and daemon: {sys.executable} -m dagster dev (DAGSTER_HOME={home})")
    process = subprocess.Popen(ui_command(host, port), start_new_session=True, preexec_fn=_default_signals)
    stopping: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        started, ready = time.monotonic(), False
        while process.poll() is None and not stopping:
            if not ready and answers(url):
                ready = True
                say(f"Dagster UI ready at {url} (started in {time.monotonic() - started:.0f} s); Ctrl-C stops it")
            elif not ready and time.monotonic() - started > READY_TIMEOUT_S:
                say(f"the UI did not answer at {url} within {READY_TIMEOUT_S:.0f} s; stopping it")
                stopping.append(signal.SIGTERM)
                break
            time.sleep(0.5)
        if process.poll() is not None:
            return process.returncode
        say("stopping the Dagster UI and daemon")
        _stop(process)
        return 130 if stopping and stopping[0] == signal.SIGINT else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
