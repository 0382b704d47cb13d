"""The soak in short, on the real Kafka, MinIO and Trino: half a minute of telemetry and scenes through the sensors
and automation conditions, then the verdict of the 30-minute run (bench/soak.py). Only counts and check results are
asserted; growth trends need the long run and timings belong to bench/results/soak.json."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from bench.soak import SoakConfig, run_soak
from satlake.settings import Settings

pytestmark = pytest.mark.integration


def test_a_short_soak_accounts_for_every_event_and_scene_and_keeps_every_check_green(
    stack: Settings, tmp_path: Path
) -> None:
    settings = stack.with_overrides(telemetry_topic=f"it.soak.{uuid.uuid4().hex[:8]}", root=tmp_path / "root")
    config = SoakConfig(
        minutes=0.5, rate=400, satellites=8, scene_interval_s=15, scene_size_px=128, sample_interval_s=10, tick_s=5
    )

    result = run_soak(settings, config, say=print)

    verdict, events, scenes, checks = result["verdict"], result["events"], result["scenes"], result["checks"]
    assert verdict["aborted"] is None and verdict["drained"], verdict["reasons"]
    # Every event produced is in the log, committed, in raw, and in exactly one of bronze or its rejects.
    assert events["produced"] > 0
    assert events["produced"] == events["in_log"] == events["committed"] == events["raw_rows"], events
    assert events["raw_rows"] == events["bronze_rows"] + events["reject_rows"], events
    assert events["reject_rows"] > 0  # the 1 % injected faults were quarantined, not dropped
    assert scenes["landed"] >= 2 and scenes["catalogued"] == scenes["landed"], scenes
    # Every check of every asset ran at least once, and none failed or was left unevaluated.
    assert checks["never_evaluated"] == [] and checks["failed"] == 0, checks["failures"]
    assert checks["planned_never_evaluated"] == 0 and checks["evaluations"] >= checks["check_keys"] > 0
    assert verdict["counts_reconcile"] and verdict["checks_green"] and verdict["passed"], verdict["reasons"]
    # The sampler watched the pipeline process itself, during the load and the drain.
    samples = result["samples"]
    assert {s["phase"] for s in samples} == {"load", "drain"}
    assert all(s["rss_mib"] > 0 and s["open_fds"] > 0 and s["threads"] > 0 for s in samples)
    assert samples[-1]["runs_ok"] > 0 and samples[-1]["runs_failed"] == 0
