"""Items of the local STAC replay server: multi-band scenes turned into one COG per band plus STAC item JSON
shaped like Earth Search v1 or Planetary Computer items (asset keys, ``eo:bands``, ``proj:*``, links), and the
selection of items for a search (collections, ids, bbox, intersects, datetime, ``query``, CQL2-JSON ``filter``).

Item and asset hrefs are written as server-absolute paths (``/assets/...``, ``/collections/...``); the server
prefixes its own ``http://127.0.0.1:<port>`` when it answers, because the port is only known once it listens.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import transform_bounds, transform_geom

from satlake.scenes.cog import DEFAULT_COG_PROFILE, cog_creation_options, overview_count, single_band_vrt

FLAVOURS = ("earth-search", "planetary-computer")
API_PREFIX = {"earth-search": "", "planetary-computer": "/api/stac/v1"}
REPLAY_BLOCK_SIZE = 256  # internal COG tiles, so a small window of a small scene touches few tiles
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
SCL_CLOUD_HIGH, SCL_VEGETATION = 9, 4  # Sentinel-2 scene classification values
QA_PIXEL_CLOUD, QA_PIXEL_CLEAR, QA_PIXEL_FILL = 22280, 21824, 1  # Landsat C2 QA_PIXEL words (L8/L9)
CLOUD_BLUE_DN = 3000  # blue reflectance above 0.30 is cloud in the synthetic scenes (land stays below 0.15)
REFLECTANCE_ROLES = ("blue", "green", "red", "nir")

# role -> (S2 band name, centre wavelength um, FWHM um), values of the Sentinel-2 items of both services.
_S2_BANDS = {
    "blue": ("B02", 0.49, 0.098),
    "green": ("B03", 0.56, 0.045),
    "red": ("B04", 0.665, 0.038),
    "nir": ("B08", 0.842, 0.145),
}
_LANDSAT_BANDS = {
    "blue": ("SR_B2", 0.48, 0.06),
    "green": ("SR_B3", 0.56, 0.06),
    "red": ("SR_B4", 0.65, 0.04),
    "nir": ("SR_B5", 0.86, 0.03),
}
_S2_TITLES = {"blue": "Blue", "green": "Green", "red": "Red", "nir": "NIR 1"}


@dataclass
class ReplayItem:
    """One item the server replays: its JSON (hrefs as server paths) and the local file behind each asset."""

    item: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def is_landsat(collection: str) -> bool:
    return collection.startswith("landsat")


def asset_keys(flavour: str, collection: str) -> dict[str, str]:
    """Role -> asset key as the service names it (blue, green, red, nir, cloud)."""
    if is_landsat(collection):
        return {"blue": "blue", "green": "green", "red": "red", "nir": "nir08", "cloud": "qa_pixel"}
    if flavour == "planetary-computer":
        return {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "cloud": "SCL"}
    return {"blue": "blue", "green": "green", "red": "red", "nir": "nir", "cloud": "scl"}


def _check_flavour(flavour: str) -> None:
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown replay flavour {flavour!r}; choose one of {FLAVOURS}")


def write_cog(source: str | Path, dst: Path, dtype: str, width: int, height: int, resampling: str) -> Path:
    """Write ``source`` (a path or a VRT document) as a COG with satlake's creation options and 256-px tiles."""
    options = cog_creation_options(DEFAULT_COG_PROFILE, dtype, width, height)
    options["blocksize"] = min(int(options["blocksize"]), REPLAY_BLOCK_SIZE)
    options["overview_count"] = overview_count(width, height, options["blocksize"])
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.Env(GDAL_PAM_ENABLED="NO"):
        rasterio.shutil.copy(source, dst, driver="COG", overview_resampling=resampling.upper(), **options)
    return dst


def _write_array_cog(data: np.ndarray, profile: dict[str, Any], dst: Path, resampling: str) -> Path:
    """A COG of ``data`` (bands, rows, cols) on the grid of ``profile``, through a temporary GeoTIFF."""
    temporary = dst.with_name(f".{dst.stem}.src.tif")
    meta = {**profile, "driver": "GTiff", "count": data.shape[0], "dtype": str(data.dtype)}
    try:
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(temporary, "w", **meta) as out:
            out.write(data)
        return write_cog(temporary, dst, str(data.dtype), data.shape[2], data.shape[1], resampling)
    finally:
        temporary.unlink(missing_ok=True)


