"""The telemetry assets materialized in process on the embedded default, asserting the rows users get."""

from __future__ import annotations

import shutil
from datetime import date

import dagster as dg
import pyarrow as pa

from satlake.partitions import DAILY_PARTITIONS
from satlake.runner import RANGE_END_TAG, RANGE_START_TAG, run_pending_work
from satlake.telemetry.sensors import ingest_telemetry_job, telemetry_events_sensor
from satlake.telemetry.tables import (
    BRONZE_TELEMETRY,
    BRONZE_TELEMETRY_REJECTS,
    GOLD_TELEMETRY_ANOMALIES,
    GOLD_TELEMETRY_DAILY_HEALTH,
    GOLD_TELEMETRY_HOURLY,
    RAW_TELEMETRY_EVENTS,
    SILVER_TELEMETRY_CLEAN,
)
from tests.dagster.conftest import Pipeline

DAILY_TABLES = [BRONZE_TELEMETRY, BRONZE_TELEMETRY_REJECTS, SILVER_TELEMETRY_CLEAN, GOLD_TELEMETRY_HOURLY,
                GOLD_TELEMETRY_DAILY_HEALTH, GOLD_TELEMETRY_ANOMALIES]  # fmt: skip


def contents(pipeline: Pipeline) -> dict[str, pa.Table]:
    """Every table's rows in a canonical order, without per-run columns (batch ids, receive times)."""
    out = {}
    for table in [RAW_TELEMETRY_EVENTS, *DAILY_TABLES]:
        rows = pipeline.resources.lakehouse.read(table)
        assert rows is not None, f"{table} was not written"
        rows = rows.drop_columns([c for c in ("batch_id", "received_at") if c in rows.column_names])
        out[table.path] = rows.sort_by([(c, "ascending") for c in rows.column_names if c != "payload"])
    return out


def backfill(pipeline: Pipeline, first: date, last: date) -> dg.ExecuteInProcessResult:
    graph = pipeline.defs.resolve_asset_graph()
    daily = [k for k in graph.materializable_asset_keys if graph.get(k).partitions_def == DAILY_PARTITIONS]
    return pipeline.defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=pipeline.instance, asset_selection=daily,
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
    )  # fmt: skip


