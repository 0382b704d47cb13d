"""The Mars pipeline materialized in process on the embedded default, against the replay server: requests published
on the Mars topic become raw responses, bronze rows, fetched photos with STAC items, the dbt models and the
timelapses through the sensors and the automation conditions, with the rows users get asserted against the
recordings in tests/fixtures/mars. The helpers here are shared with test_mars_bad_input.py."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest
import shapely

from satlake.catalog.table import CATALOG_ITEMS
from satlake.catalog.validation import validate_stac_object
from satlake.definitions import build_definitions
from satlake.mars.client import PAGE_SIZE
from satlake.mars.geodesy import MARS_CRS_CODE
from satlake.mars.partitions import rover_sol_key
from satlake.mars.replay import MarsReplayServer, RecordedRequest, render_photo
from satlake.mars.request import new_request, publish_request
from satlake.mars.sensors import mars_bronze_photos_job, mars_photos_job
from satlake.mars.tables import (
    MARS_MANIFESTS,
    MARS_MISSION_TIMELINE,
    MARS_PHOTO_FILES,
    MARS_PHOTOS,
    MARS_REJECTS,
    MARS_REQUEST_REJECTS,
    MARS_REQUESTS,
    MARS_RESPONSES,
    MARS_TIMELAPSES,
    MARS_WAYPOINTS,
)
from satlake.resources import SatlakeResources, build_resources
from satlake.resources.event_log import OutgoingRecord
from satlake.resources.lakehouse import TableRef
from satlake.resources.object_store import ObjectStore, build_scene_stores
from satlake.runner import RANGE_END_TAG, RANGE_START_TAG, RunOutcome, run_failures, run_pending_work
from satlake.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mars"
SILVER_PHOTOS = TableRef("silver", "mars_photos")
GOLD_PHOTOS_PER_SOL = TableRef("gold", "mars_photos_per_sol")
GOLD_DRIVE_PER_SOL = TableRef("gold", "mars_drive_per_sol")
MISSIONS = {"curiosity": "MSL", "perseverance": "M20"}
SOLS = {"curiosity": (1000, 1002), "perseverance": (100, 102)}
TABLES = [MARS_REQUESTS, MARS_REQUEST_REJECTS, MARS_RESPONSES, MARS_MANIFESTS, MARS_PHOTOS, MARS_WAYPOINTS,
          MARS_REJECTS, MARS_PHOTO_FILES, SILVER_PHOTOS, GOLD_PHOTOS_PER_SOL, GOLD_DRIVE_PER_SOL,
          MARS_MISSION_TIMELINE, MARS_TIMELAPSES, CATALOG_ITEMS]  # fmt: skip
# How long a sensor waits for records when its topic has none. Appends are synchronous in embedded mode, so every
# record a pass can see is there when it reads; waiting 5-10 s per sensor per pass only made each pass slower.
READ_WAITS = [
    ("satlake.mars.sensors", "READ_WAIT_S"),
    ("satlake.resources.request_inbox", "READ_WAIT_S"),
    ("satlake.scenes.sensors", "MAX_READ_WAIT_S"),
]


# --- the recordings ------------------------------------------------------------------------------------------------


def recorded_photos(recordings: Path, rover: str, sols: Iterable[int]) -> list[dict[str, Any]]:
    """Every photo the recordings hold for ``rover``'s ``sols``, in page order."""
    wanted = set(sols)
    photos = []
    for path in sorted((recordings / "photos" / rover).glob("sol-*-page-*.json")):
        sol = int(path.stem.split("-")[1])
        if sol in wanted:
            photos += json.loads(path.read_text())["photos"]
    return photos


def recorded_pages(recordings: Path, rover: str, sol: int) -> list[list[dict[str, Any]]]:
    """The photos of each recorded page of ``rover``'s ``sol``, in page order."""
    paths = sorted((recordings / "photos" / rover).glob(f"sol-{sol:05d}-page-*.json"))
    return [json.loads(path.read_text())["photos"] for path in paths]


def recorded_manifest(recordings: Path, rover: str) -> dict[str, Any]:
    return json.loads((recordings / "manifests" / f"{rover}.json").read_text())["photo_manifest"]


def recorded_waypoints(recordings: Path, rover: str) -> list[dict[str, Any]]:
    mission = MISSIONS[rover]
    return json.loads((recordings / "waypoints" / f"{mission}_waypoints.json").read_text())["features"]


# --- the harness ---------------------------------------------------------------------------------------------------


