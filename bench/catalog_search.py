"""Catalog search: synthetic STAC items spread over the globe and five years, searched on the same data by

- satlake embedded: ``DeltaCatalogSearch`` (an in-memory index over the Delta catalog table, kept open);
- satlake's ``search_sql`` on DuckDB over the table's Arrow dataset (what the one-shot ``satlake search`` runs);
- pgstac, the STAC database of the Planetary Computer and eoAPI: a private PostgreSQL + PostGIS cluster,
  ``pypgstac migrate``, ``pypgstac load items``, pgstac's own ``search(jsonb)`` (skipped, with a note, when
  ``bench/peers/install_pgstac.sh`` has not installed it);
- with ``--trino``: satlake's ``search_sql`` through Trino, the table written to the running stack's lake bucket
  and registered in Trino's ``lake`` catalog.

Three queries from the issue: a city-sized bbox for one month, a country-sized bbox for one year with cloud cover
at most 20 %, a point for all time. Each system answers each query once cold, then ``WARMUP_ROUNDS`` untimed
times (a Trino just started runs interpreted Java; a service answers warm), then ``REPETITIONS`` timed times,
interleaved with the others so a burst of load hits all alike; p50/p99 come from the timed runs, and every
system's items (ids, in order) must equal the embedded search's.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from bench.common import SIZES, comparison, percentile, print_table, write_result
from bench.peers import pgstac
from satlake.catalog.search import SearchQuery, search_catalog_duckdb, search_catalog_trino
from satlake.catalog.search_index import DeltaCatalogSearch
from satlake.catalog.table import (
    CATALOG_TABLE_SCHEMA,
    CELL_KEY_PRECISION,
    SEARCH_LAYOUT_FILE_BYTES,
    search_layout,
    search_layout_writer_properties,
)
from satlake.settings import Mode, Settings

if TYPE_CHECKING:
    from satlake.resources.trino import TrinoLake

ITEMS = {"small": 2_000, "full": 1_000_000}
# Where item centres fall (W, S, E, N): the whole globe between 70°S and 70°N at full size; at smoke size, western
# Europe, so that a couple of thousand items still give every query an answer to compare.
CENTRE_AREAS = {"small": (-10.0, 40.0, 20.0, 60.0), "full": (-180.0, -70.0, 180.0, 70.0)}
REPETITIONS = 20
# Untimed rounds between the first run and the timed ones: Trino's JIT compiler keeps cutting its latency for the
# first hundred or so queries after a start (a warm search at 1M items fell from about 400 to 250 ms).
WARMUP_ROUNDS = {"small": 1, "full": 40}
TRINO_TARGETS = 3.0  # Trino p50 within 3x pgstac's
FIRST, LAST = datetime(2021, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
FOOTPRINT_DEG = 1.7  # a Landsat scene is about 185 km across
COLLECTION = "landsat-c2-l2"
BANDS = ("blue", "green", "red", "nir08")
PGSTAC_PARTITION_TRUNC = "year"  # pgstac partitions a collection's items by time; a year holds 200,000 here
QUERIES = {
    "city bbox, one month": SearchQuery(
        bbox=(2.25, 48.80, 2.45, 48.92),
        datetime_range=(datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 30, 23, 59, 59, tzinfo=UTC)),
    ),
    "country bbox, one year, cloud < 20%": SearchQuery(
        bbox=(-5.0, 42.0, 8.0, 51.0),
        datetime_range=(datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)),
        cloud_cover_max=20.0,
    ),
    "point, all time": SearchQuery(bbox=(13.40, 52.52, 13.40, 52.52)),
}
SATLAKE = "satlake embedded (DeltaCatalogSearch)"
SATLAKE_SQL = "satlake search_sql on DuckDB"
PGSTAC = "pgstac"
TRINO = "satlake through Trino"


def geohash(lat: np.ndarray, lon: np.ndarray, precision: int) -> list[str]:
    """Vectorised geohash of points (the standard base-32 interleaving, longitude bit first)."""
    alphabet = np.array(list("0123456789bcdefghjkmnpqrstuvwxyz"))
    lat_lo, lat_hi = np.full(lat.shape, -90.0), np.full(lat.shape, 90.0)
    lon_lo, lon_hi = np.full(lon.shape, -180.0), np.full(lon.shape, 180.0)
    chars = []
    even = True
    for _ in range(precision):
        code = np.zeros(lat.shape, dtype=np.int64)
        for _ in range(5):
            if even:
                mid = (lon_lo + lon_hi) / 2
                bit = lon >= mid
                lon_lo, lon_hi = np.where(bit, mid, lon_lo), np.where(bit, lon_hi, mid)
            else:
                mid = (lat_lo + lat_hi) / 2
                bit = lat >= mid
                lat_lo, lat_hi = np.where(bit, mid, lat_lo), np.where(bit, lat_hi, mid)
            code = code * 2 + bit
            even = not even
        chars.append(alphabet[code])
    return ["".join(parts) for parts in zip(*chars, strict=True)]


def footprint(xmin: float, ymin: float, xmax: float, ymax: float) -> dict[str, Any]:
    """GeoJSON of a lon/lat box; one crossing the antimeridian (xmin > xmax) is split there, as STAC asks."""

    def ring(west: float, east: float) -> list[list[float]]:
        return [[west, ymin], [east, ymin], [east, ymax], [west, ymax], [west, ymin]]

    if xmin <= xmax:
        return {"type": "Polygon", "coordinates": [ring(xmin, xmax)]}
    return {"type": "MultiPolygon", "coordinates": [[ring(xmin, 180.0)], [ring(-180.0, xmax)]]}


def stac_item(
    item_id: str, bbox: tuple[float, float, float, float], moment: str, cloud: float
) -> dict[str, Any]:  # fmt: skip
    """A Landsat-like STAC 1.1 item, as the catalog table's ``item_json`` holds it and pgstac loads it."""
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": item_id,
        "collection": COLLECTION,
        "bbox": list(bbox),
        "geometry": footprint(*bbox),
        "properties": {
            "datetime": moment,
            "platform": "landsat-8",
            "instruments": ["oli", "tirs"],
            "eo:cloud_cover": cloud,
            "gsd": 30.0,
            "proj:code": "EPSG:32633",
        },
        "assets": {
            band: {
                "href": f"s3://satlake-bench/{COLLECTION}/{item_id}/{item_id}_{band}.TIF",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
            }
            for band in BANDS
        },
        "links": [],
    }


