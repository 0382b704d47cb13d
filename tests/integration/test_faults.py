"""Faults against the real servers: ingestion SIGKILLed at random points under load, MinIO killed mid-write of a
Delta commit, of a COG and of the static catalog, the Kafka broker stopped and restarted mid-ingestion, and
Trino restarted during a query. After recovery, the lakehouse holds exactly the events produced (count and
checksum over satellite, timestamp and payload), and no table or catalog references a missing or partial object.

These tests stop and restart the session's servers (one at a time, data kept) and leave each server healthy
when they end, even when they fail. Each prints its figures (``[fault figures] ...``); docs/reliability.md
copies them from ``SATLAKE_FAULTS_REPORT=bench/results/faults.json python3 -m pytest tests/integration/test_faults.py``.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from deltalake.exceptions import CommitFailedError

from satlake.resources import SatlakeResources, build_resources
from satlake.resources.event_log import OutgoingRecord
from satlake.resources.object_store import build_scene_stores
from satlake.resources.trino import TrinoLake, TrinoLakeError
from satlake.scenes.assets import SCENE_PARTITIONS
from satlake.scenes.synthetic import make_synthetic_scenes
from satlake.settings import Settings
from satlake.stack.lifecycle import stop_server
from satlake.telemetry.ingest import committed_offsets, ingest_until_caught_up
from satlake.telemetry.producer import publish_records
from satlake.telemetry.tables import RAW_TELEMETRY_EVENTS
from tests.integration.fault_helpers import (
    EventAccount,
    QueryInThread,
    SceneUnderFault,
    account_events,
    batches_in_lake,
    delta_file_problems,
    first_records,
    ingestion_process,
    left_running,
    process_environment,
    report_figures,
    restart,
    short_error,
    start_load,
    step_failures,
    telemetry_topic,
    trino_positions,
)
from tests.integration.fault_processes import load_start_ns
from tests.integration.fault_proxy import FaultMoment, FaultPlan, MinioFaultProxy, ReportingProcess

pytestmark = pytest.mark.integration

KILL_SEED = 20240611
KILL_BATCHES = 20
KILL_MIN_KILLS = 8
KILL_LOAD_EVENTS_PER_S = 400
KILL_BATCH_SIZE = 250
COMMIT_FAULT_EVENTS = 3000
COMMIT_FAULT_BATCH_SIZE = 1000
SCENE_DATE = datetime(2024, 5, 2, 10, 0, tzinfo=UTC)
SCENE_SIZE = 256
BROKER_LOAD_EVENTS_PER_S = 400
BROKER_BATCH_SIZE = 500
BROKER_DOWN_MAX_S = 45
TRINO_FAULT_EVENTS = 2000


def assert_exactly_the_produced_events(
    settings: Settings, resources: SatlakeResources, produced: list[OutgoingRecord]
) -> EventAccount:
    """The topic's rows in raw/telemetry_events are the produced events, each once (by delta-rs and by Trino)."""
    topic = settings.telemetry_topic
    account = account_events(resources.lakehouse, topic, produced)
    assert account.lost == 0 and account.duplicated == 0, account
    assert account.produced == account.in_lake == account.distinct_log_positions == len(produced), account
    assert account.produced_checksum == account.lake_checksum
    assert trino_positions(settings, topic) == (len(produced), len(produced))
    return account


# --- ingestion killed -----------------------------------------------------------------------------------------


