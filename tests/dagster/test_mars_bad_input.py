"""Bad input to the Mars pipeline, materialized in process against the replay server: every fault of the remote
side or of a request becomes a reject row (or a retry) with a readable reason, the good data around it lands,
and no run fails.

One pipeline holds every fault, each on its own rover, sol or page: an API error (500 after the retries) on a
page, a 403 on a sol, a 429 with Retry-After and a body cut short (both retried), a page of cut JSON, a photo
without img_src, a missing image, bad waypoints and three bad requests. A second request then meets image
redirects to another host."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from satlake.catalog.table import CATALOG_ITEMS
from satlake.mars.replay import MarsReplayServer
from satlake.mars.request import current_sol
from satlake.mars.rovers import rover_named
from satlake.mars.tables import (
    MARS_PHOTO_FILES,
    MARS_PHOTOS,
    MARS_REJECTS,
    MARS_REQUEST_REJECTS,
    MARS_REQUESTS,
    MARS_RESPONSES,
    MARS_TIMELAPSES,
    MARS_WAYPOINTS,
)
from satlake.runner import RunOutcome
from tests.dagster.test_mars_pipeline import (
    FIXTURES,
    SILVER_PHOTOS,
    MarsLake,
    failed_runs,
    mars_lake,
    recorded_manifest,
    recorded_pages,
    recorded_waypoints,
)

API = "/mars-photos/api/v1"
MAX_RETRIES = 2  # SATLAKE_MARS_MAX_RETRIES: three attempts per request
SERVER_ERROR = {"error": {"code": "INTERNAL_SERVER_ERROR", "message": "the photo database did not answer"}}
KEY_ERROR = {"error": {"code": "API_KEY_INVALID", "message": "An invalid api_key was supplied."}}
NO_IMG_SRC = 1  # index of the photo of curiosity sol 1002 page 1 whose img_src is removed
MISSING_IMAGE = 2  # index of the photo of curiosity sol 1000 page 1 whose image answers 404
WAYPOINTS_AT = 10  # where the bad waypoints go in Perseverance's traverse
EARTH = (-118.1712, 34.2013)  # JPL, Pasadena: a waypoint in Earth coordinates


def photos_target(rover: str, sol: int, page: int = 1) -> str:
    return f"{API}/rovers/{rover}/photos?sol={sol}&page={page}"


def bad_waypoints(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Three waypoints no Mars traverse has: latitude past the pole, Earth coordinates, text coordinates."""

    def feature(drive: int, coordinates: list[Any]) -> dict[str, Any]:
        properties = {**template["properties"], "drive": template["properties"]["drive"] + drive, "RMC": None}
        return {"type": "Feature", "properties": properties, "geometry": {"type": "Point", "coordinates": coordinates}}

    return [feature(1, [77.45, 95.0, -2560.0]), feature(2, [*EARTH, 300.0]), feature(3, ["77.45", "18.44", 0])]


def write_recordings(target: Path) -> Path:
    """A copy of the recordings with a photo without img_src and three bad waypoints in Perseverance's traverse."""
    shutil.copytree(FIXTURES, target)
    page = target / "photos" / "curiosity" / "sol-01002-page-1.json"
    document = json.loads(page.read_text())
    del document["photos"][NO_IMG_SRC]["img_src"]
    page.write_text(json.dumps(document))
    traverse = target / "waypoints" / "M20_waypoints.json"
    collection = json.loads(traverse.read_text())
    features = collection["features"]
    collection["features"] = features[:WAYPOINTS_AT] + bad_waypoints(features[WAYPOINTS_AT]) + features[WAYPOINTS_AT:]
    traverse.write_text(json.dumps(collection))
    return target


