"""MinIO announces created objects on Kafka, in its bucket-notification JSON.

The landing bucket is watched by the scene sensor, which other tests of the session run, so this test puts its
object into a bucket of its own, subscribed exactly like the landing bucket, and checks the landing bucket's
subscription separately: a stray test object never becomes a scene run.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest
from botocore.config import Config

from satlake.resources.kafka_event_log import KafkaEventLog
from satlake.settings import Settings
from satlake.stack.credentials import require_stack_credentials
from satlake.stack.provision import landing_notification_configuration

pytestmark = pytest.mark.integration


@pytest.fixture
def s3(stack: Settings) -> Any:
    # MinIO's root user: only it may create buckets and read notification configurations.
    root = require_stack_credentials(stack).root
    return boto3.client(
        "s3",
        endpoint_url=stack.s3_endpoint,
        region_name=stack.s3_region,
        aws_access_key_id=root.access_key,
        aws_secret_access_key=root.secret_key,
        config=Config(s3={"addressing_style": "path"}),
    )


def test_landing_bucket_announces_every_created_object_on_kafka(stack: Settings, s3: Any) -> None:
    configuration = s3.get_bucket_notification_configuration(Bucket=stack.landing_bucket)
    [queue] = configuration["QueueConfigurations"]
    # Subscribed as arn:minio:sqs::SATLAKE:kafka; MinIO reports the ARN back with its region filled in.
    assert queue["QueueArn"] in ("arn:minio:sqs::SATLAKE:kafka", f"arn:minio:sqs:{stack.s3_region}:SATLAKE:kafka")
    assert queue["Events"] == ["s3:ObjectCreated:*"]
    assert s3.get_bucket_notification_configuration(Bucket=stack.lake_bucket).get("QueueConfigurations") is None


def wait_for_events(event_log: KafkaEventLog, topic: str, start: dict[int, int], message_key: bytes) -> list[dict]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        records = event_log.read(topic, start, max_records=1000, timeout_s=1.0)
        events = [json.loads(r.value) for r in records if r.key == message_key]
        if events:
            return events
        time.sleep(0.5)
    return []


def test_created_object_is_announced_with_minios_notification_json(stack: Settings, s3: Any) -> None:
    bucket = f"satlake-it-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=landing_notification_configuration()
    )
    key = f"incoming/{uuid.uuid4().hex}/LC08 scene+1_B4.TIF"
    body = b"II*\x00" + b"\x00" * 60
    with KafkaEventLog(stack.kafka_bootstrap, client_id="satlake-it") as event_log:
        start = event_log.end_offsets(stack.object_events_topic)
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="image/tiff")
        events = wait_for_events(event_log, stack.object_events_topic, start, f"{bucket}/{key}".encode())

    assert len(events) == 1
    event = events[0]
    assert {"EventName", "Key", "Records"} <= set(event)
    assert event["EventName"] == "s3:ObjectCreated:Put"
    assert event["Key"] == f"{bucket}/{key}"
    record = event["Records"][0]
    assert record["eventName"] == "s3:ObjectCreated:Put"
    assert record["s3"]["bucket"]["name"] == bucket
    # The object key is form-encoded ("+" for a space): decode with unquote_plus, not unquote.
    assert record["s3"]["object"]["key"] != key
    assert unquote_plus(record["s3"]["object"]["key"]) == key
    assert record["s3"]["object"]["size"] == len(body)
    assert record["s3"]["object"]["contentType"] == "image/tiff"
    assert {"eTag", "sequencer"} <= set(record["s3"]["object"])
    assert "eventTime" in record
