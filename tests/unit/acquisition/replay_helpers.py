"""Fixtures shared by the downloader, request and sensor tests: replay items built from small synthetic scenes,
an embedded ``Settings`` under a temporary root, an AOI in the AOI table, one-call downloads, and the entry
point a subprocess runs so a test can kill a download half way."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import rasterio
import rasterio.transform
import rasterio.warp
from shapely.geometry import Polygon, box

from satlake.acquisition.aoi import AreaOfInterest, new_aoi
from satlake.acquisition.aoi_table import add_aoi, get_aoi
from satlake.acquisition.download import AcquisitionPlan, AcquisitionReport, Downloader
from satlake.acquisition.request import AcquisitionRequest, new_request, parse_request
from satlake.acquisition.sources import resolve_source
from satlake.acquisition.stac_replay import ReplayItem, StacReplayServer, replay_items_from_scenes
from satlake.resources import SatlakeResources, build_resources
from satlake.resources.object_store import LocalObjectStore, SceneStores, build_scene_stores
from satlake.scenes.synthetic import make_synthetic_scenes
from satlake.settings import Settings

COLLECTION = "sentinel-2-l2a"
SIZE = 512  # pixels: 2 x 2 internal 256-px tiles per band COG, so a small AOI touches a quarter of a file
ROLE_FILES = ("blue.tif", "cloud.tif", "green.tif", "nir.tif", "red.tif")
ALL_YEAR = "2024-01-01/2024-12-31"
# Six dates of one tile: six items over one AOI, three pages at page size 2.
SIX_DATES = tuple(datetime(2024, 5, 2, 10, tzinfo=UTC) + timedelta(days=10 * n) for n in range(6))


def make_scenes(work: Path, dates: Sequence[datetime] = SIX_DATES, tiles: int = 1) -> list[Path]:
    return make_synthetic_scenes(work, tiles=tiles, dates=dates, size=SIZE, seed=3)


def replay_items(scenes: Sequence[Path], work: Path, flavour: str) -> list[ReplayItem]:
    return replay_items_from_scenes(scenes, work / flavour, flavour, COLLECTION)


def embedded_settings(root: Path, **environ: str) -> Settings:
    """Embedded settings under ``root`` with short retry limits (a 5xx costs 0.5 s + 1 s of backoff)."""
    return Settings.from_env({"SATLAKE_ROOT": str(root), "SATLAKE_ACQUISITION_MAX_RETRIES": "2", **environ})


def lonlat_box(scene: Path, col: int, row: int, width: int, height: int) -> Polygon:
    """A lon/lat box inside the pixel rectangle (col, row, width, height) of the scene's grid."""
    with rasterio.open(scene) as src:
        transform, crs = src.transform, src.crs
    west, north = transform @ (col + 0.5, row + 0.5)
    east, south = transform @ (col + width - 0.5, row + height - 0.5)
    lons, lats = rasterio.warp.transform(crs, "EPSG:4326", [west, east, west, east], [north, north, south, south])
    return box(max(lons[0], lons[2]), max(lats[2], lats[3]), min(lons[1], lons[3]), min(lats[0], lats[1]))


def add_test_aoi(
    resources: SatlakeResources, name: str, geometry: Polygon, source: str, cloud_cover_max: float | None = None
) -> AreaOfInterest:
    aoi, resolved = new_aoi(
        resources.settings, name, geometry, created_by="tests", collections=(COLLECTION,),
        cloud_cover_max=cloud_cover_max, source=source,
    )  # fmt: skip
    add_aoi(resources.lakehouse, aoi, resolved.url)
    return get_aoi(resources.lakehouse, name)


@dataclass
class Lake:
    """An embedded satlake under one root: settings, resources and the two object stores."""

    settings: Settings
    resources: SatlakeResources
    stores: SceneStores

    @classmethod
    def at(cls, root: Path, **environ: str) -> Lake:
        settings = embedded_settings(root, **environ)
        return cls(settings, build_resources(settings), build_scene_stores(settings))

    @property
    def landing_root(self) -> Path:
        """The folder of the embedded landing store, to look at every file in it (hidden ones included)."""
        store = self.stores.landing
        assert isinstance(store, LocalObjectStore)
        return store.root

    def download(
        self,
        request: AcquisitionRequest,
        aoi_name: str,
        source: str,
        landed_before: Mapping[tuple[str, str], str] | None = None,
    ) -> AcquisitionReport:
        aoi = get_aoi(self.resources.lakehouse, aoi_name)
        plan = AcquisitionPlan.of(request, aoi, resolve_source(self.settings, source))
        stores = self.stores
        return Downloader(plan, self.settings, stores.lake, stores.landing, landed_before or {}, lambda _: None).run()


def request_for(aoi: str, source: str | None = None, request_id: str | None = None) -> AcquisitionRequest:
    request = new_request(aoi, ALL_YEAR, requested_by="tests")
    document = json.loads(request.to_json())
    if source is not None:
        document["source"] = source
    if request_id is not None:
        document["request_id"] = request_id
    return parse_request(json.dumps(document))


def landing_files(root: Path) -> list[Path]:
    """Every file under the landing store's folder, hidden or not (``store.list`` hides writes in progress)."""
    return sorted(Path(d) / n for d, _, names in os.walk(root) for n in names) if root.is_dir() else []


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class SlowReplayServer(StacReplayServer):
    """A replay server whose asset answers each take ``delay_s`` longer (the ETag lookup runs on every one)."""

    def __init__(self, *args: Any, delay_s: float = 0.25, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delay_s = delay_s

    def etag(self, path: Path) -> str:
        time.sleep(self.delay_s)
        return super().etag(path)


def download_main(arguments: str) -> None:
    """Run one download as a separate process (``python -c``): the test kills it half way with SIGKILL."""
    given = json.loads(arguments)
    lake = Lake.at(Path(given["root"]), **given.get("environ", {}))
    request = parse_request(given["request"])
    report = lake.download(request, request.aoi, given["source"])
    print(json.dumps([row["status"] for row in report.rows]))


if __name__ == "__main__":
    download_main(sys.argv[1])


def scenes_in_two_utm_zones(work: Path, lon: float = 12.0, lat: float = 50.5) -> tuple[list[Path], Polygon]:
    """Two scenes either side of the UTM zone 32/33 border at ``lon`` (each in its own zone's CRS, each covering
    part of the returned lon/lat AOI that straddles the border)."""
    (template,) = make_synthetic_scenes(work / "template", tiles=1, dates=SIX_DATES[:1], size=SIZE, seed=5)
    written = []
    for epsg, centre_lon in ((32632, lon - 0.04), (32633, lon + 0.04)):
        x, y = rasterio.warp.transform("EPSG:4326", f"EPSG:{epsg}", [centre_lon], [lat])
        half = SIZE * 10 / 2
        transform = rasterio.transform.from_origin(round(x[0] - half), round(y[0] + half), 10, 10)
        path = work / f"zone{epsg % 100}_{SIX_DATES[0]:%Y%m%d}.tif"
        with rasterio.open(template) as src:
            profile = {**src.profile, "crs": f"EPSG:{epsg}", "transform": transform}
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(src.read())
                dst.update_tags(**src.tags())
                for index, description in enumerate(src.descriptions, start=1):
                    dst.set_band_description(index, description or "")
        written.append(path)
    return written, box(lon - 0.02, lat - 0.01, lon + 0.02, lat + 0.01)
