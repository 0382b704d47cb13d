"""Reading the AOI window of a remote COG served by the local STAC replay: bytes fetched versus file size,
pixels equal to the local file, the pixel grid, and every failure the downloader must name."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
from rasterio.windows import from_bounds
from shapely.geometry import box

from satlake.acquisition.http import ByteBudget, ByteBudgetExceeded, PoliteSession, RedirectRefused, TruncatedResponse
from satlake.acquisition.stac_replay import Faults, ReplayItem, StacReplayServer, replay_items_from_scenes
from satlake.acquisition.window import NoOverlap, WindowError, read_window
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