@dataclass
class MarsLake:
    """An embedded satlake under a temporary root whose Mars source asks the replay server."""

    settings: Settings
    resources: SatlakeResources
    store: ObjectStore
    defs: dg.Definitions
    instance: dg.DagsterInstance
    server: MarsReplayServer
    recordings: Path
    outcomes: list[RunOutcome] = field(default_factory=list)

    def run(self) -> list[RunOutcome]:
        """One ``satlake run``: sensors and automation until nothing more is requested."""
        outcomes = run_pending_work(self.defs, self.instance)
        self.outcomes += outcomes
        return outcomes

    def publish(self, rover: str, first: int, last: int, traverse: bool = True) -> str:
        request = new_request(rover, first, last, traverse=traverse, requested_by="test")
        publish_request(self.resources.event_log, self.settings.mars_topic, request)
        return request.request_id

    def publish_raw(self, payload: bytes) -> None:
        """A record on the Mars topic as any producer could write it (not validated on the way in)."""
        if not self.resources.event_log.partitions(self.settings.mars_topic):
            self.resources.event_log.create_topic(self.settings.mars_topic, 1)
        self.resources.event_log.append(self.settings.mars_topic, [OutgoingRecord(value=payload)])

    def read(self, table: TableRef) -> pa.Table:
        rows = self.resources.lakehouse.read(table)
        assert rows is not None, f"{table} was not written"
        return rows

    def rows(self, table: TableRef) -> list[dict[str, Any]]:
        return self.read(table).to_pylist()

    def image_url(self, img_src: str) -> str:
        return self.server.image_url(img_src)

    def check_evaluations(self, run_ids: Iterable[str] | None = None) -> list[Any]:
        """The asset check evaluations (``AssetCheckEvaluation``) the runs stored, in run order."""
        ids = list(run_ids) if run_ids is not None else [o.run_id for o in self.outcomes]
        evaluations = []
        for run_id in ids:
            for entry in self.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
                evaluations.append(entry.dagster_event.event_specific_data)  # type: ignore[union-attr]
        return evaluations


@contextmanager
def mars_lake(base: Path, recordings: Path = FIXTURES, **environment: str) -> Iterator[MarsLake]:
    """A MarsLake under ``base`` with the replay server over ``recordings``; ``environment`` adds settings."""
    saved_environ = dict(os.environ)  # the dbt assets export their profile's variables into os.environ
    patch = pytest.MonkeyPatch()
    for module, name in READ_WAITS:
        patch.setattr(f"{module}.{name}", 0.2)
    server = MarsReplayServer(recordings).start()
    try:
        settings = Settings.from_env(
            {
                "SATLAKE_ROOT": str(base / "root"),
                "SATLAKE_MODE": "embedded",
                "SATLAKE_MARS_PHOTOS_URL": server.photos_url,
                "SATLAKE_MMGIS_URL": server.mmgis_url,
                "SATLAKE_MARS_REQUEST_BUDGET": "200",
                **environment,
            }
        )
        resources = build_resources(settings)
        with dg.instance_for_test() as instance:
            yield MarsLake(settings, resources, build_scene_stores(settings).lake, build_definitions(settings),
                           instance, server, recordings)  # fmt: skip
    finally:
        server.stop()
        patch.undo()
        os.environ.clear()
        os.environ.update(saved_environ)


def failed_runs(lake: MarsLake, outcomes: list[RunOutcome]) -> list[str]:
    """Each failed run with its failed steps' errors, for assertion messages."""
    return [o.description for o in outcomes if not o.success] + run_failures(lake.instance, outcomes)


# --- the happy path ------------------------------------------------------------------------------------------------


@dataclass
class HappyPath:
    lake: MarsLake
    first: list[RunOutcome]  # the runs of the first `satlake run`
    idle: list[RunOutcome]  # a second `satlake run` right after it
    tables: dict[TableRef, pa.Table]  # every Mars table after the first run
    requests: list[RecordedRequest]  # what the server answered in the first run

    @property
    def image_requests(self) -> int:
        return sum(r.path.startswith("/images/") for r in self.requests)


@pytest.fixture(scope="module")
def mars(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HappyPath]:
    """Curiosity sols 1000..1002 and Perseverance sols 100..102 requested and processed, then a second pass."""
    with mars_lake(tmp_path_factory.mktemp("mars")) as lake:
        for rover, (first, last) in SOLS.items():
            lake.publish(rover, first, last)
        first_runs = lake.run()
        tables = {table: lake.read(table) for table in TABLES if lake.resources.lakehouse.exists(table)}
        requests = lake.server.requests
        idle = lake.run()
        yield HappyPath(lake, first_runs, idle, tables, requests)


