"""The exporter's metrics against a lakehouse and a Dagster instance built here: names, labels and values."""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from satlake.ops import dagster_metrics, names
from satlake.ops.exporter import build_exporter
from satlake.resources import build_resources
from satlake.resources.event_log import OutgoingRecord
from satlake.resources.run_metrics import RunMetrics, pushed_metrics_dir
from satlake.settings import Settings
from satlake.telemetry.bronze_update import update_bronze
from satlake.telemetry.codec import TelemetryReading, encode_event
from satlake.telemetry.ingest import ingest_until_caught_up
from satlake.telemetry.tables import BRONZE_TELEMETRY, BRONZE_TELEMETRY_REJECTS
from tests.unit.ops.metrics_helpers import labels_of, scrape, value

TOPIC = "satlake.telemetry"
# The labels of the two checks below (both of the default severity, ERROR).
PRESENT = {"asset": "tiny_table", "check": "rows_present", "check_severity": "ERROR"}
RECONCILE = {"asset": "tiny_table", "check": "rows_reconcile", "check_severity": "ERROR"}
GOOD_EVENTS = 40
BAD_PAYLOADS = [b"not a flatbuffer", b"\x00\x01", b"garbage garbage garbage"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"SATLAKE_ROOT": str(tmp_path / "root"), "SATLAKE_TELEMETRY_PARTITIONS": "4"})


def publish(settings: Settings, now_ns: int) -> None:
    log = build_resources(settings).event_log
    log.create_topic(TOPIC, 4)
    readings = [
        TelemetryReading(f"SAT-{i % 3:03d}", now_ns - (GOOD_EVENTS - i) * 10**9, 20.0, 50.0, 550.0, 0.1, 0.2, 0.3)
        for i in range(GOOD_EVENTS)
    ]
    records = [OutgoingRecord(encode_event(r), key=r.satellite_name.encode()) for r in readings]
    records += [OutgoingRecord(payload, key=b"SAT-BAD") for payload in BAD_PAYLOADS]
    log.append(TOPIC, records)


@dg.asset
def tiny_table() -> int:
    return 1


@dg.asset_check(asset=tiny_table)
def rows_present() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.asset_check(asset=tiny_table)
def rows_reconcile() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, description="made to fail")


@dg.op
def broken_step() -> None:
    raise RuntimeError("made to fail")


@dg.job
def broken_job() -> None:
    broken_step()


def test_lag_consumed_and_rejects_follow_the_lakehouse(settings: Settings) -> None:
    now = datetime.now(UTC)
    publish(settings, time.time_ns())
    exporter = build_exporter(settings, dg.DagsterInstance.ephemeral(), now=lambda: now)

    before = scrape(exporter)
    lags = {
        labels["partition"]: value(before, "satlake_consumer_lag", **labels)
        for labels in labels_of(before, "satlake_consumer_lag")
    }
    assert sorted(lags) == ["0", "1", "2", "3"]
    assert sum(lags.values()) == GOOD_EVENTS + len(BAD_PAYLOADS)
    assert value(before, "satlake_events_consumed_total", topic=TOPIC) == 0

    resources = build_resources(settings)
    ingest_until_caught_up(resources.event_log, resources.lakehouse, TOPIC)
    today = now.date()
    update_bronze(resources.lakehouse, today, today, say=lambda _message: None)

    after = scrape(exporter)
    for partition in lags:
        assert value(after, "satlake_consumer_lag", topic=TOPIC, partition=partition) == 0
    assert value(after, "satlake_events_consumed_total", topic=TOPIC) == GOOD_EVENTS + len(BAD_PAYLOADS)
    rejects = resources.lakehouse.read(BRONZE_TELEMETRY_REJECTS, columns=["topic"])
    assert rejects is not None and rejects.num_rows == len(BAD_PAYLOADS)
    assert value(after, "satlake_events_rejected_total", topic=TOPIC) == rejects.num_rows
    assert value(after, "satlake_exporter_scrape_errors_total") == 0
    served = {name for name, _labels in after if not name.endswith("_created")}
    assert served <= names.all_exposed_series(), served - names.all_exposed_series()


