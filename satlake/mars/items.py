"""STAC items of Mars photos and timelapses.

A rover photo has no footprint anyone published, so its item has ``geometry: null`` and no ``bbox`` (STAC's
geometry is longitude/latitude on Earth, which a Mars photo must never get); ``ssys:targets: ["mars"]`` names its
body, and the rover, camera and sol are properties. The image asset points at the copy in the object store when
it was fetched, else at the remote ``img_src``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from satlake.catalog.items import MEDIA_TYPE_JPEG, MEDIA_TYPE_PNG, format_datetime, item_links
from satlake.catalog.validation import FILE_EXTENSION, SSYS_EXTENSION, STAC_VERSION
from satlake.mars.rovers import ROVERS
from satlake.mars.timelapse import MEDIA_TYPE_GIF

TIMELAPSE_COLLECTION = "mars-timelapses"


def photo_collection(rover: str) -> str:
    return f"mars-{rover}-photos"


def collection_descriptions() -> dict[str, str]:
    """How the static catalog describes the Mars collections."""
    described = {
        photo_collection(rover.name): f"Photos taken on Mars by NASA's {rover.display_name} rover, with their camera "
        "and sol (from the Mars rover photo API); the image is satlake's copy, or NASA's URL where it was not fetched."
        for rover in ROVERS.values()
    }
    described[TIMELAPSE_COLLECTION] = (
        "Animated timelapses of each Mars rover camera over its latest sols, built from the photos in the object store."
    )
    return described


def photo_item_id(rover: str, photo_id: int) -> str:
    return f"mars-{rover}-{photo_id}"


def timelapse_item_id(rover: str, camera: str) -> str:
    return f"mars-{rover}-{camera.lower()}-timelapse"


def _media_type(href: str) -> str:
    return MEDIA_TYPE_PNG if href.lower().endswith(".png") else MEDIA_TYPE_JPEG


def _day(earth_date: date) -> tuple[str, str]:
    start = datetime.combine(earth_date, time(0, 0), UTC)
    end = datetime.combine(earth_date, time(23, 59, 59), UTC)
    return format_datetime(start), format_datetime(end)


def _mars_properties(rover: str, start: date, end: date) -> dict[str, Any]:
    first, _ = _day(start)
    _, last = _day(end)
    return {
        "datetime": None,
        "start_datetime": first,
        "end_datetime": last,
        "platform": rover,
        "ssys:targets": ["mars"],
        "ssys:target_class": "planet",
    }


def photo_item(photo: Mapping[str, Any], href: str, size_bytes: int | None = None) -> dict[str, Any]:
    """The item of one bronze.mars_photos row; ``href`` is the fetched copy's URI or the remote img_src.

    The API gives a photo's Earth date, not its time, so the item spans that UTC day."""
    rover, camera = photo["rover_name"], photo["camera_name"] or "unknown"
    properties = _mars_properties(rover, photo["earth_date"], photo["earth_date"])
    properties |= {
        "instruments": [camera.lower()],
        "satlake:sol": int(photo["sol"]),
        "satlake:camera": camera,
        "satlake:camera_full_name": photo.get("camera_full_name"),
        "satlake:photo_id": int(photo["id"]),
    }
    asset: dict[str, Any] = {
        "href": href,
        "type": _media_type(photo["img_src"]),
        "roles": ["data"],
        "title": f"{camera} photo {photo['id']}",
    }
    if size_bytes is not None:
        asset["file:size"] = size_bytes
    links = item_links()
    if href != photo["img_src"]:
        links.append({"rel": "via", "href": photo["img_src"], "type": asset["type"], "title": "the NASA original"})
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [SSYS_EXTENSION, FILE_EXTENSION],
        "id": photo_item_id(rover, int(photo["id"])),
        "collection": photo_collection(rover),
        "geometry": None,
        "properties": properties,
        "assets": {"image": asset},
        "links": links,
    }


def timelapse_item(
    rover: str,
    camera: str,
    href: str,
    size_bytes: int,
    sols: Sequence[int],
    dates: tuple[date, date],
    frame_ids: Sequence[int],
    frames: int,
) -> dict[str, Any]:
    """The item of a timelapse GIF, linked to the photo items it was built from (``derived_from``)."""
    properties = _mars_properties(rover, *dates)
    properties |= {
        "instruments": [camera.lower()],
        "satlake:camera": camera,
        "satlake:first_sol": min(sols),
        "satlake:last_sol": max(sols),
        "satlake:frames": frames,
    }
    links = item_links() + [
        {
            "rel": "derived_from",
            "href": f"../../{photo_collection(rover)}/{item}/{item}.json",
            "type": "application/geo+json",
        }
        for item in (photo_item_id(rover, photo_id) for photo_id in frame_ids)
    ]
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [SSYS_EXTENSION, FILE_EXTENSION],
        "id": timelapse_item_id(rover, camera),
        "collection": TIMELAPSE_COLLECTION,
        "geometry": None,
        "properties": properties,
        "assets": {
            "timelapse": {
                "href": href,
                "type": MEDIA_TYPE_GIF,
                "roles": ["data", "visual"],
                "title": f"{camera} sols {min(sols)}-{max(sols)}",
                "file:size": size_bytes,
            }
        },
        "links": links,
    }
