"""Where acquired files land and how: the landing key layout, one checksummed put per finished file, the
GeoTIFF tags the scene path reads, and the ``scene.json`` manifest that lands last and completes a scene.

Layout: ``<source>/<collection>/<geohash5>/<YYYY-MM-DD>/bbox_<minx>_<miny>_<maxx>_<maxy>/<item_id>/<file>``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tempfile
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from satlake.resources.object_keys import validate_object_key
from satlake.resources.object_store import ObjectStore, ObjectStoreError
from satlake.scenes.cells import geohash_encode
from satlake.scenes.grouping import acquired_scene_id

MANIFEST_NAME = "scene.json"
MANIFEST_TYPE = "satlake.acquired-scene"
MANIFEST_VERSION = 1
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_HASH_CHUNK = 1 << 20


class LandingError(RuntimeError):
    """A file could not be landed; the message names the file, the key and what to check."""


@dataclass(frozen=True)
class LandedFile:
    """A file as it landed: its key, the sha256 and size of its bytes."""

    key: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ManifestFile:
    """One band file in the manifest: its name beside ``scene.json``, checksum, and where its bytes came from."""

    file: str
    sha256: str
    size: int
    asset_href: str  # the unsigned asset href of the source item
    etag: str | None


def key_safe(text: str) -> str:
    """``text`` as one key segment: runs of characters outside ``[A-Za-z0-9._-]`` become ``_``; never empty."""
    cleaned = _UNSAFE_KEY_CHARS.sub("_", unicodedata.normalize("NFC", text)).strip("._-")
    if cleaned:
        return cleaned[:200]
    return "id-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _coordinate(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"window bbox coordinate {value} is not finite")
    text = f"{value:.4f}"
    return "0.0000" if text == "-0.0000" else text  # one spelling of zero, so one key per window


def bbox_segment(bbox: Sequence[float]) -> str:
    """The window folder name without ``bbox_``: ``"<minx>_<miny>_<maxx>_<maxy>"`` in lon/lat, 4 decimals."""
    if len(bbox) != 4:
        raise ValueError(f"window bbox must be (minx, miny, maxx, maxy), got {tuple(bbox)!r}")
    return "_".join(_coordinate(float(value)) for value in bbox)


def _day(day: date | datetime | str) -> str:
    if isinstance(day, datetime):
        moment = day if day.tzinfo is not None else day.replace(tzinfo=UTC)
        return moment.astimezone(UTC).date().isoformat()
    if isinstance(day, date):
        return day.isoformat()
    return _day(datetime.fromisoformat(day.replace("Z", "+00:00")))


def geohash5(bbox: Sequence[float]) -> str:
    """The geohash-5 cell (about 5 km) of a lon/lat bbox's centre: the layout's spatial folder."""
    minx, miny, maxx, maxy = (float(value) for value in bbox)
    return geohash_encode((miny + maxy) / 2, (minx + maxx) / 2, 5)


def acquisition_prefix(
    source: str, collection: str, geohash: str, day: date | datetime | str, bbox: Sequence[float], item_id: str
) -> str:
    """The folder of one item's window: ``<source>/<collection>/<geohash5>/<YYYY-MM-DD>/bbox_<...>/<item_id>``."""
    segments = [key_safe(source), key_safe(collection), key_safe(geohash), _day(day)]
    prefix = "/".join([*segments, f"bbox_{bbox_segment(bbox)}", key_safe(item_id)])
    return validate_object_key(prefix)


def band_file_name(role: str) -> str:
    """The file name of a band role in an acquired scene's folder (``blue.tif``, ..., ``cloud.tif``)."""
    return f"{key_safe(role)}.tif"


def scene_id_for(item_id: str, window_bbox: Sequence[float]) -> str:
    """The scene id of an item's window, the same one the scene sensor derives from the landed keys."""
    return acquired_scene_id(key_safe(item_id), bbox_segment(window_bbox))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def land_file(store: ObjectStore, local: Path, key: str) -> LandedFile:
    """Put the finished local file ``local`` at ``key`` with one put, after checksumming it locally.

    The file must be complete before this call (``read_window`` writes to a temporary name and renames): an
    object store makes a put visible only when it is complete, so the landing area never holds half a file.
    """
    if not local.is_file():
        raise LandingError(f"cannot land {local} at {key!r}: the local file does not exist")
    size = local.stat().st_size
    if size == 0:
        raise LandingError(f"refusing to land {local} at {key!r}: the file is empty; the download failed")
    sha256 = _file_sha256(local)
    try:
        stored = store.put_file(local, key)
    except ObjectStoreError as error:
        raise LandingError(f"cannot land {local} at {key!r} in {store!r}: {error}") from error
    if stored.size_bytes != size:
        raise LandingError(
            f"landed {key!r} in {store!r} has {stored.size_bytes} bytes, the local file {local} has {size}; "
            "the store truncated the upload, land it again"
        )
    return LandedFile(key=stored.key, sha256=sha256, size=size)


