"""pgstac, the STAC database of the Planetary Computer and eoAPI, as the peer of satlake's catalog search.

A private PostgreSQL cluster (Debian's PostgreSQL and PostGIS packages, ``initdb`` into a temporary directory, a
free port, stopped and removed at the end), the pgstac schema installed by ``pypgstac migrate``, items loaded by
``pypgstac load items`` and searched with pgstac's own ``search(jsonb)`` SQL function, as stac-fastapi-pgstac
calls it. ``bash bench/peers/install_pgstac.sh`` installs the software.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from satlake.catalog.search import SearchQuery
from satlake.stack.postgres import DEBIAN_POSTGRES, postgres_bindir

INSTALL_COMMAND = "bash bench/peers/install_pgstac.sh"
SERVER_OS_USER = "postgres"  # PostgreSQL refuses to run as root
# A server sized for this machine rather than PostgreSQL's 128 MB defaults; the load writes a throwaway
# database, so it need not survive a crash (fsync off) and its indexes build in memory.
SERVER_SETTINGS: dict[str, str] = {
    "shared_buffers": "2GB",
    "effective_cache_size": "8GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "1GB",
    "max_wal_size": "8GB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "random_page_cost": "1.1",
}
# eo:cloud_cover as a pgstac queryable with a B-tree index on every partition, as pgstac's docs advise for a
# property that searches filter on.
QUERYABLES = {
    "$schema": "https://json-schema.org/draft/2019-09/schema",
    "type": "object",
    "title": "satlake benchmark queryables",
    "properties": {"eo:cloud_cover": {"type": "number", "minimum": 0, "maximum": 100}},
}


def unavailable_reason() -> str | None:
    """Why the pgstac peer cannot run on this machine, or None when it can."""
    if postgres_bindir() is None:
        return f"PostgreSQL with PostGIS is not installed under {DEBIAN_POSTGRES} (run {INSTALL_COMMAND})"
    for module in ("pypgstac", "psycopg"):
        try:
            __import__(module)
        except ImportError:
            return f"the Python package {module} is not installed (run {INSTALL_COMMAND})"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_OS_USER)
        except KeyError:
            return f"running as root and there is no {SERVER_OS_USER!r} OS user to run PostgreSQL as"
    return None


def _as_server_user(command: Sequence[str | Path]) -> list[str]:
    text = [str(part) for part in command]
    return ["runuser", "-u", SERVER_OS_USER, "--", *text] if os.geteuid() == 0 else text


def _run(command: Sequence[str | Path], what: str) -> str:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout)[-2000:]}")
    return done.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True, slots=True)
class PrivateCluster:
    """A running PostgreSQL cluster of this benchmark alone."""

    bindir: Path
    data_dir: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def version(self) -> str:
        return self.bindir.parent.name


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """``initdb`` a cluster into a new temporary directory, start it on a free port; stop and delete it after."""
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"cannot start the pgstac peer: {reason}")
    bindir = postgres_bindir()
    assert bindir is not None
    # Not under the benchmark's scratch directory: that one is private to root, and the server runs as postgres.
    home = Path(tempfile.mkdtemp(prefix="satlake-pgstac-"))
    data_dir = home / "data"
    try:
        if os.geteuid() == 0:
            shutil.chown(home, SERVER_OS_USER, SERVER_OS_USER)
        _run(
            _as_server_user(
                [bindir / "initdb", "-D", data_dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]
            ),
            "initdb",
        )
        port = _free_port()
        settings = " ".join(f"-c {name}={value}" for name, value in SERVER_SETTINGS.items())
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 {settings}"
        _run(
            _as_server_user(
                [bindir / "pg_ctl", "-D", data_dir, "-l", home / "server.log", "-w", "-o", options, "start"]
            ),
            "pg_ctl start",
        )
        try:
            yield PrivateCluster(bindir=bindir, data_dir=data_dir, port=port)
        finally:
            _run(_as_server_user([bindir / "pg_ctl", "-D", data_dir, "-m", "fast", "-w", "stop"]), "pg_ctl stop")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def pypgstac(dsn: str, *arguments: str) -> str:
    """Run the ``pypgstac`` command line (from the installed package) against ``dsn``."""
    return _run([sys.executable, "-m", "pypgstac.pypgstac", *arguments, f"--dsn={dsn}"], f"pypgstac {arguments[0]}")


def collection_document(collection_id: str, first: datetime, last: datetime) -> dict[str, Any]:
    """A minimal STAC collection for the synthetic items."""
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": collection_id,
        "description": "synthetic Landsat-like items of the satlake catalog-search benchmark",
        "license": "proprietary",
        "extent": {
            "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [[_rfc3339(first), _rfc3339(last)]]},
        },
        "links": [],
    }


def install_and_load(
    dsn: str, collection: dict[str, Any], items_ndjson: Path, workdir: Path, partition_trunc: str | None
) -> None:
    """``pypgstac migrate``, the eo:cloud_cover queryable, the collection (partitioned by ``partition_trunc``:
    None, "year" or "month"), ``pypgstac load items``, then ``VACUUM ANALYZE`` as an operator would after a bulk
    load."""
    import psycopg

    pypgstac(dsn, "migrate")
    queryables = workdir / "queryables.json"
    queryables.write_text(json.dumps(QUERYABLES))
    pypgstac(dsn, "load_queryables", str(queryables), '--index_fields=["eo:cloud_cover"]')
    collection_file = workdir / "collection.json"
    collection_file.write_text(json.dumps(collection))
    pypgstac(dsn, "load", "collections", str(collection_file), "--method=insert")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            "UPDATE pgstac.collections SET partition_trunc = %s WHERE id = %s", [partition_trunc, collection["id"]]
        )
    pypgstac(dsn, "load", "items", str(items_ndjson), "--method=insert")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE) pgstac.items")


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def search_body(query: SearchQuery) -> dict[str, Any]:
    """The STAC API search (pgstac's ``search`` argument) that asks what ``query`` asks satlake.

    A degenerate bbox (a point) becomes an ``intersects`` point; ``cloud_cover_max`` a CQL2 ``<=`` filter on
    ``eo:cloud_cover`` (unknown cover never matches, as in satlake); the order is satlake's: newest first, then id.
    """
    body: dict[str, Any] = {
        "limit": query.limit,
        "sortby": [{"field": "datetime", "direction": "desc"}, {"field": "id", "direction": "asc"}],
    }
    if query.collections is not None:
        body["collections"] = list(query.collections)
    if query.bbox is not None:
        west, south, east, north = query.bbox
        if west > east:
            raise ValueError(f"bbox {query.bbox}: pgstac's bbox cannot cross the antimeridian; split it in two")
        if west == east and south == north:
            body["intersects"] = {"type": "Point", "coordinates": [west, south]}
        else:
            body["bbox"] = [west, south, east, north]
    if query.datetime_range is not None:
        start, end = query.datetime_range
        body["datetime"] = f"{_rfc3339(start) if start else '..'}/{_rfc3339(end) if end else '..'}"
    if query.cloud_cover_max is not None:
        body["filter-lang"] = "cql2-json"
        body["filter"] = {"op": "<=", "args": [{"property": "eo:cloud_cover"}, query.cloud_cover_max]}
    return body


class PgstacSearch:
    """One client connection calling ``pgstac.search(jsonb)``, as stac-fastapi-pgstac does per request."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        # pgstac's functions resolve their tables through the search path, as stac-fastapi-pgstac sets it.
        self._connection = psycopg.connect(dsn, autocommit=True, options="-c search_path=pgstac,public")

    def search_text(self, body: dict[str, Any]) -> str:
        """The FeatureCollection pgstac returns, as JSON text (what an API server would send on)."""
        row = self._connection.execute("SELECT pgstac.search(%s::jsonb)::text", [json.dumps(body)]).fetchone()
        assert row is not None
        return str(row[0])

    def search_ids(self, body: dict[str, Any]) -> list[str]:
        return [feature["id"] for feature in json.loads(self.search_text(body))["features"]]

    def close(self) -> None:
        self._connection.close()
