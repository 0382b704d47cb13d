"""Process bookkeeping: pid files are trusted only with the right marker; taken ports are detected and named."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from satlake.stack.process import (
    describe_port_owner,
    owned_pid,
    port_bindable,
    process_alive,
    start_detached,
    stop_process,
)


def test_a_listening_port_is_not_bindable_and_its_owner_is_named() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not port_bindable("127.0.0.1", port)
        assert describe_port_owner(port).startswith(f"pid {os.getpid()}")
    assert port_bindable("127.0.0.1", port)


def test_detached_process_is_ours_only_with_its_marker_and_stops_on_request(tmp_path: Path) -> None:
    marker = str(tmp_path / "marker-config")
    pid_file = tmp_path / "run" / "sleeper.pid"
    pid = start_detached(
        [sys.executable, "-c", "import time, sys; time.sleep(60)", marker],
        env=dict(os.environ),
        cwd=tmp_path,
        log_file=tmp_path / "logs" / "sleeper.log",
        pid_file=pid_file,
    )
    try:
        assert owned_pid(pid_file, marker) == pid
        assert owned_pid(pid_file, str(tmp_path / "another-stack")) is None
        assert os.getsid(pid) == pid  # its own session: it survives the terminal that started it
    finally:
        killed = stop_process(pid, timeout_s=10)
    assert killed is False
    assert not process_alive(pid)
    assert owned_pid(pid_file, marker) is None


def test_a_server_stops_on_sigterm_even_when_its_launcher_blocks_and_ignores_it(tmp_path: Path) -> None:
    """A blocked signal mask and ignored signals survive exec: start_detached must reset them."""
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    previous_handler = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        pid = start_detached(
            [sys.executable, "-c", "import time; time.sleep(60)"],
            env=dict(os.environ),
            cwd=tmp_path,
            log_file=tmp_path / "sleeper.log",
            pid_file=tmp_path / "sleeper.pid",
        )
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
    assert stop_process(pid, timeout_s=10) is False  # stopped by SIGTERM, not killed after the timeout
    assert not process_alive(pid)


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    assert stop_process(process.pid, timeout_s=0.5) is True
    assert not process_alive(process.pid)
