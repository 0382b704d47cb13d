"""Object-created events in MinIO's bucket-notification JSON shape, on the object-events topic.

In stack mode MinIO publishes an event to Kafka for every object created in the landing bucket; in embedded
mode whoever uploads announces the object itself (``announce_objects``), in the same shape.
``parse_object_events`` reads either back. Scenes, acquisition and the Mars source all land this way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from satlake.resources.event_log import EventLog, LogRecord, OutgoingRecord
from satlake.resources.object_store import StoredObject

OBJECT_CREATED_PUT = "s3:ObjectCreated:Put"
# MinIO usually announces an upload within a second; a loaded machine can take much longer.
ANNOUNCEMENT_WAIT_S = 120.0
OBJECT_EVENTS_PARTITIONS = 1  # one partition keeps announcements in upload order; volumes are small


class ObjectEventError(ValueError):
    """A record on the object-events topic that is not a bucket notification satlake understands."""


@dataclass(frozen=True, slots=True)
class ObjectCreated:
    """One object-created notification."""

    bucket: str
    key: str  # decoded object key, exactly as uploaded (not yet validated)
    size_bytes: int | None
    etag: str | None
    event_time: datetime | None
    sequencer: str | None
    event_name: str = OBJECT_CREATED_PUT


def _format_event_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def object_created_event(
    bucket: str, key: str, size_bytes: int, etag: str, event_time: datetime, sequencer: str
) -> dict[str, Any]:
    """The notification MinIO sends for a completed PUT: ``Key`` is ``bucket/key``, and the record's
    ``s3.object.key`` is URL-encoded (Go's ``url.QueryEscape``: ``/`` -> ``%2F``, space -> ``+``)."""
    return {
        "EventName": OBJECT_CREATED_PUT,
        "Key": f"{bucket}/{key}",
        "Records": [
            {
                "eventVersion": "2.0",
                "eventSource": "minio:s3",
                "awsRegion": "",
                "eventTime": _format_event_time(event_time),
                "eventName": OBJECT_CREATED_PUT,
                "userIdentity": {"principalId": "satlake"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "satlake-landing",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "satlake"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": quote_plus(key, safe=""),
                        "size": size_bytes,
                        "eTag": etag,
                        "contentType": "application/octet-stream",
                        "userMetadata": {},
                        "sequencer": sequencer,
                    },
                },
                "source": {"host": "satlake", "port": "", "userAgent": "satlake"},
            }
        ],
    }


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_object_events(value: bytes) -> list[ObjectCreated]:
    """The object-created records of one notification (other event kinds, e.g. deletes, are skipped).

    Raises ObjectEventError naming what is missing when the payload is not a bucket notification.
    """
    try:
        document = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ObjectEventError(f"not JSON ({error}); expected a bucket notification") from error
    if not isinstance(document, dict) or not isinstance(document.get("Records"), list):
        raise ObjectEventError("no 'Records' list; expected MinIO's bucket-notification JSON")
    created: list[ObjectCreated] = []
    for number, record in enumerate(document["Records"]):
        name = record.get("eventName") if isinstance(record, dict) else None
        if not isinstance(name, str):
            raise ObjectEventError(f"Records[{number}] has no eventName")
        if not name.startswith("s3:ObjectCreated:"):
            continue
        s3 = record.get("s3") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        obj = s3.get("object") or {}
        raw_key = obj.get("key")
        if not isinstance(bucket, str) or not isinstance(raw_key, str):
            raise ObjectEventError(f"Records[{number}] has no s3.bucket.name or s3.object.key")
        size = obj.get("size")
        created.append(
            ObjectCreated(
                bucket=bucket,
                key=unquote_plus(raw_key),
                size_bytes=int(size) if isinstance(size, int | float) else None,
                etag=obj.get("eTag") if isinstance(obj.get("eTag"), str) else None,
                event_time=_parse_time(record.get("eventTime")),
                sequencer=obj.get("sequencer") if isinstance(obj.get("sequencer"), str) else None,
                event_name=name,
            )
        )
    return created


def record_event_time(record: LogRecord, event: ObjectCreated) -> datetime:
    """The event's own time, or the log's timestamp when the notification carries none."""
    return event.event_time or datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)


def announce_objects(
    event_log: EventLog, topic: str, bucket: str, stored: Sequence[StoredObject], now: datetime | None = None
) -> int:
    """Append one object-created notification per stored object to ``topic`` (embedded mode's MinIO)."""
    event_log.create_topic(topic, OBJECT_EVENTS_PARTITIONS)
    moment = now or datetime.now(UTC)
    records = []
    for number, obj in enumerate(stored):
        # MinIO's sequencer is a hex nanosecond counter; uniqueness within the log is what matters.
        sequencer = f"{time.time_ns() + number:X}"
        event = object_created_event(bucket, obj.key, obj.size_bytes, obj.etag, moment, sequencer)
        records.append(
            OutgoingRecord(value=json.dumps(event, separators=(",", ":")).encode(), key=f"{bucket}/{obj.key}".encode())
        )
    return event_log.append(topic, records)


def wait_for_announcements(
    event_log: EventLog, topic: str, before: Mapping[int, int], count: int, timeout_s: float
) -> int:
    """Wait until ``count`` more events than ``before`` (end offsets) are on ``topic``, or ``timeout_s``; returns
    how many arrived. MinIO publishes its bucket notifications after the upload returns: a pass of the sensors
    started at once could see none of them and end quiet, so whoever lands and then runs waits for them first."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = event_log.end_offsets(topic) if event_log.partitions(topic) else {}
        arrived = sum(now.values()) - sum(before.values())
        if arrived >= count or time.monotonic() >= deadline:
            return arrived
        time.sleep(0.25)