def expected_photos(lake: MarsLake) -> dict[int, dict[str, Any]]:
    return {
        photo["id"]: {**photo, "rover": rover}
        for rover, (first, last) in SOLS.items()
        for photo in recorded_photos(lake.recordings, rover, range(first, last + 1))
    }


def test_every_run_succeeds_and_a_second_pass_has_nothing_to_do(mars: HappyPath) -> None:
    assert mars.first, "the sensors requested no runs"
    assert failed_runs(mars.lake, mars.first) == []
    assert {run.status for run in mars.lake.instance.get_runs()} == {dg.DagsterRunStatus.SUCCESS}
    jobs = Counter(o.description.split(" [")[0] for o in mars.first if o.source != "automation")
    assert jobs == {job: 2 for job in ("mars_manifest_job", "mars_photos_job", "mars_traverse_job",
                                       "mars_bronze_manifest_job", "mars_bronze_photos_job",
                                       "mars_bronze_waypoints_job")}  # fmt: skip
    automated = sorted(o.description for o in mars.first if o.source == "automation")
    assert automated == [
        "gold/mars_drive_per_sol, gold/mars_mission_timeline, gold/mars_photos_per_sol, silver/mars_photos",
        "gold/mars_timelapses [curiosity]",
        "gold/mars_timelapses [perseverance]",
    ]
    assert mars.idle == []


def test_photos_backfill_runs_once_per_rover(mars: HappyPath) -> None:
    for job in (mars_photos_job, mars_bronze_photos_job):
        runs = mars.lake.instance.get_runs(filters=dg.RunsFilter(job_name=job.name))
        spans = sorted((run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)) for run in runs)
        assert spans == sorted(
            (str(rover_sol_key(rover, first)), str(rover_sol_key(rover, last))) for rover, (first, last) in SOLS.items()
        ), job.name
    # Each rover's sols were fetched by one client, so each sol's pages were asked for exactly once.
    asked = Counter(r.target for r in mars.requests if r.path.startswith("/mars-photos/api/v1/rovers/"))
    assert asked and set(asked.values()) == {1}, asked


def test_raw_responses_keep_every_answer_as_received(mars: HappyPath) -> None:
    responses = mars.tables[MARS_RESPONSES].to_pylist()
    assert all(r["error"] is None and r["status"] == 200 for r in responses)
    requests = {r["request_id"]: r for r in mars.tables[MARS_REQUESTS].to_pylist()}
    assert {(r["rover"], r["first_sol"], r["last_sol"]) for r in requests.values()} == {
        (rover, first, last) for rover, (first, last) in SOLS.items()
    }
    assert {r["request_id"] for r in responses} == set(requests)
    kinds = Counter((r["rover"], r["kind"]) for r in responses)
    for rover, (first, last) in SOLS.items():
        # Pages until one holds fewer than 25 photos: a sol whose last page is full is asked one page more (the
        # API answers it with no photos).
        pages = [recorded_pages(FIXTURES, rover, sol) for sol in range(first, last + 1)]
        assert kinds[(rover, "photos")] == sum(len(p) + (len(p[-1]) == PAGE_SIZE) for p in pages)
        assert kinds[(rover, "manifest")] == kinds[(rover, "waypoints")] == 1
    manifest = next(r for r in responses if r["rover"] == "curiosity" and r["kind"] == "manifest")
    assert json.loads(manifest["body"])["photo_manifest"] == recorded_manifest(FIXTURES, "curiosity")
    landed = [r["object_key"] for r in responses]
    assert all(key.startswith("mars-api/") for key in landed)
    assert mars.tables.get(MARS_REQUEST_REJECTS) is None or mars.tables[MARS_REQUEST_REJECTS].num_rows == 0


