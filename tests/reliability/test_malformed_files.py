"""Malformed rasters and STAC-breaking metadata: each is refused with an error naming the file or the field,
or becomes a valid STAC item that serialises to strict JSON. Complements tests/unit/scenes (truncated, random,
wrong magic, 2,000,000-pixel side, zero bands, no CRS) with declared sizes just under the reader's limit and
metadata that JSON cannot carry."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from satlake.catalog.items import MEDIA_TYPE_COG, AssetRef, build_stac_item
from satlake.catalog.validation import validate_stac_object
from satlake.scenes.metadata import SceneMetadata
from satlake.scenes.raster import RasterReadError, read_scene_metadata

TIFF_WIDTH, TIFF_HEIGHT, TIFF_ROWS_PER_STRIP = 256, 257, 278
MILLION = 1_000_000


def write_raster(path: Path, crs: str = "EPSG:32633", transform=None, size: int = 64, **profile) -> Path:
    options = {
        "driver": "GTiff",
        "dtype": "uint16",
        "count": 1,
        "width": size,
        "height": size,
        "crs": crs,
        "transform": transform or from_origin(500_000, 5_600_000, 10, 10),
        **profile,
    }
    with rasterio.open(path, "w", **options) as dst:
        dst.write(np.ones((1, size, size), dtype="uint16"))
        dst.update_tags(ACQUISITION_TIME="2024-05-01T10:00:00Z")
    return path


def patch_tags(data: bytes, values: dict[int, int]) -> bytes:
    """Rewrite SHORT/LONG tags of the first IFD of a little-endian classic TIFF as LONG values."""
    patched = bytearray(data)
    (ifd,) = struct.unpack("<I", patched[4:8])
    (entries,) = struct.unpack("<H", patched[ifd : ifd + 2])
    for entry in range(entries):
        offset = ifd + 2 + 12 * entry
        (tag,) = struct.unpack("<H", patched[offset : offset + 2])
        if tag in values:
            patched[offset + 2 : offset + 12] = struct.pack("<HII", 4, 1, values[tag])
    return bytes(patched)


# Each case: a TIFF whose header declares 10^6 x 10^6 pixels (2 TB of uint16) but holds 64 x 64.
HUGE_CASES = {
    "huge_strips.tif": ({}, {TIFF_ROWS_PER_STRIP: MILLION}),
    "huge_tiles.tif": ({"tiled": True, "blockxsize": 16, "blockysize": 16}, {}),
    "huge_deflate.tif": ({"compress": "deflate"}, {}),
}


def test_a_tiff_declaring_a_million_by_a_million_pixels_is_refused_without_allocating_it(tmp_path: Path) -> None:
    for name, (profile, extra_tags) in HUGE_CASES.items():
        data = write_raster(tmp_path / f"source_{name}", **profile).read_bytes()
        (tmp_path / name).write_bytes(patch_tags(data, {TIFF_WIDTH: MILLION, TIFF_HEIGHT: MILLION, **extra_tags}))
    # A child process, so its peak memory is measured alone: allocating the declared raster would need 2 TB.
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from satlake.scenes.raster import RasterReadError, read_scene_metadata
        results = {{}}
        for name in {sorted(HUGE_CASES)!r}:
            path = Path({str(tmp_path)!r}) / name
            try:
                read_scene_metadata("huge", "test", {{name: path}})
                results[name] = "accepted"
            except RasterReadError as error:
                results[name] = [error.file, str(error)]
        # VmHWM, not ru_maxrss: Linux carries the forking parent's peak into a child's ru_maxrss across exec,
        # so under a large pytest process ru_maxrss reports the parent's memory, not this interpreter's.
        status = Path("/proc/self/status").read_text().splitlines()
        peak_mb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
        print(json.dumps({{"results": results, "peak_mb": peak_mb}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for name in HUGE_CASES:
        outcome = report["results"][name]
        assert outcome != "accepted", f"{name} declares 10^6 x 10^6 pixels and was accepted"
        assert outcome[0] == name and name in outcome[1]
    # The interpreter with rasterio, pyproj and shapely loaded takes ~150 MB; the probe decodes no block over
    # 16 MB (a decoded 64-row strip of this header would be 128 MB). Anything near the declared size would have
    # been killed or raised MemoryError long before.
    assert report["peak_mb"] < 512, report


def test_a_bigtiff_with_a_wrong_version_and_a_tiff_with_a_looping_ifd_are_refused(tmp_path: Path) -> None:
    good = write_raster(tmp_path / "good.tif").read_bytes()
    cases = {
        "bad_bigtiff.tif": b"II+\x00" + struct.pack("<HH", 3, 0) + bytes(200),
        "ifd_loop.tif": b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 0) + struct.pack("<I", 8),
        "ifd_past_end.tif": good[:4] + struct.pack("<I", 0xFFFF_FFF0) + good[8:],
        "header_only.tif": good[:8],
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(RasterReadError) as caught:
            read_scene_metadata("broken", "test", {name: path})
        assert caught.value.file == name and name in str(caught.value)


# --- STAC-breaking metadata ------------------------------------------------------------------------------


def item_for(meta: SceneMetadata) -> dict:
    asset = AssetRef(
        href=f"/lake/cogs/{meta.scene_id}.tif",
        media_type=MEDIA_TYPE_COG,
        roles=("data",),
        band_names=tuple(band.name for band in meta.bands),
    )
    return build_stac_item(meta, {"cog": asset})


def assert_valid_strict_json_item(item: dict) -> None:
    assert validate_stac_object(item) == []
    json.dumps(item, allow_nan=False)  # raises on NaN / Infinity


@pytest.fixture
def utm_scene(tmp_path: Path) -> SceneMetadata:
    path = write_raster(tmp_path / "utm.tif")
    return read_scene_metadata("utm", "test", {path.name: path})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"bounds_geographic": (float("nan"), 50.0, 16.0, 51.0), "footprint_geographic_wkt": None}, "/bbox/0"),
        ({"bounds_geographic": (15.0, 50.0, float("inf"), 51.0)}, "/bbox/2"),
        ({"bounds_native": (float("nan"), 0.0, 1.0, 1.0)}, "/properties/proj:bbox/0"),
        ({"transform": (float("nan"), 0.0, 0.0, 0.0, -10.0, 0.0)}, "/properties/proj:transform/0"),
        ({"sun_elevation": float("nan")}, "/properties/view:sun_elevation"),
    ],
)
def test_non_finite_metadata_is_refused_naming_the_field(utm_scene: SceneMetadata, changes: dict, field: str) -> None:
    """NaN passes JSON Schema's "number" and json.dumps writes it as the invalid token NaN: refuse it instead."""
    with pytest.raises(ValueError, match="non-finite") as caught:
        item_for(replace(utm_scene, **changes))
    assert field in str(caught.value) and "'utm'" in str(caught.value)


