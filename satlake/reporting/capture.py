"""Keep a command's terminal for its report: everything else written to the process's stdout and stderr
(dbt's per-test lines that dagster-dbt echoes, Dagster's run and automation logs, library warnings, and the
output of the subprocesses they start) goes to a log file; ``verbose`` also copies it to the terminal."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

LOG_DIRECTORY = "logs"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def command_log_path(root: Path, command: str, now: datetime | None = None) -> Path:
    """``<root>/logs/satlake-<command>-<UTC timestamp>.log``: one file per invocation."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return root / LOG_DIRECTORY / f"satlake-{command.replace(' ', '-')}-{stamp}.log"


@dataclass(frozen=True)
class CapturedOutput:
    """The terminal while output is captured: the report writes to ``out``, errors to ``err``."""

    out: TextIO
    err: TextIO
    log_path: Path


@contextmanager
def capture_output(log_path: Path, verbose: bool = False) -> Iterator[CapturedOutput]:
    """Point file descriptors 1 and 2 (and so ``sys.stdout``, ``sys.stderr``, Python logging and every child
    process) at ``log_path`` for the duration; yield writable handles on the real terminal.

    A thread copies the captured bytes to the log file, and to the terminal's stderr when ``verbose``.
    Exceptions leave the block after the descriptors are restored, so their tracebacks reach the terminal."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    terminal_out_fd, terminal_err_fd = os.dup(1), os.dup(2)
    read_fd, write_fd = os.pipe()
    log_file = log_path.open("ab")

    def copy_captured() -> None:
        while chunk := os.read(read_fd, 65536):
            log_file.write(chunk)
            log_file.flush()
            if verbose:
                os.write(terminal_err_fd, chunk)

    copier = threading.Thread(target=copy_captured, name="satlake-log-copier", daemon=True)
    copier.start()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    out = open(os.dup(terminal_out_fd), "w", encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
    err = open(os.dup(terminal_err_fd), "w", encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root_logger = logging.getLogger()
    previous_level = root_logger.level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield CapturedOutput(out=out, err=err, log_path=log_path)
    except BaseException:
        logging.getLogger("satlake").exception("the command stopped on an error")
        raise
    finally:
        logging.captureWarnings(False)
        root_logger.removeHandler(handler)
        root_logger.setLevel(previous_level)
        out.flush()
        err.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(terminal_out_fd, 1)
        os.dup2(terminal_err_fd, 2)
        # Children that outlive the command (servers it started) keep the pipe open: do not wait for them.
        copier.join(timeout=5)
        if not copier.is_alive():
            os.close(read_fd)
            log_file.close()
        out.close()
        err.close()
        os.close(terminal_out_fd)
        if not copier.is_alive():
            os.close(terminal_err_fd)
