"""Forest-change alerts per area of interest: each loss polygon of ``gold/forest_change`` is cut to every AOI
it touches, and the parts at least as large as the AOI's threshold become rows of ``gold.forest_change_alerts``.

Areas are measured in the scene's own projected CRS (the one the polygon was detected in), so the hectares of
an alert and of its forest-change polygon are comparable; the AOI is projected into that CRS for the cut.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from pyproj import CRS, Transformer
from shapely import wkb
from shapely.geometry.base import BaseGeometry

from satlake.acquisition.aoi import AreaOfInterest
from satlake.acquisition.aoi_table import load_aois
from satlake.acquisition.tables import FOREST_CHANGE_ALERTS, FOREST_CHANGE_ALERTS_SCHEMA
from satlake.automation import FOLLOW_UPSTREAM_SCENES
from satlake.resources.lakehouse import Lakehouse
from satlake.scenes.assets import FOREST_CHANGE_KEY, SCENE_PARTITIONS
from satlake.scenes.tables import CATALOG_ITEMS, GOLD_FOREST_CHANGE, checked_scene_id, replace_rows

ALERTS_KEY = dg.AssetKey(["gold", "forest_change_alerts"])
SQUARE_METRES_PER_HECTARE = 10_000.0


@dataclass(frozen=True, slots=True)
class AlertPart:
    """The part of one loss polygon inside one AOI."""

    aoi: str
    polygon_index: int
    area_ha: float
    polygon_area_ha: float
    geometry_lonlat: BaseGeometry


def _projected(geometry_lonlat: BaseGeometry, epsg: int) -> BaseGeometry:
    to_native = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_epsg(epsg), always_xy=True)
    return shapely.transform(geometry_lonlat, to_native.transform, interleaved=False)


def alert_parts(polygons: pa.Table, aois: Sequence[AreaOfInterest]) -> list[AlertPart]:
    """The parts of ``polygons`` (rows of gold.forest_change) inside each AOI that reach its threshold."""
    parts: list[AlertPart] = []
    for row in polygons.to_pylist():
        epsg, lonlat = row["crs_epsg"], row["geometry_lonlat_wkb"]
        if epsg is None or lonlat is None:
            continue  # a polygon of another body, or without a projected CRS: no AOI is on it
        native = wkb.loads(row["geometry_wkb"])
        polygon_lonlat = wkb.loads(lonlat)
        to_lonlat = Transformer.from_crs(CRS.from_epsg(epsg), CRS.from_epsg(4326), always_xy=True)
        for aoi in aois:
            if not aoi.geometry.intersects(polygon_lonlat):
                continue
            inside = native.intersection(_projected(aoi.geometry, epsg))
            if inside.is_empty:
                continue
            area_ha = inside.area / SQUARE_METRES_PER_HECTARE
            if area_ha < aoi.alert_min_ha:
                continue
            parts.append(
                AlertPart(
                    aoi=aoi.name,
                    polygon_index=row["polygon_index"],
                    area_ha=area_ha,
                    polygon_area_ha=row["area_ha"],
                    geometry_lonlat=shapely.make_valid(
                        shapely.transform(inside, to_lonlat.transform, interleaved=False)
                    ),
                )
            )
    return parts


def _derived_from(lakehouse: Lakehouse, scene_ids: Sequence[str]) -> list[str]:
    """The source items the scenes were acquired from (their catalog items' derived_from links)."""
    items = lakehouse.read(CATALOG_ITEMS, columns=["item_json"], filters=[("id", "in", list(scene_ids))])
    hrefs: list[str] = []
    for text in items.column("item_json").to_pylist() if items is not None else []:
        hrefs += [link["href"] for link in json.loads(text).get("links", []) if link.get("rel") == "derived_from"]
    return sorted(hrefs)


def alert_rows(
    lakehouse: Lakehouse, scene_id: str, polygons: pa.Table, aois: Sequence[AreaOfInterest], now: datetime
) -> pa.Table:
    """The alerts of one scene's forest-change polygons, as rows of gold.forest_change_alerts."""
    parts = alert_parts(polygons, aois)
    by_index = {row["polygon_index"]: row for row in polygons.to_pylist()}
    sources = _derived_from(lakehouse, sorted({scene_id, *(r["before_scene_id"] for r in by_index.values())}))
    rows = [
        {"aoi": part.aoi, "scene_id": scene_id, "before_scene_id": by_index[part.polygon_index]["before_scene_id"],
         "polygon_index": part.polygon_index, "area_ha": part.area_ha, "polygon_area_ha": part.polygon_area_ha,
         "before_date": by_index[part.polygon_index]["before_date"],
         "after_date": by_index[part.polygon_index]["after_date"],
         "mean_ndvi_drop": by_index[part.polygon_index]["mean_ndvi_drop"],
         "geometry_lonlat_wkb": part.geometry_lonlat.wkb, "source_items": sources, "detected_at": now}
        for part in parts
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=FOREST_CHANGE_ALERTS_SCHEMA)


@dg.asset(
    key=ALERTS_KEY,
    group_name="acquisition",
    kinds={"delta"},
    partitions_def=SCENE_PARTITIONS,
    deps=[FOREST_CHANGE_KEY],
    automation_condition=FOLLOW_UPSTREAM_SCENES,
    backfill_policy=dg.BackfillPolicy.single_run(),
    description="Forest loss inside each area of interest: the parts of a scene's loss polygons that fall in an "
    "AOI and reach its alert threshold (satlake aoi add --alert-min-ha), with both dates and the source items.",
)
def forest_change_alerts(
    context: dg.AssetExecutionContext, lakehouse: dg.ResourceParam[Lakehouse]
) -> dg.MaterializeResult:
    aois = load_aois(lakehouse)
    # One scene, or several when the automation or a backfill runs a range of scenes at once.
    scene_ids = [checked_scene_id(key) for key in context.partition_keys]
    polygons = lakehouse.read(GOLD_FOREST_CHANGE, filters=[("scene_id", "in", scene_ids)])
    if polygons is None:
        raise dg.Failure(f"scenes {scene_ids[0]}..{scene_ids[-1]}: lake table {GOLD_FOREST_CHANGE} does not exist")
    per_aoi: dict[str, float] = {}
    alerts = version = 0
    for scene_id in scene_ids:
        scene_polygons = polygons.filter(pc.equal(polygons.column("scene_id"), scene_id))
        rows = alert_rows(lakehouse, scene_id, scene_polygons, aois, datetime.now(UTC))
        version = replace_rows(lakehouse, FOREST_CHANGE_ALERTS, rows, "scene_id", scene_id)
        alerts += rows.num_rows
        for aoi, area in zip(rows.column("aoi").to_pylist(), rows.column("area_ha").to_pylist(), strict=True):
            per_aoi[aoi] = per_aoi.get(aoi, 0.0) + area
    context.log.info(
        f"scenes {scene_ids[0]}..{scene_ids[-1]} ({len(scene_ids)}): {polygons.num_rows} loss polygons, {alerts} "
        f"alerts in {len(per_aoi)} of {len(aois)} areas of interest"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": alerts,
            "alerts_ha_by_aoi": dg.MetadataValue.json({aoi: round(ha, 3) for aoi, ha in sorted(per_aoi.items())}),
            "areas_of_interest": len(aois),
            "delta_version": version,
        }
    )
