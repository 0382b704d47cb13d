"""Tile latency of a warm COG: satlake's tiles router (``satlake serve``: the item from the Delta catalog, titiler's
``MultiBaseTilerFactory`` over rio-tiler's STACReader, access control, renderings, request checks) against a bare
titiler app (titiler.core's ``TilerFactory`` over the same COG file path), both under uvicorn in their own process.

The COG is the COG benchmark's synthetic uint16 band on a 10 m UTM grid, converted by satlake's ``convert_to_cog``
and catalogued as one item. The same fixed list of Web-Mercator tiles (the three most detailed zoom levels, tiles
wholly inside the scene) is asked of both with the same rescaling, by the same keep-alive HTTP client, servers
interleaved; untimed rounds first warm GDAL's caches. Both must return the same pixels.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import morecantile
import numpy as np
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile

from bench import serving_http
from bench.cog import BAND_SIZES, satlake_convert, write_source_scene
from bench.common import comparison, percentile
from satlake.catalog.table import catalog_rows

SATLAKE = "satlake serve tiles router"
BARE = "bare titiler TilerFactory"
BARE_APP_FACTORY = "bench.serving_tiles:bare_titiler_app"
COLLECTION = "bench-tiles"
ITEM_ID = "bench-cog"
ASSET = "red"
RESCALE = "500,3500"  # the synthetic reflectance field spans about 600 to 3300
TMS = "WebMercatorQuad"
ZOOM_LEVELS = 3  # the most detailed ones: full resolution and the first two overviews
TILES_PER_ZOOM = 6
WARMUP_ROUNDS = {"small": 1, "full": 3}
REPETITIONS = {"small": 3, "full": 20}
# rio-tiler reads the assets of a multi-asset request (STACReader, so satlake's router) in a new thread pool of
# this many threads per request; the bare app's single-file Reader uses none. Recorded with every run.
RIO_TILER_THREADS_VARIABLE = "RIO_TILER_MAX_THREADS"
TARGET_RATIO = 1.2  # satlake's p50 within 1.2x the bare app's
# What satlake's router sets for every asset read; the bare app gets the same, so GDAL does the same work.
GDAL_ENVIRONMENT = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
BARE_TILES = f"/cog/tiles/{TMS}/{{z}}/{{x}}/{{y}}.png"
ACQUIRED_AT = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)

Tile = tuple[int, int, int]  # z, x, y
FetchTile = Callable[[Tile], bytes]


def bare_titiler_app() -> Any:
    """The peer: titiler.core's ``TilerFactory`` over a COG given by ``?url=``, mounted at ``/cog``."""
    from fastapi import FastAPI
    from titiler.core.factory import TilerFactory

    def environment() -> dict[str, str]:
        return GDAL_ENVIRONMENT

    app = FastAPI(title="bare titiler")
    cog = TilerFactory(environment_dependency=environment, add_viewer=False)
    app.include_router(cog.router, prefix="/cog")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def cog_item(cog: Path) -> dict[str, Any]:
    """The STAC item of ``cog`` as the scene pipeline catalogues it (``read_scene_metadata``, then
    ``build_stac_item``): its one band as the data asset ``ASSET``, its footprint on Earth."""
    from satlake.catalog.items import MEDIA_TYPE_COG, AssetRef, build_stac_item
    from satlake.scenes.raster import read_scene_metadata

    meta = read_scene_metadata(ITEM_ID, COLLECTION, {cog.name: cog})
    meta = dataclasses.replace(meta, acquired_at=ACQUIRED_AT)  # the synthetic file carries no acquisition time
    band_names = tuple(band.name for band in meta.bands)
    asset = AssetRef(href=str(cog), media_type=MEDIA_TYPE_COG, roles=("data",), band_names=band_names)
    return build_stac_item(meta, {ASSET: asset})


