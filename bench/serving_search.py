"""STAC API search over HTTP: ``satlake serve`` (embedded, over the Delta catalog table) against
stac-fastapi-pgstac over pgstac holding the same items, both served by uvicorn in their own process.

The items, the three queries and the measuring loop are the catalog-search benchmark's (``bench.catalog_search``):
each query is one ``POST /search`` with the same JSON body to both (``bench.peers.pgstac.search_body``: bbox or a
point ``intersects``, ``datetime``, a CQL2-JSON filter on ``eo:cloud_cover``, ``sortby`` newest first then id,
``limit`` 100), sent by the same keep-alive HTTP client; one cold request, untimed warm-up rounds, then timed
rounds with the two servers interleaved. Both answers must hold the same item ids in the same order.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import requests

from bench.catalog_search import (
    CENTRE_AREAS,
    COLLECTION,
    FIRST,
    ITEMS,
    LAST,
    PGSTAC_PARTITION_TRUNC,
    QUERIES,
    REPETITIONS,
    WARMUP_ROUNDS,
    Search,
    measure,
    pgstac_version,
    synthetic_items,
    write_catalog,
    write_items_ndjson,
)
from bench.common import comparison
from bench.peers import pgstac
from bench.serving_http import (
    checked_json,
    embedded_catalog_uri,
    free_port,
    http_session,
    run_benchmark,
    running_server,
    satlake_environment,
    satlake_serve_command,
    server_version,
    uvicorn_factory_command,
)
from satlake.catalog.search import SearchQuery

SATLAKE = "satlake serve (embedded, Delta catalog)"
PGSTAC_API = "stac-fastapi-pgstac over pgstac"
PGSTAC_APP_FACTORY = "stac_fastapi.pgstac.app:create_app"
PGSTAC_PASSWORD = "unused"  # the private cluster trusts local connections; the app's settings require a value


def peer_unavailable_reason() -> str | None:
    """Why stac-fastapi-pgstac over pgstac cannot run here, or None when it can."""
    reason = pgstac.unavailable_reason()
    if reason is None and importlib.util.find_spec("stac_fastapi.pgstac") is None:
        reason = f"the Python package stac-fastapi-pgstac is not installed (run {pgstac.INSTALL_COMMAND})"
    return reason


def stac_api_search(session: requests.Session, base_url: str, system: str) -> Search:
    """One ``POST /search`` per query, with the body the catalog-search benchmark gives pgstac; the answer's ids."""

    def search(query: SearchQuery) -> list[str]:
        body = pgstac.search_body(query)
        answer = checked_json(session.post(f"{base_url}/search", json=body, timeout=120), f"{system} {body}")
        return [feature["id"] for feature in answer["features"]]

    return search


def embedded_root(items: pa.Table, root: Path) -> Path:
    """A satlake root whose catalog table holds ``items`` (one commit, in the search layout the catalog writes)."""
    write_catalog(items, embedded_catalog_uri(root))
    return root


@contextmanager
def satlake_api(root: Path, workdir: Path, notes: list[str]) -> Iterator[Search]:
    """``satlake serve`` over ``root``; yields its search. Its start (catalog warm-up included) is noted."""
    port = free_port()
    started = time.perf_counter()
    command = satlake_serve_command(port)
    with (
        running_server("satlake-serve", command, port, workdir, satlake_environment(root)) as base,
        http_session() as session,
    ):
        notes.append(f"satlake serve: listening (catalog warmed) {time.perf_counter() - started:.1f} s after start")
        yield stac_api_search(session, base, SATLAKE)


def load_pgstac(dsn: str, items: pa.Table, workdir: Path) -> float:
    """Seconds to load ``items`` into the pgstac at ``dsn`` the catalog-search benchmark's way (its collection,
    queryables and partitioning; ``pypgstac load``, VACUUM ANALYZE)."""
    started = time.perf_counter()
    ndjson = workdir / "items.ndjson"
    write_items_ndjson(items, ndjson)
    collection_json = pgstac.collection_document(COLLECTION, FIRST, LAST)
    pgstac.install_and_load(dsn, collection_json, ndjson, workdir, PGSTAC_PARTITION_TRUNC)
    ndjson.unlink()
    return time.perf_counter() - started