def _write_thumbnail(rgb: np.ndarray, dst: Path) -> Path:
    """A small JPEG preview (at most 256 px) of an (3, rows, cols) uint8 array, as Earth Search's preview.jpg."""
    step = max(1, max(rgb.shape[1:]) // 256)
    small = np.ascontiguousarray(rgb[:, ::step, ::step])
    temporary = dst.with_name(f".{dst.stem}.src.tif")
    try:
        with warnings.catch_warnings(), rasterio.Env(GDAL_PAM_ENABLED="NO"):
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            profile = {"driver": "GTiff", "count": 3, "dtype": "uint8", "width": small.shape[2]}
            with rasterio.open(temporary, "w", height=small.shape[1], **profile) as out:
                out.write(small)
            rasterio.shutil.copy(temporary, dst, driver="JPEG", quality=85)
    finally:
        temporary.unlink(missing_ok=True)
    return dst


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _band_asset(flavour: str, collection: str, role: str, href: str, grid: dict[str, Any]) -> dict[str, Any]:
    landsat = is_landsat(collection)
    name, centre, fwhm = (_LANDSAT_BANDS if landsat else _S2_BANDS)[role]
    common = "nir08" if landsat and role == "nir" else role
    band: dict[str, Any] = {"name": name, "common_name": common}
    if flavour == "planetary-computer":
        title = f"Band {name.lstrip('SR_B0')} - {role.title()} - {grid['gsd']:g}m"
        band["description"] = title.rsplit(" - ", 1)[0]
        return {
            "href": href,
            "proj:bbox": grid["proj:bbox"],
            "proj:shape": grid["proj:shape"],
            "proj:transform": grid["proj:transform"],
            "gsd": grid["gsd"],
            "type": COG_MEDIA_TYPE,
            "roles": ["data"],
            "title": title,
            "eo:bands": [{**band, "center_wavelength": centre, "full_width_half_max": fwhm}],
        }
    return {
        "href": href,
        "type": COG_MEDIA_TYPE,
        "title": f"{_S2_TITLES[role]} - {grid['gsd']:g}m",
        "eo:bands": [{**band, "center_wavelength": centre, "full_width_half_max": fwhm}],
        "gsd": grid["gsd"],
        "proj:shape": grid["proj:shape"],
        "proj:transform": grid["proj:transform"][:6],
        "raster:bands": [
            {"nodata": 0, "data_type": "uint16", "spatial_resolution": grid["gsd"], "scale": 0.0001, "offset": 0}
        ],
        "roles": ["data", "reflectance"],
    }


def _cloud_asset(flavour: str, collection: str, href: str, grid: dict[str, Any]) -> dict[str, Any]:
    landsat = is_landsat(collection)
    title = "Pixel Quality Assessment Band" if landsat else "Scene classification map (SCL)"
    asset: dict[str, Any] = {"href": href, "type": COG_MEDIA_TYPE, "title": title}
    if flavour == "planetary-computer":
        asset.update({k: grid[k] for k in ("proj:bbox", "proj:shape", "proj:transform", "gsd")})
    else:
        data_type = "uint16" if landsat else "uint8"
        asset.update(
            {"gsd": grid["gsd"], "proj:shape": grid["proj:shape"], "proj:transform": grid["proj:transform"][:6]}
        )
        asset["raster:bands"] = [{"nodata": QA_PIXEL_FILL if landsat else 0, "data_type": data_type}]
    asset["roles"] = ["data", "cloud"] if landsat else ["data"]
    return asset


def _links(flavour: str, collection: str, item_id: str, thumbnail: str | None) -> list[dict[str, str]]:
    api = API_PREFIX[flavour]
    collection_href = f"{api}/collections/{collection}"
    self_link = {"rel": "self", "type": "application/geo+json", "href": f"{collection_href}/items/{item_id}"}
    parent = {"rel": "parent", "type": "application/json", "href": collection_href}
    in_collection = {"rel": "collection", "type": "application/json", "href": collection_href}
    root = {"rel": "root", "type": "application/json", "href": f"{api}/" if api else "/"}
    if flavour == "planetary-computer":
        return [in_collection, parent, root, self_link]
    links = [self_link, parent, in_collection, root]
    if thumbnail:
        links.append({"rel": "thumbnail", "href": thumbnail})
    return links


def replay_items_from_scenes(scenes: Sequence[Path], work_dir: Path, flavour: str, collection: str) -> list[ReplayItem]:
    """Turn multi-band scenes (band descriptions blue, green, red, nir; tags ACQUISITION_TIME, PLATFORM,
    CLOUD_COVER) into one COG per band under ``work_dir`` and items shaped like ``flavour``'s ``collection``.

    Each item also gets a cloud band (Sentinel-2 SCL: 9 where the blue reflectance says cloud, 4 elsewhere, 0
    outside the data; Landsat QA_PIXEL words), and for Sentinel-2-like collections a 3-band ``visual`` COG
    (plus Earth Search's JPEG ``thumbnail``).
    """
    _check_flavour(flavour)
    keys = asset_keys(flavour, collection)
    api = API_PREFIX[flavour]
    items: list[ReplayItem] = []
    for scene in scenes:
        scene = Path(scene)
        item_id = scene.stem
        out_dir = Path(work_dir) / collection / item_id
        files: dict[str, Path] = {}
        with rasterio.open(scene) as src:
            descriptions = [d or "" for d in src.descriptions]
            missing = [role for role in REFLECTANCE_ROLES if role not in descriptions]
            if missing:
                raise ValueError(
                    f"{scene}: no band described as {', '.join(missing)} (band descriptions are {descriptions}); "
                    "replay scenes need bands described blue, green, red and nir"
                )
            tags = src.tags()
            if "ACQUISITION_TIME" not in tags:
                raise ValueError(f"{scene}: no ACQUISITION_TIME tag; tag the scene with its UTC acquisition time")
            acquired = datetime.fromisoformat(tags["ACQUISITION_TIME"].replace("Z", "+00:00"))
            epsg = src.crs.to_epsg() if src.crs else None
            if epsg is None:
                raise ValueError(f"{scene}: its CRS has no EPSG code; replay items need proj:code EPSG:<n>")
            profile = {
                "width": src.width,
                "height": src.height,
                "crs": src.crs,
                "transform": src.transform,
                "nodata": 0,
            }
            bounds = src.bounds
            t = src.transform
            grid = {
                "proj:bbox": [bounds.left, bounds.bottom, bounds.right, bounds.top],
                "proj:shape": [src.height, src.width],
                "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f, 0.0, 0.0, 1.0],
                "gsd": abs(t.a),
            }
            for role in REFLECTANCE_ROLES:
                index = descriptions.index(role) + 1
                name = f"{item_id}_{keys[role]}.tif" if flavour == "planetary-computer" else f"{keys[role]}.tif"
                files[keys[role]] = write_cog(
                    single_band_vrt(src, index), out_dir / name, src.dtypes[index - 1], src.width, src.height, "average"
                )
            bands = {role: src.read(descriptions.index(role) + 1) for role in ("blue", "green", "red")}
            valid = src.read_masks(descriptions.index("blue") + 1) > 0
        cloudy = bands["blue"] >= CLOUD_BLUE_DN
        if is_landsat(collection):
            qa = np.where(cloudy, QA_PIXEL_CLOUD, QA_PIXEL_CLEAR).astype(np.uint16)
            cloud = np.where(valid, qa, QA_PIXEL_FILL).astype(np.uint16)[None]
            cloud_profile = {**profile, "nodata": QA_PIXEL_FILL}
        else:
            cloud = np.where(valid, np.where(cloudy, SCL_CLOUD_HIGH, SCL_VEGETATION), 0).astype(np.uint8)[None]
            cloud_profile = profile
        cloud_name = f"{item_id}_{keys['cloud']}.tif" if flavour == "planetary-computer" else f"{keys['cloud']}.tif"
        files[keys["cloud"]] = _write_array_cog(cloud, cloud_profile, out_dir / cloud_name, "nearest")
        thumbnail_href: str | None = None
        if not is_landsat(collection):
            rgb = np.stack([bands["red"], bands["green"], bands["blue"]])
            visual = np.where(valid, np.clip(rgb / 2000 * 255, 1, 255), 0).astype(np.uint8)
            visual_name = f"{item_id}_TCI.tif" if flavour == "planetary-computer" else "TCI.tif"
            files["visual"] = _write_array_cog(visual, profile, out_dir / visual_name, "average")
            if flavour == "earth-search":
                files["thumbnail"] = _write_thumbnail(visual, out_dir / "preview.jpg")
                thumbnail_href = f"/assets/{collection}/{item_id}/preview.jpg"
        items.append(
            _item(flavour, collection, item_id, files, grid, epsg, acquired, tags, thumbnail_href, profile, api)
        )
    return items


def _item(
    flavour: str,
    collection: str,
    item_id: str,
    files: dict[str, Path],
    grid: dict[str, Any],
    epsg: int,
    acquired: datetime,
    tags: dict[str, str],
    thumbnail_href: str | None,
    profile: dict[str, Any],
    api: str,
) -> ReplayItem:
    keys = asset_keys(flavour, collection)
    roles = {key: role for role, key in keys.items()}
    hrefs = {key: f"/assets/{collection}/{item_id}/{path.name}" for key, path in files.items()}
    assets: dict[str, Any] = {}
    for key, href in hrefs.items():
        if key in roles and roles[key] != "cloud":
            assets[key] = _band_asset(flavour, collection, roles[key], href, grid)
        elif key in roles:
            assets[key] = _cloud_asset(flavour, collection, href, grid)
        elif key == "visual":
            visual = {"href": href, "type": COG_MEDIA_TYPE, "title": "True color image"}
            visual["eo:bands"] = [{"name": _S2_BANDS[r][0], "common_name": r} for r in ("red", "green", "blue")]
            if flavour == "planetary-computer":
                visual.update({k: grid[k] for k in ("proj:bbox", "proj:shape", "proj:transform", "gsd")})
            visual["roles"] = ["data"] if flavour == "planetary-computer" else ["visual"]
            assets[key] = visual
        else:
            assets[key] = {
                "href": href,
                "type": "image/jpeg",
                "title": "Thumbnail of preview image",
                "roles": ["thumbnail"],
            }
    left, bottom, right, top = grid["proj:bbox"]
    footprint = {
        "type": "Polygon",
        "coordinates": [[[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]],
    }
    geometry = transform_geom(profile["crs"], "EPSG:4326", footprint, precision=7)
    bbox = [round(v, 7) for v in transform_bounds(profile["crs"], "EPSG:4326", left, bottom, right, top)]
    cloud_cover = round(float(tags.get("CLOUD_COVER", "0")), 5)
    platform = tags.get("PLATFORM", "unknown")
    properties: dict[str, Any] = {"datetime": _iso(acquired), "platform": platform}
    if flavour == "earth-search":
        stamp = _iso(acquired + timedelta(hours=2))  # processed a little after acquisition, as ES items are
        properties.update({"created": stamp, "updated": stamp})
    properties.update(
        {
            "eo:cloud_cover": cloud_cover,
            "proj:epsg": epsg,
            "proj:code": f"EPSG:{epsg}",
            "proj:bbox": grid["proj:bbox"],
            "proj:shape": grid["proj:shape"],
            "proj:transform": grid["proj:transform"],
        }
    )
    if not is_landsat(collection):
        properties.update({"s2:product_type": "S2MSI2A", "s2:high_proba_clouds_percentage": cloud_cover})
    extensions = (
        [
            "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
        ]
        if flavour == "planetary-computer"
        else [
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
        ]
    )
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": extensions,
        "id": item_id,
        "collection": collection,
        "bbox": bbox,
        "geometry": geometry,
        "properties": properties,
        "links": _links(
            flavour, collection, item_id, thumbnail_href and f"{api}/collections/{collection}/items/{item_id}/thumbnail"
        ),
        "assets": assets,
    }
    return ReplayItem(item=item, files=dict(files))