def synthetic_items(
    count: int, area: tuple[float, float, float, float] = CENTRE_AREAS["full"], seed: int = 11
) -> pa.Table:
    """``count`` Landsat-like items in the catalog table schema, centres uniform over ``area`` and five years.

    Coordinates are rounded to 1e-4 degree before both the columns and the item JSON are made from them, so
    satlake's bbox columns and pgstac's geometry hold the very same numbers.
    """
    rng = np.random.default_rng(seed)
    west, south, east, north = area
    lon = rng.uniform(west, east, count)
    lat = rng.uniform(south, north, count)
    half = FOOTPRINT_DEG / 2
    xmin, xmax = (lon - half).round(4), (lon + half).round(4)
    xmin = np.where(xmin < -180, xmin + 360, xmin).round(4)  # wraps: stored crossing the antimeridian
    xmax = np.where(xmax > 180, xmax - 360, xmax).round(4)
    ymin, ymax = (lat - half).round(4), (lat + half).round(4)
    seconds = rng.uniform(FIRST.timestamp(), LAST.timestamp(), count)
    when = (seconds * 1e6).astype("datetime64[us]")
    cloud = np.round(rng.uniform(0, 100, count), 1)
    ids = [f"LC08_{n:08d}" for n in range(count)]
    moments = [f"{text}Z" for text in np.datetime_as_string(when, unit="us")]
    item_json = [
        json.dumps(stac_item(i, (a, b, c, d), m, k), separators=(",", ":"))
        for i, a, b, c, d, m, k in zip(
            ids, xmin.tolist(), ymin.tolist(), xmax.tolist(), ymax.tolist(), moments, cloud.tolist(), strict=True
        )
    ]
    assets = json.dumps(stac_item("x", (0, 0, 1, 1), "", 0.0)["assets"], separators=(",", ":"))
    columns: dict[str, Any] = {
        "id": ids,
        "collection": [COLLECTION] * count,
        "datetime": pa.array(when, pa.timestamp("us", tz="UTC")),
        "date": pa.array(when.astype("datetime64[D]"), pa.date32()),
        "platform": ["landsat-8"] * count,
        "instruments": [["oli", "tirs"]] * count,
        "cloud_cover": cloud,
        "bbox_xmin": xmin,
        "bbox_ymin": ymin,
        "bbox_xmax": xmax,
        "bbox_ymax": ymax,
        "crosses_antimeridian": xmin > xmax,
        "cell_key": geohash(lat, lon, CELL_KEY_PRECISION),
        "body": ["earth"] * count,
        "geometry_wkb": [None] * count,
        "proj_code": ["EPSG:32633"] * count,
        "gsd": np.full(count, 30.0),
        "asset_keys": [sorted(BANDS)] * count,
        "assets_json": [assets] * count,  # the same shape for every item; only item_json holds the real hrefs
        "item_json": item_json,
    }
    return pa.table(columns, schema=CATALOG_TABLE_SCHEMA)


