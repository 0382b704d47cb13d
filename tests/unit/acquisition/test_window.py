"""Reading the AOI window of a remote COG served by the local STAC replay: bytes fetched versus file size,
pixels equal to the local file, the pixel grid, every failure the downloader must name, and the prefetch of the
window's tiles (one request per row of tiles, the budget checked first, bounded concurrency)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.warp
from rasterio.windows import Window, from_bounds
from shapely.geometry import box

from satlake.acquisition import stac_replay
from satlake.acquisition import window as window_module
from satlake.acquisition.stac_replay import Faults, ReplayItem, StacReplayServer, replay_items_from_scenes
from satlake.acquisition.window import NoOverlap, WindowError, read_window
from satlake.resources.http import ByteBudget, ByteBudgetExceeded, PoliteSession, RedirectRefused, TruncatedResponse
from satlake.scenes.synthetic import make_synthetic_scenes

COLLECTION = "sentinel-2-l2a"
SIZE = 1024  # pixels: 4 x 4 internal 256-px tiles per band


@pytest.fixture(scope="module")
def item(tmp_path_factory: pytest.TempPathFactory) -> ReplayItem:
    work = tmp_path_factory.mktemp("window-replay")
    scenes = make_synthetic_scenes(work / "scenes", tiles=1, dates=[datetime(2024, 5, 2, 10, tzinfo=UTC)], size=SIZE)
    return replay_items_from_scenes(scenes, work / "es", "earth-search", COLLECTION)[0]


@pytest.fixture
def server(item: ReplayItem) -> Iterator[StacReplayServer]:
    with StacReplayServer([item]) as running:
        yield running


def _aoi_lonlat(item: ReplayItem, col: int, row: int, width: int, height: int) -> box:
    """A lon/lat box inside the pixel rectangle (col, row, width, height) of the item's grid."""
    with rasterio.open(item.files["red"]) as src:
        transform, crs = src.transform, src.crs
    west, north = transform @ (col + 0.5, row + 0.5)
    east, south = transform @ (col + width - 0.5, row + height - 0.5)
    # The lon/lat box of a projected rectangle is a little larger than it; shrink so the window stays small.
    lons, lats = rasterio.warp.transform(crs, "EPSG:4326", [west, east, west, east], [north, north, south, south])
    return box(max(lons[0], lons[2]), max(lats[2], lats[3]), min(lons[1], lons[3]), min(lats[0], lats[1]))


def _session() -> PoliteSession:
    return PoliteSession(timeout_s=10, max_retries=1, sleep=lambda _: None)


def test_window_of_five_percent_fetches_a_fraction_and_matches_local_pixels(
    server: StacReplayServer, item: ReplayItem, tmp_path: Path
) -> None:
    # 230 x 230 px of 1024 x 1024 is 5 % of the image, inside one 256-px tile row/column pair.
    aoi = _aoi_lonlat(item, 20, 20, 230, 230)
    session, budget = _session(), ByteBudget(10**9)
    href = server.asset_href(item.item["id"], "red")
    tags = {"ACQUISITION_TIME": "2024-05-02T10:00:00Z", "SATLAKE_COLLECTION": COLLECTION}
    result = read_window(href, aoi, session, tmp_path / "red.tif", budget, description="red", tags=tags)
    file_size = item.files["red"].stat().st_size
    served = server.bytes_sent("/assets/")
    print(
        f"window read: {result.bytes_fetched} bytes of a {file_size}-byte COG ({result.bytes_fetched / file_size:.1%})"
    )
    assert result.file_size == file_size
    assert result.bytes_fetched == served == budget.used  # every byte counted, by the session and the budget
    assert result.bytes_fetched < 0.30 * file_size
    assert session.requests_made == result.requests == len(server.requests)
    with rasterio.open(tmp_path / "red.tif") as out, rasterio.open(item.files["red"]) as local:
        window = from_bounds(*out.bounds, transform=local.transform).round_offsets().round_lengths()
        assert (window.width, window.height) == (result.width, result.height)
        assert window.width * window.height <= 1.1 * 230 * 230
        np.testing.assert_array_equal(out.read(1), local.read(1, window=window))
        assert out.dtypes[0] == local.dtypes[0] and out.nodata == local.nodata
        assert out.descriptions == ("red",)
        assert out.tags()["SATLAKE_COLLECTION"] == COLLECTION
        assert out.profile["tiled"] and out.profile["compress"] == "deflate"
        assert out.crs == local.crs and result.crs == f"EPSG:{local.crs.to_epsg()}"
    west, south, east, north = result.bounds_lonlat
    assert aoi.within(box(west, south, east, north).buffer(1e-9))


