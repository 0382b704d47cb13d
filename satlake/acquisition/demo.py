"""The demo's acquisition step: a local STAC API (``stac_replay``) over the synthetic tile with the planted
clearing, an area of interest around the clearing, and one request for it, so the demo's first tile arrives
the way a watched forest's scenes do: request -> search -> range reads -> landing -> COG -> NDVI -> alert.

``acquisition_demo`` keeps the STAC API up while the caller runs the pipeline (the downloader reads from it),
then ``AcquisitionDemo.report`` prints what was acquired and the AOI's alerts.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import rasterio
from pyproj import Transformer
from shapely.geometry import Polygon, box

from satlake.acquisition.aoi import AoiError, new_aoi
from satlake.acquisition.aoi_table import add_aoi, get_aoi
from satlake.acquisition.request import days_range, new_request, publish_request
from satlake.acquisition.stac_replay import StacReplayServer, replay_items_from_scenes
from satlake.acquisition.tables import ACQUISITIONS, FOREST_CHANGE_ALERTS
from satlake.reporting import Report
from satlake.resources import build_resources
from satlake.scenes.synthetic import clearing_plan, make_synthetic_scenes
from satlake.settings import Settings

DEMO_AOI = "demo-forest"
DEMO_COLLECTION = "satlake-sim"
DEMO_TILE_PREFIX = "sim_t00_"  # the tile with the planted clearing
DEMO_SIZE, DEMO_DATES, DEMO_SEED = 256, 4, 7  # as the scene demo's synthetic scenes
AOI_MARGIN_PX = 24  # the AOI reaches this far around the clearing: a window of about a fifth of the tile
DATETIME_RANGE = days_range(date(2024, 1, 1), date(2024, 12, 31))  # the synthetic acquisitions are in 2024


@dataclass
class AcquisitionDemo:
    """What the demo step set up: the STAC API's address and whether a request was published now."""

    settings: Settings
    source_url: str
    published: str | None

    def report(self, report: Report) -> bool:
        """Print the acquisitions and the AOI's alerts; True when the planted clearing raised an alert."""
        lakehouse = build_resources(self.settings).lakehouse
        report.heading(f"acquisition (AOI {DEMO_AOI}, STAC API {self.source_url}):")
        rows = lakehouse.read(ACQUISITIONS, filters=[("aoi", "=", DEMO_AOI)])
        items = [row for row in (rows.to_pylist() if rows is not None else []) if row["item_id"] is not None]
        fetched = sum(row["bytes_fetched"] for row in items)
        source = sum(row["source_bytes"] or 0 for row in items)
        statuses = sorted({row["status"] for row in items})
        counts = ", ".join(f"{sum(1 for r in items if r['status'] == s)} {s}" for s in statuses) or "none"
        share = f" ({100 * fetched / source:.1f}% of the source files)" if source else ""
        report.line(f"  items: {counts}; {fetched:,} bytes read by range requests{share}")
        alerts = lakehouse.read(FOREST_CHANGE_ALERTS, filters=[("aoi", "=", DEMO_AOI)])
        if alerts is None or not alerts.num_rows:
            report.line("  no forest-change alert")
            return False
        for row in alerts.sort_by([("area_ha", "descending")]).to_pylist()[:3]:
            report.line(f"  alert: {row['area_ha']:.2f} ha lost between {row['before_date']} and {row['after_date']} "
                        f"({row['scene_id']})")  # fmt: skip
        return True


def aoi_around_clearing(scene: Path) -> Polygon:
    """The lon/lat box around the planted clearing of ``scene`` (tile 0), with a margin."""
    plan = clearing_plan(DEMO_SIZE, DEMO_DATES)
    with rasterio.open(scene) as src:
        rows = (plan.row - AOI_MARGIN_PX, plan.row + plan.rows + AOI_MARGIN_PX)
        cols = (plan.col - AOI_MARGIN_PX, plan.col + plan.cols + AOI_MARGIN_PX)
        corners = [src.transform * (c, r) for r in rows for c in cols]
        to_lonlat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
    lons, lats = zip(*(to_lonlat.transform(x, y) for x, y in corners), strict=True)
    return box(min(lons), min(lats), max(lons), max(lats))


@contextmanager
def acquisition_demo(settings: Settings, report: Report) -> Iterator[AcquisitionDemo]:
    """Serve tile 0's scenes from a local STAC API, add the demo AOI once, and publish a request for it once per
    storage root (a second demo run finds everything landed and publishes nothing)."""
    marker = settings.root / "demo" / "acquisition.json"
    resources = build_resources(settings)
    with tempfile.TemporaryDirectory(prefix="satlake-demo-stac-") as scratch:
        work = Path(scratch)
        scenes = [p for p in make_synthetic_scenes(work / "scenes", tiles=1, size=DEMO_SIZE, seed=DEMO_SEED)
                  if p.name.startswith(DEMO_TILE_PREFIX)]  # fmt: skip
        items = replay_items_from_scenes(scenes, work / "stac", "earth-search", DEMO_COLLECTION)
        with StacReplayServer(items, flavour="earth-search", page_size=2) as server:
            published = None
            if not marker.exists():
                try:
                    get_aoi(resources.lakehouse, DEMO_AOI)
                except AoiError:
                    aoi, source = new_aoi(
                        settings, DEMO_AOI, aoi_around_clearing(scenes[0]), created_by="satlake demo",
                        collections=(DEMO_COLLECTION,), cloud_cover_max=50.0, source=server.url, alert_min_ha=1.0,
                    )  # fmt: skip
                    add_aoi(resources.lakehouse, aoi, source.url)
                # The request names the API's address: it changes with each run of the demo.
                request = replace(new_request(DEMO_AOI, DATETIME_RANGE, requested_by="satlake demo"), source=server.url)
                publish_request(resources.event_log, settings.acquisition_topic, request)
                published = request.request_id
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(json.dumps({"request_id": published}))
                report.line(f"acquisition: AOI {DEMO_AOI} around the planted clearing; request {published} "
                            f"published for {len(items)} scenes served by a local STAC API")  # fmt: skip
            else:
                report.line("acquisition: requested by an earlier demo run; not requesting again")
            yield AcquisitionDemo(settings, server.url, published)