def test_bytes_and_partition_age_are_read_from_the_delta_tables(settings: Settings) -> None:
    now = datetime.now(UTC).replace(hour=15, minute=30, second=0, microsecond=0)
    publish(settings, time.time_ns())
    resources = build_resources(settings)
    ingest_until_caught_up(resources.event_log, resources.lakehouse, TOPIC)
    newest = datetime.now(UTC).date()
    update_bronze(resources.lakehouse, newest, newest, say=lambda _message: None)
    samples = scrape(build_exporter(settings, dg.DagsterInstance.ephemeral(), now=lambda: now))

    bronze = resources.lakehouse.open(BRONZE_TELEMETRY)
    assert bronze is not None
    on_disk = sum(
        (Path(resources.lakehouse.uri(BRONZE_TELEMETRY)) / name).stat().st_size for name in bronze.file_uris()
    )
    assert value(samples, "satlake_bytes_written_total", table="bronze/telemetry") == on_disk
    expected_age = (now - datetime(newest.year, newest.month, newest.day, tzinfo=UTC)).total_seconds()
    assert value(samples, "satlake_partition_age_seconds", asset="bronze/telemetry") == expected_age
    assert {"asset": "raw/telemetry_events"} in labels_of(samples, "satlake_partition_age_seconds")
    assert value(samples, "satlake_scenes_total", outcome="landed") == 0


def test_runs_and_checks_come_from_the_dagster_instance(settings: Settings) -> None:
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([tiny_table, rows_present, rows_reconcile], instance=instance, raise_on_error=False).success
    assert dg.materialize([tiny_table, rows_present, rows_reconcile], instance=instance, raise_on_error=False).success
    assert not broken_job.execute_in_process(instance=instance, raise_on_error=False).success
    samples = scrape(build_exporter(settings, instance))

    assert value(samples, "satlake_runs_total", job="__ephemeral_asset_job__", status="SUCCESS") == 2
    assert value(samples, "satlake_runs_total", job="broken_job", status="FAILURE") == 1
    assert value(samples, "satlake_run_duration_seconds_count", job="__ephemeral_asset_job__") == 2
    assert value(samples, "satlake_run_duration_seconds_bucket", job="broken_job", le="+Inf") == 1
    assert value(samples, "satlake_check_passed", **PRESENT) == 1
    assert value(samples, "satlake_check_passed", **RECONCILE) == 0
    assert value(samples, "satlake_check_failures_total", **RECONCILE) == 2
    assert value(samples, "satlake_check_failures_total", **PRESENT) == 0


def test_pushed_run_metrics_are_served_with_their_source(settings: Settings) -> None:
    run = RunMetrics(pushed_metrics_dir(settings), "ingest")
    for seconds in (0.02, 0.3, 4.0):
        run.batch_seconds.observe(seconds)
    run.commit_seconds.observe(0.04)
    run.push()
    samples = scrape(build_exporter(settings, dg.DagsterInstance.ephemeral()))

    assert value(samples, "satlake_ingest_batch_seconds_count", source="ingest") == 3
    assert value(samples, "satlake_ingest_batch_seconds_bucket", source="ingest", le="0.5") == 2
    assert value(samples, "satlake_delta_commit_seconds_sum", source="ingest") == pytest.approx(0.04)


def test_ingestion_pushes_one_observation_per_committed_batch(settings: Settings) -> None:
    publish(settings, time.time_ns())
    resources = build_resources(settings)
    run = RunMetrics(pushed_metrics_dir(settings), "ingest")
    report = ingest_until_caught_up(
        resources.event_log, resources.lakehouse, TOPIC, batch_size=8, progress=run.batch_committed
    )
    assert run.path.is_file()  # pushed during the run, not only at its end
    run.push()
    samples = scrape(build_exporter(settings, dg.DagsterInstance.ephemeral()))
    assert len(report.batches) > 1
    assert value(samples, "satlake_ingest_batch_seconds_count", source="ingest") == len(report.batches)
    assert value(samples, "satlake_delta_commit_seconds_count", source="ingest") == len(report.batches)
    commit_sum = value(samples, "satlake_delta_commit_seconds_sum", source="ingest")
    assert 0 < commit_sum <= report.seconds  # each commit measured on its own, inside the run's time


