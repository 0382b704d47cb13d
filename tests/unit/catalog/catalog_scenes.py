"""Hand-built scenes for the catalog tests: an Earth UTM scene, one across the antimeridian, one over the
North Pole and one on Mars, with the assets raw/scenes and the products would hand to the catalog."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pyproj import CRS

from satlake.catalog.items import MEDIA_TYPE_COG, MEDIA_TYPE_PNG, MEDIA_TYPE_TEXT, AssetRef
from satlake.scenes.metadata import BandInfo, SceneFile, SceneMetadata

LANDSAT_BANDS = (
    BandInfo(1, "scene.tif", "B2", "blue", "uint16", 0.0, 0.48, 2.75e-05, -0.2),
    BandInfo(2, "scene.tif", "B3", "green", "uint16", 0.0, 0.56, 2.75e-05, -0.2),
    BandInfo(3, "scene.tif", "B4", "red", "uint16", 0.0, 0.655, 2.75e-05, -0.2),
    BandInfo(4, "scene.tif", "B5", "nir", "uint16", 0.0, 0.865, 2.75e-05, -0.2),
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def earth_utm_scene(**changes: Any) -> SceneMetadata:
    """100 x 100 px at 30 m in UTM 33N, near 15°E 45.1°N."""
    scene = SceneMetadata(
        scene_id="LC08_T33_20240501",
        collection="landsat-c2-l2",
        body="earth",
        crs_wkt=CRS.from_epsg(32633).to_wkt(),
        crs_epsg=32633,
        width=100,
        height=100,
        transform=(30.0, 0.0, 500000.0, 0.0, -30.0, 5000000.0),
        bounds_native=(500000.0, 4997000.0, 503000.0, 5000000.0),
        bounds_geographic=(15.0, 45.126466, 15.038166, 45.153477),
        footprint_geographic_wkt=(
            "POLYGON ((15 45.126466, 15.038166 45.126466, 15.038166 45.153477, 15 45.153477, 15 45.126466))"
        ),
        bands=LANDSAT_BANDS,
        files=(SceneFile("scene.tif", 80_000, sha("scene")),),
        acquired_at=datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC),
        platform="landsat-8",
        instrument="oli",
        cloud_cover=12.5,
        sun_azimuth=-30.0,  # MTL convention (-180..180)
        sun_elevation=55.2,
        off_nadir=0.0,
    )
    return replace(scene, **changes)


def antimeridian_scene(**changes: Any) -> SceneMetadata:
    """A scene over Fiji straddling 180°, in UTM 60S, its footprint split in two at the antimeridian."""
    scene = SceneMetadata(
        scene_id="fiji_20240503",
        collection="landsat-c2-l2",
        body="earth",
        crs_wkt=CRS.from_epsg(32760).to_wkt(),
        crs_epsg=32760,
        width=200,
        height=200,
        transform=(500.0, 0.0, 760000.0, 0.0, -500.0, 8175000.0),
        bounds_native=(760000.0, 8075000.0, 860000.0, 8175000.0),
        bounds_geographic=(179.5, -17.5, -179.5, -16.5),
        footprint_geographic_wkt=(
            "MULTIPOLYGON (((179.5 -17.5, 180 -17.5, 180 -16.5, 179.5 -16.5, 179.5 -17.5)),"
            " ((-180 -17.5, -179.5 -17.5, -179.5 -16.5, -180 -16.5, -180 -17.5)))"
        ),
        bands=LANDSAT_BANDS[:3],
        files=(SceneFile("scene.tif", 120_000, sha("fiji")),),
        acquired_at=datetime(2024, 5, 3, 22, 15, 0, tzinfo=UTC),
        platform="landsat-9",
        instrument="oli",
        cloud_cover=40.0,
    )
    return replace(scene, **changes)


def polar_scene(**changes: Any) -> SceneMetadata:
    """A polar-stereographic scene centred on the North Pole: every longitude, latitudes 85..90."""
    scene = SceneMetadata(
        scene_id="arctic_20240420",
        collection="polar-mosaics",
        body="earth",
        crs_wkt=CRS.from_epsg(3413).to_wkt(),
        crs_epsg=3413,
        width=1112,
        height=1112,
        transform=(500.0, 0.0, -278000.0, 0.0, -500.0, 278000.0),
        bounds_native=(-278000.0, -278000.0, 278000.0, 278000.0),
        bounds_geographic=(-180.0, 85.0, 180.0, 90.0),
        footprint_geographic_wkt="POLYGON ((-180 85, 180 85, 180 90, -180 90, -180 85))",
        bands=(BandInfo(1, "arctic.tif", "band_1", "red", "uint8", None),),
        files=(SceneFile("arctic.tif", 1_000_000, sha("arctic")),),
        acquired_at=datetime(2024, 4, 20, 12, 0, 0, tzinfo=UTC),
        platform="sentinel-2a",
        instrument="msi",
        cloud_cover=5.0,
    )
    return replace(scene, **changes)


def mars_scene(**changes: Any) -> SceneMetadata:
    """A Mars equirectangular tile over Gale crater: native metres on Mars, lon/lat on Mars."""
    scene = SceneMetadata(
        scene_id="ctx_gale_20240201",
        collection="mars-ctx",
        body="mars",
        crs_wkt=CRS.from_user_input("IAU_2015:49910").to_wkt(),
        crs_epsg=None,
        width=1000,
        height=1000,
        transform=(59.27, 0.0, 8120633.56, 0.0, -59.27, -237098.79),
        bounds_native=(8120633.56, -296368.79, 8179903.56, -237098.79),
        bounds_geographic=(137.0, -5.0, 138.0, -4.0),
        footprint_geographic_wkt="POLYGON ((137 -5, 138 -5, 138 -4, 137 -4, 137 -5))",
        bands=(BandInfo(1, "gale.tif", "band_1", None, "float32", float("nan")),),
        files=(SceneFile("gale.tif", 4_000_000, sha("gale")),),
        acquired_at=datetime(2024, 2, 1, 8, 30, 0, tzinfo=UTC),
        platform="mro",
        instrument="ctx",
    )
    return replace(scene, **changes)


def scene_assets(meta: SceneMetadata, base: str) -> dict[str, AssetRef]:
    """The COG, the quicklook and the original metadata file, as the scene and product assets produce them."""
    return {
        "cog": AssetRef(
            href=f"{base}/cogs/{meta.collection}/{meta.scene_id}/scene.tif",
            media_type=MEDIA_TYPE_COG,
            roles=("data",),
            title="Cloud-Optimized GeoTIFF",
            size_bytes=meta.files[0].size_bytes,
            sha256=meta.files[0].sha256,
            band_names=tuple(band.name for band in meta.bands),
        ),
        "thumbnail": AssetRef(
            href=f"{base}/quicklooks/{meta.scene_id}.png",
            media_type=MEDIA_TYPE_PNG,
            roles=("thumbnail", "overview"),
            title="Quicklook",
            size_bytes=2048,
            sha256=sha(f"{meta.scene_id}-png"),
        ),
        "mtl": AssetRef(
            href=f"s3://satlake-raw/raw/scenes/{meta.collection}/{meta.scene_id}/MTL.txt",
            media_type=MEDIA_TYPE_TEXT,
            roles=("metadata",),
        ),
    }