def write_catalog(items: pa.Table, uri: str, storage_options: dict[str, str] | None = None) -> None:
    """The catalog table as one Delta commit in satlake's search layout (catalog.table.search_layout)."""
    write_deltalake(
        uri,
        search_layout(items),
        writer_properties=search_layout_writer_properties(),
        target_file_size=SEARCH_LAYOUT_FILE_BYTES,
        storage_options=storage_options,
    )


def write_items_ndjson(items: pa.Table, path: Path) -> None:
    """The very item JSON the catalog table holds, one item per line, for ``pypgstac load items``."""
    with path.open("w") as out:
        for text in items.column("item_json").to_pylist():
            out.write(text)
            out.write("\n")


# --- the systems -------------------------------------------------------------------------------------------

Search = Callable[[SearchQuery], list[str]]  # the ids a system returns, in its order


def satlake_embedded(searcher: DeltaCatalogSearch) -> Search:
    return lambda query: [row["id"] for row in searcher.search(query)]


def satlake_sql_on_duckdb(uri: str) -> Search:
    """search_sql on one DuckDB connection over the table's Arrow dataset (how ``satlake search`` runs it)."""
    connection = duckdb.connect()
    connection.register("catalog_items", DeltaTable(uri).to_pyarrow_dataset())
    return lambda query: [row["id"] for row in search_catalog_duckdb(connection, "catalog_items", query)]


def pgstac_search(client: pgstac.PgstacSearch) -> Search:
    return lambda query: client.search_ids(pgstac.search_body(query))


@contextmanager
def pgstac_peer(items: pa.Table, workdir: Path, notes: list[str]) -> Iterator[Search]:
    """A private pgstac loaded with ``items``; yields its search. Notes say how long each step took."""
    ndjson = workdir / "items.ndjson"
    write_items_ndjson(items, ndjson)
    with pgstac.private_cluster() as cluster:
        started = time.perf_counter()
        collection = pgstac.collection_document(COLLECTION, FIRST, LAST)
        pgstac.install_and_load(cluster.dsn, collection, ndjson, workdir, PGSTAC_PARTITION_TRUNC)
        load_s = time.perf_counter() - started
        ndjson.unlink()
        notes.append(
            f"pgstac: PostgreSQL {cluster.version} + PostGIS, pypgstac {pgstac_version()}; migrate + load of "
            f"{items.num_rows:,} items + VACUUM ANALYZE took {load_s:.1f} s; collection partitioned by "
            f"{PGSTAC_PARTITION_TRUNC}; eo:cloud_cover queryable with a B-tree index; server settings "
            + ", ".join(f"{k}={v}" for k, v in pgstac.SERVER_SETTINGS.items())
        )
        client = pgstac.PgstacSearch(cluster.dsn)
        try:
            yield pgstac_search(client)
        finally:
            client.close()


def pgstac_version() -> str:
    import pypgstac

    return str(pypgstac.__version__)