@dataclass
class BadInput:
    lake: MarsLake
    first: list[RunOutcome]  # the runs of the request with every fault
    redirected: list[RunOutcome]  # the runs of Perseverance sol 102, its images redirected to another host
    other_host: MarsReplayServer
    future_sol: int

    def rejects(self, kind: str, rover: str, sol: int | None = None) -> list[dict[str, Any]]:
        return [r for r in self.lake.rows(MARS_REJECTS) if (r["kind"], r["rover"], r["sol"]) == (kind, rover, sol)]

    def photo_ids(self, rover: str, sol: int) -> set[int]:
        return {r["id"] for r in self.lake.rows(MARS_PHOTOS) if (r["rover_name"], r["sol"]) == (rover, sol)}

    def statuses(self, target: str) -> list[int]:
        return [r.status for r in self.lake.server.requests if r.target == target]


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BadInput]:
    base = tmp_path_factory.mktemp("mars-bad")
    recordings = write_recordings(base / "recordings")
    with (
        mars_lake(base, recordings, SATLAKE_MARS_MAX_RETRIES=str(MAX_RETRIES)) as lake,
        MarsReplayServer(recordings) as other_host,
    ):
        server = lake.server
        server.fail_next(photos_target("curiosity", 1000), 429, retry_after=1)
        server.fail_next(photos_target("curiosity", 1001, 2), 500, count=MAX_RETRIES + 1, body=SERVER_ERROR)
        server.truncate_next(photos_target("curiosity", 1002), mode="short_body")
        server.truncate_next(photos_target("perseverance", 100), mode="cut_json")
        server.fail_next(photos_target("perseverance", 101), 403, body=KEY_ERROR)
        server.missing_images([recorded_pages(recordings, "curiosity", 1000)[0][MISSING_IMAGE]["id"]])
        lake.publish("curiosity", 1000, 1002)
        lake.publish("perseverance", 100, 101)
        future = current_sol(rover_named("curiosity"), datetime.now(UTC)) + 30
        for rover, sol in (("ingenuity", 1), ("curiosity", future)):
            request = {"request_id": f"bad-{rover}", "rover": rover, "sols": {"first": sol, "last": sol}}
            lake.publish_raw(json.dumps(request).encode())
        lake.publish_raw(b"curiosity 1000..1002 please")
        first = lake.run()
        server.redirect_images_to(other_host.base_url)
        lake.publish("perseverance", 102, 102, traverse=False)
        redirected = lake.run()
        yield BadInput(lake, first, redirected, other_host, future)


def test_no_run_fails(bad: BadInput) -> None:
    assert bad.first and bad.redirected
    assert failed_runs(bad.lake, bad.first + bad.redirected) == []
    assert {run.status for run in bad.lake.instance.get_runs()} == {dg.DagsterRunStatus.SUCCESS}
    assert bad.lake.run() == []


def test_bad_requests_are_refused_with_the_reason(bad: BadInput) -> None:
    refused = {r["payload"]: r["reason"] for r in bad.lake.rows(MARS_REQUEST_REJECTS)}
    assert len(refused) == 3
    unknown = next(reason for payload, reason in refused.items() if b"ingenuity" in payload)
    assert unknown == "unknown rover 'ingenuity': the Mars rover photo API serves curiosity, opportunity, " + (
        "perseverance, spirit"
    )
    future = next(reason for payload, reason in refused.items() if b"bad-curiosity" in payload)
    assert future.startswith(f"sol {bad.future_sol} is in the future: Curiosity landed on 2012-08-06 and is on sol ")
    assert refused[b"curiosity 1000..1002 please"].startswith("request is not JSON: ")
    accepted = bad.lake.rows(MARS_REQUESTS)
    assert sorted((r["rover"], r["first_sol"], r["last_sol"]) for r in accepted) == [
        ("curiosity", 1000, 1002), ("perseverance", 100, 101), ("perseverance", 102, 102)]  # fmt: skip
    # Refused requests never reach the API: no partition, no request for their rover or sol.
    sols = set(bad.lake.instance.get_dynamic_partitions("mars_sols"))
    assert f"{bad.future_sol:05d}" not in sols and "00001" not in sols
    assert not [r for r in bad.lake.server.requests if "ingenuity" in r.target]


