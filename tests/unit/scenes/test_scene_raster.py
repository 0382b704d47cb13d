"""Scene metadata: the real Landsat scene, synthetic scenes, other bodies, odd footprints, broken files."""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.transform import from_origin
from shapely import wkt
from shapely.geometry import MultiPolygon, Point

from satlake.scenes.cells import body_of_crs, geohash_encode, scene_cell_key
from satlake.scenes.cog import cog_layout_path
from satlake.scenes.raster import RasterReadError, read_scene_metadata
from satlake.scenes.synthetic import make_mars_scene, make_synthetic_scenes

PID = "LC08_L1TP_016037_20170813_20170814_01_RT"


def write_raster(
    path: Path,
    crs: str | None = "EPSG:32633",
    transform: Affine | None = None,
    size: int = 64,
    count: int = 1,
    dtype: str = "uint16",
    **tags: str,
) -> Path:
    profile = {
        "driver": "GTiff",
        "dtype": dtype,
        "count": count,
        "width": size,
        "height": size,
        "crs": crs,
        "transform": transform or from_origin(500_000, 5_600_000, 10, 10),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.arange(count * size * size, dtype=dtype).reshape(count, size, size))
        if tags:
            dst.update_tags(**tags)
    return path


def read_one(path: Path):
    return read_scene_metadata(path.stem, "test", {path.name: path})


def test_real_landsat_scene_metadata(landsat_files: dict[str, Path]) -> None:
    meta = read_scene_metadata(PID, "landsat-c1-l1", landsat_files)
    assert meta.body == "earth"
    assert meta.crs_epsg == 32617
    assert (meta.width, meta.height) == (255, 259)
    assert meta.bounds_native == (471585.0, 3554415.0, 701085.0, 3787515.0)
    west, south, east, north = meta.bounds_geographic
    # The MTL's product corners: UL (-81.30836, 34.22818), LR (-78.87190, 32.10539); the raster reaches
    # half a 30 m pixel (and for the downsampled grid a little more) beyond them.
    assert west == pytest.approx(-81.308, abs=0.01) and north == pytest.approx(34.228, abs=0.01)
    assert east == pytest.approx(-78.82, abs=0.01) and south == pytest.approx(32.105, abs=0.01)
    assert wkt.loads(meta.footprint_geographic_wkt).contains(Point(-80.0, 33.2))
    assert [(b.name, b.common_name) for b in meta.bands] == [
        ("B2", "blue"),
        ("B3", "green"),
        ("B4", "red"),
        ("B5", "nir"),
    ]
    assert all(b.scale == pytest.approx(2e-5) and b.offset == pytest.approx(-0.1) for b in meta.bands)
    assert meta.acquired_at == datetime(2017, 8, 13, 15, 54, 15, 788464, tzinfo=UTC)
    assert (meta.platform, meta.instrument, meta.cloud_cover) == (
        "landsat-8",
        "oli_tirs",
        pytest.approx(26.7),
    )
    assert meta.sun_elevation == pytest.approx(62.17310472)
    assert meta.extra["landsat:wrs_path"] == "16"
    b4 = next(f for f in meta.files if f.name.endswith("_B4.TIF"))
    raw = landsat_files[b4.name].read_bytes()
    assert (b4.sha256, b4.size_bytes) == (hashlib.sha256(raw).hexdigest(), len(raw))
    assert len(meta.files) == 5  # four bands and the MTL


def test_synthetic_scene_metadata_from_tags(tmp_path: Path) -> None:
    path = make_synthetic_scenes(tmp_path, tiles=1, size=64)[1]
    meta = read_one(path)
    assert [b.common_name for b in meta.bands] == ["blue", "green", "red", "nir"]
    assert {b.nodata for b in meta.bands} == {0.0}
    assert meta.acquired_at == datetime(2024, 6, 11, 10, 0, tzinfo=UTC)
    assert meta.platform == "satlake-sim"
    assert meta.cloud_cover == pytest.approx(45.0)
    assert meta.crs_epsg == 32633
    west, south, east, north = meta.bounds_geographic
    assert west == pytest.approx(13.87, abs=0.01) and north == pytest.approx(50.547, abs=0.01)
    assert scene_cell_key(meta.body, meta.bounds_geographic) == geohash_encode((south + north) / 2, (west + east) / 2)