@contextmanager
def registered_trino_table(
    items: pa.Table, notes: list[str], settings: Settings | None = None
) -> Iterator[tuple[TrinoLake, str]]:
    """The catalog table written to the stack's lake bucket under a throwaway name and registered in Trino by the
    lakehouse's ``on_table_written`` hook; yields the Trino client and the table's name (``schema.table``).
    Unregistered and deleted after.

    ``settings`` default to the environment's stack (``satlake stack up``)."""
    from satlake.resources import build_resources
    from satlake.resources.lakehouse import TableRef

    settings = settings or Settings.from_env().with_overrides(mode=Mode.STACK)
    resources = build_resources(settings)
    lakehouse, trino = resources.lakehouse, resources.query_engine.trino  # type: ignore[attr-defined]
    table = TableRef("bench", f"catalog_search_{uuid.uuid4().hex[:12]}")
    uri = lakehouse.uri(table)
    started = time.perf_counter()
    try:
        write_catalog(items, uri, lakehouse.storage_options)
        assert lakehouse.on_table_written is not None, "stack mode registers written tables in Trino"
        lakehouse.on_table_written(table, uri)
        notes.append(
            f"Trino: {settings.trino_host}:{settings.trino_port}, table {uri} written and registered in "
            f"{time.perf_counter() - started:.1f} s"
        )
        yield trino, f"{table.zone}.{table.name}"
    finally:
        if trino.table_exists(table.zone, table.name):
            trino.unregister_table(table.zone, table.name)
        _delete_lake_prefix(lakehouse, table.path)
        trino.close()


@contextmanager
def trino_catalog(items: pa.Table, notes: list[str], settings: Settings | None = None) -> Iterator[Search]:
    """satlake's ``search_catalog_trino`` over the catalog table registered by :func:`registered_trino_table`."""
    with registered_trino_table(items, notes, settings) as (trino, table_ref):
        yield lambda query: [row["id"] for row in search_catalog_trino(trino, table_ref, query)]


def _delete_lake_prefix(lakehouse: Any, relative: str) -> None:
    from pyarrow import fs

    options = {k.upper(): v for k, v in lakehouse.storage_options.items()}
    endpoint = options["AWS_ENDPOINT_URL"]
    s3 = fs.S3FileSystem(
        access_key=options["AWS_ACCESS_KEY_ID"],
        secret_key=options["AWS_SECRET_ACCESS_KEY"],
        region=options.get("AWS_REGION", "us-east-1"),
        endpoint_override=endpoint.split("://", 1)[-1],
        scheme="http" if endpoint.startswith("http://") else "https",
    )
    s3.delete_dir(f"{lakehouse.root_uri.removeprefix('s3://').rstrip('/')}/{relative}")


# --- measuring ---------------------------------------------------------------------------------------------


def measure(
    systems: dict[str, Search], repetitions: int, warmup_rounds: int = 0
) -> tuple[list[dict[str, Any]], dict[str, dict[str, list[str]]]]:
    """Every query on every system: one cold run, ``warmup_rounds`` untimed rounds, then ``repetitions`` timed
    rounds, systems interleaved in each."""
    rows: list[dict[str, Any]] = []
    answers: dict[str, dict[str, list[str]]] = {name: {} for name in systems}
    names = list(systems)
    for query_name, query in QUERIES.items():
        latencies: dict[str, list[float]] = {name: [] for name in systems}
        for repetition in range(1 + warmup_rounds + repetitions):
            # Each round starts with another system, so that none always runs in the wake of the same one
            # (Trino's JVM keeps working for a while after it has answered).
            for name in names[repetition % len(names) :] + names[: repetition % len(names)]:
                search = systems[name]
                started = time.perf_counter()
                found = search(query)
                latencies[name].append(time.perf_counter() - started)
                answers[name][query_name] = found
        for name in systems:
            timed = latencies[name][1 + warmup_rounds :]
            rows.append(
                {
                    "system": name,
                    "query": query_name,
                    "items_returned": len(answers[name][query_name]),
                    "first_ms": round(latencies[name][0] * 1000, 1),
                    "p50_ms": round(percentile(timed, 0.5) * 1000, 1),
                    "p99_ms": round(percentile(timed, 0.99) * 1000, 1),
                }
            )
    return rows, answers


