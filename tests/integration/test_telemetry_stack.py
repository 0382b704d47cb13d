"""Stack mode end to end on the real servers: telemetry produced to Kafka lands exactly once in Delta on MinIO
and is visible in Trino; a killed ingestion loses and duplicates nothing; access rules hold; every engine reads
the same rows."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from satlake.definitions import build_definitions
from satlake.resources import SatlakeResources, build_resources
from satlake.resources.query import DuckDbLakeQuery
from satlake.resources.trino import TrinoLake, TrinoLakeError
from satlake.runner import run_pending_work
from satlake.settings import Settings, endpoint_environment
from satlake.telemetry.ingest import ingest_until_caught_up
from satlake.telemetry.producer import publish_records, simulate_telemetry
from satlake.telemetry.tables import BRONZE_TELEMETRY, RAW_TELEMETRY_EVENTS

pytestmark = pytest.mark.integration


def settings_environment(settings: Settings) -> dict[str, str]:
    """The environment a separate satlake process needs to reach the same stack and topic."""
    import os

    return {
        **os.environ,
        "SATLAKE_MODE": "stack",
        "SATLAKE_ROOT": str(settings.root),
        **endpoint_environment(settings),
        "SATLAKE_S3_ACCESS_KEY": settings.s3_access_key or "",
        "SATLAKE_S3_SECRET_KEY": settings.s3_secret_key or "",
        "SATLAKE_TELEMETRY_TOPIC": settings.telemetry_topic,
    }


@dataclass
class StackPipeline:
    settings: Settings
    resources: SatlakeResources
    trino: TrinoLake
    produced: int


def produce(resources: SatlakeResources, topic: str, hours: float, seed: int) -> int:
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(hours=hours)
    resources.event_log.create_topic(topic, 4)
    records = simulate_telemetry(
        satellites=3, start_ns=int(start.timestamp() * 1e9), end_ns=int(end.timestamp() * 1e9),
        interval_s=30, fault_rate=0.03, seed=seed,
    )  # fmt: skip
    return publish_records(resources.event_log, topic, records)


@pytest.fixture(scope="module")
def pipeline(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackPipeline]:
    """One telemetry topic of our own, produced to Kafka and run through every asset in stack mode."""
    topic = f"it.telemetry.{uuid.uuid4().hex[:8]}"
    settings = stack.with_overrides(telemetry_topic=topic, root=tmp_path_factory.mktemp("pipeline-root"))
    resources = build_resources(settings)
    produced = produce(resources, topic, hours=30, seed=5)
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        outcomes = run_pending_work(defs, instance, settings.root / "state.json")
        assert outcomes and all(o.success for o in outcomes), [o.description for o in outcomes if not o.success]
    trino = TrinoLake(settings.trino_host, settings.trino_port, user="admin")
    yield StackPipeline(settings, resources, trino, produced)
    trino.close()
    resources.event_log.close()


def test_produced_events_appear_in_trino_exactly_once(pipeline: StackPipeline) -> None:
    topic = pipeline.settings.telemetry_topic
    _, rows = pipeline.trino.query(
        'SELECT count(*), count(DISTINCT (partition, "offset")) FROM raw.telemetry_events WHERE topic = ?', [topic]
    )
    assert rows[0] == (pipeline.produced, pipeline.produced)
    _, bronze = pipeline.trino.query("SELECT count(*) FROM bronze.telemetry WHERE topic = ?", [topic])
    _, rejects = pipeline.trino.query("SELECT count(*) FROM bronze.telemetry_rejects WHERE topic = ?", [topic])
    assert bronze[0][0] + rejects[0][0] == pipeline.produced and rejects[0][0] > 0
    _, curated = pipeline.trino.query("SELECT sum(reading_count) FROM gold.telemetry_hourly")
    assert curated[0][0] >= bronze[0][0]


def test_every_engine_reads_the_same_rows(pipeline: StackPipeline) -> None:
    topic = pipeline.settings.telemetry_topic
    sql = (
        'SELECT satellite_name, timestamp_ns, temp_c, battery_charge_pct, "offset" FROM bronze.telemetry '
        "WHERE topic = ? ORDER BY satellite_name, timestamp_ns"
    )
    _, through_trino = pipeline.trino.query(sql, [topic])
    through_duckdb = DuckDbLakeQuery(pipeline.resources.lakehouse).query(sql, [topic]).rows
    lake = pipeline.resources.lakehouse
    table = DeltaTable(lake.uri(BRONZE_TELEMETRY), storage_options=lake.storage_options).to_pyarrow_table()
    table = table.filter(table.column("topic").to_numpy(zero_copy_only=False) == topic)
    columns = ["satellite_name", "timestamp_ns", "temp_c", "battery_charge_pct", "offset"]
    through_delta_rs = sorted(zip(*(table.column(c).to_pylist() for c in columns), strict=True))
    assert len(through_trino) > 1000
    assert [tuple(r) for r in through_trino] == [tuple(r) for r in through_duckdb] == through_delta_rs


def test_science_is_denied_telemetry_with_trinos_error(pipeline: StackPipeline) -> None:
    with pytest.raises(TrinoLakeError, match="Access Denied"):
        pipeline.trino.query("SELECT count(*) FROM bronze.telemetry", user="science")
    _, rows = pipeline.trino.query("SELECT count(*) FROM bronze.telemetry", user="ops")
    assert rows[0][0] > 0


KILL_INGESTION = textwrap.dedent(
    """
    import os, signal, sys, time
    import satlake.telemetry.ingest as ingest
    from satlake.resources import build_resources
    from satlake.settings import Settings

    settings = Settings.from_env()
    resources = build_resources(settings)
    lakehouse = resources.lakehouse
    def die(*_args):
        os.kill(os.getpid(), signal.SIGKILL)
    if sys.argv[1] == "after_commit":  # the Delta commit is written, the run has not finished
        registered = lakehouse.on_table_written
        def register_then_die(table, uri):
            registered(table, uri)
            die()
        lakehouse.on_table_written = register_then_die
    else:  # mid-batch: the first batch committed, the second consumed from Kafka, its commit never written
        build_rows = ingest.raw_event_rows
        batches = []
        partitions = resources.event_log.partitions(settings.telemetry_topic)
        def rows_then_die(records, batch_id, received_at):
            batches.append(batch_id)
            if len(batches) == 2:
                # The first batch commits on a background thread while this one is read: wait for it.
                while not any(ingest.committed_offsets(lakehouse, settings.telemetry_topic, partitions).values()):
                    time.sleep(0.05)
                die()
            return build_rows(records, batch_id, received_at)
        ingest.raw_event_rows = rows_then_die
    ingest.ingest_until_caught_up(resources.event_log, lakehouse, settings.telemetry_topic, batch_size=500)
    """
)


@pytest.mark.parametrize("when", ["after_commit", "mid_batch"])
def test_killed_ingestion_then_rerun_neither_loses_nor_duplicates(stack: Settings, tmp_path: Path, when: str) -> None:
    topic = f"it.kill.{uuid.uuid4().hex[:8]}"
    settings = stack.with_overrides(telemetry_topic=topic, root=tmp_path)
    resources = build_resources(settings)
    produced = produce(resources, topic, hours=2, seed=9)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_INGESTION, when], env=settings_environment(settings), timeout=300, check=False
    )
    assert killed.returncode == -9
    lake = resources.lakehouse
    raw = lake.read(RAW_TELEMETRY_EVENTS, filters=[("topic", "=", topic)], columns=["partition", "offset"])
    assert raw is not None and 0 < raw.num_rows < produced
    ingest_until_caught_up(resources.event_log, lake, topic, batch_size=500)
    trino = TrinoLake(settings.trino_host, settings.trino_port, user="admin")
    try:
        _, rows = trino.query(
            'SELECT count(*), count(DISTINCT (partition, "offset")) FROM raw.telemetry_events WHERE topic = ?',
            [topic],
        )
    finally:
        trino.close()
    assert rows[0] == (produced, produced)
