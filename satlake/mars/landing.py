"""Where the Mars source lands each response in the landing area, and how a landed key is read back.

Every usable API response is landed as received under ``mars-api/`` (a prefix the scene sensor leaves alone):

    mars-api/<rover>/manifest/<fetched>.json
    mars-api/<rover>/photos/sol-<sol>/page-<page>-<fetched>.json
    mars-api/<rover>/waypoints/<MISSION>-<fetched>.json

and announced on the object-events topic, by MinIO in stack mode and by ``land_responses`` otherwise, so the
Mars landing sensor starts the bronze partitions of what arrived, as the scene sensor does for scene files.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from satlake.mars.rovers import ROVERS, sol_key
from satlake.resources.event_log import EventLog
from satlake.resources.object_events import ANNOUNCEMENT_WAIT_S, announce_objects, wait_for_announcements
from satlake.resources.object_keys import MARS_LANDING_PREFIX
from satlake.resources.object_store import ObjectStore, StoredObject

MANIFEST, PHOTOS, WAYPOINTS = "manifest", "photos", "waypoints"
_KEY = re.compile(
    rf"^{MARS_LANDING_PREFIX}/(?P<rover>[a-z]+)/(?:(?P<manifest>manifest)/[^/]+\.json"
    r"|photos/sol-(?P<sol>\d{5})/page-(?P<page>\d{4})-[^/]+\.json|(?P<waypoints>waypoints)/[^/]+\.json)$"
)


@dataclass(frozen=True, slots=True)
class LandedResponse:
    """What a landed key holds."""

    kind: str
    rover: str
    sol: int | None = None
    page: int | None = None


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S%fZ")


def response_key(kind: str, rover: str, fetched_at: datetime, *, sol: int | None = None, page: int | None = None,
                 mission: str | None = None) -> str:  # fmt: skip
    """The landing key of one response."""
    base = f"{MARS_LANDING_PREFIX}/{rover}"
    if kind == MANIFEST:
        return f"{base}/manifest/{_stamp(fetched_at)}.json"
    if kind == PHOTOS:
        if sol is None or page is None:
            raise ValueError("a photos response needs its sol and page")
        return f"{base}/photos/sol-{sol_key(sol)}/page-{page:04d}-{_stamp(fetched_at)}.json"
    if kind == WAYPOINTS:
        return f"{base}/waypoints/{mission or 'traverse'}-{_stamp(fetched_at)}.json"
    raise ValueError(f"unknown response kind {kind!r}")


def parse_landing_key(key: str) -> LandedResponse | None:
    """What a key under ``mars-api/`` holds; None for any other key or an unknown rover."""
    match = _KEY.match(key)
    if match is None or match["rover"] not in ROVERS:
        return None
    if match["manifest"]:
        return LandedResponse(MANIFEST, match["rover"])
    if match["waypoints"]:
        return LandedResponse(WAYPOINTS, match["rover"])
    return LandedResponse(PHOTOS, match["rover"], int(match["sol"]), int(match["page"]))


def put_bytes(store: ObjectStore, key: str, body: bytes) -> StoredObject:
    """Upload ``body`` as ``key`` (through a temporary file: the stores upload files)."""
    with tempfile.TemporaryDirectory(prefix="satlake-mars-") as scratch:
        path = Path(scratch) / "body"
        path.write_bytes(body)
        return store.put_file(path, key)


def land_responses(
    store: ObjectStore,
    event_log: EventLog,
    topic: str,
    bodies: Sequence[tuple[str, bytes]],
    say: Callable[[str], None] | None = None,
) -> list[StoredObject]:
    """Upload (key, body) pairs in order, then make sure they are announced on ``topic``: announced here when
    the store does not announce uploads itself, else waited for (MinIO announces a moment after each upload),
    so a sensor pass right after the run sees them. Returns the stored objects."""
    before = event_log.end_offsets(topic) if event_log.partitions(topic) else {}
    stored = [put_bytes(store, key, body) for key, body in bodies]
    if stored and not store.announces_uploads:
        announce_objects(event_log, topic, store.bucket, stored)
    elif stored:
        arrived = wait_for_announcements(event_log, topic, before, len(stored), ANNOUNCEMENT_WAIT_S)
        if arrived < len(stored) and say is not None:
            say(f"only {arrived} of {len(stored)} landed responses announced on {topic} so far")
    return stored
