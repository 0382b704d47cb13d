"""The Mars demo section in stack mode: requests published on Kafka, the recorded NASA responses (a local replay of
the photo API, MMGIS and the image host) landed in MinIO and announced by MinIO itself, bronze, the photos and
their STAC items, and dbt's silver and gold Delta tables in the lake on MinIO, read back through Trino by the roles
that may read them (admin, science) and refused to the one that may not (ops).

The counts are those of the embedded demo: the same recorded responses make the same tables in either mode."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from satlake.instance_state import SensorStateStore
from satlake.mars.demo import DEMO_SOLS, run_mars_demo
from satlake.mars.items import TIMELAPSE_COLLECTION, photo_collection
from satlake.mars.sensors import mars_landing_sensor
from satlake.reporting import Report
from satlake.resources.kafka_event_log import KafkaEventLog
from satlake.resources.object_store import build_scene_stores
from satlake.resources.trino import TrinoLake, TrinoLakeError
from satlake.runner import RunOutcome
from satlake.scenes.sensors import SensorCursor, object_events_sensor
from satlake.settings import Settings
from satlake.stack.access import ADMIN, OPS, SCIENCE

pytestmark = pytest.mark.integration

ROVERS = sorted(DEMO_SOLS)  # curiosity, perseverance
# What the recorded responses make (the embedded demo's counts).
EXPECTED_ROWS = {
    "bronze.mars_photos": 64,
    "bronze.mars_waypoints": 53,
    "silver.mars_photos": 64,
    "gold.mars_photos_per_sol": 16,
    "gold.mars_drive_per_sol": 51,
    "gold.mars_mission_timeline": 51,
    "gold.mars_timelapses": 10,
}
GOLD = ("gold.mars_photos_per_sol", "gold.mars_drive_per_sol", "gold.mars_mission_timeline")


@dataclass(frozen=True)
class MarsDemo:
    settings: Settings
    outcomes: list[RunOutcome]
    checks: dict[str, tuple[bool, str]]
    printed: str


def check_results(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, tuple[bool, str]]:
    """'asset:check' -> (passed, description) of every asset check evaluated in these runs (each rover's
    evaluation of a check, not only the latest)."""
    results: dict[str, tuple[bool, str]] = {}
    for run_id in run_ids:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data  # type: ignore[union-attr]
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            passed = results.get(name, (True, ""))[0]
            if passed or not evaluation.passed:
                results[name] = (passed and evaluation.passed, evaluation.description or "")
    return results


@pytest.fixture(scope="module")
def demo(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> MarsDemo:
    """The Mars demo section, run once for the module on its own requests topic."""
    settings = stack.with_overrides(
        root=tmp_path_factory.mktemp("mars-stack"), mars_topic=f"it.mars.requests.{uuid.uuid4().hex[:8]}"
    )
    # The sensors following the object-events topic start at its end: only this demo's landings are considered
    # (other tests of the session land scenes there).
    log = KafkaEventLog(settings.kafka_bootstrap)
    topic = settings.object_events_topic
    end = log.end_offsets(topic) if log.partitions(topic) else {}
    log.close()
    out = io.StringIO()
    with dg.instance_for_test() as instance:
        state = SensorStateStore(instance)
        state.save_cursor(object_events_sensor, SensorCursor(offsets=end).to_json())
        state.save_cursor(mars_landing_sensor, json.dumps({str(p): o for p, o in sorted(end.items())}))
        outcomes = run_mars_demo(settings, instance, Report(out=out, err=out, width=160)).outcomes
        checks = check_results(instance, [o.run_id for o in outcomes if o.run_id != "-"])
    return MarsDemo(settings, outcomes, checks, out.getvalue())


@pytest.fixture(scope="module")
def trino(stack: Settings) -> Iterator[TrinoLake]:
    lake = TrinoLake(stack.trino_host, stack.trino_port, user=ADMIN)
    yield lake
    lake.close()


def rows(trino: TrinoLake, sql: str, user: str = ADMIN) -> list[dict[str, Any]]:
    columns, values = trino.query(sql, user=user)
    return [dict(zip(columns, row, strict=True)) for row in values]


def test_every_run_of_the_demo_succeeds_and_prints_the_timeline_from_trino(demo: MarsDemo) -> None:
    assert demo.outcomes, demo.printed
    assert all(o.success for o in demo.outcomes), [o.description for o in demo.outcomes if not o.success]
    failed_checks = {name: description for name, (passed, description) in demo.checks.items() if not passed}
    assert demo.checks and not failed_checks, failed_checks
    assert "bronze/mars_manifests:latest_sol_fresh" in demo.checks  # both rovers fetched to within a few sols
    # The demo read its requests from Kafka and printed the timeline through Trino.
    assert "mission timeline (gold.mars_mission_timeline, sols with photos; trino)" in demo.printed, demo.printed
    assert all(rover in demo.printed for rover in ROVERS)


def test_the_lake_tables_hold_what_the_recorded_responses_make(demo: MarsDemo, trino: TrinoLake) -> None:
    counts = {table: rows(trino, f"SELECT count(*) AS n FROM {table}")[0]["n"] for table in EXPECTED_ROWS}
    assert counts == EXPECTED_ROWS
    requests = rows(trino, f"SELECT rover FROM raw.mars_requests WHERE topic = '{demo.settings.mars_topic}'")
    assert sorted(r["rover"] for r in requests) == ROVERS  # read from this demo's Kafka topic


@pytest.mark.parametrize("user", [ADMIN, SCIENCE])
def test_admin_and_science_read_both_rovers_in_every_gold_table(demo: MarsDemo, trino: TrinoLake, user: str) -> None:
    for table in GOLD:
        per_rover = rows(trino, f"SELECT rover_name, count(*) AS n FROM {table} GROUP BY rover_name", user=user)
        assert sorted(r["rover_name"] for r in per_rover) == ROVERS, (table, per_rover)
        assert all(r["n"] > 0 for r in per_rover), (table, per_rover)

    silver_photos = rows(trino, "SELECT count(*) AS n FROM silver.mars_photos", user=user)[0]["n"]
    timeline = rows(trino, "SELECT * FROM gold.mars_mission_timeline ORDER BY rover_name, sol", user=user)
    assert sum(r["photos"] for r in timeline) == silver_photos == EXPECTED_ROWS["silver.mars_photos"]
    assert any(r["driven_m"] is not None and r["driven_m"] > 0 for r in timeline)
    for rover in ROVERS:
        mine = [r for r in timeline if r["rover_name"] == rover]
        first, last = DEMO_SOLS[rover]
        photographed = {r["sol"] for r in mine if r["photos"] > 0}
        assert photographed and photographed <= set(range(first, last + 1)), (rover, photographed)
        cumulative = [r["cumulative_m"] for r in mine]
        assert cumulative == sorted(cumulative), rover  # a running total of non-negative drives
        assert all(r["earth_date"] is not None and r["cameras"] > 0 for r in mine if r["photos"] > 0)

    per_sol = rows(trino, "SELECT sum(photos) AS n, min(photos) AS least FROM gold.mars_photos_per_sol", user=user)
    assert per_sol[0]["n"] == silver_photos and per_sol[0]["least"] >= 1
    drives = rows(trino, "SELECT count(*) AS n, sum(geodesic_m) AS m FROM gold.mars_drive_per_sol", user=user)
    assert drives[0]["n"] == EXPECTED_ROWS["gold.mars_drive_per_sol"] and drives[0]["m"] > 0


def test_silver_photos_has_the_documented_columns(demo: MarsDemo, trino: TrinoLake) -> None:
    listed = rows(
        trino,
        "SELECT column_name FROM lake.information_schema.columns "
        "WHERE table_schema = 'silver' AND table_name = 'mars_photos'",
        user=SCIENCE,
    )
    columns = {r["column_name"] for r in listed}
    assert {"id", "rover_name", "sol", "earth_date", "camera_name", "img_src"} <= columns, columns
    sample = rows(trino, "SELECT id, rover_name, sol, earth_date, camera_name, img_src FROM silver.mars_photos "
                         "ORDER BY id LIMIT 5", user=SCIENCE)  # fmt: skip
    assert len(sample) == 5 and all(r["img_src"].startswith("http") and r["camera_name"] for r in sample)


@pytest.mark.parametrize("table", [*GOLD, "silver.mars_photos", "bronze.mars_photos", "raw.mars_requests"])
def test_ops_is_refused_the_mars_tables(demo: MarsDemo, trino: TrinoLake, table: str) -> None:
    with pytest.raises(TrinoLakeError) as refused:
        trino.query(f"SELECT count(*) FROM {table}", user=OPS)
    assert refused.value.error_name == "PERMISSION_DENIED", refused.value
    assert str(refused.value).startswith(f"Access Denied: Cannot select from table lake.{table}"), refused.value


def test_the_photos_and_timelapses_are_in_the_lake_bucket_and_catalogued_there(
    demo: MarsDemo, trino: TrinoLake
) -> None:
    collections = [photo_collection(rover) for rover in ROVERS] + [TIMELAPSE_COLLECTION]
    listed = ", ".join(f"'{c}'" for c in collections)
    items = rows(
        trino, f"SELECT id, collection, body, assets_json FROM catalog.items WHERE collection IN ({listed})",
        user=SCIENCE,
    )  # fmt: skip
    by_collection = {c: [i for i in items if i["collection"] == c] for c in collections}
    assert len(by_collection[TIMELAPSE_COLLECTION]) == EXPECTED_ROWS["gold.mars_timelapses"]
    assert sum(len(by_collection[photo_collection(r)]) for r in ROVERS) == EXPECTED_ROWS["silver.mars_photos"]
    assert all(by_collection[photo_collection(r)] for r in ROVERS)
    assert {i["body"] for i in items} == {"mars"}

    lake = build_scene_stores(demo.settings).lake  # MinIO's lake bucket
    prefix = f"s3://{demo.settings.lake_bucket}/"
    hrefs = [asset["href"] for item in items for asset in json.loads(item["assets_json"]).values()]
    assert len(hrefs) == len(items)
    outside = [href for href in hrefs if not href.startswith(prefix)]
    assert outside == [], outside[:5]  # every photo was fetched from the replayed image host into MinIO
    photo_keys = [href.removeprefix(prefix) for href in hrefs if href.endswith((".jpg", ".png"))]
    assert len(photo_keys) == EXPECTED_ROWS["silver.mars_photos"]
    assert all(key.startswith("mars/photos/") for key in photo_keys)
    missing = [href for href in hrefs if not lake.exists(href.removeprefix(prefix))]
    assert missing == [], missing[:5]
    assert all((lake.size(key) or 0) > 0 for key in photo_keys[:5])
    stored = set(lake.list("mars/photos/"))
    assert set(photo_keys) <= stored


def test_the_raw_responses_landed_in_the_landing_bucket(demo: MarsDemo) -> None:
    landing = build_scene_stores(demo.settings).landing
    landed = landing.list("mars-api/")
    for rover in ROVERS:
        kinds = {Path(key).parts[2] for key in landed if Path(key).parts[1] == rover}
        assert {"manifest", "photos", "waypoints"} <= kinds, (rover, kinds)
