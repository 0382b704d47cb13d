"""A private PostgreSQL + PostGIS cluster for the serving tests: the stack's own initdb and postmaster command
(satlake.stack.postgres) in a temporary directory on a free port, stopped and removed after the session."""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from satlake.resources.postgis import PostgisServing
from satlake.stack.isolated import free_port_pair
from satlake.stack.postgres import as_server_user, initialize_cluster, postgres_bindir, postgres_command

STARTUP_TIMEOUT_S = 60.0
USER = "satlake"


def _wait_for_server(serving: PostgisServing, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited while starting:\n{log.read_text()[-2000:]}")
        try:
            with psycopg.connect(replace(serving, database="postgres").conninfo):
                return
        except psycopg.OperationalError:
            time.sleep(0.2)
    raise RuntimeError(f"postgres did not accept connections within {STARTUP_TIMEOUT_S:.0f}s")


@contextmanager
def private_postgis() -> Iterator[PostgisServing]:
    """A running cluster with a ``satlake`` database that has PostGIS; skips when the binaries are missing."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL with PostGIS is not installed (`python3 -m satlake.stack install --servers postgres`)")
    home = Path(tempfile.mkdtemp(prefix="satlake-serving-pg-"))
    password = secrets.token_urlsafe(16)
    log = home / "postgres.log"
    server: subprocess.Popen | None = None
    try:
        initialize_cluster(bindir, home / "data", USER, password)
        port = free_port_pair(set())
        with log.open("wb") as output:
            server = subprocess.Popen(
                as_server_user(postgres_command(bindir, home / "data", "127.0.0.1", port)),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        serving = PostgisServing(host="127.0.0.1", port=port, user=USER, database="satlake", password=password)
        _wait_for_server(serving, server, log)
        with psycopg.connect(replace(serving, database="postgres").conninfo, autocommit=True) as admin:
            admin.execute("CREATE DATABASE satlake")
        with psycopg.connect(serving.conninfo, autocommit=True) as connection:
            connection.execute("CREATE EXTENSION postgis")
        yield serving
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)  # fast shutdown
            server.wait(timeout=60)
        shutil.rmtree(home, ignore_errors=True)
