"""What the access-layer benchmarks share: HTTP servers started as their users start them (``satlake serve``, a
peer app under uvicorn), each in its own process, and one HTTP client for all of them.

Every server runs in a child process with its output in a log file of the scratch directory, is ready once its
probe path answers 200, and is stopped with SIGINT (what Ctrl-C sends) at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from bench.common import print_table, size_argument, write_result

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 600.0  # satlake serve warms its catalog index before it listens: a minute at 1M items when busy
STOP_TIMEOUT_S = 30.0
# Neither side compresses: the peer's Brotli middleware would otherwise compress what satlake sends as it is.
CLIENT_HEADERS = {"Accept-Encoding": "identity"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_session() -> requests.Session:
    """The one HTTP client of every measured request: a keep-alive session, no compression."""
    session = requests.Session()
    session.headers.update(CLIENT_HEADERS)
    return session


def _wait_until_ready(process: subprocess.Popen[bytes], probe_url: str, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with requests.Session() as probe:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode} before answering; log: {_tail(log)}")
            try:
                if probe.get(probe_url, timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"no answer from {probe_url} within {timeout_s:.0f} s; log: {_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.is_file() else "(no log)"


@contextmanager
def running_server(
    name: str,
    command: Sequence[str],
    port: int,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    probe_path: str = "/",
    timeout_s: float = START_TIMEOUT_S,
) -> Iterator[str]:
    """Start ``command`` (which listens on 127.0.0.1:``port``) in the repository with ``env`` added to this
    environment, less any SATLAKE_ variable ``env`` does not set; yield its base URL once ``probe_path`` answers
    200; stop it with SIGINT after."""
    log = log_dir / f"{name}.log"
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("SATLAKE_")}
    with log.open("wb") as output:
        process = subprocess.Popen(
            list(command), cwd=REPO, env=inherited | dict(env or {}), stdout=output, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(process, base + probe_path, log, timeout_s)
        yield base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def satlake_serve_command(port: int) -> list[str]:
    """``satlake serve`` as a user runs it (its root and mode come from SATLAKE_ROOT and SATLAKE_MODE)."""
    return [sys.executable, "-m", "satlake", "serve", "--port", str(port), "--log-level", "warning"]


def uvicorn_factory_command(factory: str, port: int) -> list[str]:
    """uvicorn serving the app ``factory`` (``module:function``) in one process, as ``satlake serve`` does."""
    return [
        sys.executable, "-m", "uvicorn", factory, "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def satlake_environment(root: Path) -> dict[str, str]:
    """The environment of ``satlake serve`` over the embedded lakehouse at ``root``."""
    return {"SATLAKE_ROOT": str(root), "SATLAKE_MODE": "embedded"}


def embedded_catalog_uri(root: Path) -> str:
    """Where the catalog table of the embedded lakehouse at ``root`` lives."""
    from satlake.resources import build_resources
    from satlake.scenes.tables import CATALOG_ITEMS
    from satlake.settings import Mode, Settings

    settings = Settings(mode=Mode.EMBEDDED, root=root, secrets_path=root / "secrets.env")
    return build_resources(settings).lakehouse.uri(CATALOG_ITEMS)


def server_version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def run_benchmark(
    name: str,
    description: str,
    argv: Sequence[str] | None,
    run: Callable[[str, Path], tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]],
    data_size: Callable[[str], str],
) -> Path:
    """The command line of a serving benchmark: ``--size``, ``--workdir``, ``--out``; ``run(size, scratch)`` in a
    temporary directory, its tables printed and its result JSON written (path returned)."""
    args = size_argument(description, argv)
    with tempfile.TemporaryDirectory(prefix=f"satlake-bench-{name}-", dir=args.workdir) as scratch:
        rows, comparisons, notes = run(args.size, Path(scratch))
    print_table(rows)
    print()
    print_table(comparisons)
    for note in notes:
        print(note)
    path = write_result(name, args.size, data_size(args.size), rows, comparisons, args.out, notes)
    print(f"wrote {path}")
    return path


def checked_json(response: requests.Response, what: str) -> Any:
    """The JSON of a 200 answer; any other status fails the benchmark with the body, which says why."""
    if response.status_code != 200:
        raise RuntimeError(f"{what}: HTTP {response.status_code}: {response.text[:1000]}")
    return response.json()
