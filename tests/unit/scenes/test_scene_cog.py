"""COG conversion: validity, overviews, lossless pixels per profile, the storage layout, and the checks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from satlake.scenes.cog import (
    COG_PROFILES,
    cog_creation_options,
    cog_layout_path,
    compare_pixels,
    convert_scene_to_cogs,
    convert_to_cog,
    validate_cog,
)
from satlake.scenes.raster import read_scene_metadata
from satlake.scenes.synthetic import make_mars_scene, make_synthetic_scenes
from tests.unit.rasters import write_band

PID = "LC08_L1TP_016037_20170813_20170814_01_RT"


def test_profiles_pick_the_predictor_by_data_type() -> None:
    assert cog_creation_options("deflate", "uint16", 4096, 4096)["predictor"] == 2
    assert cog_creation_options("zstd", "float32", 4096, 4096)["predictor"] == 3
    assert cog_creation_options("lzw", "int16", 4096, 4096)["blocksize"] == 512
    assert cog_creation_options("deflate", "uint8", 300, 200)["blocksize"] == 128
    with pytest.raises(ValueError, match="unknown COG profile 'jpeg'"):
        cog_creation_options("jpeg", "uint8", 10, 10)


@pytest.mark.parametrize("profile", sorted(COG_PROFILES))
def test_each_band_of_a_multiband_scene_becomes_a_valid_lossless_cog(tmp_path: Path, profile: str) -> None:
    source = make_synthetic_scenes(tmp_path / "landing", tiles=1, size=300)[0]
    for band in (1, 4):
        report = convert_to_cog(source, tmp_path / f"band{band}.tif", profile=profile, band_index=band)
        assert validate_cog(report.path) == []
        assert report.overviews == (2, 4)  # 300 px with 128 px tiles: 150, 75
        assert report.compression == profile
        assert compare_pixels(source, report.path, band=band, windows=8, seed=band)
        with rasterio.open(report.path) as cog:
            assert cog.count == 1 and cog.nodata == 0
            assert cog.tags()["ACQUISITION_TIME"] == "2024-05-02T10:00:00Z"


def test_overviews_halve_the_previous_level_rounding_down_as_gdal_cog_does(tmp_path: Path) -> None:
    values = np.random.default_rng(5).integers(1, 4000, (1031, 1030), dtype="uint16")
    source = write_band(tmp_path / "odd.tif", values)
    report = convert_to_cog(source, tmp_path / "cog.tif")
    assert report.overviews == (2, 4)
    shapes = []
    for level in range(2):
        with rasterio.open(report.path, overview_level=level) as overview:
            shapes.append(overview.shape)
    assert shapes == [(515, 515), (257, 257)]  # not ceil(1031 / 4) = 258, which decimating the full size gives


def test_one_band_of_a_multiband_file_keeps_its_description_tags_nodata_and_scaling(tmp_path: Path) -> None:
    source = tmp_path / "multi.tif"
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": 3,
        "width": 300,
        "height": 200,
        "crs": "EPSG:32633",
        "transform": from_origin(500_000, 5_600_000, 10, 10),
        "nodata": float("nan"),
    }
    with rasterio.open(source, "w", **profile) as dst:
        dst.write(np.random.default_rng(1).random((3, 200, 300)).astype("float32"))
        dst.update_tags(MISSION="sim")
        for band in (1, 2, 3):
            dst.set_band_description(band, f"band {band}")
            dst.update_tags(band, WAVELENGTH_NM=str(400 + band))
        dst.scales, dst.offsets, dst.units = (0.5, 0.25, 2.0), (1.0, 2.0, 3.0), ("m", "W", "K")
    report = convert_to_cog(source, tmp_path / "band2.tif", band_index=2, profile="zstd")
    assert validate_cog(report.path) == []
    assert compare_pixels(source, report.path, band=2)
    with rasterio.open(report.path) as cog:
        assert cog.count == 1 and np.isnan(cog.nodata)
        assert cog.tags()["MISSION"] == "sim" and cog.tags(1) == {"WAVELENGTH_NM": "402"}
        assert (cog.descriptions, cog.scales, cog.offsets, cog.units) == (("band 2",), (0.25,), (2.0,), ("W",))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["band2.tif", "multi.tif"]  # nothing left beside
    with pytest.raises(ValueError, match="unknown overview resampling 'sharpest'"):
        convert_to_cog(source, tmp_path / "x.tif", overview_resampling="sharpest")


def test_float_raster_with_nan_converts_losslessly(tmp_path: Path) -> None:
    values = np.random.default_rng(3).uniform(-1, 1, (1, 200, 260)).astype("float32")
    values[0, :10, :10] = np.nan
    source = write_band(tmp_path / "float.tif", values[0], nodata=float("nan"))
    report = convert_to_cog(source, tmp_path / "cog.tif", profile="zstd")
    assert validate_cog(report.path) == []
    assert compare_pixels(source, report.path)


def test_compare_pixels_notices_a_changed_pixel(tmp_path: Path) -> None:
    source = make_synthetic_scenes(tmp_path / "landing", tiles=1, size=128)[0]
    report = convert_to_cog(source, tmp_path / "blue.tif", band_index=1)
    with rasterio.open(report.path, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as cog:
        cog.write(np.full((1, 1), 4242, dtype="uint16"), 1, window=((127, 128), (127, 128)))
    assert not compare_pixels(source, report.path, band=1)


def test_striped_geotiff_without_overviews_is_not_a_cog(tmp_path: Path) -> None:
    path = write_band(tmp_path / "striped.tif", np.zeros((1100, 1100), dtype="uint8"))
    problems = validate_cog(path)
    assert "error: no internal overviews" in problems
    assert any(problem.startswith("error: The file is greater than 512xH or 512xW") for problem in problems)
    assert validate_cog(tmp_path / "missing.tif")[0].startswith("error:")


def test_landsat_layout_and_per_band_cogs(tmp_path: Path, landsat_files: dict[str, Path]) -> None:
    meta = read_scene_metadata(PID, "landsat-c1-l1", landsat_files)
    assert cog_layout_path(meta, "red") == (
        f"cogs/landsat-c1-l1/djzhd/2017/08/13/{PID}/bbox_-81.3085_32.1082_-78.8174_34.2287/red.tif"
    )
    reports = convert_scene_to_cogs(meta, landsat_files, tmp_path)
    assert sorted(reports) == ["blue", "green", "nir", "red"]
    for name, report in reports.items():
        assert report.path == tmp_path / cog_layout_path(meta, name)
        assert validate_cog(report.path) == []
        band = next(b for b in meta.bands if b.common_name == name)
        assert compare_pixels(landsat_files[band.file], report.path, windows=4)


def test_mars_layout_uses_a_body_cell(tmp_path: Path) -> None:
    path = make_mars_scene(tmp_path / "gale.tif")
    meta = read_scene_metadata("gale", "mars-sim", {"gale.tif": path})
    layout = cog_layout_path(meta, "albedo")
    assert layout.startswith("cogs/mars-sim/mars-")
    assert "/2024/03/01/gale/bbox_137.1500_-4.8500_137.6500_-4.3500/albedo.tif" in layout
    report = convert_scene_to_cogs(meta, {"gale.tif": path}, tmp_path / "out")["albedo"]
    assert validate_cog(report.path) == []


def test_layout_without_geographic_bounds_uses_native_bounds_and_undated(tmp_path: Path) -> None:
    path = make_mars_scene(tmp_path / "gale.tif")
    meta = read_scene_metadata("gale", "mars-sim", {"gale.tif": path})
    unplaced = replace(meta, body="unknown", bounds_geographic=None, footprint_geographic_wkt=None, acquired_at=None)
    layout = cog_layout_path(unplaced, "albedo")
    assert layout.startswith("cogs/mars-sim/unknown-nogeo/undated/gale/bbox_native_8129527.4397_")
    with pytest.raises(ValueError, match="not a safe path segment"):
        cog_layout_path(replace(meta, collection="../up"), "albedo")