def test_tiff_datetime_and_band_descriptions(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "rgbn.tif", count=4, TIFFTAG_DATETIME="2021:03:04 05:06:07", CLOUD_COVER="250")
    with rasterio.open(path, "r+") as dst:
        for index, name in enumerate(["Blue", "B03", "red", "Near-Infrared"], start=1):
            dst.set_band_description(index, name)
        dst.update_tags(2, BAND_NAME="green")
    meta = read_one(path)
    assert [b.common_name for b in meta.bands] == ["blue", "green", "red", "nir"]
    assert meta.acquired_at == datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert meta.cloud_cover is None  # 250 % is not a cloud cover


def test_geohash_known_vectors() -> None:
    assert geohash_encode(57.64911, 10.40744, 11) == "u4pruydqqvj"
    assert geohash_encode(42.6, -5.6, 5) == "ezs42"
    assert geohash_encode(37.7749, -122.4194, 5) == "9q8yy"
    assert geohash_encode(-33.8688, 151.2093, 6) == "r3gx2f"
    with pytest.raises(ValueError):
        geohash_encode(91.0, 0.0)


def test_mars_scene_is_never_placed_on_earth(tmp_path: Path) -> None:
    meta = read_one(make_mars_scene(tmp_path / "gale.tif"))
    assert meta.body == "mars"
    west, south, east, north = meta.bounds_geographic
    assert west < 137.4 < east and south < -4.6 < north  # planetocentric Mars lon/lat, not Earth's
    cell = scene_cell_key(meta.body, meta.bounds_geographic)
    assert cell.startswith("mars-")
    layout = cog_layout_path(meta, "albedo")
    assert f"/{cell}/" in layout
    earth_geohash = geohash_encode((south + north) / 2, (west + east) / 2)
    assert f"/{earth_geohash}/" not in layout


def test_body_from_bare_mars_radius() -> None:
    from pyproj import CRS

    assert body_of_crs(CRS.from_proj4("+proj=eqc +a=3396190 +b=3376200 +units=m +no_defs")) == "mars"
    assert body_of_crs(CRS.from_user_input("IAU_2015:30100")) == "moon"
    assert body_of_crs(CRS.from_epsg(32617)) == "earth"


def test_antimeridian_footprint_is_split(tmp_path: Path) -> None:
    # UTM zone 60 (central meridian 177E), 200 km east of the zone's edge: lon 178.2 .. -179.9 at the equator.
    path = write_raster(tmp_path / "fiji.tif", "EPSG:32660", from_origin(700_000, 1_000_000, 2000, 2000), 100)
    meta = read_one(path)
    west, _south, east, _north = meta.bounds_geographic
    assert west > east  # STAC convention for a bbox crossing the antimeridian
    assert 178.0 < west < 179.0 and -180.0 < east < -179.0
    footprint = wkt.loads(meta.footprint_geographic_wkt)
    assert isinstance(footprint, MultiPolygon) and len(footprint.geoms) == 2
    assert all(-180.0 <= x <= 180.0 for x in (footprint.bounds[0], footprint.bounds[2]))
    assert footprint.contains(Point(179.5, 8.0)) and footprint.contains(Point(-179.95, 8.0))
    assert not footprint.contains(Point(0.0, 8.0))
    assert len(scene_cell_key(meta.body, meta.bounds_geographic)) == 5


def test_polar_footprint_reaches_the_pole(tmp_path: Path) -> None:
    # NSIDC north polar stereographic, 1000 km square centred on the pole.
    path = write_raster(tmp_path / "arctic.tif", "EPSG:3413", from_origin(-500_000, 500_000, 10_000, 10_000), 100)
    meta = read_one(path)
    west, south, east, north = meta.bounds_geographic
    assert (west, east, north) == (-180.0, 180.0, 90.0)
    assert 83.0 < south < 86.0
    footprint = wkt.loads(meta.footprint_geographic_wkt)
    for lon in (-179.0, -90.0, 0.0, 45.0, 179.0):
        assert footprint.contains(Point(lon, 89.0))
    assert not footprint.contains(Point(0.0, 80.0))