def tiles_over(cog: Path) -> list[Tile]:
    """A fixed list of tiles wholly inside ``cog``: ``TILES_PER_ZOOM`` spread over each of its ``ZOOM_LEVELS``
    most detailed zoom levels."""
    from rio_tiler.io import Reader

    tms = morecantile.tms.get(TMS)
    with Reader(str(cog), tms=tms) as reader:
        west, south, east, north = reader.get_geographic_bounds(tms.rasterio_geographic_crs)
        maxzoom = reader.maxzoom
    chosen: list[Tile] = []
    for zoom in range(maxzoom - ZOOM_LEVELS + 1, maxzoom + 1):
        inside = []
        for tile in tms.tiles(west, south, east, north, [zoom]):
            bounds = tms.bounds(tile)
            if bounds.left >= west and bounds.right <= east and bounds.bottom >= south and bounds.top <= north:
                inside.append((tile.z, tile.x, tile.y))
        step = max(1, len(inside) // TILES_PER_ZOOM)
        chosen.extend(inside[::step][:TILES_PER_ZOOM])
    if not chosen:
        raise RuntimeError(f"{cog} holds no whole tile at zoom {maxzoom - ZOOM_LEVELS + 1}-{maxzoom}")
    return chosen


def tile_fetcher(base_url: str, path: str, params: dict[str, str], system: str) -> FetchTile:
    """GET ``{base_url}{path}`` (a template of z, x, y) with ``params``; the PNG bytes of a 200 answer."""
    session = serving_http.http_session()

    def fetch(tile: Tile) -> bytes:
        z, x, y = tile
        response = session.get(base_url + path.format(z=z, x=x, y=y), params=params, timeout=120)
        if response.status_code != 200:
            serving_http.checked_json(response, f"{system} tile {z}/{x}/{y}")
        return response.content

    return fetch


def decoded(png: bytes) -> np.ndarray:
    """The bands of a PNG tile (an image without georeferencing, which rasterio would warn about)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(png) as memory, memory.open() as image:
            return image.read()


def measure_tiles(
    systems: dict[str, FetchTile], tiles: list[Tile], warmup_rounds: int, repetitions: int
) -> tuple[list[dict[str, Any]], int]:
    """Every tile from every system in each round, systems rotated tile by tile; rows of p50/p99 over the timed
    rounds, and how many tiles decode to identical pixels in both systems (last round's answers)."""
    names = list(systems)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    first: dict[str, list[float]] = {name: [] for name in names}
    answers: dict[str, dict[Tile, bytes]] = {name: {} for name in names}
    turn = 0
    for round_number in range(warmup_rounds + repetitions):
        for tile in tiles:
            turn += 1
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                started = time.perf_counter()
                answers[name][tile] = systems[name](tile)
                elapsed = time.perf_counter() - started
                if round_number == 0:
                    first[name].append(elapsed)
                elif round_number >= warmup_rounds:
                    latencies[name].append(elapsed)
    rows = [
        {
            "system": name,
            "tiles": len(tiles),
            "timed_requests": len(latencies[name]),
            "first_round_p50_ms": round(percentile(first[name], 0.5) * 1000, 1),
            "p50_ms": round(percentile(latencies[name], 0.5) * 1000, 1),
            "p99_ms": round(percentile(latencies[name], 0.99) * 1000, 1),
            "mean_png_kib": round(sum(len(png) for png in answers[name].values()) / len(tiles) / 1024, 1),
        }
        for name in names
    ]
    identical = sum(
        all(np.array_equal(decoded(answers[names[0]][tile]), decoded(answers[name][tile])) for name in names[1:])
        for tile in tiles
    )
    return rows, identical


def comparisons_of(rows: list[dict[str, Any]], identical: int, tiles: int) -> list[dict[str, Any]]:
    ours, peer = ({row["system"]: row for row in rows}[name] for name in (SATLAKE, BARE))
    target = f"<= {TARGET_RATIO:g}x bare titiler p50"
    met = ours["p50_ms"] <= TARGET_RATIO * peer["p50_ms"]
    return [
        comparison("tile p50 ms", ours["p50_ms"], peer["p50_ms"], target, met),
        comparison("tile p99 ms", ours["p99_ms"], peer["p99_ms"], "(reference)", None),
        comparison("tiles with identical pixels", identical, tiles, "every tile", identical == tiles),
    ]


def catalogued_cog(size: str, workdir: Path, notes: list[str]) -> tuple[Path, Path]:
    """The COG (satlake's conversion of the synthetic band) and a satlake root whose catalog holds its item."""
    from deltalake import write_deltalake

    started = time.perf_counter()
    source = write_source_scene(workdir / "scene.tif", BAND_SIZES[size])
    cog = Path(satlake_convert(str(source), str(workdir / "scene_cog.tif"))[1])
    source.unlink()
    root = workdir / "satlake-root"
    write_deltalake(serving_http.embedded_catalog_uri(root), catalog_rows([cog_item(cog)]))
    notes.append(
        f"COG: {BAND_SIZES[size]}x{BAND_SIZES[size]} uint16, 1 band, EPSG:32633 10 m, {cog.stat().st_size / 2**20:.0f} "
        f"MiB (deflate, 512-pixel tiles, overviews), written and catalogued in {time.perf_counter() - started:.1f} s"
    )
    return cog, root


def run(size: str, workdir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    threads = os.environ.get(RIO_TILER_THREADS_VARIABLE)
    notes = [
        f"load average (1 min) at the start: {os.getloadavg()[0]:.2f}",
        f"{RIO_TILER_THREADS_VARIABLE}="
        + (threads if threads is not None else "unset (rio-tiler's default: 5 threads per CPU for multi-asset reads)"),
    ]
    cog, root = catalogued_cog(size, workdir, notes)
    tiles = tiles_over(cog)
    versions = ", ".join(f"{name} {serving_http.server_version(name)}" for name in ("titiler-core", "rio-tiler"))
    notes.append(
        f"tiles: {len(tiles)} {TMS} 256-pixel PNG tiles at zoom {tiles[0][0]}-{tiles[-1][0]}, rescale {RESCALE}; "
        f"{WARMUP_ROUNDS[size]} untimed rounds, then {REPETITIONS[size]} timed rounds of every tile, servers "
        f"interleaved; {versions}"
    )
    satlake_port, bare_port = serving_http.free_port(), serving_http.free_port()
    satlake_command = serving_http.satlake_serve_command(satlake_port)
    bare_command = serving_http.uvicorn_factory_command(BARE_APP_FACTORY, bare_port)
    satlake_env = serving_http.satlake_environment(root)
    with (
        serving_http.running_server("satlake-serve", satlake_command, satlake_port, workdir, satlake_env) as ours,
        serving_http.running_server("bare-titiler", bare_command, bare_port, workdir, probe_path="/healthz") as bare,
    ):
        item_tiles = f"/collections/{COLLECTION}/items/{ITEM_ID}/tiles/{TMS}/{{z}}/{{x}}/{{y}}.png"
        systems = {
            SATLAKE: tile_fetcher(ours, item_tiles, {"assets": ASSET, "rescale": RESCALE}, SATLAKE),
            BARE: tile_fetcher(bare, BARE_TILES, {"url": str(cog), "rescale": RESCALE}, BARE),
        }
        rows, identical = measure_tiles(systems, tiles, WARMUP_ROUNDS[size], REPETITIONS[size])
    notes.append(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    return rows, comparisons_of(rows, identical, len(tiles)), notes


def cog_size(size: str) -> str:
    return f"{BAND_SIZES[size]}x{BAND_SIZES[size]} uint16 COG"


def main(argv: list[str] | None = None) -> Path:
    return serving_http.run_benchmark(
        "serving_tiles", __doc__ or "", argv, run, lambda size: f"{BAND_SIZES[size]}x{BAND_SIZES[size]} uint16 COG"
    )


if __name__ == "__main__":
    main()
