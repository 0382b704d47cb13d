"""Catalog search: synthetic STAC rows spread over the globe and five years in the catalog table schema, written as
Delta sorted by (cell_key, datetime), queried with satlake's ``search_catalog_duckdb`` (embedded mode).

Three queries from the issue: a city-sized bbox for one month, a country-sized bbox for one year with cloud cover
under 20%, and a point for all time; p50/p99 latency over repeated runs on a warm connection.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, WriterProperties, write_deltalake

from bench.common import comparison, percentile, print_table, size_argument, write_result
from satlake.catalog.search import SearchQuery, search_catalog_duckdb
from satlake.catalog.table import CATALOG_TABLE_SCHEMA, CELL_KEY_PRECISION

ITEMS = {"small": 20_000, "full": 1_000_000}
REPETITIONS = 20
ROW_GROUP_ROWS = 16_384
FIRST, LAST = datetime(2021, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
FOOTPRINT_DEG = 1.7  # a Landsat scene is about 185 km across
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


def synthetic_items(count: int, seed: int = 11) -> pa.Table:
    """``count`` Landsat-like items in the catalog table schema, uniform over latitudes -70..70 and five years."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-180, 180, count)
    lat = rng.uniform(-70, 70, count)
    half = FOOTPRINT_DEG / 2
    xmin, xmax = lon - half, lon + half
    xmin = np.where(xmin < -180, xmin + 360, xmin)  # wraps: stored crossing the antimeridian (xmin > xmax)
    xmax = np.where(xmax > 180, xmax - 360, xmax)
    seconds = rng.uniform(FIRST.timestamp(), LAST.timestamp(), count)
    when = (seconds * 1e6).astype("datetime64[us]")
    cloud = np.round(rng.uniform(0, 100, count), 1)
    ids = [f"LC08_{n:08d}" for n in range(count)]
    item_json = [
        json.dumps({"type": "Feature", "stac_version": "1.1.0", "id": i, "bbox": [a, b, c, d]})
        for i, a, b, c, d in zip(
            ids,
            xmin.round(4).tolist(),
            (lat - half).round(4).tolist(),
            xmax.round(4).tolist(),
            (lat + half).round(4).tolist(),
            strict=True,
        )
    ]
    columns: dict[str, Any] = {
        "id": ids,
        "collection": ["landsat-c2-l2"] * count,
        "datetime": pa.array(when, pa.timestamp("us", tz="UTC")),
        "date": pa.array(when.astype("datetime64[D]"), pa.date32()),
        "platform": ["landsat-8"] * count,
        "instruments": [["oli", "tirs"]] * count,
        "cloud_cover": cloud,
        "bbox_xmin": xmin,
        "bbox_ymin": lat - half,
        "bbox_xmax": xmax,
        "bbox_ymax": lat + half,
        "crosses_antimeridian": xmin > xmax,
        "cell_key": geohash(lat, lon, CELL_KEY_PRECISION),
        "body": ["earth"] * count,
        "geometry_wkb": [None] * count,
        "proj_code": ["EPSG:32633"] * count,
        "gsd": np.full(count, 30.0),
        "asset_keys": [["blue", "green", "red", "nir08"]] * count,
        "assets_json": ["{}"] * count,
        "item_json": item_json,
    }
    return pa.table(columns, schema=CATALOG_TABLE_SCHEMA)


def write_catalog(items: pa.Table, uri: str) -> None:
    """Sorted by cell then time, so row-group statistics on bbox and datetime let a search skip most of it."""
    ordered = items.take(pc.sort_indices(items, [("cell_key", "ascending"), ("datetime", "ascending")]))
    write_deltalake(uri, ordered, writer_properties=WriterProperties(max_row_group_size=ROW_GROUP_ROWS))


def connect(uri: str) -> duckdb.DuckDBPyConnection:
    """The same wiring as satlake's DuckDB query resource: the Delta table's Arrow dataset behind a view."""
    con = duckdb.connect()
    con.register("__delta_catalog_items", DeltaTable(uri).to_pyarrow_dataset())
    con.execute('CREATE SCHEMA "catalog"')
    con.execute('CREATE VIEW "catalog"."items" AS SELECT * FROM "__delta_catalog_items"')
    return con


def run(size: str, workdir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    count = ITEMS[size]
    started = time.perf_counter()
    items = synthetic_items(count)
    generate_s = time.perf_counter() - started
    uri = str(workdir / "catalog_items")
    started = time.perf_counter()
    write_catalog(items, uri)
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    con = connect(uri)
    connect_s = time.perf_counter() - started
    rows: list[dict[str, Any]] = []
    for name, query in QUERIES.items():
        latencies, hits = [], 0
        for _ in range(REPETITIONS + 1):
            started = time.perf_counter()
            hits = len(search_catalog_duckdb(con, "catalog.items", query))
            latencies.append(time.perf_counter() - started)
        rows.append(
            {
                "system": "satlake (DuckDB over Delta)",
                "query": name,
                "items_returned": hits,
                "first_ms": round(latencies[0] * 1000, 1),
                "p50_ms": round(percentile(latencies[1:], 0.5) * 1000, 1),
                "p99_ms": round(percentile(latencies[1:], 0.99) * 1000, 1),
            }
        )
    con.close()
    comparisons = [
        comparison(f"{r['query']}: p50 ms", r["p50_ms"], None, "<= pgstac p50", None, "pgstac peer not measured")
        for r in rows
    ]
    notes = [
        f"{count:,} items, latitudes -70..70, {FIRST.year}-{LAST.year - 1}, {FOOTPRINT_DEG} degree footprints",
        f"generated in {generate_s:.1f} s, written as Delta in {write_s:.1f} s (row groups of {ROW_GROUP_ROWS:,} rows, "
        f"sorted by cell_key, datetime), connection set up in {connect_s * 1000:.0f} ms",
        f"latency: {REPETITIONS} warm repetitions after one first run, limit {QUERIES['point, all time'].limit} items",
    ]
    return rows, comparisons, notes


def main(argv: list[str] | None = None) -> Path:
    args = size_argument(__doc__ or "", argv)
    with tempfile.TemporaryDirectory(prefix="satlake-bench-catalog-", dir=args.workdir) as scratch:
        rows, comparisons, notes = run(args.size, Path(scratch))
    print_table(rows)
    print()
    print_table(comparisons)
    for note in notes:
        print(note)
    data_size = f"{ITEMS[args.size]:,} STAC items"
    path = write_result("catalog_search", args.size, data_size, rows, comparisons, args.out, notes)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
