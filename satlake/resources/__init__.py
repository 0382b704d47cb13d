"""Resources chosen by mode, in one place: assets ask for a lakehouse, an event log, an object store and a
query engine, and never which mode they run in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from satlake.resources.event_log import EventLog
from satlake.resources.lakehouse import Lakehouse, TableRef
from satlake.resources.query import DuckDbLakeQuery, QueryEngine, TrinoQueryEngine
from satlake.settings import Mode, Settings


@dataclass
class SatlakeResources:
    """The objects behind every Dagster resource key of satlake."""

    settings: Settings
    lakehouse: Lakehouse
    event_log: EventLog
    query_engine: QueryEngine

    def as_dagster_resources(self) -> dict[str, object]:
        return {
            "settings": self.settings,
            "lakehouse": self.lakehouse,
            "event_log": self.event_log,
            "query_engine": self.query_engine,
        }


def s3_storage_options(settings: Settings) -> dict[str, str]:
    """delta-rs options for MinIO/S3.

    Concurrent writers must never lose a commit: S3 has no atomic rename, so delta-rs commits the log entry
    with a conditional put (``If-None-Match`` / etag), which MinIO and S3 honour; the second writer of the
    same version gets a conflict and retries on the next version instead of overwriting. This avoids running
    a lock service (DynamoDB) and ``AWS_S3_ALLOW_UNSAFE_RENAME`` (single-writer only) is never set.
    """
    access_key, secret_key = settings.require_s3_credentials()
    return {
        "AWS_ENDPOINT_URL": settings.s3_endpoint,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_REGION": settings.s3_region,
        "AWS_ALLOW_HTTP": "true" if settings.s3_endpoint.startswith("http://") else "false",
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
        "aws_conditional_put": "etag",
    }


def _embedded(settings: Settings) -> SatlakeResources:
    from satlake.resources.local_event_log import LocalEventLog

    lakehouse = Lakehouse(root_uri=str(settings.root / "lake"))
    return SatlakeResources(
        settings=settings,
        lakehouse=lakehouse,
        event_log=LocalEventLog(settings.root / "log", default_partitions=settings.telemetry_partitions),
        query_engine=DuckDbLakeQuery(lakehouse),
    )


def _stack(settings: Settings) -> SatlakeResources:
    from satlake.resources.kafka_event_log import KafkaEventLog
    from satlake.resources.trino import TrinoLake

    trino = TrinoLake(host=settings.trino_host, port=settings.trino_port, user=settings.trino_user)

    registered: set[tuple[TableRef, str]] = set()

    def register_in_trino(table: TableRef, uri: str) -> None:
        # Trino reads the Delta log on every query: a table needs registering once, not after every commit
        # (ingestion commits several times a second).
        if (table, uri) in registered:
            return
        trino.ensure_schema(table.zone, uri.rsplit("/", 1)[0])
        trino.register_table(table.zone, table.name, uri)
        registered.add((table, uri))

    lakehouse = Lakehouse(
        root_uri=f"s3://{settings.lake_bucket}/lake",
        storage_options=s3_storage_options(settings),
        on_table_written=register_in_trino,
    )
    return SatlakeResources(
        settings=settings,
        lakehouse=lakehouse,
        event_log=KafkaEventLog(settings.kafka_bootstrap),
        query_engine=TrinoQueryEngine(trino),
    )


RESOURCE_BUILDERS: dict[Mode, Callable[[Settings], SatlakeResources]] = {
    Mode.EMBEDDED: _embedded,
    Mode.STACK: _stack,
}


def build_resources(settings: Settings) -> SatlakeResources:
    return RESOURCE_BUILDERS[settings.mode](settings)