def test_a_source_that_fails_is_counted_and_hides_nothing_else(settings: Settings) -> None:
    # A pushed file that is not exposition text: counted, and the other file and sources are still served.
    exporter = build_exporter(settings, dg.DagsterInstance.ephemeral())
    RunMetrics(pushed_metrics_dir(settings), "ingest").push()
    (pushed_metrics_dir(settings) / "broken.prom").write_text("this is { not exposition text\n")
    samples = scrape(exporter)
    assert value(samples, "satlake_exporter_scrape_errors_total") == 1
    assert value(samples, "satlake_scenes_total", outcome="quarantined") == 0
    assert value(samples, "satlake_ingest_batch_seconds_count", source="ingest") == 0


def test_run_and_check_counters_only_grow_and_read_each_event_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExitStack() as stack:
        counters_only_grow(settings, monkeypatch, stack)


def counters_only_grow(settings: Settings, monkeypatch: pytest.MonkeyPatch, stack: ExitStack) -> None:
    # Pages of two events: a history longer than a page is read in full, and later scrapes add only what is new.
    # An on-disk instance, as `satlake run` and the daemon use: its SQLite event log keeps one database per run.
    monkeypatch.setattr(dagster_metrics, "PAGE_SIZE", 2)
    instance = stack.enter_context(dg.instance_for_test())
    assert instance.event_log_storage.is_run_sharded
    exporter = build_exporter(settings, instance)
    for _ in range(3):
        dg.materialize([tiny_table, rows_present, rows_reconcile], instance=instance, raise_on_error=False)
    first = scrape(exporter)
    assert value(first, "satlake_runs_total", job="__ephemeral_asset_job__", status="SUCCESS") == 3
    assert value(first, "satlake_check_failures_total", **RECONCILE) == 3
    assert without_created(scrape(exporter)) == without_created(first)  # nothing new: nothing counted twice

    for _ in range(2):
        broken_job.execute_in_process(instance=instance, raise_on_error=False)
    dg.materialize([tiny_table, rows_present, rows_reconcile], instance=instance, raise_on_error=False)
    later = scrape(exporter)
    assert value(later, "satlake_runs_total", job="__ephemeral_asset_job__", status="SUCCESS") == 4
    assert value(later, "satlake_runs_total", job="broken_job", status="FAILURE") == 2
    assert value(later, "satlake_run_duration_seconds_count", job="__ephemeral_asset_job__") == 4
    assert value(later, "satlake_check_failures_total", **RECONCILE) == 4
    # A new exporter on the same instance reads the whole history again and agrees.
    assert without_created(scrape(build_exporter(settings, instance))) == without_created(later)


def without_created(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[object, float]:
    """The samples but the ``_created`` timestamps (when each exporter started counting)."""
    return {key: sample for key, sample in samples.items() if not key[0].endswith("_created")}


def test_table_metrics_are_served_from_the_last_reading_and_read_again_in_the_background(tmp_path: Path) -> None:
    import threading

    from satlake.ops.lakehouse_metrics import LakehouseCollector
    from satlake.resources.lakehouse import Lakehouse
    from satlake.resources.local_event_log import LocalEventLog

    collector = LakehouseCollector(Lakehouse(root_uri=str(tmp_path / "lake")), LocalEventLog(tmp_path / "log"), [],
                                   lambda *_: None, table_refresh_s=3600)  # fmt: skip
    reads = []
    read_tables = collector._read_tables
    collector._read_tables = lambda: reads.append(threading.current_thread().name) or read_tables()  # type: ignore[method-assign]
    list(collector._tables())
    list(collector._tables())
    assert reads == ["MainThread"]  # the first scrape reads; the next one is served from that reading
    collector.table_refresh_s = 0
    list(collector._tables())
    deadline = time.monotonic() + 10
    while len(reads) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reads == ["MainThread", "satlake-table-metrics"]  # stale: read again, off the scrape's thread
