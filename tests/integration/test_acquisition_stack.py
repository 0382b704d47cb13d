"""Acquisition in stack mode: a request published on Kafka is read by the request sensor, the downloader reads
the AOI's windows from a local STAC API and lands them in MinIO's landing bucket, MinIO's own bucket
notifications start the scene path, and the AOI's forest-change alert appears in Delta on MinIO."""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import replace
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.partitions.context import partition_loading_context

from satlake.acquisition.aoi import new_aoi
from satlake.acquisition.aoi_table import add_aoi
from satlake.acquisition.demo import DEMO_COLLECTION, DEMO_SEED, DEMO_SIZE, DEMO_TILE_PREFIX, aoi_around_clearing
from satlake.acquisition.request import days_range, new_request, publish_request
from satlake.acquisition.stac_replay import StacReplayServer, replay_items_from_scenes
from satlake.acquisition.tables import ACQUISITION_REQUESTS, ACQUISITIONS, FOREST_CHANGE_ALERTS
from satlake.definitions import build_definitions
from satlake.instance_state import SensorStateStore
from satlake.resources import build_resources
from satlake.resources.kafka_event_log import KafkaEventLog
from satlake.resources.object_store import build_scene_stores
from satlake.runner import run_pending_work
from satlake.scenes.sensors import SensorCursor, object_events_sensor
from satlake.scenes.synthetic import clearing_plan, make_synthetic_scenes
from satlake.settings import Settings

pytestmark = pytest.mark.integration

DEADLINE_S = 240


def test_a_request_on_kafka_lands_windows_in_minio_and_raises_the_aois_alert(stack: Settings, tmp_path: Path) -> None:
    settings = stack.with_overrides(root=tmp_path)
    resources = build_resources(settings)
    assert resources.event_log.__class__ is KafkaEventLog and settings.landing_bucket
    name = f"it-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="satlake-it-stac-") as scratch:
        scenes = [p for p in make_synthetic_scenes(Path(scratch) / "scenes", tiles=1, size=DEMO_SIZE, seed=DEMO_SEED)
                  if p.name.startswith(DEMO_TILE_PREFIX)]  # fmt: skip
        items = replay_items_from_scenes(scenes, Path(scratch) / "stac", "earth-search", DEMO_COLLECTION)
        with StacReplayServer(items, flavour="earth-search", page_size=2) as server:
            aoi, source = new_aoi(
                settings, name, aoi_around_clearing(scenes[0]), created_by="integration test",
                collections=(DEMO_COLLECTION,), cloud_cover_max=50.0, source=server.url, alert_min_ha=1.0,
            )  # fmt: skip
            add_aoi(resources.lakehouse, aoi, source.url)
            # The scene sensor starts at the topic's end: only this test's landings are considered.
            start = SensorCursor(offsets=resources.event_log.end_offsets(settings.object_events_topic)).to_json()
            request = replace(new_request(name, days_range(date(2024, 1, 1), date(2024, 12, 31))), source=server.url)
            publish_request(resources.event_log, settings.acquisition_topic, request)

            defs = build_definitions(settings)
            with dg.instance_for_test() as instance, partition_loading_context(dynamic_partitions_store=instance):
                SensorStateStore(instance).save_cursor(object_events_sensor, start)
                deadline = time.monotonic() + DEADLINE_S
                alerts = None
                while time.monotonic() < deadline:  # MinIO publishes its notifications asynchronously
                    outcomes = run_pending_work(defs, instance)
                    assert all(o.success for o in outcomes), [o.description for o in outcomes if not o.success]
                    alerts = resources.lakehouse.read(FOREST_CHANGE_ALERTS, filters=[("aoi", "=", name)])
                    if alerts is not None and alerts.num_rows:
                        break
                    time.sleep(2)
                else:
                    pytest.fail(f"no forest-change alert for {name} within {DEADLINE_S} s of the request")

    received = resources.lakehouse.read(ACQUISITION_REQUESTS, filters=[("request_id", "=", request.request_id)])
    assert received is not None and received.num_rows == 1
    assert received.column("topic")[0].as_py() == settings.acquisition_topic  # read from Kafka
    rows = resources.lakehouse.read(ACQUISITIONS, filters=[("request_id", "=", request.request_id)]).to_pylist()
    landed = [row for row in rows if row["status"] == "landed"]
    assert len(landed) == len(items) == 4
    assert all(0 < row["bytes_fetched"] < row["source_bytes"] for row in landed)
    landing = build_scene_stores(settings).landing  # MinIO's landing bucket
    for row in landed:
        listed = landing.list(row["landing_prefix"])
        assert sorted(Path(k).name for k in listed) == ["blue.tif", "cloud.tif", "green.tif", "nir.tif", "red.tif",
                                                        "scene.json"]  # fmt: skip
    expected_ha = clearing_plan(DEMO_SIZE, 4).area_ha()
    assert alerts is not None
    assert abs(max(alerts.column("area_ha").to_pylist()) - expected_ha) <= 0.1 * expected_ha