def test_bronze_manifests_and_photos_hold_the_recorded_rows(mars: HappyPath) -> None:
    manifests = mars.tables[MARS_MANIFESTS].to_pylist()
    for rover in SOLS:
        recorded = recorded_manifest(FIXTURES, rover)
        rows = {r["sol"]: r for r in manifests if r["rover_name"] == rover}
        assert set(rows) == {entry["sol"] for entry in recorded["photos"]}
        for entry in recorded["photos"]:
            row = rows[entry["sol"]]
            assert (row["earth_date"], row["total_photos"], row["cameras"]) == (
                date.fromisoformat(entry["earth_date"]), entry["total_photos"], entry["cameras"])  # fmt: skip
            assert (row["max_sol"], row["status"]) == (recorded["max_sol"], recorded["status"])

    expected = expected_photos(mars.lake)
    photos = mars.tables[MARS_PHOTOS].to_pylist()
    assert sorted(r["id"] for r in photos) == sorted(expected)
    for row in photos:
        photo = expected[row["id"]]
        assert row["rover_name"] == photo["rover"] and row["sol"] == photo["sol"]
        assert row["camera_name"] == photo["camera"]["name"]
        assert row["camera_full_name"] == photo["camera"]["full_name"]
        assert row["earth_date"] == date.fromisoformat(photo["earth_date"])
        assert row["img_src"] == mars.lake.image_url(photo["img_src"])
        # Curiosity's pages carry the API's short rover object, Perseverance's the long one.
        assert row["rover_shape"] == {"curiosity": "short", "perseverance": "long"}[row["rover_name"]]
    assert {r["page"] for r in photos if r["sol"] == 1001} == {1, 2}
    assert mars.tables[MARS_REJECTS].num_rows == 0


def test_bronze_waypoints_are_mars_points_without_an_earth_bbox(mars: HappyPath) -> None:
    waypoints = mars.tables[MARS_WAYPOINTS]
    assert not [c for c in waypoints.column_names if "bbox" in c]
    rows = waypoints.to_pylist()
    for rover in SOLS:
        features = recorded_waypoints(FIXTURES, rover)
        kept = [r for r in rows if r["rover_name"] == rover]
        assert [(r["sol"], r["site"], r["drive"]) for r in kept] == [
            (f["properties"]["sol"], f["properties"]["site"], f["properties"]["drive"]) for f in features
        ]
        for row, feature in zip(kept, features, strict=True):
            lon, lat = feature["geometry"]["coordinates"][:2]
            assert (row["lon"], row["lat"]) == pytest.approx((lon, lat))
            assert row["crs"] == MARS_CRS_CODE == "IAU_2015:49902"
            assert row["mission"] == MISSIONS[rover]
            point = shapely.from_wkb(row["geometry_wkb"])
            assert point.geom_type == "Point" and (point.x, point.y) == (row["lon"], row["lat"])
            assert row["dist_total_m"] == feature["properties"]["dist_total_m"]
        # The geodesic from one waypoint to the next on the Mars ellipsoid; MMGIS's odometer adds 0-1.5 % of wiggles
        # and publishes centimetres.
        assert kept[0]["segment_m"] is None
        for row in kept[1:]:
            if row["dist_m"]:
                assert row["segment_m"] - 0.005 <= row["dist_m"] <= row["segment_m"] * 1.015 + 0.005, row


def test_silver_photos_are_the_recorded_photos_once_each(mars: HappyPath) -> None:
    silver = mars.tables[SILVER_PHOTOS]
    assert {"id", "rover_name", "sol", "earth_date", "camera_name", "img_src"} <= set(silver.column_names)
    expected = expected_photos(mars.lake)
    rows = silver.to_pylist()
    assert len(rows) == len({r["id"] for r in rows}) == len(expected)
    assert {(r["id"], r["rover_name"], r["sol"], r["earth_date"], r["camera_name"], r["img_src"]) for r in rows} == {
        (i, p["rover"], p["sol"], date.fromisoformat(p["earth_date"]), p["camera"]["name"],
         mars.lake.image_url(p["img_src"]))
        for i, p in expected.items()
    }  # fmt: skip