def test_ingestion_sigkilled_at_random_points_under_load_loses_and_duplicates_nothing(
    stack: Settings, tmp_path: Path
) -> None:
    """A producer keeps publishing while an ingestion process is SIGKILLed at seeded-random moments (two or three
    whole batches, then a random part of a batch's time into the next one: reading Kafka, writing Parquet,
    committing, or registering in Trino) and started again, at least 8 times and until 20 batches have been
    committed; then one last run catches up. The raw table then holds every produced event exactly once."""
    settings, resources = telemetry_topic(stack, tmp_path, "kill")
    rng = np.random.default_rng(KILL_SEED)
    kills: list[dict[str, float]] = []
    batch_seconds: list[float] = []  # between two commits of one process: its first batch also starts it up
    committed = 0  # batches in the lake
    load = start_load(settings, KILL_LOAD_EVENTS_PER_S)
    try:
        while committed < KILL_BATCHES or len(kills) < KILL_MIN_KILLS:
            with ingestion_process(settings, KILL_BATCH_SIZE) as worker:
                worker.wait_for("ready", timeout_s=60)
                whole_batches = int(rng.integers(2, 4))
                worker.wait_for("committed", timeout_s=120)
                last = time.monotonic()
                for _ in range(whole_batches - 1):
                    worker.wait_for("committed", timeout_s=120)
                    batch_seconds.append(time.monotonic() - last)
                    last = time.monotonic()
                # Squared: a batch commits early in its time (registering the table in Trino comes after), so
                # this spreads the kills over both sides of the commit.
                fraction = float(rng.random()) ** 2
                time.sleep(fraction * statistics.median(batch_seconds))
                assert worker.process is not None
                os.kill(worker.process.pid, signal.SIGKILL)
                assert worker.process.wait(timeout=30) == -signal.SIGKILL
                # Commits reported between the last wait and the kill: read the dead process's output to its end.
                worker.wait_for("exited", timeout_s=30)
                late = [report for report in worker.drain() if report["event"] == "committed"]
            reported = whole_batches + len(late)
            in_lake = batches_in_lake(resources.lakehouse, settings.telemetry_topic)
            # A batch in the lake that its process did not live to report: the kill came after its commit.
            kills.append({"after_batches": reported, "into_next_batch": round(fraction, 2),
                          "next_batch_committed": in_lake > committed + reported})  # fmt: skip
            committed = in_lake
    finally:
        produced, seconds = load.stop()

    batches_before_final_run = batches_in_lake(resources.lakehouse, settings.telemetry_topic)
    final = ingest_until_caught_up(resources.event_log, resources.lakehouse, settings.telemetry_topic, 100_000)
    account = assert_exactly_the_produced_events(settings, resources, load.produced_records(produced))
    assert batches_before_final_run >= KILL_BATCHES
    report_figures(
        "ingestion_sigkilled",
        kills=len(kills),
        kills_after_the_commit_before_the_report=sum(kill["next_batch_committed"] for kill in kills),
        batches_committed_by_killed_processes=batches_before_final_run,
        batch_size=KILL_BATCH_SIZE,
        median_batch_seconds=round(statistics.median(batch_seconds), 2),
        events_per_s=round(produced / seconds),
        final_run_events=final.events,
        kill_points=kills,
        **account.figures(),
    )


# --- MinIO killed mid-write -----------------------------------------------------------------------------------


def commit_trigger(stack: Settings) -> str:
    """The PUT of a new commit file of raw/telemetry_events (not of a checkpoint)."""
    return rf"^PUT /{stack.lake_bucket}/lake/raw/telemetry_events/_delta_log/\d{{20}}\.json "


def raw_table_version(resources: SatlakeResources) -> int:
    """The current version of raw/telemetry_events (-1 before its first commit)."""
    table = resources.lakehouse.open(RAW_TELEMETRY_EVENTS)
    return -1 if table is None else table.version()


def faulted_version(fired: dict[str, str]) -> int:
    """The table version whose commit file the proxy's fault hit."""
    match = re.search(r"/(\d{20})\.json ", fired["request_line"])
    assert match is not None, fired
    return int(match.group(1))


def committed_rows_and_offsets(resources: SatlakeResources, topic: str) -> tuple[int, int]:
    """(rows of ``topic`` in raw/telemetry_events, offsets recorded as consumed from it): equal when every batch
    was committed together with its offsets."""
    rows = resources.lakehouse.read(RAW_TELEMETRY_EVENTS, filters=[("topic", "=", topic)], columns=["offset"])
    offsets = committed_offsets(resources.lakehouse, topic, resources.event_log.partitions(topic))
    return (rows.num_rows if rows is not None else 0), sum(offsets.values())


