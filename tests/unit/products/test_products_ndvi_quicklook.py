"""NDVI values on a crafted raster, and quicklook PNGs of real and synthetic scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from satlake.products.ndvi import GridMismatchError, compute_ndvi
from satlake.products.quicklook import colorize_ndvi, render_quicklook
from satlake.scenes.cog import validate_cog
from satlake.scenes.synthetic import make_synthetic_scenes
from tests.unit.rasters import write_band

PID = "LC08_L1TP_016037_20170813_20170814_01_RT"


def crafted_bands(tmp_path: Path) -> tuple[Path, Path]:
    """A 40x50 grid: its 2x3 top-left corner holds known cases, the rest is red 1000 / nir 3000 (NDVI 0.5)."""
    red = np.full((40, 50), 1000, dtype=np.uint16)
    nir = np.full((40, 50), 3000, dtype=np.uint16)
    red[0, :3], nir[0, :3] = [3000, 2000, 0], [1000, 2000, 0]  # -0.5, 0.0, 0/0 -> NaN
    red[1, :3], nir[1, :3] = [65535, 10, 500], [4000, 0, 4500]  # nodata -> NaN, -1.0, 0.8
    return write_band(tmp_path / "red.tif", red, nodata=65535), write_band(tmp_path / "nir.tif", nir, nodata=65535)


@pytest.mark.parametrize("window_size", [7, 1024])
def test_ndvi_known_values_and_statistics(tmp_path: Path, window_size: int) -> None:
    red, nir = crafted_bands(tmp_path)
    report = compute_ndvi(
        red,
        nir,
        tmp_path / "ndvi.tif",
        red_scale_offset=(1e-4, 0),
        nir_scale_offset=(1e-4, 0),
        window_size=window_size,
    )
    with rasterio.open(report.path) as src:
        ndvi = src.read(1)
        assert src.dtypes[0] == "float32" and np.isnan(src.nodata)
        assert src.tags()["ACQUISITION_TIME"] == "2024-05-02T10:00:00Z"
    np.testing.assert_allclose(ndvi[0, :2], [-0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(ndvi[1, 1:3], [-1.0, 0.8], atol=1e-6)
    assert np.isnan(ndvi[0, 2]) and np.isnan(ndvi[1, 0])
    assert np.nanmin(ndvi) >= -1.0 and np.nanmax(ndvi) <= 1.0
    assert ndvi[20, 25] == pytest.approx(0.5)
    assert (report.min, report.max) == (pytest.approx(-1.0), pytest.approx(0.8))
    assert report.valid_fraction == pytest.approx((40 * 50 - 2) / (40 * 50))
    assert report.mean == pytest.approx(float(np.nanmean(ndvi)), abs=1e-6)
    assert validate_cog(report.path) == []


def test_negative_reflectance_is_nodata_not_out_of_range(tmp_path: Path) -> None:
    red = write_band(tmp_path / "red.tif", np.full((16, 16), 4000, dtype=np.uint16))
    nir = write_band(tmp_path / "nir.tif", np.full((16, 16), 6000, dtype=np.uint16))
    # Landsat-style offset makes red 4000 * 2e-5 - 0.1 = -0.02: NDVI would be 1.5, so the pixel is NaN.
    report = compute_ndvi(red, nir, tmp_path / "ndvi.tif", red_scale_offset=(2e-5, -0.1), nir_scale_offset=(2e-5, -0.1))
    assert report.valid_fraction == 0.0 and report.min is None


def test_ndvi_refuses_bands_on_different_grids(tmp_path: Path) -> None:
    red = write_band(tmp_path / "red.tif", np.ones((16, 16), dtype=np.uint16))
    nir = write_band(tmp_path / "nir.tif", np.ones((16, 16), dtype=np.uint16), origin_x=500_010)
    with pytest.raises(GridMismatchError, match="not on the same grid"):
        compute_ndvi(red, nir, tmp_path / "ndvi.tif")


def test_landsat_ndvi_lies_in_range(tmp_path: Path, landsat_dir: Path) -> None:
    report = compute_ndvi(
        landsat_dir / f"{PID}_B4.TIF",
        landsat_dir / f"{PID}_B5.TIF",
        tmp_path / "ndvi.tif",
        red_scale_offset=(2e-5, -0.1),
        nir_scale_offset=(2e-5, -0.1),
        source_nodata=0,
    )
    assert -1.0 <= report.min < 0.0 < report.mean < report.max <= 1.0
    assert 0.6 < report.valid_fraction < 0.8  # about 30 % of the downsampled tile is fill outside the swath


def test_true_colour_quicklook_has_the_expected_size(tmp_path: Path, landsat_dir: Path) -> None:
    bands = {name: landsat_dir / f"{PID}_{band}.TIF" for name, band in (("red", "B4"), ("green", "B3"), ("blue", "B2"))}
    report = render_quicklook(bands, tmp_path / "ql.png", max_size=200, source_nodata=0)
    assert (report.width, report.height, report.kind) == (
        197,
        200,
        "true_color",
    )  # 255 x 259 scaled to 200 rows
    with Image.open(report.path) as image:
        assert image.size == (197, 200) and image.mode == "RGBA"
        pixels = np.asarray(image)
    assert pixels[0, 0, 3] == 0  # swath corner fill is transparent
    assert pixels[100, 100, 3] == 255 and pixels[..., :3].std() > 10


def test_ndvi_quicklook_from_a_multiband_scene(tmp_path: Path) -> None:
    scene = make_synthetic_scenes(tmp_path, tiles=1, size=256)[0]
    report = render_quicklook({"red": (scene, 3), "nir": (scene, 4)}, tmp_path / "ndvi.png", max_size=100)
    assert (report.width, report.height, report.kind) == (100, 100, "ndvi")
    with Image.open(report.path) as image:
        colours = np.asarray(image)[..., :3].reshape(-1, 3)
    forest_green = colorize_ndvi(np.array([0.8]))[0]
    assert (np.abs(colours.astype(int) - forest_green).sum(axis=1) < 40).mean() > 0.2  # plenty of forest
    with pytest.raises(ValueError, match="need red, green and blue"):
        render_quicklook({"nir": (scene, 4)}, tmp_path / "x.png")