def test_sensors_and_automation_build_every_table_and_reconcile(pipeline: Pipeline, tmp_path) -> None:
    outcomes = run_pending_work(pipeline.defs, pipeline.instance, tmp_path / "state.json")
    assert outcomes and all(o.success for o in outcomes), [o.description for o in outcomes if not o.success]
    sources = [o.source for o in outcomes]
    assert sources[0] == "telemetry_events_sensor" and "bronze_days_sensor" in sources and "automation" in sources

    lake = pipeline.resources.lakehouse
    raw, bronze, rejects = (lake.read(t) for t in (RAW_TELEMETRY_EVENTS, BRONZE_TELEMETRY, BRONZE_TELEMETRY_REJECTS))
    assert raw.num_rows == pipeline.produced  # type: ignore[union-attr]
    assert bronze.num_rows + rejects.num_rows == raw.num_rows  # type: ignore[union-attr]
    assert 0 < rejects.num_rows < raw.num_rows * 0.15  # type: ignore[union-attr]
    assert set(rejects.column("reason").to_pylist()) and all(rejects.column("reason").to_pylist())  # type: ignore[union-attr]

    clean = lake.read(SILVER_TELEMETRY_CLEAN)
    hourly = lake.read(GOLD_TELEMETRY_HOURLY)
    health = lake.read(GOLD_TELEMETRY_DAILY_HEALTH)
    assert clean.num_rows == bronze.num_rows  # type: ignore[union-attr]
    assert sum(hourly.column("reading_count").to_pylist()) == bronze.num_rows  # type: ignore[union-attr]
    assert set(health.column("satellite_name").to_pylist()) == {"SAT-001", "SAT-002"}  # type: ignore[union-attr]

    # The latest evaluation of every asset check passed (earlier days' freshness may warn while catching up).
    latest: dict[str, bool] = {}
    for run in reversed(pipeline.instance.get_runs()):
        for entry in pipeline.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data  # type: ignore[union-attr]
            latest[f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"] = evaluation.passed
    assert len(latest) >= 10
    assert [name for name, passed in latest.items() if not passed] == []
    # A second pass finds nothing to do.
    assert run_pending_work(pipeline.defs, pipeline.instance, tmp_path / "state.json") == []


def test_ingestion_starts_again_for_events_a_recreated_raw_table_lost(pipeline: Pipeline, tmp_path) -> None:
    state = tmp_path / "state.json"
    run_pending_work(pipeline.defs, pipeline.instance, state)
    lake = pipeline.resources.lakehouse
    shutil.rmtree(lake.uri(RAW_TELEMETRY_EVENTS))  # the lake lost its raw zone; the log still holds the events

    outcomes = run_pending_work(pipeline.defs, pipeline.instance, state)
    assert outcomes[0].source == "telemetry_events_sensor" and outcomes[0].success
    assert lake.read(RAW_TELEMETRY_EVENTS).num_rows == pipeline.produced  # type: ignore[union-attr]


def test_events_sensor_waits_while_an_ingestion_run_is_unfinished(pipeline: Pipeline) -> None:
    def tick() -> dg.SensorResult | dg.SkipReason:
        context = dg.build_sensor_context(
            instance=pipeline.instance, definitions=pipeline.defs, resources=pipeline.defs.resources
        )
        return telemetry_events_sensor(context)

    requested = tick()
    assert isinstance(requested, dg.SensorResult) and len(requested.run_requests or []) == 1
    assert requested.run_requests[0].tags["satlake/pending_events"] == str(pipeline.produced)  # type: ignore[index]

    job = pipeline.defs.resolve_job_def(ingest_telemetry_job.name)
    run = pipeline.instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
    skipped = tick()
    assert isinstance(skipped, dg.SkipReason)
    assert f"waiting for ingestion run {run.run_id[:8]} (started)" in (skipped.skip_message or "")

    pipeline.instance.report_run_failed(run)
    assert isinstance(tick(), dg.SensorResult)  # a failed run leaves the events waiting: the next tick retries


def test_rerunning_partitions_leaves_identical_tables(pipeline: Pipeline, tmp_path) -> None:
    run_pending_work(pipeline.defs, pipeline.instance, tmp_path / "state.json")
    before = contents(pipeline)
    assert backfill(pipeline, pipeline.days[0], pipeline.days[-1]).success
    assert backfill(pipeline, pipeline.days[-1], pipeline.days[-1]).success
    after = contents(pipeline)
    for name, table in before.items():
        assert after[name].num_rows == table.num_rows, f"{name}: row count changed after re-running"
        changed = [c for c in table.column_names if not after[name].column(c).equals(table.column(c))]
        assert changed == [], f"{name}: columns {changed} changed after re-running its partitions"


def test_late_event_lands_in_its_own_day_when_the_partition_reruns(pipeline: Pipeline, tmp_path) -> None:
    from datetime import UTC, datetime, time, timedelta

    from satlake.resources.event_log import OutgoingRecord
    from satlake.telemetry.codec import TelemetryReading, encode_event

    state = tmp_path / "state.json"
    run_pending_work(pipeline.defs, pipeline.instance, state)
    first_day = pipeline.days[0]
    late_time = datetime.combine(first_day, time(23, 59, 59, 123456), tzinfo=UTC)
    if late_time > datetime.now(UTC) - timedelta(minutes=1):
        late_time = datetime.now(UTC) - timedelta(minutes=1)
    late = TelemetryReading("SAT-LATE", int(late_time.timestamp() * 1e9), 21.0, 55.0, 550.0, 0.1, 0.2, 0.3)
    pipeline.resources.event_log.append(
        pipeline.settings.telemetry_topic, [OutgoingRecord(encode_event(late), key=b"SAT-LATE")]
    )
    outcomes = run_pending_work(pipeline.defs, pipeline.instance, state)
    assert any(o.description == f"bronze_telemetry_job [{late_time.date()}]" for o in outcomes)
    bronze = pipeline.resources.lakehouse.read(BRONZE_TELEMETRY, filters=[("satellite_name", "=", "SAT-LATE")])
    assert bronze is not None and bronze.column("event_date").to_pylist() == [late_time.date()]
    clean = pipeline.resources.lakehouse.read(SILVER_TELEMETRY_CLEAN, filters=[("satellite_name", "=", "SAT-LATE")])
    assert clean is not None and clean.num_rows == 1