@pytest.mark.parametrize("moment", ["mid_body", "after_response"])
def test_minio_killed_mid_delta_commit_then_a_rerun_ingests_every_event_once(
    stack: Settings, tmp_path: Path, moment: FaultMoment
) -> None:
    """MinIO is SIGKILLed while it receives the commit file of an ingestion batch (``mid_body``: half of it has
    arrived) or right after it stored the commit, before the writer hears back (``after_response``). The run
    fails with an error naming the commit file and the refused connection; the table holds the faulted batch
    exactly when MinIO stored its commit (the batches the run committed before it are whole), its rows and
    recorded offsets agree, and every file it references exists. After MinIO is restarted, a rerun leaves every
    event in the lake exactly once."""
    settings, resources = telemetry_topic(stack, tmp_path, f"commit-{moment.replace('_', '-')}")
    topic = settings.telemetry_topic
    records = first_records(load_start_ns(), COMMIT_FAULT_EVENTS)
    publish_records(resources.event_log, topic, records)
    plan = FaultPlan(trigger=commit_trigger(stack), moment=moment)
    version_before = raw_table_version(resources)
    with left_running(stack, "minio"):
        with MinioFaultProxy(stack.s3_endpoint, plan, process_environment(stack)) as proxy:
            through_proxy = build_resources(settings.with_overrides(s3_endpoint=proxy.endpoint))
            with pytest.raises(Exception) as failure:
                ingest_until_caught_up(through_proxy.event_log, through_proxy.lakehouse, topic, COMMIT_FAULT_BATCH_SIZE)
            fired = proxy.wait_for("fired", timeout_s=30)
        restart_seconds = restart(stack, "minio")
    error = str(failure.value)
    assert "_delta_log/" in error and "Connection refused" in error, error

    # The fault hits the first commit the proxy sees; a run that creates the table commits its first batch
    # before that (its first commit file was never seen by the trigger in our runs).
    faulted = faulted_version(fired)
    version_after = raw_table_version(resources)
    assert version_after == (faulted if moment == "after_response" else faulted - 1), (fired, version_after)
    rows, offsets = committed_rows_and_offsets(resources, topic)
    assert rows == offsets == COMMIT_FAULT_BATCH_SIZE * (version_after - version_before)
    lake_store = build_scene_stores(settings).lake
    assert delta_file_problems(resources.lakehouse, lake_store, RAW_TELEMETRY_EVENTS) == []

    ingest_until_caught_up(resources.event_log, resources.lakehouse, topic, COMMIT_FAULT_BATCH_SIZE)
    account = assert_exactly_the_produced_events(settings, resources, records)
    report_figures(
        f"minio_killed_{moment}_of_delta_commit",
        request=fired["request_line"],
        commit_bytes_received_by_minio=fired["body_bytes_received_by_minio"],
        commit_bytes=fired["content_length"],
        events_in_flight=COMMIT_FAULT_BATCH_SIZE,
        committed_by_failed_run=rows,
        minio_restart_seconds=restart_seconds,
        error=short_error(error),
        **account.figures(),
    )


def test_a_lost_commit_answer_fails_the_run_with_an_error_naming_the_table_and_loses_nothing(
    stack: Settings, tmp_path: Path
) -> None:
    """MinIO stores a batch's commit but its answer is lost (the connection drops; MinIO stays up). delta-rs
    retries the PUT, finds the commit file taken and refuses it: the batch is committed exactly once, with its
    offsets, and the run fails with an error that names the table and says a rerun is safe. The rerun leaves
    every event exactly once."""
    settings, resources = telemetry_topic(stack, tmp_path, "commit-answer-lost")
    topic = settings.telemetry_topic
    records = first_records(load_start_ns(), COMMIT_FAULT_EVENTS)
    publish_records(resources.event_log, topic, records)
    plan = FaultPlan(trigger=commit_trigger(stack), moment="after_response", kill_minio=False)
    version_before = raw_table_version(resources)
    with MinioFaultProxy(stack.s3_endpoint, plan, process_environment(stack)) as proxy:
        through_proxy = build_resources(settings.with_overrides(s3_endpoint=proxy.endpoint))
        with pytest.raises(CommitFailedError) as failure:
            ingest_until_caught_up(through_proxy.event_log, through_proxy.lakehouse, topic, COMMIT_FAULT_BATCH_SIZE)
        fired = proxy.wait_for("fired", timeout_s=30)
    error = str(failure.value)
    assert error.startswith(f"{RAW_TELEMETRY_EVENTS}: the commit advancing"), error
    assert "already in the table" in error and "Nothing was duplicated; rerun" in error, error
    version_after = raw_table_version(resources)
    assert version_after == faulted_version(fired), (fired, version_after)
    rows, offsets = committed_rows_and_offsets(resources, topic)
    assert rows == offsets == COMMIT_FAULT_BATCH_SIZE * (version_after - version_before)
    ingest_until_caught_up(resources.event_log, resources.lakehouse, topic, COMMIT_FAULT_BATCH_SIZE)
    account = assert_exactly_the_produced_events(settings, resources, records)
    report_figures("commit_answer_lost", error=short_error(error), committed_by_failed_run=rows, **account.figures())


