"""One state for every way of running, and checks that tell the truth in every case: sensor cursors, run keys
and the automation cursor live in the Dagster instance where the daemon finds them; every bronze check passes
on a rebuild, an incremental update and a run that finds nothing new; partitions start where the data does."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from satlake.instance_state import AUTOMATION_SENSOR_NAME, LOCATION_NAME, SensorStateStore, selector_id
from satlake.partitions import DEFAULT_LOOKBACK_DAYS, START_FILE, daily_partitions, partitions_start
from satlake.resources.event_log import OutgoingRecord
from satlake.runner import run_pending_work
from satlake.settings import Settings
from satlake.telemetry.assets import BRONZE_KEY, REJECTS_KEY
from satlake.telemetry.codec import TelemetryReading, encode_event
from satlake.telemetry.sensors import bronze_telemetry_job
from tests.dagster.conftest import Pipeline

BRONZE_CHECKS = {"keys_not_null_and_unique", "limit_alarms", "row_count_reconciliation", "latest_partition_fresh",
                 "schema_unchanged"}  # fmt: skip


def bronze_checks(pipeline: Pipeline, run_id: str) -> dict[str, tuple[bool, str]]:
    results = {}
    for entry in pipeline.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data  # type: ignore[union-attr]
        if evaluation.asset_key == BRONZE_KEY:
            results[evaluation.check_name] = (evaluation.passed, evaluation.description or "")
    return results


def run_bronze_day(pipeline: Pipeline, day: date) -> tuple[str, dict[str, tuple[bool, str]]]:
    job = pipeline.defs.resolve_job_def(bronze_telemetry_job.name)
    result = job.execute_in_process(instance=pipeline.instance, partition_key=day.isoformat(), raise_on_error=False)
    assert result.success
    checks = bronze_checks(pipeline, result.run_id)
    assert set(checks) == BRONZE_CHECKS
    return result.run_id, checks


def metadata(pipeline: Pipeline, run_id: str) -> dict[str, object]:
    for entry in pipeline.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.dagster_event.event_specific_data.materialization  # type: ignore[union-attr]
        if materialization.asset_key == BRONZE_KEY:
            return {k: v.value for k, v in materialization.metadata.items()}
    raise AssertionError("no bronze materialization")


def test_every_bronze_check_passes_on_a_rebuild_an_incremental_update_and_nothing_new(pipeline: Pipeline) -> None:
    run_pending_work(pipeline.defs, pipeline.instance)  # ingestion, then each day built for the first time
    day = pipeline.days[-1]

    quiet_id, quiet = run_bronze_day(pipeline, day)  # a day built, no new rows: up to date
    assert metadata(pipeline, quiet_id)["mode"] == "up to date"
    assert all(passed for passed, _ in quiet.values()), quiet
    assert "consumed 0 = 0 bronze + 0 rejected" in quiet["row_count_reconciliation"][1]

    now = datetime.now(UTC) - timedelta(minutes=1)
    new = [TelemetryReading("SAT-NEW", int((now - timedelta(seconds=i)).timestamp() * 1e9), 20.0, 10.0 if i == 0
                            else 50.0, 550.0, 0.1, 0.2, 0.3) for i in range(5)]  # fmt: skip
    records = [OutgoingRecord(encode_event(r), key=b"SAT-NEW") for r in new] + [OutgoingRecord(b"junk", key=None)]
    pipeline.resources.event_log.append(pipeline.settings.telemetry_topic, records)
    ingest = pipeline.defs.resolve_job_def("ingest_telemetry_job").execute_in_process(instance=pipeline.instance)
    assert ingest.success
    incremental_id, incremental = run_bronze_day(pipeline, now.date())
    assert metadata(pipeline, incremental_id)["mode"] == "incremental"
    assert all(passed for passed, _ in incremental.values()), incremental
    assert "consumed 6 = 5 bronze + 1 rejected" in incremental["row_count_reconciliation"][1]
    assert "1 warning" in incremental["limit_alarms"][1]  # battery 10 %: kept, with a warning alarm

    tagged = pipeline.defs.resolve_job_def(bronze_telemetry_job.name).execute_in_process(
        instance=pipeline.instance, partition_key=now.date().isoformat(), tags={"satlake/bronze_rebuild": "true"}
    )
    assert metadata(pipeline, tagged.run_id)["mode"] == "rebuild"
    checks = bronze_checks(pipeline, tagged.run_id)
    assert all(passed for passed, _ in checks.values()), checks
    assert metadata(pipeline, tagged.run_id)["raw_events"] > 6  # the whole day, not only the new batch


def test_the_runner_keeps_cursors_and_run_keys_where_the_daemon_finds_them(pipeline: Pipeline) -> None:
    outcomes = run_pending_work(pipeline.defs, pipeline.instance)
    assert outcomes
    store = SensorStateStore(pipeline.instance)
    # The daemon looks a sensor's state up by its selector: location "satlake", repository "__repository__".
    for name in ("bronze_days_sensor", AUTOMATION_SENSOR_NAME):
        state = pipeline.instance.schedule_storage.get_instigator_state("unknown-origin", selector_id(name))
        assert state is not None and state.instigator_data.cursor, name  # type: ignore[union-attr]
        assert state.repository_selector.location_name == LOCATION_NAME
    assert store.automation_cursor() is not None
    bronze_runs = [o for o in outcomes if o.source == "bronze_days_sensor"]
    assert bronze_runs
    run = pipeline.instance.get_run_by_id(bronze_runs[0].run_id)
    assert run is not None and run.tags[SENSOR_NAME_TAG] == "bronze_days_sensor" and run.tags[RUN_KEY_TAG]
    assert store.launched("bronze_days_sensor", run.tags[RUN_KEY_TAG])

    # A second process (another `satlake run`, or the daemon) continues from the stored state: nothing to do.
    assert run_pending_work(pipeline.defs, pipeline.instance) == []


def test_an_older_state_file_moves_into_the_instance_once(pipeline: Pipeline, tmp_path: Path) -> None:
    legacy = tmp_path / "satlake-run-state.json"
    legacy.write_text(json.dumps({"sensor_cursors": {"bronze_days_sensor": "123456", "gone_sensor": "1"},
                                  "run_keys": {}, "automation_cursor": None}))  # fmt: skip
    store = SensorStateStore(pipeline.instance)
    assert store.migrate_state_file(legacy, pipeline.defs)
    assert store.cursor("bronze_days_sensor") == "123456"
    assert not legacy.exists() and legacy.with_name(legacy.name + ".migrated").exists()
    assert not store.migrate_state_file(legacy, pipeline.defs)


def test_automation_runs_by_default_and_can_start_stopped(pipeline: Pipeline) -> None:
    sensors = {s.name: s for s in pipeline.defs.sensors or []}
    assert sensors[AUTOMATION_SENSOR_NAME].default_status == dg.DefaultSensorStatus.RUNNING
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    from satlake.automation import automation_condition_sensor, sensor_default_status

    stopped = Settings.from_env({"SATLAKE_AUTOMATION": "stopped"})
    assert sensor_default_status(stopped) == dg.DefaultSensorStatus.STOPPED
    assert automation_condition_sensor(stopped).default_status == dg.DefaultSensorStatus.STOPPED


def test_partitions_start_where_the_data_does_and_a_later_start_loses_nothing(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    settings = Settings.from_env({"SATLAKE_ROOT": str(tmp_path / "fresh")})
    today = date(2026, 12, 6)
    first = partitions_start(settings, today)
    assert first == today - timedelta(days=DEFAULT_LOOKBACK_DAYS)
    assert (tmp_path / "fresh" / START_FILE).read_text().strip() == first.isoformat()
    assert partitions_start(settings, today + timedelta(days=30)) == first  # recorded: it does not move
    chosen = Settings.from_env({"SATLAKE_ROOT": str(tmp_path / "fresh"), "SATLAKE_PARTITIONS_START": "2025-01-01"})
    assert daily_partitions(chosen).get_first_partition_key() == "2025-01-01"

    # Materialize a day, then move the start past it and back: its materialization is still there.
    run_pending_work(pipeline.defs, pipeline.instance)
    day = pipeline.days[0].isoformat()
    later = daily_partitions(Settings.from_env({"SATLAKE_PARTITIONS_START": pipeline.days[-1].isoformat()}))
    assert day not in later.get_partition_keys()
    event = pipeline.instance.get_latest_materialization_event(BRONZE_KEY)
    assert event is not None
    records = pipeline.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=REJECTS_KEY, asset_partitions=[day]), limit=1
    ).records
    assert records  # the instance keeps the day's materializations whatever the partitions definition shows


def test_a_bad_partitions_start_is_a_clear_error() -> None:
    from satlake.settings import SettingsError

    with pytest.raises(SettingsError, match="SATLAKE_PARTITIONS_START='12/01/2026' is not a day"):
        Settings.from_env({"SATLAKE_PARTITIONS_START": "12/01/2026"})


def test_ingesting_from_an_empty_log_judges_nothing_and_fails_no_check(tmp_path: Path) -> None:
    from satlake.definitions import build_definitions

    settings = Settings.from_env({"SATLAKE_ROOT": str(tmp_path), "SATLAKE_MODE": "embedded"})
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("ingest_telemetry_job").execute_in_process(instance=instance)
        assert result.success
        logs = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        evaluations = [entry.dagster_event.event_specific_data for entry in logs]
    assert [(e.check_name, e.passed) for e in evaluations] == [("schema_unchanged", True)]  # type: ignore[union-attr]