def test_windows_snap_to_the_pixel_grid(server: StacReplayServer, item: ReplayItem, tmp_path: Path) -> None:
    href = server.asset_href(item.item["id"], "nir")
    first = read_window(href, _aoi_lonlat(item, 100, 100, 50, 50), _session(), tmp_path / "a.tif", ByteBudget(10**9))
    nudged = _aoi_lonlat(item, 100, 100, 50, 50)
    nudged = box(*(value + 1e-6 for value in nudged.bounds))  # a tenth of a pixel east and north
    second = read_window(href, nudged, _session(), tmp_path / "b.tif", ByteBudget(10**9))
    with rasterio.open(item.files["nir"]) as local:
        origin_x, origin_y = local.transform.c, local.transform.f
    for result in (first, second):
        assert (result.transform.c - origin_x) % 10 == 0 and (origin_y - result.transform.f) % 10 == 0
    assert first.transform == second.transform and (first.width, first.height) == (second.width, second.height)


def test_aoi_outside_the_raster_is_no_overlap(server: StacReplayServer, item: ReplayItem, tmp_path: Path) -> None:
    _, _, east, north = item.item["bbox"]
    far = box(east + 0.5, north + 0.5, east + 0.6, north + 0.6)
    with pytest.raises(
        NoOverlap, match=r"the area of interest \(bounds .* in EPSG:\d+\) does not intersect the raster"
    ):
        read_window(server.asset_href(item.item["id"], "red"), far, _session(), tmp_path / "x.tif", ByteBudget(10**9))
    assert not (tmp_path / "x.tif").exists()


def test_missing_asset_is_a_clear_404(item: ReplayItem, tmp_path: Path) -> None:
    with StacReplayServer([item], faults=Faults(missing_assets={"red"})) as server:
        href = server.asset_href(item.item["id"], "red")
        with pytest.raises(WindowError, match=rf"asset {href} was not found \(HTTP 404\)"):
            read_window(href, _aoi_lonlat(item, 0, 0, 64, 64), _session(), tmp_path / "r.tif", ByteBudget(10**9))
    assert not (tmp_path / "r.tif").exists()


def test_redirect_to_another_host_is_refused(item: ReplayItem, tmp_path: Path) -> None:
    with StacReplayServer([item], faults=Faults(redirect_assets_to="http://localhost:9")) as server:
        href = server.asset_href(item.item["id"], "red")
        with pytest.raises(RedirectRefused, match=r"to another host http://localhost:9"):
            read_window(href, _aoi_lonlat(item, 0, 0, 64, 64), _session(), tmp_path / "r.tif", ByteBudget(10**9))


def test_truncated_transfer_is_an_error(item: ReplayItem, tmp_path: Path) -> None:
    with StacReplayServer([item], faults=Faults(truncate_assets={"red"})) as server:
        href = server.asset_href(item.item["id"], "red")
        with pytest.raises(TruncatedResponse, match=r"the response ended before the length the server declared"):
            read_window(href, _aoi_lonlat(item, 0, 0, 64, 64), _session(), tmp_path / "r.tif", ByteBudget(10**9))
    assert not (tmp_path / "r.tif").exists()


def test_byte_budget_is_never_passed(server: StacReplayServer, item: ReplayItem, tmp_path: Path) -> None:
    budget = ByteBudget(100_000)  # the header block fits, the tiles under a large window do not
    href = server.asset_href(item.item["id"], "red")
    with pytest.raises(ByteBudgetExceeded, match=r"byte budget of 100000 bytes for this acquisition request"):
        read_window(href, _aoi_lonlat(item, 0, 0, 1000, 1000), _session(), tmp_path / "r.tif", budget)
    assert server.bytes_sent("/assets/") == budget.used <= 100_000
    assert not (tmp_path / "r.tif").exists()


def test_unsigned_planetary_computer_href_is_refused(tmp_path: Path, item: ReplayItem) -> None:
    scenes = make_synthetic_scenes(tmp_path / "s", tiles=1, dates=[datetime(2024, 5, 2, 10, tzinfo=UTC)], size=64)
    pc_item = replay_items_from_scenes(scenes, tmp_path / "pc", "planetary-computer", COLLECTION)[0]
    with StacReplayServer([pc_item], flavour="planetary-computer") as server:
        href = server.asset_href(pc_item.item["id"], "B04")
        west, south, east, north = pc_item.item["bbox"]
        aoi = box(west, south, (west + east) / 2, (south + north) / 2)
        with pytest.raises(WindowError, match=r"was refused \(HTTP 403\); the href needs signing"):
            read_window(href, aoi, _session(), tmp_path / "r.tif", ByteBudget(10**9))


