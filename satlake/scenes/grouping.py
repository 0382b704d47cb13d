"""Object keys to scenes: scene ids, and grouping of Landsat band sets and single GeoTIFFs (the rules a key
must follow are ``satlake.resources.object_keys``).

Everything here works on key strings only (plus, optionally, the text of Landsat MTL files), so the sensor can
decide which scenes are complete before any raster is opened.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from satlake.resources.object_keys import UnsafeObjectKeyError, validate_object_key
from satlake.scenes.mtl import MtlParseError, landsat_band_files, parse_mtl

# Landsat Collection 1/2 product id, e.g. LC08_L1TP_016037_20170813_20170814_01_RT.
LANDSAT_PRODUCT_ID = re.compile(r"L[COTEM]0[1-9]_L[12][A-Z0-9]{2}_\d{6}_\d{8}_\d{8}_\d{2}_[A-Z0-9]{2}")
_LANDSAT_FILE = re.compile(rf"^(?P<product_id>{LANDSAT_PRODUCT_ID.pattern})_(?P<suffix>.+)$", re.IGNORECASE)
_LANDSAT_BAND_SUFFIX = re.compile(r"^(?:(?:SR|ST)_)?B(?P<band>\d{1,2})\.TIF{1,2}$", re.IGNORECASE)
_LANDSAT_MTL_SUFFIX = re.compile(r"^MTL\.txt$", re.IGNORECASE)
_GEOTIFF_NAME = re.compile(r"\.tiff?$", re.IGNORECASE)
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
# The bands satlake's products need (blue, green, red, nir on Landsat 8/9): pass as ``required_bands`` for
# deliveries that ship only these, like the downsampled fixture in shared/data/landsat8.
LANDSAT_OLI_PRODUCT_BANDS = frozenset({"B2", "B3", "B4", "B5"})


def _safe_id(text: str) -> str:
    """A scene id that is also a safe folder name and Dagster partition key."""
    cleaned = _UNSAFE_ID_CHARS.sub("_", unicodedata.normalize("NFC", text)).strip("._-")
    if cleaned:
        return cleaned[:200]
    return "scene-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _classify(key: str) -> tuple[str, str, str | None]:
    """(kind, scene_id, band) for a validated key; kind is landsat-band, landsat-mtl, landsat-other, geotiff
    or unrecognised."""
    name = posixpath.basename(key)
    landsat = _LANDSAT_FILE.match(name)
    if landsat:
        product_id = landsat.group("product_id").upper()
        suffix = landsat.group("suffix")
        band = _LANDSAT_BAND_SUFFIX.match(suffix)
        if band:
            return "landsat-band", product_id, f"B{int(band.group('band'))}"
        if _LANDSAT_MTL_SUFFIX.match(suffix):
            return "landsat-mtl", product_id, None
        return "landsat-other", product_id, None
    if _GEOTIFF_NAME.search(name):
        return "geotiff", _safe_id(_GEOTIFF_NAME.sub("", name)), None
    return "unrecognised", _safe_id(name), None


def scene_id_for_key(key: str) -> str:
    """The scene a key belongs to: the Landsat product id for band/MTL files, else the GeoTIFF's file stem.

    Raises UnsafeObjectKeyError for keys that fail ``validate_object_key``.
    """
    return _classify(validate_object_key(key))[1]


@dataclass(frozen=True, slots=True)
class SceneGroup:
    """The landed files of one scene and whether the scene can be processed yet."""

    scene_id: str
    files: tuple[str, ...]  # validated (NFC) object keys, sorted
    complete: bool
    missing: tuple[str, ...] = ()  # file names still expected (for Landsat: band files listed by the MTL)
    kind: str = "geotiff"  # "geotiff", "landsat", "rejected" (unsafe key) or "unrecognised" (not a scene file)
    mtl_key: str | None = None
    problems: tuple[str, ...] = field(default=())  # reasons to quarantine; empty for a healthy group


def group_scene_files(
    keys: Iterable[str],
    read_mtl: Callable[[str], str] | None = None,
    required_bands: Collection[str] | None = None,
) -> list[SceneGroup]:
    """Group object keys into scenes, sorted by scene id.

    A ``*.tif``/``*.tiff`` whose name is not a Landsat product file is one complete scene. Landsat files
    (``<product_id>_B<n>.TIF``, ``<product_id>_MTL.txt`` and other ``<product_id>_*`` files) form one scene
    that is complete when the MTL and every band file it lists (``FILE_NAME_BAND_<n>``) have landed.
    ``read_mtl(key)`` returns the MTL text; without it a Landsat group with an MTL is incomplete with the
    reason in ``missing``. ``required_bands`` (e.g. ``{"B2", "B3", "B4", "B5"}``) limits which listed bands
    must arrive, for deliveries that ship only some bands. Unsafe keys and files that are no part of any
    scene come back as their own incomplete groups with ``problems`` set, so one bad key never blocks others.
    """
    landsat: dict[str, dict[str, object]] = {}
    groups: list[SceneGroup] = []
    geotiffs: dict[str, list[str]] = {}
    for key in keys:
        try:
            safe_key = validate_object_key(key)
        except UnsafeObjectKeyError as error:
            digest = hashlib.sha256(repr(key).encode("utf-8")).hexdigest()[:12]
            groups.append(SceneGroup(f"rejected-{digest}", (str(key),), False, (), "rejected", None, (str(error),)))
            continue
        kind, scene_id, _band = _classify(safe_key)
        if kind == "geotiff":
            geotiffs.setdefault(scene_id, []).append(safe_key)
        elif kind == "unrecognised":
            reason = (
                f"object {safe_key!r} is not a scene file: expected a .tif/.tiff GeoTIFF or a Landsat "
                "'<product_id>_B<n>.TIF' / '<product_id>_MTL.txt' file"
            )
            groups.append(SceneGroup(scene_id, (safe_key,), False, (), "unrecognised", None, (reason,)))
        else:
            entry = landsat.setdefault(scene_id, {"files": [], "mtl": []})
            entry["files"].append(safe_key)  # type: ignore[union-attr]
            if kind == "landsat-mtl":
                entry["mtl"].append(safe_key)  # type: ignore[union-attr]
    for scene_id, scene_keys in geotiffs.items():
        problems: tuple[str, ...] = ()
        if len(scene_keys) > 1:
            problems = (
                f"{len(scene_keys)} GeoTIFFs share the scene id {scene_id!r} ({sorted(scene_keys)}); "
                "give each multi-band GeoTIFF a distinct file name",
            )
        groups.append(SceneGroup(scene_id, tuple(sorted(scene_keys)), not problems, (), "geotiff", None, problems))
    for scene_id, entry in landsat.items():
        groups.append(_landsat_group(scene_id, entry["files"], entry["mtl"], read_mtl, required_bands))  # type: ignore[arg-type]
    return sorted(groups, key=lambda group: (group.scene_id, group.files))


def _landsat_group(
    scene_id: str,
    scene_keys: list[str],
    mtl_keys: list[str],
    read_mtl: Callable[[str], str] | None,
    required_bands: Collection[str] | None,
) -> SceneGroup:
    files = tuple(sorted(scene_keys))
    if not mtl_keys:
        return SceneGroup(scene_id, files, False, (f"{scene_id}_MTL.txt",), "landsat")
    if len(mtl_keys) > 1:
        problem = f"several MTL files for {scene_id}: {sorted(mtl_keys)}; keep one"
        return SceneGroup(scene_id, files, False, (), "landsat", sorted(mtl_keys)[0], (problem,))
    mtl_key = mtl_keys[0]
    if read_mtl is None:
        return SceneGroup(scene_id, files, False, ("(MTL not read: pass read_mtl)",), "landsat", mtl_key)
    try:
        listed = landsat_band_files(parse_mtl(read_mtl(mtl_key)))
    except MtlParseError as error:
        problem = f"MTL {mtl_key!r} cannot be parsed: {error}"
        return SceneGroup(scene_id, files, False, (), "landsat", mtl_key, (problem,))
    if not listed:
        problem = f"MTL {mtl_key!r} lists no FILE_NAME_BAND_<n> entries"
        return SceneGroup(scene_id, files, False, (), "landsat", mtl_key, (problem,))
    wanted = {band: name for band, name in listed.items() if required_bands is None or band in required_bands}
    landed_names = {posixpath.basename(key).upper() for key in scene_keys}
    missing = tuple(name for name in wanted.values() if name.upper() not in landed_names)
    return SceneGroup(scene_id, files, not missing, missing, "landsat", mtl_key)
