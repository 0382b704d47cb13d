"""STAC 1.1 Items and Collections built from a scene's metadata (eo, projection, raster, file, view, ssys).

Geometry in STAC is longitude/latitude on WGS 84 (RFC 7946). A scene of another body (Mars, the Moon)
therefore gets ``geometry: null`` and no ``bbox``: its footprint stays in its native CRS (``proj:geometry``,
``proj:bbox``, ``proj:code``/``proj:wkt2``), its target is named in ``ssys:targets``, and its lon/lat
bounds on its own body are kept in ``satlake:body_bbox``. A client that knows nothing of other bodies never
draws it on Earth.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError
from shapely.geometry import MultiPolygon, Polygon, box, mapping

from satlake.catalog.validation import (
    EO_EXTENSION,
    FILE_EXTENSION,
    PROJECTION_EXTENSION,
    RASTER_EXTENSION,
    SSYS_EXTENSION,
    STAC_VERSION,
    VIEW_EXTENSION,
    non_finite_numbers,
)
from satlake.scenes.metadata import BandInfo, SceneMetadata

MEDIA_TYPE_COG = "image/tiff; application=geotiff; profile=cloud-optimized"
MEDIA_TYPE_GEOTIFF = "image/tiff; application=geotiff"
MEDIA_TYPE_PNG = "image/png"
MEDIA_TYPE_JPEG = "image/jpeg"
MEDIA_TYPE_JSON = "application/json"
MEDIA_TYPE_GEOJSON = "application/geo+json"
MEDIA_TYPE_TEXT = "text/plain"

EARTH = "earth"
BODY_BBOX_FIELD = "satlake:body_bbox"
SOURCE_FIELD = "satlake:source"
# raw/scenes keeps GeoTIFF tags as ``tag:<KEY>`` extras (scenes.raster); the acquisition downloader writes these
# two on every band file: the STAC API source name and the self href of the item the scene was cut from.
SOURCE_EXTRA = "tag:SATLAKE_SOURCE"
DERIVED_FROM_EXTRA = "tag:SATLAKE_DERIVED_FROM"

# IVOA EPN-TAP target classes for the bodies satlake expects; others are catalogued without a class.
_TARGET_CLASSES = {"mars": "planet", "venus": "planet", "mercury": "planet", "moon": "satellite"}
_UNLOCATED_MEDIA_TYPES = frozenset({MEDIA_TYPE_PNG, MEDIA_TYPE_JPEG})
_STAC_DATA_TYPES = frozenset(
    {
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    }
)
_COMPLEX_DATA_TYPES = {"complex64": "cfloat32", "complex128": "cfloat64"}
_SHA256_MULTIHASH_PREFIX = "1220"  # multihash code 0x12 (sha2-256), digest length 0x20 (32 bytes)


@dataclass(frozen=True, slots=True)
class AssetRef:
    """A file an item points to: where it is, what it is, and how to check it."""

    href: str
    media_type: str
    roles: tuple[str, ...]
    title: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None  # hex digest
    band_names: tuple[str, ...] = ()  # BandInfo.name of each band in this file, in band order


def sha256_multihash(sha256_hex: str) -> str:
    """The ``file:checksum`` value for a sha256 hex digest (multihash, lower-case hex)."""
    digest = sha256_hex.strip().lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"sha256 {sha256_hex!r} is not a 64-character hex digest; pass hashlib.sha256().hexdigest()")
    return _SHA256_MULTIHASH_PREFIX + digest


def format_datetime(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix, as STAC requires."""
    if moment.tzinfo is None:
        raise ValueError(f"datetime {moment.isoformat()} has no timezone; STAC needs UTC (use datetime.now(UTC))")
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def parse_item_datetime(text: str) -> datetime:
    """Inverse of :func:`format_datetime` for datetimes found in items (accepts ``Z`` or an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00")).astimezone(UTC)


def _json_geometry(geometry: shapely.Geometry) -> dict[str, Any]:
    # shapely's mapping() returns tuples; JSON Schema "array" only accepts lists, so convert recursively.
    def listify(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [listify(v) for v in value]
        return value

    return {key: listify(value) for key, value in mapping(geometry).items()}


def _geometry_from_bounds(bounds: tuple[float, float, float, float]) -> shapely.Geometry:
    west, south, east, north = bounds
    if west <= east:
        return box(west, south, east, north)
    # Crossing the antimeridian: RFC 7946 wants two polygons, one either side of 180°.
    return MultiPolygon([box(west, south, 180.0, north), box(-180.0, south, east, north)])


def _earth_geometry(meta: SceneMetadata) -> shapely.Geometry | None:
    if meta.footprint_geographic_wkt:
        try:
            geometry = shapely.from_wkt(meta.footprint_geographic_wkt)
        except shapely.errors.GEOSException as error:
            raise ValueError(
                f"scene {meta.scene_id!r}: footprint_geographic_wkt is not valid WKT ({error}); "
                "fix the footprint computed by raw/scenes"
            ) from error
        if not isinstance(geometry, (Polygon, MultiPolygon)) or geometry.is_empty:
            raise ValueError(
                f"scene {meta.scene_id!r}: footprint_geographic_wkt must be a non-empty Polygon or "
                f"MultiPolygon, got {geometry.geom_type}"
            )
        return geometry
    if meta.bounds_geographic is not None:
        return _geometry_from_bounds(meta.bounds_geographic)
    return None


def _earth_bbox(meta: SceneMetadata, geometry: shapely.Geometry) -> list[float]:
    if meta.bounds_geographic is not None:
        return [float(v) for v in meta.bounds_geographic]
    if isinstance(geometry, MultiPolygon):
        parts = [part.bounds for part in geometry.geoms]
        touches_east = [b for b in parts if math.isclose(b[2], 180.0)]
        touches_west = [b for b in parts if math.isclose(b[0], -180.0)]
        if touches_east and touches_west and len(touches_east) + len(touches_west) == len(parts):
            # Split at the antimeridian: west edge is the eastern-hemisphere part's minimum longitude.
            south = min(b[1] for b in parts)
            north = max(b[3] for b in parts)
            return [min(b[0] for b in touches_east), south, max(b[2] for b in touches_west), north]
    return [float(v) for v in geometry.bounds]


def projection_code(meta: SceneMetadata) -> str | None:
    """``proj:code`` ("EPSG:32633", "IAU_2015:49900") or None when the CRS has no authority code."""
    if meta.crs_epsg is not None:
        return f"EPSG:{meta.crs_epsg}"
    try:
        authority = CRS.from_wkt(meta.crs_wkt).to_authority(min_confidence=90)
    except CRSError:
        return None
    return f"{authority[0]}:{authority[1]}" if authority else None


def _wkt2(meta: SceneMetadata) -> str:
    try:
        return CRS.from_wkt(meta.crs_wkt).to_wkt()  # normalised to WKT2, whatever WKT flavour the raster had
    except CRSError as error:
        raise ValueError(
            f"scene {meta.scene_id!r}: crs_wkt cannot be parsed ({error}); raw/scenes should quarantine "
            "rasters without a usable CRS"
        ) from error


def _crs_is_metric(meta: SceneMetadata) -> bool:
    try:
        crs = CRS.from_wkt(meta.crs_wkt)
    except CRSError:
        return False
    return crs.is_projected and all(axis.unit_name in ("metre", "meter") for axis in crs.axis_info[:2])


def _stac_data_type(dtype: str) -> str:
    if dtype in _STAC_DATA_TYPES:
        return dtype
    return _COMPLEX_DATA_TYPES.get(dtype, "other")


def _stac_nodata(nodata: float) -> float | str:
    if math.isnan(nodata):
        return "nan"
    if math.isinf(nodata):
        return "inf" if nodata > 0 else "-inf"
    return int(nodata) if float(nodata).is_integer() else nodata


def _band_object(band: BandInfo) -> dict[str, Any]:
    band_object: dict[str, Any] = {"name": band.name, "data_type": _stac_data_type(band.dtype)}
    if band.common_name:
        band_object["eo:common_name"] = band.common_name
    if band.center_wavelength_um is not None:
        band_object["eo:center_wavelength"] = band.center_wavelength_um
    if band.nodata is not None:
        band_object["nodata"] = _stac_nodata(band.nodata)
    if band.scale is not None:
        band_object["raster:scale"] = band.scale
    if band.offset is not None:
        band_object["raster:offset"] = band.offset
    return band_object


def _asset_object(key: str, asset: AssetRef, bands_by_name: Mapping[str, BandInfo]) -> dict[str, Any]:
    if not asset.href:
        raise ValueError(f"asset {key!r} has an empty href; give the file's path or URI")
    asset_object: dict[str, Any] = {"href": asset.href, "type": asset.media_type, "roles": list(asset.roles)}
    if asset.title:
        asset_object["title"] = asset.title
    if asset.size_bytes is not None:
        asset_object["file:size"] = int(asset.size_bytes)
    if asset.sha256 is not None:
        asset_object["file:checksum"] = sha256_multihash(asset.sha256)
    if asset.band_names:
        unknown = [name for name in asset.band_names if name not in bands_by_name]
        if unknown:
            raise ValueError(
                f"asset {key!r} names bands {unknown} that the scene does not have; "
                f"known bands: {sorted(bands_by_name)}"
            )
        asset_object["bands"] = [_band_object(bands_by_name[name]) for name in asset.band_names]
    if asset.media_type in _UNLOCATED_MEDIA_TYPES:
        # A quicklook is not georeferenced: stop it inheriting the item's projection (projection ext. advice).
        asset_object["proj:code"] = None
    return asset_object


def _view_properties(meta: SceneMetadata) -> dict[str, float]:
    view: dict[str, float] = {}
    if meta.sun_azimuth is not None:
        # Landsat MTL reports azimuth in -180..180; the view extension wants 0..360.
        view["view:sun_azimuth"] = meta.sun_azimuth % 360.0
    if meta.sun_elevation is not None:
        view["view:sun_elevation"] = meta.sun_elevation
    if meta.off_nadir is not None:
        view["view:off_nadir"] = abs(meta.off_nadir)
    return view


def _extensions_used(item: dict[str, Any]) -> list[str]:
    prefixes: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if ":" in key:
                    prefixes.add(key.split(":", 1)[0])
                collect(inner)
        elif isinstance(value, list):
            for inner in value:
                collect(inner)

    collect(item["properties"])
    collect(item["assets"])
    by_prefix = {
        "eo": EO_EXTENSION,
        "proj": PROJECTION_EXTENSION,
        "raster": RASTER_EXTENSION,
        "file": FILE_EXTENSION,
        "view": VIEW_EXTENSION,
        "ssys": SSYS_EXTENSION,
    }
    return sorted(url for prefix, url in by_prefix.items() if prefix in prefixes)


def item_links(
    *,
    self_href: str | None = None,
    collection_href: str = "../collection.json",
    root_href: str = "../../catalog.json",
) -> list[dict[str, str]]:
    """Links for an item laid out as ``stac/<collection>/<item_id>/<item_id>.json`` (see static.py)."""
    links = [
        {"rel": "root", "href": root_href, "type": MEDIA_TYPE_JSON},
        {"rel": "parent", "href": collection_href, "type": MEDIA_TYPE_JSON},
        {"rel": "collection", "href": collection_href, "type": MEDIA_TYPE_JSON},
    ]
    if self_href is not None:
        links.insert(0, {"rel": "self", "href": self_href, "type": MEDIA_TYPE_GEOJSON})
    return links


def build_stac_item(
    meta: SceneMetadata, assets: Mapping[str, AssetRef], *, self_href: str | None = None
) -> dict[str, Any]:
    """One STAC 1.1 Item for a scene; ``assets`` maps asset keys ("B4", "cog", "thumbnail") to files.

    An acquired scene (``SATLAKE_SOURCE`` / ``SATLAKE_DERIVED_FROM`` tags) gets ``satlake:source`` and a
    ``derived_from`` link to the source item it was cut from.
    """
    if meta.acquired_at is None:
        raise ValueError(
            f"scene {meta.scene_id!r} has no acquisition time; a STAC item needs one. Record acquired_at in "
            "raw/scenes (from TIFF tags, the MTL file, or a <raster>.datetime.json sidecar landed with "
            "`satlake put --datetime`) before cataloguing."
        )
    if not assets:
        raise ValueError(f"scene {meta.scene_id!r}: an item needs at least one asset (the COG or original files)")

    body = meta.body.strip().lower()
    properties: dict[str, Any] = {"datetime": format_datetime(meta.acquired_at)}
    if meta.platform:
        properties["platform"] = meta.platform
    if meta.instrument:
        properties["instruments"] = [meta.instrument]
    # Landsat writes -1 for "cloud cover not computed"; absent is the honest STAC value for unknown.
    if meta.cloud_cover is not None and 0.0 <= meta.cloud_cover <= 100.0:
        properties["eo:cloud_cover"] = float(meta.cloud_cover)
    properties.update(_view_properties(meta))
    source = meta.extra.get(SOURCE_EXTRA, "").strip()
    if source:
        properties[SOURCE_FIELD] = source

    code = projection_code(meta)
    properties["proj:code"] = code
    if meta.crs_epsg is None:
        properties["proj:wkt2"] = _wkt2(meta)
    properties["proj:bbox"] = [float(v) for v in meta.bounds_native]
    properties["proj:shape"] = [int(meta.height), int(meta.width)]
    properties["proj:transform"] = [float(v) for v in meta.transform]
    if _crs_is_metric(meta):
        properties["gsd"] = abs(float(meta.transform[0]))

    item: dict[str, Any] = {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "id": meta.scene_id,
        "collection": meta.collection,
    }
    if body == EARTH:
        geometry = _earth_geometry(meta)
        item["geometry"] = _json_geometry(geometry) if geometry is not None else None
        if geometry is not None:
            item["bbox"] = _earth_bbox(meta, geometry)
    else:
        item["geometry"] = None
        properties["ssys:targets"] = [body]
        if body in _TARGET_CLASSES:
            properties["ssys:target_class"] = _TARGET_CLASSES[body]
        properties["proj:geometry"] = _json_geometry(box(*meta.bounds_native))
        if meta.bounds_geographic is not None:
            properties[BODY_BBOX_FIELD] = [float(v) for v in meta.bounds_geographic]

    bands_by_name = {band.name: band for band in meta.bands}
    item["properties"] = properties
    item["assets"] = {key: _asset_object(key, asset, bands_by_name) for key, asset in sorted(assets.items())}
    item["links"] = item_links(self_href=self_href)
    derived_from = meta.extra.get(DERIVED_FROM_EXTRA, "").strip()
    if derived_from:
        # An acquired scene is a window of a source item: link it so a reader can find the full product.
        item["links"].append({"rel": "derived_from", "href": derived_from, "type": MEDIA_TYPE_GEOJSON})
    item["stac_extensions"] = _extensions_used(item)
    non_finite = non_finite_numbers(item)
    if non_finite:
        # Written as-is, NaN/Infinity make the catalog row and the static item invalid JSON: refuse early.
        raise ValueError(f"scene {meta.scene_id!r}: the item would hold non-finite numbers: {'; '.join(non_finite)}")
    return item


def item_body(item: Mapping[str, Any]) -> str:
    """The body an item images: its first ``ssys:targets`` entry, else Earth."""
    targets = item.get("properties", {}).get("ssys:targets") or [EARTH]
    return str(targets[0]).lower()


# --- collections -------------------------------------------------------------------------------------------


def _longitude_pieces(west: float, east: float) -> list[tuple[float, float]]:
    if west <= east:
        return [(west, east)]
    return [(west, 180.0), (-180.0, east)]


def union_longitudes(intervals: Iterable[tuple[float, float]]) -> tuple[float, float]:
    """Smallest (west, east) arc covering every interval; west > east when it crosses the antimeridian."""
    pieces = sorted(piece for west, east in intervals for piece in _longitude_pieces(west, east))
    if not pieces:
        raise ValueError("union_longitudes needs at least one (west, east) interval")
    merged: list[list[float]] = []
    for start, end in pieces:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    # The answer is the complement of the widest uncovered gap (wrapping from the last arc to the first).
    gaps = [(merged[i + 1][0] - merged[i][1], merged[i][1], merged[i + 1][0]) for i in range(len(merged) - 1)]
    gaps.append((merged[0][0] + 360.0 - merged[-1][1], merged[-1][1], merged[0][0] + 360.0))
    width, gap_start, gap_end = max(gaps)
    if width <= 0.0:
        return (-180.0, 180.0)
    west = gap_end - 360.0 if gap_end > 180.0 else gap_end
    return (west, gap_start)


def union_bboxes(bboxes: Iterable[list[float] | tuple[float, ...]]) -> list[float]:
    """Union of 2D bboxes [W, S, E, N], antimeridian-aware (STAC: west > east means crossing)."""
    boxes = [tuple(float(v) for v in b) for b in bboxes]
    if not boxes:
        raise ValueError("union_bboxes needs at least one bbox")
    west, east = union_longitudes((b[0], b[2]) for b in boxes)
    return [west, min(b[1] for b in boxes), east, max(b[3] for b in boxes)]


_WHOLE_BODY_BBOX = [-180.0, -90.0, 180.0, 90.0]


def build_collection(
    collection_id: str,
    items: list[dict[str, Any]],
    description: str,
    license: str = "other",
    *,
    title: str | None = None,
) -> dict[str, Any]:
    """A STAC 1.1 Collection whose spatial and temporal extents cover ``items``.

    Items of another body have no Earth bbox and do not widen the spatial extent; a collection with no Earth
    bbox at all reports the whole-globe extent STAC requires and names its bodies in ``ssys:targets``.
    """
    if not items:
        raise ValueError(f"collection {collection_id!r}: build_collection needs at least one item for its extent")
    collection: dict[str, Any] = {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "id": collection_id,
        "description": description,
        "license": license,
        "extent": {"spatial": {"bbox": []}, "temporal": {"interval": [[None, None]]}},
        "links": [
            {"rel": "root", "href": "../catalog.json", "type": MEDIA_TYPE_JSON},
            {"rel": "parent", "href": "../catalog.json", "type": MEDIA_TYPE_JSON},
        ],
    }
    if title:
        collection["title"] = title
    for item in items:
        collection = update_collection_extent(collection, item)
    return collection


def update_collection_extent(collection: Mapping[str, Any], item: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``collection`` whose extents (and ssys targets) also cover ``item``."""
    updated = copy.deepcopy(dict(collection))
    item_id = item.get("id")
    if item.get("collection") not in (None, updated["id"]):
        raise ValueError(f"item {item_id!r} belongs to collection {item.get('collection')!r}, not {updated['id']!r}")
    spatial = updated["extent"]["spatial"]
    earth_bboxes = [] if spatial.get("satlake:placeholder") else list(spatial["bbox"][:1])
    if item.get("bbox"):
        earth_bboxes.append(item["bbox"][:4] if len(item["bbox"]) == 4 else _bbox_2d(item["bbox"]))
    if earth_bboxes:
        spatial["bbox"] = [union_bboxes(earth_bboxes)]
        spatial.pop("satlake:placeholder", None)
    else:
        # STAC requires a spatial extent; no Earth footprint exists, so claim the whole body, marked as such.
        spatial["bbox"] = [list(_WHOLE_BODY_BBOX)]
        spatial["satlake:placeholder"] = True

    moment = _item_datetime(item)
    interval = updated["extent"]["temporal"]["interval"][0]
    start = parse_item_datetime(interval[0]) if interval[0] else None
    end = parse_item_datetime(interval[1]) if interval[1] else None
    interval[0] = format_datetime(min(moment, start) if start else moment)
    interval[1] = format_datetime(max(moment, end) if end else moment)

    body = item_body(item)
    if body != EARTH:
        targets = sorted(set(updated.get("ssys:targets", [])) | {body})
        updated["ssys:targets"] = targets
        if SSYS_EXTENSION not in updated["stac_extensions"]:
            updated["stac_extensions"] = sorted([*updated["stac_extensions"], SSYS_EXTENSION])
    return updated


def _bbox_2d(bbox: list[float]) -> list[float]:
    west, south, _low, east, north, _high = bbox
    return [west, south, east, north]


def _item_datetime(item: Mapping[str, Any]) -> datetime:
    properties = item.get("properties", {})
    text = properties.get("datetime") or properties.get("start_datetime")
    if not text:
        raise ValueError(f"item {item.get('id')!r} has neither datetime nor start_datetime; it is not valid STAC")
    return parse_item_datetime(text)
