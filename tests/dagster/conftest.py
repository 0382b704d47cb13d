from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from satlake.definitions import build_definitions
from satlake.resources import SatlakeResources, build_resources
from satlake.settings import Settings
from satlake.telemetry.producer import publish_records, simulate_telemetry


@dataclass
class Pipeline:
    settings: Settings
    resources: SatlakeResources
    defs: dg.Definitions
    instance: dg.DagsterInstance
    days: list[date]
    produced: int


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    """An embedded satlake under tmp_path with two satellites' telemetry over two days in its log."""
    monkeypatch.setenv("SATLAKE_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("SATLAKE_MODE", "embedded")
    settings = Settings.from_env()
    resources = build_resources(settings)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=1, hours=12)
    records = simulate_telemetry(
        satellites=2, start_ns=int(start.timestamp() * 1e9), end_ns=int(end.timestamp() * 1e9),
        interval_s=120, fault_rate=0.05, seed=11,
    )  # fmt: skip
    resources.event_log.create_topic(settings.telemetry_topic, 4)
    produced = publish_records(resources.event_log, settings.telemetry_topic, records)
    days = [start.date() + timedelta(days=i) for i in range((end.date() - start.date()).days + 1)]
    with dg.instance_for_test() as instance:
        yield Pipeline(settings, resources, build_definitions(settings), instance, days, produced)