def test_rotated_grid_bounds_cover_all_corners(tmp_path: Path) -> None:
    transform = Affine.translation(500_000, 5_600_000) @ Affine.rotation(30) @ Affine.scale(10, -10)
    meta = read_one(write_raster(tmp_path / "rotated.tif", transform=transform))
    xs = [(transform @ (c, r))[0] for c in (0, 64) for r in (0, 64)]
    assert meta.bounds_native[0] == pytest.approx(min(xs)) and meta.bounds_native[2] == pytest.approx(max(xs))


def _patched_ifd(data: bytes, tag_id: int, value: int) -> bytes:
    """Rewrite one SHORT/LONG tag of the first IFD of a little-endian TIFF."""
    patched = bytearray(data)
    ifd = struct.unpack("<I", patched[4:8])[0]
    (entries,) = struct.unpack("<H", patched[ifd : ifd + 2])
    for entry in range(entries):
        offset = ifd + 2 + 12 * entry
        tag, _type, _count = struct.unpack("<HHI", patched[offset : offset + 8])
        if tag == tag_id:
            patched[offset + 2 : offset + 4] = struct.pack("<H", 4)  # LONG
            patched[offset + 8 : offset + 12] = struct.pack("<I", value)
    return bytes(patched)


def _broken_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = write_raster(tmp_path / "good.tif")
    data = good.read_bytes()
    cases = {
        "random.tif": (np.random.default_rng(1).bytes(4096), "not a TIFF"),
        "truncated.tif": (data[: len(data) // 2], "GDAL could not read it"),
        "empty.tif": (b"", "empty"),
        "image.tif": (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a TIFF"),
        "huge.tif": (_patched_ifd(data, 256, 2_000_000), "declared size 2000000x64"),
        "nobands.tif": (_patched_ifd(data, 277, 0), "SamplesPerPixel"),
    }
    broken = {}
    for name, (content, reason) in cases.items():
        (tmp_path / name).write_bytes(content)
        broken[name] = (tmp_path / name, reason)
    broken["nocrs.tif"] = (
        write_raster(tmp_path / "nocrs.tif", crs=None, transform=Affine.identity()),
        "no CRS",
    )
    nan_transform = Affine(float("nan"), 0, 0, 0, -10, 0)
    broken["nan.tif"] = (write_raster(tmp_path / "nan.tif", transform=nan_transform), "non-finite")
    return broken


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_broken_rasters_raise_raster_read_error(tmp_path: Path) -> None:
    for name, (path, reason) in _broken_inputs(tmp_path).items():
        with pytest.raises(RasterReadError) as caught:
            read_scene_metadata("broken", "test", {name: path})
        assert caught.value.file == name
        assert reason in str(caught.value), (name, str(caught.value))


def test_a_scene_with_no_raster_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(RasterReadError, match=r"no \.tif/\.tiff file"):
        read_scene_metadata("notes", "test", {"notes.txt": tmp_path / "notes.txt"})


def test_a_raster_in_blocks_too_large_to_probe_is_read_and_a_block_past_its_end_is_still_refused(
    tmp_path: Path,
) -> None:
    # One deflate strip of 3000 x 3000 uint16 is an 18 MB block: the probe checks where it lies instead of decoding.
    path = tmp_path / "one_strip.tif"
    profile = {"driver": "GTiff", "dtype": "uint16", "count": 1, "width": 3000, "height": 3000, "crs": "EPSG:32633"}
    profile |= {"transform": from_origin(500_000, 5_600_000, 10, 10), "compress": "deflate", "blockysize": 3000}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.random.default_rng(2).integers(0, 1000, (1, 3000, 3000), dtype="uint16"))
        dst.update_tags(ACQUISITION_TIME="2024-05-01T10:00:00Z")
    with rasterio.open(path) as src:
        assert src.block_shapes[0] == (3000, 3000)
    assert read_scene_metadata("big", "test", {"one_strip.tif": path}).width == 3000
    data = path.read_bytes()
    (tmp_path / "cut.tif").write_bytes(_patched_ifd(data, 279, len(data)))  # StripByteCounts: the whole file
    with pytest.raises(RasterReadError, match="past the end of the"):
        read_scene_metadata("cut", "test", {"cut.tif": tmp_path / "cut.tif"})