def test_a_429_with_retry_after_is_retried_and_succeeds(bad: BadInput) -> None:
    assert bad.statuses(photos_target("curiosity", 1000)) == [429, 200]
    responses = [r for r in bad.lake.rows(MARS_RESPONSES) if (r["rover"], r["sol"]) == ("curiosity", 1000)]
    assert [(r["status"], r["error"]) for r in responses] == [(200, None)]
    expected = {p["id"] for p in recorded_pages(bad.lake.recordings, "curiosity", 1000)[0]}
    assert bad.photo_ids("curiosity", 1000) == expected
    assert bad.rejects("photos", "curiosity", 1000) == []


def test_an_api_error_page_is_rejected_and_the_sols_other_page_kept(bad: BadInput) -> None:
    target = photos_target("curiosity", 1001, 2)
    assert bad.statuses(target) == [500] * (MAX_RETRIES + 1)
    rejects = bad.rejects("photos", "curiosity", 1001)
    assert len(rejects) == 1
    reason = rejects[0]["reason"]
    assert "answered 500 INTERNAL_SERVER_ERROR: the photo database did not answer" in reason, reason
    assert json.loads(rejects[0]["record"]) == SERVER_ERROR
    error_rows = [r for r in bad.lake.rows(MARS_RESPONSES) if r["error"]]
    page_2 = next(r for r in error_rows if (r["sol"], r["page"]) == (1001, 2))
    # Landed like a usable page, so the sol's bronze run records it.
    assert page_2["status"] == 500 and page_2["error"] == reason
    assert page_2["object_key"].startswith("mars-api/curiosity/photos/sol-01001/page-0002-")
    pages = recorded_pages(bad.lake.recordings, "curiosity", 1001)
    assert bad.photo_ids("curiosity", 1001) == {p["id"] for p in pages[0]}


def test_a_403_for_one_sol_is_rejected_with_what_to_do(bad: BadInput) -> None:
    assert bad.statuses(photos_target("perseverance", 101)) == [403]
    [reject] = bad.rejects("photos", "perseverance", 101)
    assert "answered 403 API_KEY_INVALID: An invalid api_key was supplied." in reject["reason"]
    assert "set SATLAKE_NASA_API_KEY to a key from https://api.nasa.gov" in reject["reason"]
    assert bad.photo_ids("perseverance", 101) == set()


def test_a_body_cut_short_is_fetched_again(bad: BadInput) -> None:
    target = photos_target("curiosity", 1002)
    requests = [r for r in bad.lake.server.requests if r.target == target]
    assert [r.status for r in requests] == [200, 200] and requests[0].bytes_sent < requests[1].bytes_sent
    responses = [r for r in bad.lake.rows(MARS_RESPONSES) if (r["rover"], r["sol"]) == ("curiosity", 1002)]
    assert [r["error"] for r in responses] == [None]


def test_a_page_of_cut_json_is_rejected_as_truncated(bad: BadInput) -> None:
    assert bad.statuses(photos_target("perseverance", 100)) == [200]
    [reject] = bad.rejects("photos", "perseverance", 100)
    assert reject["reason"].startswith("the body is not complete JSON (") and "fetch it again" in reject["reason"]
    assert bad.photo_ids("perseverance", 100) == set()
    # The perseverance sols after it were still asked for.
    assert bad.statuses(photos_target("perseverance", 101)) == [403]