@contextmanager
def pgstac_api(items: pa.Table, workdir: Path, notes: list[str]) -> Iterator[Search]:
    """A private pgstac loaded with ``items`` behind stac-fastapi-pgstac (all its default extensions) under
    uvicorn; yields its search."""
    with pgstac.private_cluster() as cluster:
        load_s = load_pgstac(cluster.dsn, items, workdir)
        notes.append(
            f"pgstac: PostgreSQL {cluster.version} + PostGIS, pypgstac {pgstac_version()}, loaded in {load_s:.1f} s "
            f"as in the catalog-search benchmark; stac-fastapi-pgstac {server_version('stac-fastapi-pgstac')} "
            "(asyncpg pool, default extensions) under uvicorn"
        )
        port = free_port()
        env = {
            "PGUSER": "postgres",
            "PGPASSWORD": PGSTAC_PASSWORD,
            "PGHOST": "127.0.0.1",
            "PGPORT": str(cluster.port),
            "PGDATABASE": "postgres",
        }
        command = uvicorn_factory_command(PGSTAC_APP_FACTORY, port)
        with running_server("stac-fastapi-pgstac", command, port, workdir, env) as base, http_session() as session:
            yield stac_api_search(session, base, PGSTAC_API)


def comparisons_of(rows: list[dict[str, Any]], answers: dict[str, dict[str, list[str]]]) -> list[dict[str, Any]]:
    """satlake's p50 against the peer's (target: no slower), p99 side by side, and identical answers."""
    by_key = {(row["system"], row["query"]): row for row in rows}
    out: list[dict[str, Any]] = []
    for query in QUERIES:
        ours = by_key[(SATLAKE, query)]
        peer = by_key.get((PGSTAC_API, query))
        if peer is None:
            out.append(comparison(f"{query}: p50 ms", ours["p50_ms"], None, "<= stac-fastapi-pgstac p50", None,
                                  "stac-fastapi-pgstac not run"))  # fmt: skip
            continue
        met = ours["p50_ms"] <= peer["p50_ms"]
        out.append(comparison(f"{query}: p50 ms", ours["p50_ms"], peer["p50_ms"], "<= stac-fastapi-pgstac p50", met))
        out.append(comparison(f"{query}: p99 ms", ours["p99_ms"], peer["p99_ms"], "(reference)", None))
        same = answers[PGSTAC_API][query] == answers[SATLAKE][query]
        counts = f"{ours['items_returned']} vs {peer['items_returned']} items"
        out.append(comparison(f"{query}: items identical", None, None, "identical ids, same order", same, counts))
    return out


def run(size: str, workdir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    count = ITEMS[size]
    notes = [
        f"{count:,} items centred in W,S,E,N {CENTRE_AREAS[size]}, {FIRST.year}-{LAST.year - 1} "
        "(bench.catalog_search's items and queries)",
        f"latency: POST /search over HTTP, {REPETITIONS} timed repetitions after one first (cold) request and "
        f"{WARMUP_ROUNDS[size]} untimed warm-up rounds, servers interleaved; limit {QUERIES['point, all time'].limit}",
        f"load average (1 min) at the start: {os.getloadavg()[0]:.2f}",
    ]
    started = time.perf_counter()
    items = synthetic_items(count, CENTRE_AREAS[size])
    root = embedded_root(items, workdir / "satlake-root")
    notes.append(f"items generated and written to the Delta catalog table in {time.perf_counter() - started:.1f} s")
    with ExitStack() as stack:
        systems: dict[str, Search] = {SATLAKE: stack.enter_context(satlake_api(root, workdir, notes))}
        reason = peer_unavailable_reason()
        if reason is None:
            systems[PGSTAC_API] = stack.enter_context(pgstac_api(items, workdir, notes))
        else:
            notes.append(f"stac-fastapi-pgstac peer skipped: {reason}")
        del items
        rows, answers = measure(systems, REPETITIONS, WARMUP_ROUNDS[size])
    notes.append(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    return rows, comparisons_of(rows, answers), notes


def main(argv: list[str] | None = None) -> Path:
    return run_benchmark("serving_search", __doc__ or "", argv, run, lambda size: f"{ITEMS[size]:,} STAC items")


if __name__ == "__main__":
    main()
