"""What a fresh stack needs besides running servers: topics, buckets, the landing bucket's notifications, and
the object store's least-privilege users (the pipeline's and Trino's) with their policies.

Every step is idempotent, so `stack up` runs them on each start. Only these steps use MinIO's root user.
"""

from __future__ import annotations

from typing import Any

from satlake.resources.kafka_event_log import KafkaEventLog
from satlake.stack.access import pipeline_policy, trino_policy
from satlake.stack.config import StackConfig
from satlake.stack.configs import METASTORE_PREFIX, MINIO_KAFKA_QUEUE_ARN
from satlake.stack.credentials import ROOT_PASSWORD_VAR, ROOT_USER_VAR, KeyPair, StackCredentials
from satlake.stack.errors import StackError

OBJECT_EVENTS_PARTITIONS = 1  # one partition keeps object events in the order MinIO emitted them
PIPELINE_POLICY = "satlake-pipeline"
TRINO_POLICY = "satlake-trino"
# What MinIO answers to a key it does not know, or a known key with another secret.
REJECTED_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch"}


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


def create_buckets(config: StackConfig, root: KeyPair) -> list[str]:
    """The lake and landing buckets, and the landing bucket's Kafka notification (root user: nobody else may)."""
    from botocore.exceptions import ClientError

    client = s3_client(config.s3_endpoint, config.s3_region, root.access_key, root.secret_key)
    buckets = [config.lake_bucket, config.landing_bucket]
    try:
        existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
        for bucket in buckets:
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)
    except ClientError as error:
        raise StackError(
            f"MinIO at {config.s3_endpoint} refused to create buckets {', '.join(buckets)} as the root user "
            f"{root.access_key!r}: {error}. It must run with {ROOT_USER_VAR} and {ROOT_PASSWORD_VAR} from "
            f"{config.secrets_file} (or the environment): restart it, e.g. `satlake stack down && satlake stack up`"
        ) from error
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


def minio_accepts_root(config: StackConfig, root: KeyPair) -> bool:
    """Whether the running MinIO takes ``root`` as valid credentials (False: it was started with another root)."""
    from botocore.exceptions import ClientError

    client = s3_client(config.s3_endpoint, config.s3_region, root.access_key, root.secret_key)
    try:
        client.list_buckets()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in REJECTED_CREDENTIALS:
            return False
        raise StackError(f"MinIO at {config.s3_endpoint} answered the root user's request with {error}") from error
    return True


def minio_admin(config: StackConfig, root: KeyPair) -> Any:
    """A client of MinIO's admin API (the `mc admin` calls, without the `mc` binary), as the root user."""
    from minio import MinioAdmin
    from minio.credentials import StaticProvider
    from urllib3 import PoolManager, Retry, Timeout

    http = PoolManager(
        timeout=Timeout(connect=10, read=60),
        retries=Retry(total=3, backoff_factor=0.5, status_forcelist=[500, 502, 503, 504]),
    )
    return MinioAdmin(
        endpoint=f"{config.minio_host}:{config.minio_port}",
        credentials=StaticProvider(root.access_key, root.secret_key),
        region=config.s3_region,
        secure=False,
        http_client=http,
    )


def object_store_policies(config: StackConfig) -> dict[str, dict[str, object]]:
    """MinIO policy documents by name: the pipeline's two buckets, and Trino's read-mostly lake bucket."""
    return {
        PIPELINE_POLICY: pipeline_policy(config.lake_bucket, config.landing_bucket),
        TRINO_POLICY: trino_policy(config.lake_bucket, METASTORE_PREFIX),
    }


def create_users(config: StackConfig, credentials: StackCredentials) -> dict[str, str]:
    """The pipeline's and Trino's MinIO users, each with exactly its own policy; returns access key -> policy.

    Re-running updates both policies, each user's secret (a rotated secret takes effect) and their mappings.
    """
    from minio.error import MinioAdminException

    admin = minio_admin(config, credentials.root)
    users = {credentials.pipeline: PIPELINE_POLICY, credentials.trino: TRINO_POLICY}
    try:
        for name, document in object_store_policies(config).items():
            admin.policy_add(name, policy=document)
        for user, policy in users.items():
            admin.user_add(user.access_key, user.secret_key)
            admin.policy_set(policy, user=user.access_key)
    except MinioAdminException as error:
        raise StackError(
            f"MinIO's admin API at {config.s3_endpoint} refused to create the pipeline's and Trino's users: "
            f"{error}. Check that {config.secrets_file} holds MinIO's root user and logs/minio.log"
        ) from error
    return {user.access_key: policy for user, policy in users.items()}


def provision_object_store(config: StackConfig, credentials: StackCredentials) -> list[str]:
    """Buckets, the landing notification and the least-privilege users, all as the root user; returns buckets."""
    buckets = create_buckets(config, credentials.root)
    create_users(config, credentials)
    return buckets