# -- prefetching the window's tiles ------------------------------------------------------------------------------
def _tile_rows_of(path: Path, win: Window) -> list[list[tuple[int, int]]]:
    """Byte ranges [start, end) of the tiles under ``win`` in the local file, one list per row of tiles."""
    with rasterio.open(path) as src:
        height, width = src.block_shapes[0]
        rows = []
        for row in range(int(win.row_off) // height, (int(win.row_off + win.height) - 1) // height + 1):
            tiles = []
            for col in range(int(win.col_off) // width, (int(win.col_off + win.width) - 1) // width + 1):
                offset = int(src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=1))
                tiles.append((offset, offset + int(src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1))))
            rows.append(tiles)
    return rows


def _byte_range(request: stac_replay.RecordedRequest) -> tuple[int, int]:
    """[start, end) of a request's ``Range: bytes=a-b`` header."""
    first, _, last = request.headers["Range"].removeprefix("bytes=").partition("-")
    return int(first), int(last) + 1


def _touches(request: stac_replay.RecordedRequest, tiles: list[tuple[int, int]]) -> bool:
    start, end = _byte_range(request)
    return any(start < tile_end and tile_start < end for tile_start, tile_end in tiles)


def _local_window(path: Path, result: window_module.WindowResult) -> Window:
    with rasterio.open(path) as local:
        west, south, east, north = result.bounds_native
        return from_bounds(west, south, east, north, transform=local.transform).round_offsets().round_lengths()


def test_window_tiles_cost_one_request_per_row_of_tiles(
    server: StacReplayServer, item: ReplayItem, tmp_path: Path
) -> None:
    # 1000 x 1000 px from the corner: 4 rows of 4 tiles; GDAL alone would ask for the 16 tiles one by one.
    session, budget = _session(), ByteBudget(10**9)
    href = server.asset_href(item.item["id"], "red")
    result = read_window(href, _aoi_lonlat(item, 0, 0, 1000, 1000), session, tmp_path / "r.tif", budget)
    win = _local_window(item.files["red"], result)
    rows = _tile_rows_of(item.files["red"], win)
    assert len(rows) == 4 and all(len(tiles) == 4 for tiles in rows)
    asset_requests = [r for r in server.requests if r.path == f"/assets/{COLLECTION}/{item.item['id']}/red.tif"]
    all_tiles = [tile for tiles in rows for tile in tiles]
    tile_requests = [r for r in asset_requests if _touches(r, all_tiles)]
    header_requests = [r for r in asset_requests if not _touches(r, all_tiles)]
    for tiles in rows:  # exactly one request covers each row's tiles, from its first tile's offset to its last's end
        covering = [r for r in tile_requests if _touches(r, tiles)]
        assert [_byte_range(r) for r in covering] == [(tiles[0][0], tiles[-1][1])]
    assert len(tile_requests) == len(rows)
    assert len(header_requests) <= 2  # the first 16 KiB block (and at most one more header block)
    assert len(asset_requests) == result.requests == session.requests_made
    assert result.bytes_fetched == server.bytes_sent("/assets/") == budget.used
    with rasterio.open(tmp_path / "r.tif") as out, rasterio.open(item.files["red"]) as local:
        np.testing.assert_array_equal(out.read(1), local.read(1, window=win))


def test_byte_budget_is_checked_against_the_tiles_before_any_tile_request(
    server: StacReplayServer, item: ReplayItem, tmp_path: Path
) -> None:
    aoi = _aoi_lonlat(item, 0, 0, 1000, 1000)
    href = server.asset_href(item.item["id"], "red")
    probe = read_window(href, aoi, _session(), tmp_path / "probe.tif", ByteBudget(10**9))
    tiles = [tile for row in _tile_rows_of(item.files["red"], _local_window(item.files["red"], probe)) for tile in row]
    server.clear_requests()
    # The tiles alone fit, the header read first takes the budget below them: only the up-front check can refuse.
    budget = ByteBudget(sum(end - start for start, end in tiles))
    with pytest.raises(ByteBudgetExceeded, match=r"needed for the 4 rows of tiles under the window of"):
        read_window(href, aoi, _session(), tmp_path / "r.tif", budget)
    asset_requests = [r for r in server.requests if r.path.startswith("/assets/")]
    assert asset_requests and not [r for r in asset_requests if _touches(r, tiles)]
    assert server.bytes_sent("/assets/") == budget.used < budget.limit
    assert not (tmp_path / "r.tif").exists()