def test_a_photo_without_img_src_is_rejected_and_its_sol_lands(bad: BadInput) -> None:
    photos = recorded_pages(bad.lake.recordings, "curiosity", 1002)[0]
    bad_photo = photos[NO_IMG_SRC]
    assert "img_src" not in bad_photo
    [reject] = bad.rejects("photos", "curiosity", 1002)
    assert reject["reason"] == f"curiosity sol 1002 page 1: photo {bad_photo['id']} has no img_src"
    assert json.loads(reject["record"]) == bad_photo
    assert bad.photo_ids("curiosity", 1002) == {p["id"] for p in photos} - {bad_photo["id"]}
    silver = {r["id"] for r in bad.lake.rows(SILVER_PHOTOS)}
    assert bad_photo["id"] not in silver and bad.photo_ids("curiosity", 1002) <= silver


def test_bad_waypoints_are_rejected_and_the_traverse_kept(bad: BadInput) -> None:
    rejects = sorted(bad.rejects("waypoints", "perseverance"), key=lambda r: r["reason"])
    reasons = [r["reason"] for r in rejects]
    assert len(reasons) == 3, reasons
    assert reasons[0] == "M20 waypoint 10: latitude 95.0 is outside -90..90"
    assert reasons[1].startswith(f"M20 waypoint 11: waypoint at ({EARTH[0]:.4f}, {EARTH[1]:.4f}) is ")
    assert reasons[1].endswith(" km from Perseverance's landing site; coordinates of another body or CRS?")
    assert reasons[2] == "M20 waypoint 12: coordinates ('77.45', '18.44') are not numbers"
    assert [json.loads(r["record"])["geometry"]["coordinates"][:2] for r in rejects] == [
        [77.45, 95.0], [*EARTH], ["77.45", "18.44"]]  # fmt: skip
    features = recorded_waypoints(bad.lake.recordings, "perseverance")
    good = features[:WAYPOINTS_AT] + features[WAYPOINTS_AT + 3 :]
    kept = [r for r in bad.lake.rows(MARS_WAYPOINTS) if r["rover_name"] == "perseverance"]
    assert [(r["sol"], r["site"], r["drive"], r["lon"], r["lat"]) for r in kept] == [
        (f["properties"]["sol"], f["properties"]["site"], f["properties"]["drive"], *f["geometry"]["coordinates"][:2])
        for f in good
    ]
    assert all(-90 <= r["lat"] <= 90 and r["crs"] == "IAU_2015:49902" for r in kept)
    assert bad.rejects("waypoints", "curiosity") == []


def test_images_that_are_missing_or_redirected_keep_their_remote_href(bad: BadInput) -> None:
    files = {r["id"]: r for r in bad.lake.rows(MARS_PHOTO_FILES)}
    catalog = {r["id"]: json.loads(r["item_json"]) for r in bad.lake.rows(CATALOG_ITEMS)}
    missing = recorded_pages(bad.lake.recordings, "curiosity", 1000)[0][MISSING_IMAGE]["id"]
    assert files[missing]["object_key"] is None and "answered 404" in files[missing]["reason"]
    redirected = {p["id"] for p in recorded_pages(bad.lake.recordings, "perseverance", 102)[0]}
    assert redirected and redirected <= set(files)
    refused = f"redirected from host {bad.lake.server.base_url} to another host {bad.other_host.base_url}; "
    given_up = f"{bad.lake.server.base_url.removeprefix('http://')} failed 3 times in a row this run, so it was not"
    for number, photo_id in enumerate(sorted(redirected)):
        row = files[photo_id]
        assert row["object_key"] is None and row["sha256"] is None
        assert refused in row["reason"]
        assert row["reason"].startswith(f"{row['img_src']} {refused}" if number < 3 else given_up), row["reason"]
    assert bad.other_host.requests == []  # the redirect was refused, not followed
    # The image host is given up on after three refused redirects in a row, the reason saying why.
    asked = [r.status for r in bad.lake.server.requests if r.path.startswith("/images/") and "/sol/00102/" in r.path]
    assert asked == [302, 302, 302]
    for photo_id in redirected | {missing}:
        rover = files[photo_id]["rover_name"]
        item = catalog[f"mars-{rover}-{photo_id}"]
        assert item["assets"]["image"]["href"] == files[photo_id]["img_src"]
        assert item["assets"]["image"]["href"].startswith(bad.lake.server.base_url + "/images/")
        assert item["properties"]["ssys:targets"] == ["mars"] and "file:size" not in item["assets"]["image"]
    fetched = [r for r in files.values() if r["object_key"]]
    assert len(fetched) == len(files) - len(redirected) - 1
    assert all(bad.lake.store.exists(r["object_key"]) and r["reason"] is None for r in fetched)
    # Sol 102's photos still reach silver and the catalog; its timelapse frames are the fetched photos only.
    assert redirected <= {r["id"] for r in bad.lake.rows(SILVER_PHOTOS)}
    timelapses = [r for r in bad.lake.rows(MARS_TIMELAPSES) if r["rover_name"] == "perseverance"]
    assert timelapses == [] or all(r["last_sol"] < 102 for r in timelapses)


