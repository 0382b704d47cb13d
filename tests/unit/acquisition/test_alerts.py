"""Forest-change alerts per AOI: a loss polygon is cut to each AOI it touches, measured in the scene's own
projected CRS, and only parts reaching the AOI's threshold become alerts; polygons of another body never do."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import box

from satlake.acquisition.alerts import alert_parts
from satlake.acquisition.aoi import new_aoi
from satlake.scenes.tables import GOLD_FOREST_CHANGE_SCHEMA
from satlake.settings import Settings

EPSG = 32633  # UTM 33N: the synthetic scenes' zone
TO_LONLAT = Transformer.from_crs(EPSG, 4326, always_xy=True)
TO_NATIVE = Transformer.from_crs(4326, EPSG, always_xy=True)


def polygons(*natives: shapely.Geometry, epsg: int | None = EPSG) -> pa.Table:
    rows = [
        {"scene_id": "after", "before_scene_id": "before", "collection": "c", "tile": "t", "polygon_index": index,
         "before_date": date(2024, 5, 2), "after_date": date(2024, 7, 21), "area_ha": native.area / 10_000,
         "mean_ndvi_drop": 0.6, "pixel_count": int(native.area / 100), "crs_epsg": epsg,
         "geometry_wkb": native.wkb,
         "geometry_lonlat_wkb": shapely.transform(native, TO_LONLAT.transform, interleaved=False).wkb
         if epsg else None}
        for index, native in enumerate(natives)
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=GOLD_FOREST_CHANGE_SCHEMA)


def aoi_over(native: shapely.Geometry, name: str, alert_min_ha: float, tmp_path: Path):
    settings = Settings.from_env({"SATLAKE_ROOT": str(tmp_path)})
    lonlat = shapely.transform(native, TO_LONLAT.transform, interleaved=False)
    aoi, _source = new_aoi(settings, name, lonlat, created_by="test", alert_min_ha=alert_min_ha,
                           created_at=datetime(2024, 1, 1, tzinfo=UTC))  # fmt: skip
    return aoi


def test_a_polygon_is_cut_to_each_aoi_and_measured_in_hectares(tmp_path: Path) -> None:
    # A 400 m x 300 m clearing (12 ha); the AOI covers its western half (6 ha), another AOI only 0.5 ha of it.
    clearing = box(400_000, 5_600_000, 400_400, 5_600_300)
    half = aoi_over(box(399_000, 5_599_000, 400_200, 5_601_000), "west", alert_min_ha=1.0, tmp_path=tmp_path)
    sliver = aoi_over(box(400_375, 5_599_000, 401_000, 5_601_000), "east", alert_min_ha=1.0, tmp_path=tmp_path)
    low = aoi_over(box(400_375, 5_599_000, 401_000, 5_601_000), "east-low", alert_min_ha=0.5, tmp_path=tmp_path)
    far = aoi_over(box(390_000, 5_590_000, 391_000, 5_591_000), "far", alert_min_ha=0.0, tmp_path=tmp_path)

    parts = {part.aoi: part for part in alert_parts(polygons(clearing), [half, sliver, low, far])}

    assert sorted(parts) == ["east-low", "west"]  # east's 0.75 ha is under its 1 ha threshold; far is disjoint
    assert parts["west"].area_ha == pytest.approx(6.0, rel=1e-3)  # the AOI, projected back, is not quite square
    assert parts["east-low"].area_ha == pytest.approx(0.75, rel=1e-2)
    assert parts["west"].polygon_area_ha == pytest.approx(12.0)
    inside = shapely.transform(parts["west"].geometry_lonlat, TO_NATIVE.transform, interleaved=False)
    assert inside.area / 10_000 == pytest.approx(6.0, rel=1e-3) and inside.within(clearing.buffer(1))


def test_polygons_of_another_body_raise_no_alert(tmp_path: Path) -> None:
    clearing = box(400_000, 5_600_000, 400_400, 5_600_300)
    everywhere = aoi_over(box(399_000, 5_599_000, 401_000, 5_601_000), "all", alert_min_ha=0.0, tmp_path=tmp_path)
    assert alert_parts(polygons(clearing, epsg=None), [everywhere]) == []
