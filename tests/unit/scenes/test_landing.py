"""Landing files and their object-created events: MinIO's notification shape, the local object store's key
safety, and how the sensor's planning folds events into complete scenes, waiting scenes and rejects."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from satlake.resources.event_log import LogRecord
from satlake.resources.local_event_log import LocalEventLog
from satlake.resources.object_events import (
    OBJECT_CREATED_PUT,
    ObjectEventError,
    object_created_event,
    parse_object_events,
)
from satlake.resources.object_keys import UnsafeObjectKeyError
from satlake.resources.object_store import LocalObjectStore
from satlake.scenes.landing import put_scene_files
from satlake.scenes.sensors import SensorCursor, plan_scenes, scene_run_key

TOPIC = "satlake.object-events"
BUCKET = "satlake-landing"
PRODUCT = "LC08_L1TP_016037_20170813_20170814_01_RT"
MTL = f"""GROUP = LANDSAT_METADATA_FILE
  GROUP = PRODUCT_CONTENTS
    FILE_NAME_BAND_2 = "{PRODUCT}_B2.TIF"
    FILE_NAME_BAND_4 = "{PRODUCT}_B4.TIF"
  END_GROUP = PRODUCT_CONTENTS
END_GROUP = LANDSAT_METADATA_FILE
END
"""
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def record(offset: int, key: str, bucket: str = BUCKET, etag: str = "e1") -> LogRecord:
    event = object_created_event(bucket, key, 10, etag, NOW, f"{offset:X}")
    return LogRecord(TOPIC, 0, offset, int(NOW.timestamp() * 1000), f"{bucket}/{key}".encode(),
                     json.dumps(event).encode())  # fmt: skip


def test_event_has_minio_shape_and_url_encoded_key() -> None:
    event = object_created_event(BUCKET, "deliveries/scène 1.tif", 123, "abc", NOW, "17A")
    assert event["EventName"] == OBJECT_CREATED_PUT
    assert event["Key"] == f"{BUCKET}/deliveries/scène 1.tif"
    first = event["Records"][0]
    assert first["eventName"] == OBJECT_CREATED_PUT and first["eventTime"] == "2024-06-01T12:00:00.000Z"
    assert first["s3"]["bucket"]["name"] == BUCKET
    assert first["s3"]["object"]["key"] == "deliveries%2Fsc%C3%A8ne+1.tif"  # Go's url.QueryEscape
    assert first["s3"]["object"]["size"] == 123 and first["s3"]["object"]["sequencer"] == "17A"
    (parsed,) = parse_object_events(json.dumps(event).encode())
    assert parsed.key == "deliveries/scène 1.tif" and parsed.bucket == BUCKET and parsed.event_time == NOW


def test_deletes_are_skipped_and_garbage_is_an_error() -> None:
    event = object_created_event(BUCKET, "a.tif", 1, "e", NOW, "1")
    event["Records"][0]["eventName"] = "s3:ObjectRemoved:Delete"
    assert parse_object_events(json.dumps(event).encode()) == []
    with pytest.raises(ObjectEventError, match="not JSON"):
        parse_object_events(b"\xff not json")
    with pytest.raises(ObjectEventError, match="Records"):
        parse_object_events(b'{"EventName": "x"}')


def test_put_uploads_then_announces_each_file(tmp_path: Path) -> None:
    landing = LocalObjectStore(tmp_path / "landing", bucket=BUCKET)
    log = LocalEventLog(tmp_path / "log", fsync=False)
    source = tmp_path / "scene.tif"
    source.write_bytes(b"II*\x00data")
    stored = put_scene_files([source], landing, log, TOPIC, prefix="incoming")
    assert [s.key for s in stored] == ["incoming/scene.tif"]
    assert (tmp_path / "landing/incoming/scene.tif").read_bytes() == b"II*\x00data"
    (logged,) = log.read(TOPIC, {}, 10, timeout_s=0.1)
    (event,) = parse_object_events(logged.value)
    assert (event.bucket, event.key, event.size_bytes) == (BUCKET, "incoming/scene.tif", 8)
    with pytest.raises(FileNotFoundError, match="not a file"):
        put_scene_files([tmp_path / "missing.tif"], landing, log, TOPIC)
    assert log.end_offsets(TOPIC) == {0: 1}  # nothing announced for a failed put


def test_local_store_refuses_traversal_and_lists_objects(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    source = tmp_path / "f.bin"
    source.write_bytes(b"x")
    with pytest.raises(UnsafeObjectKeyError, match="path traversal"):
        store.put_file(source, "../escape.bin")
    store.put_file(source, "a/b/f.bin")
    assert store.list("a/") == ["a/b/f.bin"] and store.exists("a/b/f.bin")
    assert store.key_for_uri(store.uri("a/b/f.bin")) == "a/b/f.bin"
    assert store.key_for_uri("/elsewhere/f.bin") is None


def test_landsat_scene_waits_for_its_bands_across_ticks() -> None:
    mtl = {f"{PRODUCT}_MTL.txt": MTL}
    first = plan_scenes([record(0, f"{PRODUCT}_MTL.txt"), record(1, f"{PRODUCT}_B2.TIF")], SensorCursor(), BUCKET,
                        mtl.__getitem__, NOW)  # fmt: skip
    assert first.ready == [] and first.rejects == []
    assert first.cursor.offsets == {0: 2} and len(first.cursor.pending) == 2
    second = plan_scenes([record(2, f"{PRODUCT}_B4.TIF")], first.cursor, BUCKET, mtl.__getitem__, NOW)
    assert [g.scene_id for g in second.ready] == [PRODUCT]
    assert second.cursor.pending == {} and second.cursor.offsets == {0: 3}
    # The cursor survives a round trip through JSON (it is the sensor's stored cursor).
    assert SensorCursor.from_json(first.cursor.to_json()) == first.cursor


def test_unsafe_keys_other_buckets_and_stale_scenes() -> None:
    plan = plan_scenes([record(0, "../evil.tif"), record(1, "x.tif", bucket="satlake"), record(2, "notes.txt")],
                       SensorCursor(), BUCKET, lambda key: "", NOW)  # fmt: skip
    reasons = {group.files[0]: reason for group, reason, _ in plan.rejects}
    assert "path traversal" in reasons["../evil.tif"] and "not a scene file" in reasons["notes.txt"]
    assert "x.tif" not in reasons and plan.ready == []  # another bucket's events are not landings
    waiting = plan_scenes([record(3, f"{PRODUCT}_B2.TIF")], SensorCursor(), BUCKET, lambda key: "", NOW)
    assert waiting.rejects == [] and waiting.cursor.pending
    later = plan_scenes([], waiting.cursor, BUCKET, lambda key: "", NOW + timedelta(hours=25))
    (stale,) = later.rejects
    assert "incomplete" in stale[1] and "MTL" in stale[1] and later.cursor.pending == {}


def test_run_key_changes_only_when_content_changes() -> None:
    plan = plan_scenes([record(0, "a.tif")], SensorCursor(), BUCKET, lambda key: "", NOW)
    again = plan_scenes([record(1, "a.tif")], SensorCursor(), BUCKET, lambda key: "", NOW)
    changed = plan_scenes([record(2, "a.tif", etag="e2")], SensorCursor(), BUCKET, lambda key: "", NOW)
    key = scene_run_key(plan.ready[0], plan.etags)
    assert key == scene_run_key(again.ready[0], again.etags)
    assert key != scene_run_key(changed.ready[0], changed.etags) and key.startswith("a:")


def test_landing_waits_for_announcements_that_arrive_after_the_upload(tmp_path: Path) -> None:
    import threading

    from satlake.resources.event_log import OutgoingRecord
    from satlake.resources.object_events import wait_for_announcements

    log = LocalEventLog(tmp_path / "log", fsync=False)
    log.create_topic("events", 1)
    log.append("events", [OutgoingRecord(b"earlier")])
    before = log.end_offsets("events")
    # Two announcements arrive a moment after the uploads, as MinIO's do.
    late = threading.Timer(0.5, lambda: log.append("events", [OutgoingRecord(b"a"), OutgoingRecord(b"b")]))
    late.start()
    assert wait_for_announcements(log, "events", before, 2, timeout_s=10) == 2
    late.join()
    # A third never comes: the wait ends at its timeout with what did arrive.
    assert wait_for_announcements(log, "events", before, 3, timeout_s=0.5) == 2
