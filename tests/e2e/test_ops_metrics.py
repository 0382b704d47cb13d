"""The exporter after `satlake demo`: every metric's names, labels and values against the demo's lakehouse and
Dagster instance (lag 0 after catch-up, rejects equal to the rejects table's rows, one gauge per check)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest

from satlake.ops import names
from satlake.ops.exporter import build_exporter
from satlake.resources import build_resources
from satlake.runner import dagster_instance
from satlake.scenes.tables import RAW_SCENES, SCENE_REJECTS
from satlake.settings import Settings
from satlake.telemetry.tables import BRONZE_TELEMETRY_REJECTS, RAW_TELEMETRY_EVENTS
from tests.e2e.test_ui_after_demo import environment
from tests.unit.ops.metrics_helpers import labels_of, scrape, value

pytestmark = pytest.mark.e2e


def test_exporter_after_the_demo_agrees_with_the_lakehouse(
    demo_lakehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(demo_lakehouse / "dagster"))
    settings = Settings.from_env(environment(demo_lakehouse))
    instance = dagster_instance(settings.dagster_home)
    samples = scrape(build_exporter(settings, instance))
    lakehouse = build_resources(settings).lakehouse
    topic = settings.telemetry_topic

    assert value(samples, "satlake_exporter_scrape_errors_total") == 0
    served = {name for name, _labels in samples if not name.endswith("_created")}
    assert served <= names.all_exposed_series()

    lags = labels_of(samples, "satlake_consumer_lag")
    assert [int(labels["partition"]) for labels in lags] == list(range(settings.telemetry_partitions))
    assert all(value(samples, "satlake_consumer_lag", **labels) == 0 for labels in lags)
    raw = lakehouse.read(RAW_TELEMETRY_EVENTS, columns=["topic"])
    rejects = lakehouse.read(BRONZE_TELEMETRY_REJECTS, columns=["topic"])
    assert raw is not None and rejects is not None and rejects.num_rows > 0
    assert value(samples, "satlake_events_consumed_total", topic=topic) == raw.num_rows
    assert value(samples, "satlake_events_rejected_total", topic=topic) == rejects.num_rows

    scenes = lakehouse.read(RAW_SCENES, columns=["scene_id"])
    quarantined = lakehouse.read(SCENE_REJECTS, columns=["scene_id"])
    assert scenes is not None and quarantined is not None
    assert value(samples, "satlake_scenes_total", outcome="landed") == len(pc.unique(scenes.column("scene_id")))
    assert value(samples, "satlake_scenes_total", outcome="quarantined") == len(
        pc.unique(quarantined.column("scene_id"))
    )

    tables = {f"{table.zone}/{table.name}" for table in lakehouse.list_tables()}
    assert {labels["table"] for labels in labels_of(samples, "satlake_bytes_written_total")} == tables
    assert value(samples, "satlake_partition_age_seconds", asset="bronze/telemetry") < 2 * 86400

    checks = labels_of(samples, "satlake_check_passed")
    reconciliation = [c for c in checks if (c["asset"], c["check"]) == ("bronze/telemetry", "row_count_reconciliation")]
    assert [c["check_severity"] for c in reconciliation] == ["ERROR"]  # a blocking check: it pages when it fails
    assert all(value(samples, "satlake_check_passed", **labels) == 1 for labels in checks)  # the demo passes all
    statuses = {labels["status"] for labels in labels_of(samples, "satlake_runs_total")}
    assert statuses == {"SUCCESS"}