def test_validation_reports_nan_and_out_of_range_bbox_in_items_from_elsewhere(utm_scene: SceneMetadata) -> None:
    item = item_for(utm_scene)
    item["bbox"] = [15.0, 95.0, 16.0, 96.0]
    item["properties"]["eo:cloud_cover"] = float("nan")
    problems = validate_stac_object(item)
    assert any("bbox" in p and "lat [-90, 90]" in p for p in problems), problems
    assert any("/properties/eo:cloud_cover" in p and "not a JSON number" in p for p in problems), problems


def test_an_antimeridian_scene_becomes_a_valid_split_item(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "fiji.tif", "EPSG:32660", from_origin(700_000, 1_000_000, 2000, 2000), 100)
    item = item_for(read_scene_metadata("fiji", "test", {path.name: path}))
    assert_valid_strict_json_item(item)
    west, _south, east, _north = item["bbox"]
    assert west > east and item["geometry"]["type"] == "MultiPolygon"


@pytest.mark.parametrize(("crs", "north_pole"), [("EPSG:3413", True), ("EPSG:3031", False)])
def test_a_polar_scene_becomes_a_valid_item_reaching_its_pole(tmp_path: Path, crs: str, north_pole: bool) -> None:
    path = write_raster(tmp_path / "pole.tif", crs, from_origin(-500_000, 500_000, 10_000, 10_000), 100)
    item = item_for(read_scene_metadata("pole", "test", {path.name: path}))
    assert_valid_strict_json_item(item)
    west, south, east, north = item["bbox"]
    assert (west, east) == (-180.0, 180.0)
    assert (north == 90.0) if north_pole else (south == -90.0)
