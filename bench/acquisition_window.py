"""AOI window of a remote Sentinel-2-sized COG: satlake's ``read_window`` (HTTP Range GETs through a rasterio opener
over the polite session: the header in 16 KiB blocks, then one request per row of tiles under the window, at most 4
at a time) against the two things a user would do instead, on the same file served by the STAC replay server, for
square centred AOIs of 1 %, 5 % and 25 % of the scene:

- GDAL's own ``/vsicurl/`` through rasterio (``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``, GDAL's defaults
  otherwise), reading the same window: what rioxarray, odc-stac and stackstac do underneath;
- downloading the whole file with requests (streamed to disk) and cropping it locally: a naive downloader.

All three write the window as the same tiled, deflated GeoTIFF and must return identical pixels (asserted here,
against the window read from the local COG). Each run is a fresh spawned process, so GDAL's caches start cold;
wall time is the call alone (no interpreter start), requests and bytes are the server's count, and the peak
memory increase is the process's VmHWM (reset through ``/proc/self/clear_refs`` just before the call) minus its
RSS at that moment. ``--latency-ms`` adds a delay before every asset answer, as an object store's first byte.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.warp
import requests
from rasterio.crs import CRS
from rasterio.windows import Window
from shapely.geometry import box, mapping, shape

from bench.common import SIZES, comparison, print_table, run_isolated, write_result
from satlake.acquisition import stac_replay
from satlake.acquisition.remote_file import BLOCK_BYTES
from satlake.acquisition.stac_replay import ReplayItem, StacReplayServer
from satlake.acquisition.window import aoi_window, read_window
from satlake.resources.http import ByteBudget, PoliteSession

NAME = "acquisition_window"
# 10980 is Sentinel-2's 10 m band; 2060 the smoke size (as the COG benchmark's).
BAND_SIDES = {"small": 2060, "full": 10980}
AOI_FRACTIONS = (0.01, 0.05, 0.25)  # of the scene's area
SATLAKE = "satlake read_window"
VSICURL = "GDAL /vsicurl/ (rasterio)"
DOWNLOAD = "whole file (requests) + crop"
METHODS = (SATLAKE, VSICURL, DOWNLOAD)
COLLECTION, ITEM_ID, ASSET = "bench-acquisition", "bench-s2-band", "red"
OUT_TILE = 256  # read_window's output tiling, used for the peers' output too
DOWNLOAD_CHUNK = 1024 * 1024


# -- the COG and the AOIs ----------------------------------------------------------------------------------------
def sentinel2_sized_cog(work_dir: Path, side: int) -> Path:
    """The synthetic uint16 band of the COG benchmark (smooth reflectance field plus noise, EPSG:32633 at 10 m)
    converted by satlake's ``convert_to_cog`` (DEFLATE, predictor 2, 512-pixel tiles, overviews); cached."""
    from bench.cog import write_source_scene
    from satlake.scenes.cog import convert_to_cog

    cog = work_dir / f"s2_band_{side}_cog.tif"
    if cog.is_file():
        return cog
    source = write_source_scene(work_dir / f"s2_band_{side}_source.tif", side)
    partial = work_dir / f"s2_band_{side}_cog.partial.tif"
    convert_to_cog(source, partial, profile="deflate", overview_resampling="average")
    source.unlink()
    partial.rename(cog)
    return cog


def centred_aoi(cog: Path, fraction: float) -> Any:
    """A square AOI centred on the scene covering ``fraction`` of its area, as a lon/lat polygon."""
    with rasterio.open(cog) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs
    half = (right - left) * fraction**0.5 / 2
    cx, cy = (left + right) / 2, (bottom + top) / 2
    square = box(cx - half, cy - half, cx + half, cy + half).segmentize(100.0)
    return shape(rasterio.warp.transform_geom(crs, CRS.from_epsg(4326), mapping(square)))


def window_of(cog: Path, aoi: Any) -> Window:
    with rasterio.open(cog) as src:
        return aoi_window(aoi, src.crs, src.transform, src.width, src.height)


