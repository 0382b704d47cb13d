"""What a fresh stack needs besides running servers: topics, buckets, and the landing bucket's notifications.

Every step is idempotent, so `stack up` runs them on each start.
"""

from __future__ import annotations

from typing import Any

from satlake.resources.kafka_event_log import KafkaEventLog
from satlake.stack.config import StackConfig
from satlake.stack.configs import MINIO_KAFKA_QUEUE_ARN
from satlake.stack.errors import StackError

OBJECT_EVENTS_PARTITIONS = 1  # one partition keeps object events in the order MinIO emitted them


def create_topics(config: StackConfig) -> list[str]:
    with KafkaEventLog(config.kafka_bootstrap, client_id="satlake-stack") as event_log:
        event_log.create_topic(config.telemetry_topic, config.telemetry_partitions)
        event_log.create_topic(config.object_events_topic, OBJECT_EVENTS_PARTITIONS)
        return [config.telemetry_topic, config.object_events_topic]


def s3_client(endpoint: str, region: str, access_key: str, secret_key: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def landing_notification_configuration() -> dict[str, Any]:
    """Every object created in the landing bucket is announced on the Kafka notification target."""
    return {
        "QueueConfigurations": [
            {
                "Id": "satlake-object-created",
                "QueueArn": MINIO_KAFKA_QUEUE_ARN,
                "Events": ["s3:ObjectCreated:*"],
            }
        ]
    }


def create_buckets(config: StackConfig, access_key: str, secret_key: str) -> list[str]:
    from botocore.exceptions import ClientError

    client = s3_client(config.s3_endpoint, config.s3_region, access_key, secret_key)
    buckets = [config.lake_bucket, config.landing_bucket]
    existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
    for bucket in buckets:
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
    try:
        client.put_bucket_notification_configuration(
            Bucket=config.landing_bucket, NotificationConfiguration=landing_notification_configuration()
        )
    except ClientError as error:
        raise StackError(
            f"MinIO refused the Kafka notification for bucket {config.landing_bucket!r} "
            f"({MINIO_KAFKA_QUEUE_ARN}): {error}. Check logs/minio.log for the Kafka target's state"
        ) from error
    return buckets
