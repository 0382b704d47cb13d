"""The STAC API in stack mode, the choice it rests on: ``satlake serve --stack`` reading the Delta catalog table in
MinIO itself (delta-rs, its in-memory index and DuckDB) against the same searches sent to Trino
(``satlake.catalog.search.search_catalog_trino``) over the same items in the same bucket.

A private stack (MinIO, Trino and PostgreSQL, own ports and root) is started for the run and stopped after. The
items, the three queries and the measuring loop are the catalog-search benchmark's; the API is asked with
``POST /search`` over HTTP (the body ``bench.serving_search`` sends, with the ``science`` role's key), Trino through
satlake's own client, and, when ``bash bench/peers/install_pgstac.sh`` has installed it, stac-fastapi-pgstac over
a private pgstac loaded with the same items as in ``bench.serving_search``. All answers must hold the same item ids
in the same order.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench.catalog_search import (
    CENTRE_AREAS,
    ITEMS,
    QUERIES,
    REPETITIONS,
    WARMUP_ROUNDS,
    Search,
    measure,
    synthetic_items,
    trino_catalog,
    write_catalog,
)
from bench.common import SIZES, comparison, print_table, write_result
from bench.serving_http import free_port, http_session, running_server, satlake_serve_command
from bench.serving_search import PGSTAC_API, peer_unavailable_reason, pgstac_api, stac_api_search
from satlake.resources import build_resources
from satlake.scenes.tables import CATALOG_ITEMS
from satlake.serving.access import API_KEY_HEADER, ROLE_KEY_SECRETS, ensure_api_keys
from satlake.settings import Mode, Settings, read_secrets_file
from satlake.stack import stack_down, stack_up
from satlake.stack.access import SCIENCE
from satlake.stack.isolated import isolated_stack_environment

SATLAKE_STACK = "satlake serve --stack (Delta in MinIO)"
TRINO = "Trino (search_catalog_trino)"
SERVERS = ("minio", "trino", "postgres")  # satlake serve --stack mounts tipg over PostgreSQL


def _progress(message: str) -> None:
    print(f"[stack] {message}", file=sys.stderr, flush=True)


@contextmanager
def private_stack(root: Path) -> Iterator[tuple[Settings, dict[str, str]]]:
    """MinIO, Trino and PostgreSQL of a stack of their own under ``root``; yields its settings and environment."""
    environment = isolated_stack_environment(root)
    settings = Settings.from_env(environment)
    stack_up(settings, servers=SERVERS, progress=_progress)
    try:
        yield Settings.from_env(environment).with_overrides(mode=Mode.STACK), environment
    finally:
        stack_down(settings, progress=_progress)


@contextmanager
def satlake_stack_api(
    settings: Settings, environment: dict[str, str], workdir: Path, notes: list[str]
) -> Iterator[Search]:
    """``satlake serve`` of the stack (its catalog table in MinIO), searched with the science role's key."""
    ensure_api_keys(settings)
    key = read_secrets_file(settings.secrets_file)[ROLE_KEY_SECRETS[SCIENCE]]
    port = free_port()
    started = time.perf_counter()
    env = {name: value for name, value in environment.items() if name.startswith("SATLAKE_")}
    with (
        running_server("satlake-serve-stack", satlake_serve_command(port), port, workdir, env) as base,
        http_session() as session,
    ):
        notes.append(
            f"satlake serve --stack: listening (catalog warmed) {time.perf_counter() - started:.1f} s after start"
        )
        session.headers[API_KEY_HEADER] = key
        yield stac_api_search(session, base, SATLAKE_STACK)


def comparisons_of(rows: list[dict[str, Any]], answers: dict[str, dict[str, list[str]]]) -> list[dict[str, Any]]:
    """The API's p50 and p99 beside each peer's (Trino; stac-fastapi-pgstac when it ran: p50 no slower is the
    issue's target), and identical answers."""
    by_key = {(row["system"], row["query"]): row for row in rows}
    out: list[dict[str, Any]] = []
    for query in QUERIES:
        ours = by_key[(SATLAKE_STACK, query)]
        for peer in (TRINO, PGSTAC_API):
            theirs = by_key.get((peer, query))
            if theirs is None:
                continue
            met = ours["p50_ms"] <= theirs["p50_ms"] if peer == PGSTAC_API else None
            target = "<= stac-fastapi-pgstac p50" if peer == PGSTAC_API else f"(vs {peer})"
            out.append(comparison(f"{query}: p50 ms vs {peer}", ours["p50_ms"], theirs["p50_ms"], target, met))
            out.append(comparison(f"{query}: p99 ms vs {peer}", ours["p99_ms"], theirs["p99_ms"], "(reference)", None))
            same = answers[peer][query] == answers[SATLAKE_STACK][query]
            counts = f"{ours['items_returned']} vs {theirs['items_returned']} items"
            out.append(comparison(f"{query}: {peer} items identical", None, None, "identical", same, counts))
    return out


def run(size: str, count: int, workdir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    notes = [
        f"{count:,} items centred in W,S,E,N {CENTRE_AREAS[size]} (bench.catalog_search's items and queries)",
        f"latency: {REPETITIONS} timed repetitions after one first (cold) request and {WARMUP_ROUNDS[size]} untimed "
        f"warm-up rounds, systems interleaved; limit {QUERIES['point, all time'].limit}",
        f"load average (1 min) at the start: {os.getloadavg()[0]:.2f}",
    ]
    with ExitStack() as stack:
        settings, environment = stack.enter_context(private_stack(workdir / "stack-root"))
        started = time.perf_counter()
        items = synthetic_items(count, CENTRE_AREAS[size])
        lakehouse = build_resources(settings).lakehouse
        write_catalog(items, lakehouse.uri(CATALOG_ITEMS), lakehouse.storage_options)
        notes.append(
            f"items generated and written to {lakehouse.uri(CATALOG_ITEMS)} in {time.perf_counter() - started:.1f} s"
        )
        systems: dict[str, Search] = {
            SATLAKE_STACK: stack.enter_context(satlake_stack_api(settings, environment, workdir, notes)),
            TRINO: stack.enter_context(trino_catalog(items, notes, settings)),
        }
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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=SIZES, default="small", help="small: smoke test; full: the figures")
    parser.add_argument("--items", type=int, default=None, help="item count (default: the size's, 2,000 or 1M)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="result JSON (default: bench/results/<name>.json)")
    args = parser.parse_args(argv)
    count = args.items or ITEMS[args.size]
    with tempfile.TemporaryDirectory(prefix="satlake-bench-serving-stack-", dir=args.workdir) as scratch:
        rows, comparisons, notes = run(args.size, count, Path(scratch))
    print_table(rows)
    print()
    print_table(comparisons)
    for note in notes:
        print(note)
    path = write_result("serving_stack", args.size, f"{count:,} STAC items", rows, comparisons, args.out, notes)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