def comparisons_of(rows: list[dict[str, Any]], answers: dict[str, dict[str, list[str]]]) -> list[dict[str, Any]]:
    """Embedded p50 vs pgstac's (target: no slower), Trino p50 vs pgstac's (within 3x), and identical answers."""
    p50 = {(row["system"], row["query"]): row["p50_ms"] for row in rows}
    out: list[dict[str, Any]] = []
    for query in QUERIES:
        peer = p50.get((PGSTAC, query))
        no_peer = "" if peer is not None else "pgstac not run"
        ours = p50[(SATLAKE, query)]
        met = None if peer is None else ours <= peer
        out.append(comparison(f"{query}: embedded p50 ms", ours, peer, "<= pgstac p50", met, no_peer))
        sql = p50[(SATLAKE_SQL, query)]
        out.append(comparison(f"{query}: search_sql on DuckDB p50 ms", sql, peer, "(reference)", None, no_peer))
        trino = p50.get((TRINO, query))
        if trino is not None:
            met = None if peer is None else trino <= TRINO_TARGETS * peer
            target = f"<= {TRINO_TARGETS:g}x pgstac p50"
            out.append(comparison(f"{query}: Trino p50 ms", trino, peer, target, met, no_peer))
        for system in (SATLAKE_SQL, PGSTAC, TRINO):
            if system in answers:
                same = answers[system][query] == answers[SATLAKE][query]
                note = "" if same else f"{answers[system][query][:3]}... vs {answers[SATLAKE][query][:3]}..."
                out.append(comparison(f"{query}: {system} items identical", None, None, "identical", same, note))
    return out


def run(size: str, workdir: Path, with_trino: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    count = ITEMS[size]
    notes = [
        f"{count:,} items centred in W,S,E,N {CENTRE_AREAS[size]}, {FIRST.year}-{LAST.year - 1}, "
        f"{FOOTPRINT_DEG} degree footprints",
        f"latency: {REPETITIONS} timed repetitions after one first (cold) run and {WARMUP_ROUNDS[size]} untimed "
        f"warm-up rounds, systems interleaved; limit "
        f"{QUERIES['point, all time'].limit} items",
    ]
    started = time.perf_counter()
    items = synthetic_items(count, CENTRE_AREAS[size])
    notes.append(f"generated in {time.perf_counter() - started:.1f} s")
    uri = str(workdir / "catalog_items")
    started = time.perf_counter()
    write_catalog(items, uri)
    notes.append(f"satlake: Delta table written in search layout in {time.perf_counter() - started:.1f} s")
    with ExitStack() as stack:
        started = time.perf_counter()
        searcher = stack.enter_context(DeltaCatalogSearch(uri))
        notes.append(
            f"satlake: DeltaCatalogSearch opened (index of {searcher.indexed_rows:,} rows, "
            f"{searcher.index_bytes / 2**20:.0f} MiB) in {time.perf_counter() - started:.1f} s"
        )
        systems: dict[str, Search] = {SATLAKE: satlake_embedded(searcher), SATLAKE_SQL: satlake_sql_on_duckdb(uri)}
        reason = pgstac.unavailable_reason()
        if reason is None:
            systems[PGSTAC] = stack.enter_context(pgstac_peer(items, workdir, notes))
        else:
            notes.append(f"pgstac peer skipped: {reason}")
        if with_trino:
            systems[TRINO] = stack.enter_context(trino_catalog(items, notes))
        del items
        # The set-up left millions of objects behind; frozen, they cost no garbage-collection pass during a search.
        gc.collect()
        gc.freeze()
        try:
            rows, answers = measure(systems, REPETITIONS, WARMUP_ROUNDS[size])
        finally:
            gc.unfreeze()
    return rows, comparisons_of(rows, answers), notes


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=SIZES, default="small", help="small: smoke test; full: the figures")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="result JSON (default: bench/results/<name>.json)")
    parser.add_argument(
        "--trino", action="store_true", help="also search through the running stack's Trino (satlake stack up)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="satlake-bench-catalog-", dir=args.workdir) as scratch:
        rows, comparisons, notes = run(args.size, Path(scratch), args.trino)
    print_table(rows)
    print()
    print_table(comparisons)
    for note in notes:
        print(note)
    data_size = f"{ITEMS[args.size]:,} STAC items"
    extra = "--trino" if args.trino else ""
    path = write_result("catalog_search", args.size, data_size, rows, comparisons, args.out, notes, extra)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