@pytest.fixture
def scene_under_fault(stack: Settings, tmp_path: Path) -> Iterator[SceneUnderFault]:
    settings = stack.with_overrides(root=tmp_path)
    scene_id = f"faults_{uuid.uuid4().hex[:10]}"
    [path] = make_synthetic_scenes(tmp_path / "source", tiles=1, dates=[SCENE_DATE], size=SCENE_SIZE, seed=3)
    landing_key = f"it-faults/landing/{scene_id}.tif"
    build_scene_stores(settings).lake.put_file(path, landing_key)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SCENE_PARTITIONS.name, [scene_id])
        yield SceneUnderFault(settings, scene_id, landing_key, instance)


def test_minio_killed_mid_cog_and_mid_catalog_write_leaves_only_whole_objects_referenced(
    stack: Settings, scene_under_fault: SceneUnderFault
) -> None:
    """A scene's run with MinIO SIGKILLed halfway through receiving its first COG, then a second run with MinIO
    SIGKILLed halfway through receiving the scene's item of the static STAC catalog; each time MinIO is
    restarted, and a third run completes. Each failed run names the object it could not write and what to
    check; after each, no Delta table, catalog item or static-catalog link references an object that is missing
    or differs from its recorded size and sha256, the half-received object does not exist, and the scene ends
    with exactly one row per table (four COGs)."""
    scene = scene_under_fault
    store = build_scene_stores(scene.settings).lake  # straight to MinIO, for the checks
    bucket = stack.lake_bucket
    faults = [
        ("silver__cogs", rf"^PUT /{bucket}/cogs/\S+/{scene.scene_id}/\S+\.tif "),
        ("catalog__items", rf"^PUT /{bucket}/stac/\S+/{scene.scene_id}/{scene.scene_id}\.json "),
    ]
    figures = []
    for failing_step, trigger in faults:
        plan = FaultPlan(trigger, "mid_body")
        with left_running(stack, "minio"):
            with MinioFaultProxy(stack.s3_endpoint, plan, process_environment(stack)) as proxy:
                result = scene.run(proxy.endpoint)
                fired = proxy.wait_for("fired", timeout_s=5)
            restart_seconds = restart(stack, "minio")
        failures = step_failures(result)
        assert list(failures) == [failing_step], failures
        half_written_key = fired["request_line"].split()[1].removeprefix(f"/{bucket}/")
        user_error = failures[failing_step][1]  # the cause under Dagster's "error occurred while executing"
        assert user_error.startswith(f"satlake.resources.object_store.ObjectStoreError: cannot write s3://{bucket}/")
        assert half_written_key in user_error and "satlake stack status" in user_error
        assert not store.exists(half_written_key)  # MinIO never shows half an object
        assert scene.problems() == []
        figures.append(
            {"step": failing_step, "object": half_written_key, "bytes_received_by_minio":
             fired["body_bytes_received_by_minio"], "object_bytes": fired["content_length"],
             "minio_restart_seconds": restart_seconds, "error": short_error(user_error)}
        )  # fmt: skip

    rerun = scene.run(stack.s3_endpoint)
    assert rerun.success, step_failures(rerun)
    assert scene.problems() == []
    counts = scene.row_counts()
    assert counts == {"raw/scenes": 1, "silver/cogs": 4, "gold/ndvi": 1, "gold/quicklooks": 1, "catalog/items": 1}
    report_figures("minio_killed_mid_cog_and_mid_static_catalog", faults=figures, rows_after_rerun=counts)


# --- Kafka broker stopped -------------------------------------------------------------------------------------


def stop_and_restart_the_broker_under(worker: ReportingProcess, stack: Settings) -> tuple[str | None, float]:
    """Stop the broker once ``worker`` has committed two batches, start it again once the worker has failed
    (or after BROKER_DOWN_MAX_S); (the worker's error, None if it waited instead; seconds the broker was down)."""
    worker.wait_for("ready", timeout_s=60)
    for _ in range(2):
        worker.wait_for("committed", timeout_s=120)
    worker.drain()
    stopped_at = time.monotonic()
    stop_server(stack, "kafka", progress=lambda _message: None)
    try:
        failure: str | None = worker.wait_for("failed", timeout_s=BROKER_DOWN_MAX_S)["error"]
    except AssertionError:
        failure = None  # still waiting for the broker: then it must resume by itself below
    restart(stack, "kafka")
    downtime_s = time.monotonic() - stopped_at
    if failure is None:
        worker.wait_for("committed", timeout_s=120)
    else:
        assert worker.finish() == 1
        assert stack.kafka_bootstrap in failure and "satlake stack status" in failure, failure
    return failure, downtime_s


