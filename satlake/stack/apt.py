"""Servers that come from the distribution's packages (PostgreSQL, Prometheus, Alertmanager): ``apt-get
install`` run once, as root or through ``sudo -n``, its output kept in an install log."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from satlake.stack.install import Progress, require_tool, run_tool

APT_HINT = "Check that the Debian archive is reachable (apt proxy settings) and that you may run apt-get."


def apt_install(packages: Sequence[str], log_file: Path, progress: Progress, *, needed_for: str, how_to: str) -> None:
    """``apt-get update`` then ``apt-get install`` of ``packages`` without recommends, non-interactively."""
    apt_get = require_tool("apt-get", needed_for, how_to)
    sudo = [] if os.geteuid() == 0 else [require_tool("sudo", "run apt-get", "Run as root or install sudo.")]
    prefix = [*sudo, "-n"] if sudo else []
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    progress(f"installing {' '.join(packages)} with apt-get")
    for arguments in (["update", "-qq"], ["install", "-y", "-qq", "--no-install-recommends", *packages]):
        run_tool(
            [*prefix, apt_get, *arguments],
            what=f"apt-get {arguments[0]}",
            log_file=log_file,
            progress=progress,
            hint=APT_HINT,
            env=env,
        )