def test_gold_models_count_photos_and_drives_per_sol(mars: HappyPath) -> None:
    expected = expected_photos(mars.lake)
    per_sol = Counter((p["rover"], p["camera"]["name"], p["sol"]) for p in expected.values())
    gold = mars.tables[GOLD_PHOTOS_PER_SOL].to_pylist()
    assert {(r["rover_name"], r["camera_name"], r["sol"]): r["photos"] for r in gold} == per_sol

    drives = {(r["rover_name"], r["sol"]): r for r in mars.tables[GOLD_DRIVE_PER_SOL].to_pylist()}
    timeline = {(r["rover_name"], r["sol"]): r for r in mars.tables[MARS_MISSION_TIMELINE].to_pylist()}
    assert {rover for rover, _sol in timeline} == set(SOLS)
    for rover in SOLS:
        by_sol: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for feature in recorded_waypoints(FIXTURES, rover):
            by_sol[feature["properties"]["sol"]].append(feature["properties"])
        assert {sol for r, sol in drives if r == rover} == set(by_sol)
        for sol, points in by_sol.items():
            drive = drives[(rover, sol)]
            assert drive["waypoints"] == len(points)
            assert drive["total_m"] == max(p["dist_total_m"] for p in points)
            assert drive["published_m"] == pytest.approx(sum(p["dist_m"] for p in points))
        manifest = {e["sol"]: e for e in recorded_manifest(FIXTURES, rover)["photos"]}
        first, last = SOLS[rover]
        for sol in range(first, last + 1):
            row = timeline[(rover, sol)]
            photos = [p for p in expected.values() if p["rover"] == rover and p["sol"] == sol]
            assert row["photos"] == len(photos) == row["manifest_photos"] == manifest[sol]["total_photos"]
            assert row["cameras"] == len({p["camera"]["name"] for p in photos})
            assert row["earth_date"] == date.fromisoformat(manifest[sol]["earth_date"])
        sols = sorted(sol for r, sol in timeline if r == rover)
        assert set(sols) == set(by_sol) | set(range(first, last + 1))
        cumulative = [timeline[(rover, sol)]["cumulative_m"] for sol in sols]
        assert cumulative == sorted(cumulative) and cumulative[-1] > 0