def _isoformat_utc(text: str) -> str:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def item_datetime(item: Mapping[str, Any]) -> str:
    """The item's acquisition time as ISO 8601 UTC (``datetime``, else ``start_datetime``)."""
    properties = item.get("properties", {})
    text = properties.get("datetime") or properties.get("start_datetime")
    if not text:
        raise LandingError(f"item {item.get('id')!r} has neither datetime nor start_datetime; cannot date the scene")
    return _isoformat_utc(str(text))


def item_self_href(item: Mapping[str, Any], source_url: str, collection: str) -> str:
    """The item's ``self`` link, else its address under the API root."""
    for link in item.get("links", []):
        if link.get("rel") == "self" and link.get("href"):
            return str(link["href"])
    return f"{source_url.rstrip('/')}/collections/{collection}/items/{item['id']}"


def band_tags(item: Mapping[str, Any], source: str, source_url: str, collection: str) -> dict[str, str]:
    """GeoTIFF tags every band file of the item carries: what the scene path reads for time, platform, cloud
    cover, collection and provenance."""
    properties = item.get("properties", {})
    tags = {
        "ACQUISITION_TIME": item_datetime(item),
        "SATLAKE_COLLECTION": collection,
        "SATLAKE_DERIVED_FROM": item_self_href(item, source_url, collection),
        "SATLAKE_SOURCE": source,
    }
    if properties.get("platform"):
        tags["PLATFORM"] = str(properties["platform"])
    if properties.get("eo:cloud_cover") is not None:
        tags["CLOUD_COVER"] = str(float(properties["eo:cloud_cover"]))
    return tags


def build_manifest(
    *,
    item: Mapping[str, Any],
    source: str,
    source_url: str,
    collection: str,
    aoi: str,
    request_id: str,
    window_bbox: Sequence[float],
    crs: str,
    files: Mapping[str, ManifestFile],
) -> dict[str, Any]:
    """The ``scene.json`` document of one acquired item window (schema ``satlake.acquired-scene`` v1)."""
    properties = item.get("properties", {})
    cloud_cover = properties.get("eo:cloud_cover")
    return {
        "type": MANIFEST_TYPE,
        "version": MANIFEST_VERSION,
        "scene_id": scene_id_for(str(item["id"]), window_bbox),
        "source": source,
        "source_url": source_url,
        "collection": collection,
        "item_id": str(item["id"]),
        "item_href": item_self_href(item, source_url, collection),
        "datetime": item_datetime(item),
        "platform": properties.get("platform"),
        "cloud_cover": float(cloud_cover) if cloud_cover is not None else None,
        "aoi": aoi,
        "request_id": request_id,
        # Rounded as in the key, so the manifest and the folder name agree on the window.
        "window_bbox": [float(value) for value in bbox_segment(window_bbox).split("_")],
        "crs": crs,
        "files": {role: asdict(entry) for role, entry in sorted(files.items())},
    }


def write_manifest(store: ObjectStore, prefix: str, manifest: Mapping[str, Any]) -> LandedFile:
    """Land ``manifest`` as ``<prefix>/scene.json``: call it LAST, after every band file it lists has landed,
    because the scene sensor takes a landed manifest as the sign that the scene is complete."""
    missing = [entry["file"] for entry in manifest["files"].values() if not store.exists(f"{prefix}/{entry['file']}")]
    if missing:
        raise LandingError(
            f"refusing to land {prefix}/{MANIFEST_NAME}: its files {missing} have not landed; land them first"
        )
    with tempfile.TemporaryDirectory(prefix="satlake-manifest-") as scratch:
        local = Path(scratch) / MANIFEST_NAME
        local.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return land_file(store, local, f"{prefix}/{MANIFEST_NAME}")