def test_good_photos_around_the_faults_all_land(bad: BadInput) -> None:
    recordings = bad.lake.recordings
    lost = {("curiosity", 1001): {p["id"] for p in recorded_pages(recordings, "curiosity", 1001)[1]}}
    lost[("curiosity", 1002)] = {recorded_pages(recordings, "curiosity", 1002)[0][NO_IMG_SRC]["id"]}
    lost[("perseverance", 100)] = {p["id"] for p in recorded_pages(recordings, "perseverance", 100)[0]}
    lost[("perseverance", 101)] = {p["id"] for p in recorded_pages(recordings, "perseverance", 101)[0]}
    expected: set[int] = set()
    for rover, sols in (("curiosity", (1000, 1001, 1002)), ("perseverance", (100, 101, 102))):
        for sol in sols:
            ids = {p["id"] for page in recorded_pages(recordings, rover, sol) for p in page}
            expected |= ids - lost.get((rover, sol), set())
    assert {r["id"] for r in bad.lake.rows(MARS_PHOTOS)} == expected
    silver = bad.lake.rows(SILVER_PHOTOS)
    assert len(silver) == len({r["id"] for r in silver}) and {r["id"] for r in silver} == expected


def test_checks_name_what_the_faults_left_out(bad: BadInput) -> None:
    evaluations = bad.lake.check_evaluations()
    failed = {(e.asset_key.to_user_string(), e.check_name) for e in evaluations if not e.passed}
    assert failed == {
        ("bronze/mars_photos", "photo_counts_match_manifest"),
        ("bronze/mars_manifests", "manifest_sols_have_photo_partitions"),
        ("bronze/mars_manifests", "latest_sol_fresh"),
    }
    warnings = [e for e in evaluations if not e.passed]
    assert all(e.severity == dg.AssetCheckSeverity.WARN for e in warnings)
    descriptions = " ".join(e.description for e in warnings)
    manifest = {e["sol"]: e["total_photos"] for e in recorded_manifest(bad.lake.recordings, "curiosity")["photos"]}
    pages = recorded_pages(bad.lake.recordings, "curiosity", 1001)
    assert f"curiosity sol 1001: {len(pages[0])} photos, the manifest lists {manifest[1001]}" in descriptions
    assert f"curiosity sol 1002: {manifest[1002] - 1} photos, the manifest lists {manifest[1002]}" in descriptions
    listed = {e["sol"]: e["total_photos"] for e in recorded_manifest(bad.lake.recordings, "perseverance")["photos"]}
    for sol in (100, 101):
        assert f"perseverance sol {sol} ({listed[sol]} photos) not fetched" in descriptions
    # Perseverance had no sol fetched until its second request: stale then, fresh after it.
    fresh = [e for e in evaluations if e.check_name == "latest_sol_fresh" and "perseverance" in e.description]
    assert [e.passed for e in fresh] == [False, True]
    assert "perseverance is active up to sol" in fresh[0].description
