"""Forest loss on the synthetic tiles: the cleared plot is found with its area, stable land yields nothing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
import rasterio
from shapely import wkb
from shapely.geometry import Point

from satlake.products.forest_change import bright_cloud_mask, detect_forest_loss, select_clear_pairs
from satlake.products.ndvi import compute_ndvi
from satlake.scenes.synthetic import clearing_plan, make_synthetic_scenes

SIZE = 192


@pytest.fixture(scope="module")
def synthetic_ndvi(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, list[tuple[date, float, Path, Path]]]:
    """Per tile: (date, cloud cover, scene, ndvi) for every acquisition."""
    root = tmp_path_factory.mktemp("forest")
    tiles: dict[str, list[tuple[date, float, Path, Path]]] = {}
    for scene in make_synthetic_scenes(root / "scenes", tiles=2, size=SIZE, seed=7):
        with rasterio.open(scene) as src:
            tags = src.tags()
        ndvi = compute_ndvi(
            scene, scene, root / "ndvi" / scene.name, red_band=3, nir_band=4,
            red_scale_offset=(1e-4, 0.0), nir_scale_offset=(1e-4, 0.0),
        ).path  # fmt: skip
        acquired = date.fromisoformat(tags["ACQUISITION_TIME"][:10])
        tiles.setdefault(tags["TILE"], []).append((acquired, float(tags["CLOUD_COVER"]), scene, ndvi))
    return tiles


def clear_pairs(acquisitions: list[tuple[date, float, Path, Path]]) -> list[tuple[tuple, tuple]]:
    return select_clear_pairs([(day, cloud, (scene, ndvi)) for day, cloud, scene, ndvi in acquisitions])


def loss_between(before: tuple, after: tuple) -> list:
    (before_scene, before_ndvi), (after_scene, after_ndvi) = before[2], after[2]
    return detect_forest_loss(
        before_ndvi,
        after_ndvi,
        before_cloud_mask=bright_cloud_mask(before_scene),
        after_cloud_mask=bright_cloud_mask(after_scene),
    )


def test_clear_pairs_skip_the_cloudy_date(synthetic_ndvi: dict) -> None:
    pairs = clear_pairs(synthetic_ndvi["t00"])
    assert [(a[0], b[0]) for a, b in pairs] == [
        (date(2024, 5, 2), date(2024, 7, 21)),  # 2024-06-11 has 45 % clouds
        (date(2024, 7, 21), date(2024, 8, 30)),
    ]


def test_cleared_forest_is_found_with_its_area(synthetic_ndvi: dict) -> None:
    first_pair, second_pair = clear_pairs(synthetic_ndvi["t00"])
    (polygon,) = loss_between(*first_pair)
    expected_ha = clearing_plan(SIZE, 4).area_ha()
    with rasterio.open(first_pair[1][2][0]) as src:
        assert float(src.tags()["SIMULATED_CLEARED_AREA_HA"]) == pytest.approx(expected_ha)
    assert polygon.area_ha == pytest.approx(expected_ha, rel=0.10)
    assert (polygon.before_date, polygon.after_date) == (date(2024, 5, 2), date(2024, 7, 21))
    assert 0.4 < polygon.mean_ndvi_drop < 0.8
    assert polygon.crs_epsg == 32633
    lonlat = wkb.loads(polygon.geometry_lonlat_wkb)
    assert 13.8 < lonlat.centroid.x < 14.0 and 50.5 < lonlat.centroid.y < 50.6
    plan = clearing_plan(SIZE, 4)
    with rasterio.open(first_pair[0][2][1]) as src:
        centre = src.xy(plan.row + plan.rows // 2, plan.col + plan.cols // 2)
    assert wkb.loads(polygon.geometry_wkb).contains(Point(centre))
    assert loss_between(*second_pair) == []  # already cleared: nothing new


def test_stable_tile_has_no_loss_even_with_clouds(synthetic_ndvi: dict) -> None:
    pairs = clear_pairs(synthetic_ndvi["t01"])
    assert len(pairs) == 3 and any(after[1] == pytest.approx(10.0) for _, after in pairs)
    for before, after in pairs:
        assert loss_between(before, after) == []
    cloudy_pair = next(pair for pair in pairs if pair[1][1] > 0)
    # Without the cloud mask the clouds over forest would read as loss: the mask is what keeps it clean.
    assert detect_forest_loss(cloudy_pair[0][2][1], cloudy_pair[1][2][1]) != []


def test_after_on_a_different_grid_is_reprojected(tmp_path: Path, synthetic_ndvi: dict) -> None:
    before, after = clear_pairs(synthetic_ndvi["t00"])[0]
    shifted = tmp_path / "after_shifted.tif"
    with rasterio.open(after[2][1]) as src:
        data = src.read(1)
        profile = src.profile | {"width": src.width + 10, "height": src.height + 10, "driver": "GTiff"}
        profile["transform"] = src.transform @ rasterio.Affine.translation(-10, -10)
    padded = np.full((data.shape[0] + 10, data.shape[1] + 10), np.nan, dtype="float32")
    padded[10:, 10:] = data
    with rasterio.open(shifted, "w", **profile) as dst:
        dst.write(padded, 1)
    aligned = detect_forest_loss(before[2][1], shifted, after_date=date(2024, 7, 21))
    same_grid = detect_forest_loss(before[2][1], after[2][1])
    assert [round(p.area_ha, 2) for p in aligned] == [round(p.area_ha, 2) for p in same_grid]
    assert aligned[0].after_date == date(2024, 7, 21)


def test_min_area_drops_small_patches(synthetic_ndvi: dict) -> None:
    first_pair = clear_pairs(synthetic_ndvi["t00"])[0]
    expected_ha = clearing_plan(SIZE, 4).area_ha()
    before_ndvi, after_ndvi = first_pair[0][2][1], first_pair[1][2][1]
    assert detect_forest_loss(before_ndvi, after_ndvi, min_area_ha=expected_ha * 2) == []


def test_select_clear_pairs_rules() -> None:
    acquisitions = [
        (date(2024, 1, 3), 5.0, "c"),
        (date(2024, 1, 1), 10.0, "a"),
        (date(2024, 1, 2), 80.0, "cloudy"),
        (date(2024, 1, 3), 1.0, "c-better"),
        (date(2024, 1, 4), None, "unknown"),
        (date(2024, 1, 5), 20.0, "e"),
    ]
    pairs = select_clear_pairs(acquisitions, max_cloud=20)
    assert [(a[2], b[2]) for a, b in pairs] == [("a", "c-better"), ("c-better", "e")]