# -- the three methods (top level: each runs in a spawned process) ---------------------------------------------
def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _write_window(path: Path, data: np.ndarray, src: Any, window: Window) -> None:
    """The window as read_window writes it: tiled, deflated, same dtype, nodata and CRS."""
    profile = {
        "driver": "GTiff",
        "dtype": src.dtypes[0],
        "nodata": src.nodata,
        "count": 1,
        "width": int(window.width),
        "height": int(window.height),
        "crs": src.crs,
        "transform": src.window_transform(window),
        "tiled": True,
        "blockxsize": OUT_TILE,
        "blockysize": OUT_TILE,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def satlake_read(url: str, aoi: Any, window: Window, out: Path) -> None:
    session = PoliteSession(timeout_s=120, max_retries=0, request_budget=1_000_000)
    with session:
        result = read_window(url, aoi, session, out, ByteBudget(10**12))
    if (result.width, result.height) != (int(window.width), int(window.height)):
        raise AssertionError(f"read_window chose {result.width}x{result.height}, expected {window}")


def vsicurl_read(url: str, aoi: Any, window: Window, out: Path) -> None:
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open("/vsicurl/" + url) as src:
        _write_window(out, src.read(1, window=window), src, window)


def download_read(url: str, aoi: Any, window: Window, out: Path) -> None:
    whole = out.with_suffix(".whole.tif")
    with requests.get(url, stream=True, timeout=120) as response:
        response.raise_for_status()
        with whole.open("wb") as handle:
            for chunk in response.iter_content(DOWNLOAD_CHUNK):
                handle.write(chunk)
    try:
        with rasterio.open(whole) as src:
            _write_window(out, src.read(1, window=window), src, window)
    finally:
        whole.unlink()


READERS = {SATLAKE: satlake_read, VSICURL: vsicurl_read, DOWNLOAD: download_read}


def measured_call(method: str, url: str, aoi: Any, window: Window, out: str) -> dict[str, float]:
    """Run one method in this (fresh) process; its wall time and peak RSS increase over the call."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    rss_before = _status_kib("VmRSS")
    started = time.perf_counter()
    READERS[method](url, aoi, window, Path(out))
    wall = time.perf_counter() - started
    return {"wall_s": wall, "peak_rss_increase_mib": (_status_kib("VmHWM") - rss_before) / 1024}


# -- the server ---------------------------------------------------------------------------------------------------
class _DelayedAssetHandler(stac_replay._Handler):
    """The replay server's handler, waiting ``latency_s`` before each asset answer (an object store's first-byte
    latency; loopback has none, which would hide what a request costs)."""

    latency_s = 0.0

    def _asset(self, replay: StacReplayServer, asset: Any, method: str, query: str) -> tuple[int, int]:
        if self.latency_s:
            time.sleep(self.latency_s)
        return super()._asset(replay, asset, method, query)


def replay_item(cog: Path) -> ReplayItem:
    href = f"/assets/{COLLECTION}/{ITEM_ID}/{cog.name}"
    item = {"type": "Feature", "id": ITEM_ID, "collection": COLLECTION, "links": [], "assets": {ASSET: {"href": href}}}
    return ReplayItem(item=item, files={ASSET: cog})


def set_latency(server: StacReplayServer, latency_ms: float) -> None:
    handler = type("DelayedAssetHandler", (_DelayedAssetHandler,), {"latency_s": latency_ms / 1000})
    server._server.RequestHandlerClass = handler  # type: ignore[union-attr]


# -- the benchmark ------------------------------------------------------------------------------------------------
def run(
    size: str, work_dir: Path, repeat: int, latencies_ms: list[float]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    side = BAND_SIDES[size]
    started = time.perf_counter()
    cog = sentinel2_sized_cog(work_dir, side)
    file_size = cog.stat().st_size
    notes = [
        f"COG: {side}x{side} uint16, EPSG:32633 10 m, {file_size} bytes ({file_size / 2**20:.1f} MiB), DEFLATE "
        f"predictor 2, 512-px tiles, overviews; ready in {time.perf_counter() - started:.1f} s",
        f"satlake block size {BLOCK_BYTES} bytes; GDAL {rasterio.__gdal_version__}, rasterio {rasterio.__version__}, "
        f"requests {requests.__version__}",
        f"load average (1 min) at the start: {os.getloadavg()[0]:.2f}",
    ]
    rows: list[dict[str, Any]] = []
    with StacReplayServer([replay_item(cog)]) as server:
        url = server.asset_href(ITEM_ID, ASSET)
        for latency in latencies_ms:
            set_latency(server, latency)
            for fraction in AOI_FRACTIONS:
                aoi = centred_aoi(cog, fraction)
                window = window_of(cog, aoi)
                with rasterio.open(cog) as src:
                    expected = src.read(1, window=window)
                runs: dict[str, list[dict[str, Any]]] = {method: [] for method in METHODS}
                for turn in range(repeat):
                    # Rotate the order each turn so a burst of load from other work hits every method alike.
                    order = METHODS[turn % len(METHODS) :] + METHODS[: turn % len(METHODS)]
                    for method in order:
                        out = work_dir / f"window_{METHODS.index(method)}.tif"
                        server.clear_requests()
                        measured = run_isolated(measured_call, method, url, aoi, window, str(out))
                        answered = server.requests
                        with rasterio.open(out) as result:
                            got = result.read(1)
                        if got.shape != expected.shape or not np.array_equal(got, expected):
                            raise AssertionError(f"{method}: pixels of the {fraction:.0%} window differ")
                        out.unlink()
                        runs[method].append(
                            {
                                **measured.value,
                                "cpu_s": measured.cpu_s,
                                "requests": len(answered),
                                "bytes": sum(r.bytes_sent for r in answered),
                            }
                        )
                for method in METHODS:
                    rows.append(result_row(method, fraction, window, latency, runs[method], file_size))
    notes.append(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    notes.append("every method returned pixels identical to the window read from the local COG, in every run")
    return rows, comparisons_of(rows), notes


def result_row(
    method: str, fraction: float, window: Window, latency: float, runs: list[dict[str, Any]], file_size: int
) -> dict[str, Any]:
    median = statistics.median
    return {
        "latency_ms": latency,
        "aoi": f"{fraction:.0%}",
        "window_px": f"{int(window.width)}x{int(window.height)}",
        "method": method,
        "wall_s": round(median(r["wall_s"] for r in runs), 3),
        "runs_wall_s": [round(r["wall_s"], 3) for r in runs],
        "cpu_s": round(median(r["cpu_s"] for r in runs), 3),
        "requests": int(median(r["requests"] for r in runs)),
        "requests_range": [min(r["requests"] for r in runs), max(r["requests"] for r in runs)],
        "mib": round(median(r["bytes"] for r in runs) / 2**20, 2),
        "file_pct": round(100 * median(r["bytes"] for r in runs) / file_size, 1),
        "peak_rss_increase_mib": round(median(r["peak_rss_increase_mib"] for r in runs), 1),
    }


def comparisons_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_key = {(r["latency_ms"], r["aoi"], r["method"]): r for r in rows}
    found = []
    for latency, aoi, method in by_key:
        if method != SATLAKE:
            continue
        ours = by_key[(latency, aoi, SATLAKE)]
        for peer in (VSICURL, DOWNLOAD):
            theirs = by_key[(latency, aoi, peer)]
            label = f"{aoi} AOI, {latency:g} ms latency: wall s vs {peer}"
            found.append(comparison(label, ours["wall_s"], theirs["wall_s"], "(reference)", None))
        if latency == rows[0]["latency_ms"]:  # bytes do not depend on latency
            theirs = by_key[(latency, aoi, VSICURL)]
            label = f"{aoi} AOI: MiB transferred vs {VSICURL}"
            found.append(comparison(label, ours["mib"], theirs["mib"], "(reference)", None))
    return found


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=SIZES, default="small", help="small: 2060 px smoke test; full: 10980 px")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method and AOI; the median is reported")
    parser.add_argument(
        "--latency-ms", default="0,20", help="comma-separated delays before each asset answer (default 0,20)"
    )
    parser.add_argument(
        "--work-dir", "--workdir", type=Path, default=None, help="where the COG is cached (default: a temp dir)"
    )
    parser.add_argument("--out", type=Path, default=None, help="result JSON (default: bench/results/<name>.json)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    try:
        latencies = [float(value) for value in args.latency_ms.split(",") if value.strip()]
    except ValueError:
        parser.error(f"--latency-ms takes comma-separated milliseconds such as 0,20; got {args.latency_ms!r}")
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        rows, comparisons, notes = run(args.size, args.work_dir, args.repeat, latencies)
    else:
        with tempfile.TemporaryDirectory(prefix="satlake-bench-acquisition-") as scratch:
            rows, comparisons, notes = run(args.size, Path(scratch), args.repeat, latencies)
    columns = ["latency_ms", "aoi", "window_px", "method", "wall_s", "cpu_s", "requests", "mib", "file_pct"]
    print_table(rows, [*columns, "peak_rss_increase_mib", "runs_wall_s"])
    print()
    print_table(comparisons)
    for note in notes:
        print(note)
    side = BAND_SIDES[args.size]
    extra = " ".join(
        part
        for part in (
            f"--repeat {args.repeat}" if args.repeat != 3 else "",
            f"--latency-ms {args.latency_ms}" if latencies != [0.0, 20.0] else "",
        )
        if part
    )
    path = write_result(NAME, args.size, f"{side}x{side} uint16 COG", rows, comparisons, args.out, notes, extra)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