def test_kafka_broker_stopped_and_restarted_mid_ingestion_loses_and_duplicates_nothing(
    stack: Settings, tmp_path: Path
) -> None:
    """While a producer publishes and an ingestion process commits batch after batch, the broker is stopped,
    then started again. Ingestion fails with an error naming the broker and what to check (or waits and
    resumes); the producer's appends wait for the broker and are delivered once (idempotent producer). After a
    rerun the raw table holds exactly the produced events."""
    settings, resources = telemetry_topic(stack, tmp_path, "broker")
    load = start_load(settings, BROKER_LOAD_EVENTS_PER_S)
    worker = ingestion_process(settings, BROKER_BATCH_SIZE).start()
    try:
        with left_running(stack, "kafka"):
            failure, downtime_s = stop_and_restart_the_broker_under(worker, stack)
        time.sleep(2)  # the load goes on against the restarted broker
    finally:
        worker.finish()
        produced, seconds = load.stop(timeout_s=240)

    final = ingest_until_caught_up(resources.event_log, resources.lakehouse, settings.telemetry_topic, 100_000)
    account = assert_exactly_the_produced_events(settings, resources, load.produced_records(produced))
    report_figures(
        "kafka_broker_stopped",
        broker_down_seconds=round(downtime_s, 1),
        events_per_s=round(produced / seconds),
        batch_size=BROKER_BATCH_SIZE,
        ingestion_outcome="failed" if failure else "waited and resumed",
        error=short_error(failure or ""),
        final_run_events=final.events,
        **account.figures(),
    )


# --- Trino restarted ------------------------------------------------------------------------------------------


def test_trino_restarted_during_a_query_fails_it_clearly_and_answers_again_after_the_restart(
    stack: Settings, tmp_path: Path
) -> None:
    """A long query is running when Trino is stopped: it fails with a TrinoLakeError that names the server and
    what to do, as does a query sent while Trino is down. Once Trino is back, the same client answers with the
    same rows as before (registered tables live in the metastore on MinIO, not in Trino's memory)."""
    settings, resources = telemetry_topic(stack, tmp_path, "trino")
    records = first_records(load_start_ns(), TRINO_FAULT_EVENTS)
    publish_records(resources.event_log, settings.telemetry_topic, records)
    ingest_until_caught_up(resources.event_log, resources.lakehouse, settings.telemetry_topic)
    trino = TrinoLake(settings.trino_host, settings.trino_port, user="admin")
    count_sql = "SELECT count(*) FROM raw.telemetry_events WHERE topic = ?"
    try:
        _, before = trino.query(count_sql, [settings.telemetry_topic])
        assert before == [(TRINO_FAULT_EVENTS,)]
        in_flight = QueryInThread(TrinoLake(settings.trino_host, settings.trino_port, user="admin"))
        in_flight.start_and_wait_until_running(trino)
        with left_running(stack, "trino"):
            stop_server(stack, "trino", progress=lambda _message: None)
            in_flight.join(timeout_s=120)
            with pytest.raises(TrinoLakeError, match="cannot reach Trino") as while_down:
                trino.query(count_sql, [settings.telemetry_topic])
            restart_s = restart(stack, "trino")
        assert isinstance(in_flight.error, TrinoLakeError), in_flight.error
        assert f"{settings.trino_host}:{settings.trino_port}" in str(in_flight.error)
        assert f"{settings.trino_host}:{settings.trino_port}" in str(while_down.value)
        _, after = trino.query(count_sql, [settings.telemetry_topic])
        assert after == before
    finally:
        trino.close()
    report_figures(
        "trino_restarted",
        query_in_flight="cross join of 10^12 rows",
        in_flight_error=short_error(str(in_flight.error)),
        while_down_error=short_error(str(while_down.value)),
        trino_restart_seconds=restart_s,
        rows_before=before[0][0],
        rows_after=after[0][0],
    )