def test_photos_are_fetched_into_the_object_store_as_served(mars: HappyPath) -> None:
    expected = expected_photos(mars.lake)
    files = {r["id"]: r for r in mars.tables[MARS_PHOTO_FILES].to_pylist()}
    assert set(files) == set(expected)
    for photo_id, row in files.items():
        assert row["reason"] is None and row["object_key"], row
        path = mars.lake.store.local_path(row["object_key"])
        assert path is not None and path.is_file()
        body = path.read_bytes()
        assert body == render_photo(MarsReplayServer.image_path(expected[photo_id]["img_src"]))
        assert (row["size_bytes"], row["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert mars.image_requests == len(expected)


def test_catalog_has_a_mars_item_per_photo(mars: HappyPath) -> None:
    expected = expected_photos(mars.lake)
    files = {r["id"]: r for r in mars.tables[MARS_PHOTO_FILES].to_pylist()}
    catalog = {r["id"]: r for r in mars.tables[CATALOG_ITEMS].to_pylist()}
    for photo_id, photo in expected.items():
        row = catalog[f"mars-{photo['rover']}-{photo_id}"]
        assert row["body"] == "mars" and row["collection"] == f"mars-{photo['rover']}-photos"
        assert row["geometry_wkb"] is None and row["bbox_xmin"] is None and row["bbox_ymax"] is None
        item = json.loads(row["item_json"])
        assert validate_stac_object(item) == [], item["id"]
        assert item["geometry"] is None and "bbox" not in item
        properties = item["properties"]
        assert properties["ssys:targets"] == ["mars"]
        assert properties["satlake:camera"] == photo["camera"]["name"]
        assert properties["satlake:sol"] == photo["sol"]
        assert properties["start_datetime"].startswith(photo["earth_date"])
        href = item["assets"]["image"]["href"]
        assert href == mars.lake.store.uri(files[photo_id]["object_key"]) and Path(href).is_file()
        assert item["assets"]["image"]["file:size"] == files[photo_id]["size_bytes"]
        assert {"rel": "via", "href": mars.lake.image_url(photo["img_src"])}.items() <= next(
            link for link in item["links"] if link["rel"] == "via"
        ).items()
    mars_items = [i for i, r in catalog.items() if r["body"] == "mars"]
    assert len(mars_items) == len(expected) + mars.tables[MARS_TIMELAPSES].num_rows


def test_timelapses_show_each_cameras_photos_in_sol_order(mars: HappyPath) -> None:
    expected = expected_photos(mars.lake)
    by_camera: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for photo in expected.values():
        by_camera[(photo["rover"], photo["camera"]["name"])].append(photo)
    wanted = {key: sorted(ps, key=lambda p: (p["sol"], p["id"])) for key, ps in by_camera.items() if len(ps) >= 2}
    rows = {(r["rover_name"], r["camera_name"]): r for r in mars.tables[MARS_TIMELAPSES].to_pylist()}
    assert set(rows) == set(wanted)
    catalog = {r["id"]: r for r in mars.tables[CATALOG_ITEMS].to_pylist()}
    for key, photos in wanted.items():
        row = rows[key]
        assert (row["first_sol"], row["last_sol"], row["frames"]) == (photos[0]["sol"], photos[-1]["sol"], len(photos))
        path = mars.lake.store.local_path(row["object_key"])
        assert path is not None and hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"]
        item = json.loads(catalog[row["item_id"]]["item_json"])
        assert validate_stac_object(item) == [] and item["properties"]["ssys:targets"] == ["mars"]
        # The frames, in the order the GIF shows them: sol, then photo id.
        frames = [link["href"].rsplit("/", 1)[1].removesuffix(".json")
                  for link in item["links"] if link["rel"] == "derived_from"]  # fmt: skip
        assert frames == [f"mars-{key[0]}-{p['id']}" for p in photos]
        sols = [expected[int(frame.rsplit("-", 1)[1])]["sol"] for frame in frames]
        assert sols == sorted(sols)


def test_every_asset_check_passes(mars: HappyPath) -> None:
    evaluations = mars.lake.check_evaluations(o.run_id for o in mars.first)
    results: dict[str, list[bool]] = defaultdict(list)
    for evaluation in evaluations:
        results[f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"].append(evaluation.passed)
    failed = {e.check_name: e.description for e in evaluations if not e.passed}
    assert failed == {}
    graph = mars.lake.defs.resolve_asset_graph()
    mars_checks = {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys
                   if "mars" in k.asset_key.to_user_string()}  # fmt: skip
    assert mars_checks and mars_checks <= set(results), mars_checks - set(results)
    for name in ("bronze/mars_photos:photo_counts_match_manifest", "bronze/mars_manifests:latest_sol_fresh",
                 "bronze/mars_waypoints:traverse_valid_and_monotonic", "catalog/mars_photos:items_valid_stac",
                 "raw/mars_photos:fetched_to_the_end", "silver/mars_photos:unique_mars_photos_id"):  # fmt: skip
        assert results[name], name


# --- a request for the same sols again ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def republished(mars: HappyPath) -> list[RunOutcome]:
    """The same sols requested again (new request ids), processed."""
    for rover, (first, last) in SOLS.items():
        mars.lake.publish(rover, first, last, traverse=False)
    return mars.lake.run()


def test_requesting_the_same_sols_again_refetches_without_duplicates(
    mars: HappyPath, republished: list[RunOutcome]
) -> None:
    lake = mars.lake
    assert republished and failed_runs(lake, republished) == []
    assert lake.read(MARS_REQUESTS).num_rows == 2 * mars.tables[MARS_REQUESTS].num_rows
    photo_responses = [r for r in lake.rows(MARS_RESPONSES) if r["kind"] == "photos"]
    before = [r for r in mars.tables[MARS_RESPONSES].to_pylist() if r["kind"] == "photos"]
    assert len(photo_responses) == 2 * len(before)

    def keyed(table: pa.Table, *columns: str) -> Counter[tuple[Any, ...]]:
        return Counter(tuple(row[c] for c in columns) for row in table.to_pylist())

    photo_columns = ("id", "rover_name", "sol", "earth_date", "camera_name", "img_src")
    assert keyed(lake.read(SILVER_PHOTOS), *photo_columns) == keyed(mars.tables[SILVER_PHOTOS], *photo_columns)
    assert max(keyed(lake.read(SILVER_PHOTOS), "id").values()) == 1
    assert keyed(lake.read(MARS_PHOTOS), *photo_columns) == keyed(mars.tables[MARS_PHOTOS], *photo_columns)
    assert lake.read(MARS_PHOTOS).num_rows == mars.tables[MARS_PHOTOS].num_rows
    assert keyed(lake.read(GOLD_PHOTOS_PER_SOL), "rover_name", "camera_name", "sol", "photos") == keyed(
        mars.tables[GOLD_PHOTOS_PER_SOL], "rover_name", "camera_name", "sol", "photos"
    )
    assert keyed(lake.read(CATALOG_ITEMS), "id") == keyed(mars.tables[CATALOG_ITEMS], "id")
    # The images were fetched before with the same img_src: kept, not asked again.
    assert len(lake.server.requests_to("/images/")) == mars.image_requests
    files = {r["id"]: r for r in lake.rows(MARS_PHOTO_FILES)}
    assert {i: r["sha256"] for i, r in files.items()} == {
        r["id"]: r["sha256"] for r in mars.tables[MARS_PHOTO_FILES].to_pylist()
    }
    assert [e.check_name for e in lake.check_evaluations(o.run_id for o in republished) if not e.passed] == []
    assert lake.run() == []
