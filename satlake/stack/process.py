"""Start, find and stop the servers' OS processes, and tell whether a port is already taken.

A pid file alone is not trusted (pids are reused): a process counts as ours only while its command line still
contains a marker unique to this stack home.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from satlake.stack.errors import StackError


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.is_file():
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        return state != "Z"
    return True


def command_line(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def owned_pid(pid_file: Path, marker: str) -> int | None:
    """The pid recorded in ``pid_file`` if that process is alive and its command line contains ``marker``."""
    pid = read_pid(pid_file)
    if pid is None or not process_alive(pid):
        return None
    cmdline = command_line(pid)
    if cmdline is not None and marker not in cmdline:
        return None
    return pid


def port_accepts(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def port_bindable(host: str, port: int) -> bool:
    """True when this process could listen on ``host:port`` right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def listening_pid(port: int) -> int | None:
    """Pid of the local process listening on TCP ``port`` (Linux /proc only; None when not discoverable)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def describe_port_owner(port: int) -> str:
    pid = listening_pid(port)
    if pid is None:
        return "another process"
    cmdline = (command_line(pid) or "").strip()
    return f"pid {pid} ({cmdline[:120]})" if cmdline else f"pid {pid}"


def _prepare_server_process(min_open_files: int | None) -> Callable[[], None]:
    """Run in the child before exec: a server must stop on SIGTERM whatever its launcher did with signals (a
    blocked signal mask and ignored signals survive exec), and may raise its open-files limit."""

    def preexec() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        for stop_signal in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(ValueError):  # signal.signal needs the main thread; the mask is reset anyway
                signal.signal(stop_signal, signal.SIG_DFL)
        if min_open_files is None:
            return
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = max(soft, min(hard, 131072)) if hard != resource.RLIM_INFINITY else max(soft, 131072)
        if wanted >= min_open_files:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))

    return preexec


def open_files_hard_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 30 if hard == resource.RLIM_INFINITY else hard


def start_detached(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_file: Path,
    pid_file: Path,
    min_open_files: int | None = None,
) -> int:
    """Start ``command`` in a new session (it outlives the caller), logging to ``log_file``; returns pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_prepare_server_process(min_open_files),
        )
    pid_file.write_text(f"{process.pid}\n")
    return process.pid


def stop_process(pid: int, timeout_s: float, stop_signal: signal.Signals = signal.SIGTERM) -> bool:
    """Signal the process's group (SIGTERM unless told), wait up to ``timeout_s``, then SIGKILL; True if it had
    to be killed."""
    _signal_group(pid, stop_signal)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process_alive(pid):
            _reap(pid)
            return False
        time.sleep(0.2)
    kill_process(pid)
    return True


def kill_process(pid: int) -> None:
    """SIGKILL the process's group at once (a crash: no shutdown hook runs) and wait until it is gone."""
    _signal_group(pid, signal.SIGKILL)
    for _ in range(50):
        if not process_alive(pid):
            break
        time.sleep(0.1)
    _reap(pid)
    if process_alive(pid):
        raise StackError(f"process {pid} survived SIGKILL; stop it by hand (kill -9 {pid})")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect the exit status when the server is our own child (started in this Python process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