class _InFlight:
    """Asset requests being answered at once, and the most seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0


def test_tile_rows_are_fetched_concurrently_but_never_above_the_bound(
    server: StacReplayServer, item: ReplayItem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_flight = _InFlight()

    class CountingHandler(stac_replay._Handler):
        def _asset(self, replay: StacReplayServer, asset: Any, method: str, query: str) -> tuple[int, int]:
            with in_flight.lock:
                in_flight.now += 1
                in_flight.most = max(in_flight.most, in_flight.now)
            try:
                time.sleep(0.05)  # long enough that requests sent together overlap here
                return super()._asset(replay, asset, method, query)
            finally:
                with in_flight.lock:
                    in_flight.now -= 1

    # The replay server builds its handler class itself; swapping it on the running server is the only hook.
    server._server.RequestHandlerClass = CountingHandler  # type: ignore[union-attr]
    monkeypatch.setattr(window_module, "PREFETCH_CONCURRENCY", 2)  # 4 rows of tiles: a bound of 2 must hold back two
    href = server.asset_href(item.item["id"], "red")
    result = read_window(href, _aoi_lonlat(item, 0, 0, 1000, 1000), _session(), tmp_path / "r.tif", ByteBudget(10**9))
    assert in_flight.most == 2
    with rasterio.open(tmp_path / "r.tif") as out, rasterio.open(item.files["red"]) as local:
        np.testing.assert_array_equal(out.read(1), local.read(1, window=_local_window(item.files["red"], result)))


def test_a_tile_row_cut_short_is_a_truncation_error(item: ReplayItem, tmp_path: Path) -> None:
    class TruncatingTiles(stac_replay._Handler):
        def _asset(self, replay: StacReplayServer, asset: Any, method: str, query: str) -> tuple[int, int]:
            if self.headers.get("Range", "bytes=0-").startswith("bytes=0-"):
                return super()._asset(replay, asset, method, query)  # the header arrives whole
            # Any later range (the prefetched tile rows) is one the server cuts short, as its truncate fault does.
            return super()._asset(replay, dataclasses.replace(asset, key="tiles"), method, query)

    with StacReplayServer([item], faults=Faults(truncate_assets={"tiles"})) as server:
        server._server.RequestHandlerClass = TruncatingTiles  # type: ignore[union-attr]
        href = server.asset_href(item.item["id"], "red")
        aoi = _aoi_lonlat(item, 0, 0, 1000, 1000)
        with pytest.raises(TruncatedResponse, match=r"the response ended before the length the server declared"):
            read_window(href, aoi, _session(), tmp_path / "r.tif", ByteBudget(10**9))
        assert [r for r in server.requests if not r.headers["Range"].startswith("bytes=0-")]  # tiles were asked
    assert not (tmp_path / "r.tif").exists()


def test_windows_of_large_tile_sets_are_read_in_strips(
    server: StacReplayServer, item: ReplayItem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With room for one row of tiles at a time, each row is fetched, read by GDAL and dropped before the next.
    monkeypatch.setattr(window_module, "PREFETCH_MAX_BYTES", 1)
    session, budget = _session(), ByteBudget(10**9)
    href = server.asset_href(item.item["id"], "green")
    result = read_window(href, _aoi_lonlat(item, 10, 10, 1000, 1000), session, tmp_path / "g.tif", budget)
    win = _local_window(item.files["green"], result)
    rows = _tile_rows_of(item.files["green"], win)
    tile_requests = [r for r in server.requests if _touches(r, [tile for row in rows for tile in row])]
    assert len(tile_requests) == len(rows) == 4
    assert result.bytes_fetched == server.bytes_sent("/assets/") == budget.used
    with rasterio.open(tmp_path / "g.tif") as out, rasterio.open(item.files["green"]) as local:
        np.testing.assert_array_equal(out.read(1), local.read(1, window=win))


def test_a_stripped_tiff_is_read_without_tile_prefetch(item: ReplayItem, tmp_path: Path) -> None:
    # Not a COG: full-width strips of 8 rows, where a range per strip would cost more than the block reads.
    stripped = tmp_path / "stripped.tif"
    with rasterio.open(item.files["red"]) as src:
        profile = {**src.profile, "tiled": False, "blockysize": 8, "compress": "deflate"}
        profile.pop("blockxsize", None)
        with rasterio.open(stripped, "w", **profile) as dst:
            dst.write(src.read(1), 1)
    with rasterio.open(stripped) as check:
        assert check.block_shapes[0] == (8, SIZE)
    href = f"/assets/{COLLECTION}/stripped/red.tif"
    served = ReplayItem(
        item={
            "type": "Feature",
            "id": "stripped",
            "collection": COLLECTION,
            "links": [],
            "assets": {"red": {"href": href}},
        },
        files={"red": stripped},
    )
    with StacReplayServer([served]) as server:
        session, budget = _session(), ByteBudget(10**9)
        url = server.asset_href("stripped", "red")
        result = read_window(url, _aoi_lonlat(item, 300, 300, 200, 200), session, tmp_path / "r.tif", budget)
        assert result.bytes_fetched == server.bytes_sent("/assets/") == budget.used
        assert result.bytes_fetched < 0.5 * stripped.stat().st_size
    with rasterio.open(tmp_path / "r.tif") as out, rasterio.open(stripped) as local:
        np.testing.assert_array_equal(out.read(1), local.read(1, window=_local_window(stripped, result)))
