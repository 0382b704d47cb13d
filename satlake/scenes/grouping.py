"""Object keys to scenes: scene ids, and grouping of Landsat band sets, acquired band sets and single GeoTIFFs
(the rules a key must follow are ``satlake.resources.object_keys``).

Everything here works on key strings only (plus, optionally, the text of Landsat MTL files and acquisition
manifests), so the sensor can decide which scenes are complete before any raster is opened.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from satlake.resources.object_keys import UnsafeObjectKeyError, validate_object_key
from satlake.scenes.mtl import MtlParseError, landsat_band_files, parse_mtl
from satlake.scenes.sidecar import SIDECAR_SUFFIX, raster_key_of_sidecar, sidecar_name_for

# Landsat Collection 1/2 product id, e.g. LC08_L1TP_016037_20170813_20170814_01_RT.
LANDSAT_PRODUCT_ID = re.compile(r"L[COTEM]0[1-9]_L[12][A-Z0-9]{2}_\d{6}_\d{8}_\d{8}_\d{2}_[A-Z0-9]{2}")
_LANDSAT_FILE = re.compile(rf"^(?P<product_id>{LANDSAT_PRODUCT_ID.pattern})_(?P<suffix>.+)$", re.IGNORECASE)
_LANDSAT_BAND_SUFFIX = re.compile(r"^(?:(?:SR|ST)_)?B(?P<band>\d{1,2})\.TIF{1,2}$", re.IGNORECASE)
_LANDSAT_MTL_SUFFIX = re.compile(r"^MTL\.txt$", re.IGNORECASE)
_GEOTIFF_NAME = re.compile(r"\.tiff?$", re.IGNORECASE)
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
# The acquisition downloader's layout: <source>/<collection>/<geohash5>/<YYYY-MM-DD>/bbox_<bbox>/<item_id>/<file>.
_ACQUIRED_KEY = re.compile(
    r"^(?P<dir>[^/]+/[^/]+/[^/]+/\d{4}-\d{2}-\d{2}/bbox_(?P<bbox>[^/]+)/(?P<item>[^/]+))/(?P<file>[^/]+)$"
)
ACQUIRED_MANIFEST_NAME = "scene.json"
ACQUIRED_MANIFEST_TYPE = "satlake.acquired-scene"
ACQUIRED_MANIFEST_VERSION = 1
# The bands satlake's products need (blue, green, red, nir on Landsat 8/9): pass as ``required_bands`` for
# deliveries that ship only these, like the downsampled fixture in shared/data/landsat8.
LANDSAT_OLI_PRODUCT_BANDS = frozenset({"B2", "B3", "B4", "B5"})


def _safe_id(text: str) -> str:
    """A scene id that is also a safe folder name and Dagster partition key."""
    cleaned = _UNSAFE_ID_CHARS.sub("_", unicodedata.normalize("NFC", text)).strip("._-")
    if cleaned:
        return cleaned[:200]
    return "scene-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def acquired_scene_id(item_dir: str, bbox_segment: str) -> str:
    """Scene id of an acquired item window: ``<safe item dir>-<first 8 hex of sha256(bbox_segment)>``.

    ``item_dir`` is the item's folder name in the landing layout and ``bbox_segment`` the window folder name
    without its ``bbox_`` prefix (``"13.3000_52.5000_13.4000_52.6000"``). The downloader names its manifest
    with this function and the sensor derives it from the key alone, so both always agree; the same item cut
    to two areas of interest gets two ids.
    """
    if not item_dir or "/" in item_dir:
        raise ValueError(f"item_dir {item_dir!r} must be the item's folder name (one path segment, not empty)")
    if not bbox_segment or "/" in bbox_segment or bbox_segment.startswith("bbox_"):
        raise ValueError(
            f"bbox_segment {bbox_segment!r} must be the window folder name without its 'bbox_' prefix, "
            "e.g. '13.3000_52.5000_13.4000_52.6000'"
        )
    digest = hashlib.sha256(bbox_segment.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{_safe_id(item_dir)}-{digest}"


def _classify(key: str) -> tuple[str, str, str | None]:
    """(kind, scene_id, band) for a validated key; kind is acquired, landsat-band, landsat-mtl, landsat-other,
    geotiff, geotiff-sidecar (the datetime sidecar of a GeoTIFF), stray-sidecar or unrecognised."""
    acquired = _ACQUIRED_KEY.match(key)
    if acquired:
        return "acquired", acquired_scene_id(acquired.group("item"), acquired.group("bbox")), None
    raster_key = raster_key_of_sidecar(key)
    if raster_key is not None:
        try:
            raster_kind, scene_id, _band = _classify(validate_object_key(raster_key))
        except UnsafeObjectKeyError:  # e.g. '...datetime.json', whose raster would be '..'
            return "stray-sidecar", _safe_id(posixpath.basename(key)), None
        return ("geotiff-sidecar" if raster_kind == "geotiff" else "stray-sidecar"), scene_id, None
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


def is_geotiff_scene_key(key: str) -> bool:
    """Whether a key is a single GeoTIFF scene (not a Landsat product file, not in the acquisition layout): the
    rasters whose acquisition time ``satlake put --datetime`` may supply. Raises UnsafeObjectKeyError."""
    return _classify(validate_object_key(key))[0] == "geotiff"


def scene_id_for_key(key: str) -> str:
    """The scene a key belongs to: ``acquired_scene_id`` for files in the acquisition layout, the Landsat
    product id for band/MTL files, else the GeoTIFF's file stem (for a datetime sidecar, its raster's).

    Raises UnsafeObjectKeyError for keys that fail ``validate_object_key``.
    """
    return _classify(validate_object_key(key))[1]


@dataclass(frozen=True, slots=True)
class SceneGroup:
    """The landed files of one scene and whether the scene can be processed yet."""

    scene_id: str
    files: tuple[str, ...]  # validated (NFC) object keys, sorted
    complete: bool
    # File names still expected (Landsat: band files listed by the MTL; acquired: files listed by scene.json).
    missing: tuple[str, ...] = ()
    # "geotiff", "landsat", "acquired", "rejected" (unsafe key) or "unrecognised" (not a scene file)
    kind: str = "geotiff"
    mtl_key: str | None = None
    problems: tuple[str, ...] = field(default=())  # reasons to quarantine; empty for a healthy group
    manifest_key: str | None = None  # the acquisition manifest (scene.json) of an acquired scene


def group_scene_files(
    keys: Iterable[str],
    read_text: Callable[[str], str] | None = None,
    required_bands: Collection[str] | None = None,
    landed: Callable[[str], bool] | None = None,
) -> list[SceneGroup]:
    """Group object keys into scenes, sorted by scene id.

    Files under ``<source>/<collection>/<geohash5>/<YYYY-MM-DD>/bbox_<bbox>/<item_id>/`` (the acquisition
    downloader's layout) form one scene, whatever their names, that is complete when its ``scene.json`` and
    every file that manifest lists have landed. A ``*.tif``/``*.tiff`` whose name is not a Landsat product file
    is one complete scene. Landsat files (``<product_id>_B<n>.TIF``, ``<product_id>_MTL.txt`` and other
    ``<product_id>_*`` files) form one scene that is complete when the MTL and every band file it lists
    (``FILE_NAME_BAND_<n>``) have landed. ``read_text(key)`` returns the text of an MTL or manifest; without
    it such a group is incomplete with the reason in ``missing``. ``required_bands`` (e.g. ``{"B2", "B3",
    "B4", "B5"}``) limits which listed Landsat bands must arrive, for deliveries that ship only some bands.
    A GeoTIFF's datetime sidecar (``<key>.datetime.json``, see ``scenes.sidecar``) belongs to its scene: with the
    raster among ``keys`` or, when ``landed(key)`` says it is already in the landing store, the raster or
    sidecar that landed earlier joins the group (a sidecar whose raster has not landed waits for it).
    Unsafe keys and files that are no part of any scene come back as their own incomplete groups with
    ``problems`` set, so one bad key never blocks others.
    """
    landsat: dict[str, dict[str, object]] = {}
    groups: list[SceneGroup] = []
    geotiffs: dict[str, list[str]] = {}
    sidecars: dict[str, list[str]] = {}
    acquired: dict[str, list[str]] = {}  # item folder -> its keys
    for key in keys:
        try:
            safe_key = validate_object_key(key)
        except UnsafeObjectKeyError as error:
            digest = hashlib.sha256(repr(key).encode("utf-8")).hexdigest()[:12]
            groups.append(SceneGroup(f"rejected-{digest}", (str(key),), False, (), "rejected", None, (str(error),)))
            continue
        kind, scene_id, _band = _classify(safe_key)
        if kind == "acquired":
            acquired.setdefault(posixpath.dirname(safe_key), []).append(safe_key)
        elif kind == "geotiff":
            geotiffs.setdefault(scene_id, []).append(safe_key)
        elif kind == "geotiff-sidecar":
            sidecars.setdefault(scene_id, []).append(safe_key)
        elif kind == "stray-sidecar":
            reason = (
                f"object {safe_key!r} is a datetime sidecar of {raster_key_of_sidecar(safe_key)!r}, which is not a "
                f"single GeoTIFF: a sidecar sits beside a .tif/.tiff and is named after it ('scene.tif' + "
                f"'scene.tif{SIDECAR_SUFFIX}')"
            )
            groups.append(SceneGroup(scene_id, (safe_key,), False, (), "unrecognised", None, (reason,)))
        elif kind == "unrecognised":
            reason = (
                f"object {safe_key!r} is not a scene file: expected a .tif/.tiff GeoTIFF (with, optionally, its "
                f"'<name>.tif{SIDECAR_SUFFIX}' acquisition time) or a Landsat '<product_id>_B<n>.TIF' / "
                "'<product_id>_MTL.txt' file"
            )
            groups.append(SceneGroup(scene_id, (safe_key,), False, (), "unrecognised", None, (reason,)))
        else:
            entry = landsat.setdefault(scene_id, {"files": [], "mtl": []})
            entry["files"].append(safe_key)  # type: ignore[union-attr]
            if kind == "landsat-mtl":
                entry["mtl"].append(safe_key)  # type: ignore[union-attr]
    for scene_id in sorted(set(geotiffs) | set(sidecars)):
        groups.append(_geotiff_group(scene_id, geotiffs.get(scene_id, []), sidecars.get(scene_id, []), landed))
    for scene_id, entry in landsat.items():
        groups.append(_landsat_group(scene_id, entry["files"], entry["mtl"], read_text, required_bands))  # type: ignore[arg-type]
    groups += _acquired_groups(acquired, read_text)
    return sorted(groups, key=lambda group: (group.scene_id, group.files))


def _geotiff_group(
    scene_id: str, rasters: list[str], sidecars: list[str], landed: Callable[[str], bool] | None
) -> SceneGroup:
    """One GeoTIFF scene: its raster and, when there is one, its datetime sidecar."""
    files = sorted([*rasters, *sidecars])  # a key landed twice (two Unicode spellings) stays twice: flagged below
    sidecar_rasters = {raster_key_of_sidecar(key) or key for key in sidecars}
    raster_keys = sorted([*rasters, *(key for key in sidecar_rasters if key not in rasters)])
    if len(raster_keys) > 1 or len(sidecars) > 1:
        problem = (
            f"{len(raster_keys)} GeoTIFFs share the scene id {scene_id!r} ({raster_keys}); "
            "give each multi-band GeoTIFF a distinct file name"
            if len(raster_keys) > 1
            else f"the datetime sidecar of {raster_keys[0]!r} landed {len(sidecars)} times ({sidecars}); keep one"
        )
        return SceneGroup(scene_id, tuple(files), False, (), "geotiff", None, (problem,))
    raster = raster_keys[0]
    sidecar = sidecar_name_for(raster)
    if raster not in rasters:
        # Only the sidecar is new: its raster landed earlier (a time supplied afterwards) or is still on its way.
        if landed is None or not landed(raster):
            return SceneGroup(scene_id, tuple(files), False, (posixpath.basename(raster),), "geotiff")
        files.append(raster)
    elif sidecar not in sidecars and landed is not None and landed(sidecar):
        files.append(sidecar)  # supplied before: every run of the scene reads it
    return SceneGroup(scene_id, tuple(sorted(files)), True, (), "geotiff")


def _landsat_group(
    scene_id: str,
    scene_keys: list[str],
    mtl_keys: list[str],
    read_text: Callable[[str], str] | None,
    required_bands: Collection[str] | None,
) -> SceneGroup:
    files = tuple(sorted(scene_keys))
    if not mtl_keys:
        return SceneGroup(scene_id, files, False, (f"{scene_id}_MTL.txt",), "landsat")
    if len(mtl_keys) > 1:
        problem = f"several MTL files for {scene_id}: {sorted(mtl_keys)}; keep one"
        return SceneGroup(scene_id, files, False, (), "landsat", sorted(mtl_keys)[0], (problem,))
    mtl_key = mtl_keys[0]
    if read_text is None:
        return SceneGroup(scene_id, files, False, ("(MTL not read: pass read_text)",), "landsat", mtl_key)
    try:
        listed = landsat_band_files(parse_mtl(read_text(mtl_key)))
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


class ManifestError(ValueError):
    """An acquisition manifest (``scene.json``) that cannot say which files make up its scene."""


def acquired_manifest_files(text: str, manifest_key: str) -> dict[str, str]:
    """Role -> file name of every file an acquisition manifest lists (``{"files": {"red": {"file": ...}}}``).

    Raises ManifestError naming the manifest and what is wrong: not JSON, not a ``satlake.acquired-scene``
    of a known version, no files, or a file name that is not one safe name inside the item's folder.
    """
    redo = "; acquire the item again so the downloader rewrites its files and manifest"
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ManifestError(f"manifest {manifest_key!r} is not valid JSON ({error}){redo}") from error
    if not isinstance(data, dict) or data.get("type") != ACQUIRED_MANIFEST_TYPE:
        found = data.get("type") if isinstance(data, dict) else type(data).__name__
        raise ManifestError(f"manifest {manifest_key!r} has type {found!r}, expected {ACQUIRED_MANIFEST_TYPE!r}{redo}")
    if data.get("version") != ACQUIRED_MANIFEST_VERSION:
        raise ManifestError(
            f"manifest {manifest_key!r} has version {data.get('version')!r}; this satlake reads version "
            f"{ACQUIRED_MANIFEST_VERSION}: upgrade satlake or acquire the item again"
        )
    entries = data.get("files")
    if not isinstance(entries, dict) or not entries:
        raise ManifestError(f"manifest {manifest_key!r} lists no files (expected a non-empty 'files' object){redo}")
    listed: dict[str, str] = {}
    for role, entry in entries.items():
        name = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            raise ManifestError(f"manifest {manifest_key!r}: files.{role} has no 'file' name{redo}")
        try:
            safe_name = validate_object_key(name)
        except UnsafeObjectKeyError as error:
            raise ManifestError(f"manifest {manifest_key!r}: files.{role}: {error}") from error
        # A listed name must stay inside the item's folder: a '/' would reach another scene's files.
        if "/" in safe_name or safe_name == ACQUIRED_MANIFEST_NAME:
            raise ManifestError(
                f"manifest {manifest_key!r}: files.{role} names {name!r}, which is not a file of the item's "
                f"folder (one name, not {ACQUIRED_MANIFEST_NAME!r}){redo}"
            )
        if safe_name in listed.values():
            raise ManifestError(f"manifest {manifest_key!r}: {name!r} is listed for two roles{redo}")
        listed[str(role)] = safe_name
    return listed


def _acquired_groups(folders: dict[str, list[str]], read_text: Callable[[str], str] | None) -> list[SceneGroup]:
    """One group per item folder of the acquisition layout (plus groups for files its manifest does not list)."""
    ids = {folder: _classify(keys[0])[1] for folder, keys in folders.items()}
    folders_of_id: dict[str, list[str]] = {}
    for folder, scene_id in ids.items():
        folders_of_id.setdefault(scene_id, []).append(folder)
    groups: list[SceneGroup] = []
    for folder, keys in folders.items():
        scene_id = ids[folder]
        if len(folders_of_id[scene_id]) > 1:
            # The same item and window landed under two sources, collections or dates: one would overwrite the
            # other's raw copy, so neither is processed until one folder is removed.
            problem = (
                f"acquisition folders {sorted(folders_of_id[scene_id])} give the same scene id {scene_id!r}; "
                "remove all but one of them from the landing area"
            )
            groups.append(SceneGroup(scene_id, tuple(sorted(keys)), False, (), "acquired", problems=(problem,)))
            continue
        groups += _acquired_group(scene_id, folder, keys, read_text)
    return groups


def _acquired_group(
    scene_id: str, folder: str, keys: list[str], read_text: Callable[[str], str] | None
) -> list[SceneGroup]:
    files = tuple(sorted(keys))
    manifest_key = f"{folder}/{ACQUIRED_MANIFEST_NAME}"
    if manifest_key not in keys:
        # The downloader lands the manifest last: until it is there, more band files may be on their way.
        return [SceneGroup(scene_id, files, False, (ACQUIRED_MANIFEST_NAME,), "acquired")]
    if read_text is None:
        missing = (f"({ACQUIRED_MANIFEST_NAME} not read: pass read_text)",)
        return [SceneGroup(scene_id, files, False, missing, "acquired", manifest_key=manifest_key)]
    try:
        listed = acquired_manifest_files(read_text(manifest_key), manifest_key)
    except ManifestError as error:
        return [SceneGroup(scene_id, files, False, (), "acquired", problems=(str(error),), manifest_key=manifest_key)]
    by_name = {posixpath.basename(key): key for key in keys}
    missing = tuple(name for name in listed.values() if name not in by_name)
    members = tuple(sorted([manifest_key, *(by_name[name] for name in listed.values() if name in by_name)]))
    groups = [SceneGroup(scene_id, members, not missing, missing, "acquired", manifest_key=manifest_key)]
    for name, key in sorted(by_name.items()):
        if key not in members:
            reason = (
                f"object {key!r} is in the folder of acquired scene {scene_id} but its {ACQUIRED_MANIFEST_NAME} "
                "does not list it; remove it from the landing area"
            )
            stray_id = _safe_id(f"{scene_id}-{name}")
            groups.append(SceneGroup(stray_id, (key,), False, (), "unrecognised", None, (reason,)))
    return groups
