"""Synthetic scenes: deterministic, realistic reflectance, and cloud cover tags that tell the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from satlake.scenes.synthetic import make_synthetic_scenes


def read_all(paths: list[Path]) -> list[np.ndarray]:
    arrays = []
    for path in paths:
        with rasterio.open(path) as src:
            arrays.append(src.read())
    return arrays


def test_same_seed_same_pixels_other_seed_other_pixels(tmp_path: Path) -> None:
    first = make_synthetic_scenes(tmp_path / "a", tiles=2, size=96, seed=5)
    second = make_synthetic_scenes(tmp_path / "b", tiles=2, size=96, seed=5)
    other = make_synthetic_scenes(tmp_path / "c", tiles=2, size=96, seed=6)
    assert [p.name for p in first] == [p.name for p in second] and len(first) == 8
    assert all(np.array_equal(a, b) for a, b in zip(read_all(first), read_all(second), strict=True))
    assert not np.array_equal(read_all(first)[0], read_all(other)[0])


def test_scenes_look_like_surface_reflectance(tmp_path: Path) -> None:
    paths = make_synthetic_scenes(tmp_path, tiles=2, size=128, seed=1)
    with rasterio.open(paths[0]) as src:
        assert src.crs.to_epsg() == 32633 and src.count == 4 and src.dtypes[0] == "uint16"
        assert src.descriptions == ("blue", "green", "red", "nir")
        assert src.tags()["PLATFORM"] == "satlake-sim"
        blue, _green, red, nir = src.read().astype(float)
    ndvi = (nir - red) / (nir + red)
    assert (ndvi > 0.6).mean() > 0.3  # forest and grassland
    assert (ndvi < 0.0).mean() > 0.02  # water
    assert blue.max() <= 10_000 and blue.min() >= 1
    with rasterio.open(paths[4]) as src:
        assert src.crs.to_epsg() == 32634


def test_cloud_cover_tag_matches_bright_pixels(tmp_path: Path) -> None:
    for path in make_synthetic_scenes(tmp_path, tiles=2, size=128, seed=2):
        with rasterio.open(path) as src:
            declared = float(src.tags()["CLOUD_COVER"])
            blue = src.read(1)
        bright = 100.0 * float((blue > 3000).mean())  # opaque cloud cores; soft edges are a little darker
        assert bright <= declared + 0.5
        assert bright >= declared * 0.7, (path.name, declared, bright)
