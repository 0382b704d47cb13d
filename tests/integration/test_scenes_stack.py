"""Scenes in stack mode: a Landsat scene uploaded to MinIO with an ordinary S3 client is announced by MinIO's
own bucket notification on Kafka, processed by the sensor, and catalogued in Delta on MinIO, where Trino's
`science` role can search it with the same SQL `satlake search` runs."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import dagster as dg
import pytest
from botocore.config import Config

from satlake.catalog.search import SearchQuery, search_sql
from satlake.definitions import build_definitions
from satlake.instance_state import SensorStateStore
from satlake.resources.kafka_event_log import KafkaEventLog
from satlake.resources.trino import TrinoLake, TrinoLakeError
from satlake.runner import run_pending_work
from satlake.scenes.sensors import SensorCursor, object_events_sensor
from satlake.settings import Settings

pytestmark = pytest.mark.integration

LANDSAT = Path(__file__).resolve().parents[3] / "shared" / "data" / "landsat8"


def test_landsat_uploaded_to_minio_is_catalogued_and_searchable_in_trino(stack: Settings, tmp_path: Path) -> None:
    scene_dirs = [p for p in LANDSAT.glob("*") if p.is_dir()]
    if not scene_dirs:
        pytest.skip(f"the Landsat fixture is not at {LANDSAT} (shared/ must sit beside the repository)")
    settings = stack.with_overrides(root=tmp_path)
    s3 = boto3.client(
        "s3", endpoint_url=settings.s3_endpoint, aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key, region_name=settings.s3_region,
        config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip
    # Start the scene sensor at the topic's end, so only this test's upload is considered.
    log = KafkaEventLog(settings.kafka_bootstrap)
    start = SensorCursor(offsets=log.end_offsets(settings.object_events_topic)).to_json()
    log.close()
    for path in sorted(scene_dirs[0].iterdir()):
        s3.upload_file(str(path), settings.landing_bucket, f"it-{int(time.time())}/{path.name}")

    defs = build_definitions(settings)
    scene_id = scene_dirs[0].name
    with dg.instance_for_test() as instance:
        SensorStateStore(instance).save_cursor(object_events_sensor, start)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # MinIO publishes its notifications asynchronously
            outcomes = run_pending_work(defs, instance)
            assert all(o.success for o in outcomes), [o.description for o in outcomes if not o.success]
            if any(scene_id in o.description for o in outcomes):
                break
            time.sleep(2)
        else:
            pytest.fail(f"no run for {scene_id} within 90 s of the upload")

    query = SearchQuery(
        bbox=(-82.0, 31.0, -78.0, 35.0),
        datetime_range=(datetime(2017, 8, 1, tzinfo=UTC), datetime(2017, 9, 1, tzinfo=UTC)),
    )
    sql, parameters = search_sql(query, "catalog.items", "trino")
    trino = TrinoLake(settings.trino_host, settings.trino_port, user="science")
    try:
        columns, rows = trino.query(sql, parameters)
        found = [dict(zip(columns, row, strict=True)) for row in rows]
        assert scene_id in [row["id"] for row in found]
        landsat = next(row for row in found if row["id"] == scene_id)
        assert landsat["platform"] == "landsat-8" and abs(landsat["cloud_cover"] - 26.7) < 0.01
        with pytest.raises(TrinoLakeError, match="Access Denied"):
            trino.query("SELECT count(*) FROM catalog.items", user="ops")
    finally:
        trino.close()
