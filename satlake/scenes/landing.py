"""The landing area as users fill it: ``put_scene_files`` uploads scene files and, in embedded mode, announces
them on the object-events topic itself; in stack mode MinIO publishes the same event to Kafka when the upload
completes, so put only uploads. The events' shape and reading live in ``satlake.resources.object_events``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from satlake.resources.event_log import EventLog
from satlake.resources.object_events import announce_objects
from satlake.resources.object_keys import MARS_LANDING_PREFIX, UnsafeObjectKeyError, validate_object_key
from satlake.resources.object_store import ObjectStore, StoredObject

# Landing prefixes a source of satlake's own writes; a user's files never land under them.
RESERVED_LANDING_PREFIXES = (MARS_LANDING_PREFIX,)


def landing_key_for(path: Path, prefix: str = "") -> str:
    """Landing key of a local file: ``prefix/<file name>`` (a file name is the natural key of a scene file)."""
    name = path.name
    key = validate_object_key(f"{prefix.strip('/')}/{name}" if prefix.strip("/") else name)
    if is_reserved_landing_key(key):
        raise UnsafeObjectKeyError(key, f"lands under {key.split('/')[0]}/, which satlake's Mars source owns; "
                                        "choose another --prefix")  # fmt: skip
    return key


def is_reserved_landing_key(key: str) -> bool:
    """Whether ``key`` is under a prefix a satlake source lands its own responses in (not a scene file)."""
    return any(key.startswith(prefix + "/") for prefix in RESERVED_LANDING_PREFIXES)


def put_scene_files(
    paths: Iterable[Path],
    landing: ObjectStore,
    event_log: EventLog | None,
    topic: str,
    prefix: str = "",
    progress: Callable[[StoredObject], None] | None = None,
) -> list[StoredObject]:
    """Upload files into the landing store and, when ``event_log`` is given (embedded mode), announce them.

    Files are uploaded in order and announced together afterwards, so a sensor never sees half of a put.
    Raises FileNotFoundError naming the first path that is not a file, before anything is uploaded.
    """
    files = [Path(path) for path in paths]
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not a file; pass scene files (GeoTIFFs, Landsat band and MTL files)")
    stored: list[StoredObject] = []
    for path in files:
        obj = landing.put_file(path, landing_key_for(path, prefix))
        stored.append(obj)
        if progress is not None:
            progress(obj)
    if event_log is not None and stored:
        announce_objects(event_log, topic, landing.bucket, stored)
    return stored


def announce_existing_key(event_log: EventLog, topic: str, bucket: str, key: str, size_bytes: int) -> int:
    """Announce an object whose key cannot be stored as a file (an unsafe key), as MinIO would still do."""
    return announce_objects(event_log, topic, bucket, [StoredObject(key=key, size_bytes=size_bytes, etag="")])
