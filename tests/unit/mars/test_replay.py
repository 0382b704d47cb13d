"""The Mars replay server answers plain HTTP clients as api.nasa.gov and MMGIS do (shapes, key, hourly limit,
mirrored images) and plays scripted faults; the recordings it serves agree with each other."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import requests
from PIL import Image
from pyproj import Geod

from satlake.mars.checks import FRESH_SOLS
from satlake.mars.replay import MarsReplayServer, render_photo
from satlake.mars.rovers import ROVERS

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mars"
API = "/mars-photos/api/v1"
MARS_ELLIPSOID = Geod(a=3396190.0, b=3376200.0)  # IAU_2015:49902
DEMO_SOLS = {"curiosity": (1000, 1001, 1002), "perseverance": (100, 101, 102)}
SHORT_ROVER = {"id", "name", "landing_date", "launch_date", "status"}


@pytest.fixture
def server() -> Iterator[MarsReplayServer]:
    with MarsReplayServer(FIXTURES) as replay:
        yield replay


def get(url: str, **kwargs: object) -> requests.Response:
    return requests.get(url, timeout=5, allow_redirects=False, **kwargs)  # type: ignore[arg-type]


def load(relative: str) -> dict:
    return json.loads((FIXTURES / relative).read_text())


# --- the recordings ------------------------------------------------------------------------------------------------


def test_manifests_count_exactly_the_photos_of_the_pages() -> None:
    for rover, sols in DEMO_SOLS.items():
        manifest = load(f"manifests/{rover}.json")["photo_manifest"]
        by_sol = {entry["sol"]: entry for entry in manifest["photos"]}
        assert manifest["total_photos"] == sum(entry["total_photos"] for entry in manifest["photos"])
        # A few sols past the demo sols, fewer than the freshness check allows (the demo is fresh).
        assert max(sols) < manifest["max_sol"] == max(by_sol) <= max(sols) + FRESH_SOLS
        assert date.fromisoformat(manifest["max_date"]) == max(
            date.fromisoformat(e["earth_date"]) for e in by_sol.values()
        )
        for sol in sols:
            pages = sorted((FIXTURES / "photos" / rover).glob(f"sol-{sol:05d}-page-*.json"))
            photos = [photo for page in pages for photo in json.loads(page.read_text())["photos"]]
            assert by_sol[sol]["total_photos"] == len(photos)
            assert by_sol[sol]["cameras"] == sorted({p["camera"]["name"] for p in photos})
            assert 2 <= len(by_sol[sol]["cameras"]) <= 3
            assert {p["sol"] for p in photos} == {sol} and {p["earth_date"] for p in photos} == {
                by_sol[sol]["earth_date"]
            }
            assert all(len(json.loads(page.read_text())["photos"]) == 25 for page in pages[:-1])
    assert len(list((FIXTURES / "photos" / "curiosity").glob("sol-01001-page-*.json"))) == 2


def test_photos_follow_the_live_shapes() -> None:
    curiosity = load("photos/curiosity/sol-01000-page-1.json")["photos"]
    perseverance = load("photos/perseverance/sol-00100-page-1.json")["photos"]
    manifest = load("manifests/perseverance.json")["photo_manifest"]
    assert curiosity[0]["earth_date"] == "2015-05-30" and perseverance[0]["earth_date"] == "2021-05-31"
    assert all(set(p["rover"]) == SHORT_ROVER for p in curiosity)
    long_rover = perseverance[0]["rover"]
    assert set(long_rover) == SHORT_ROVER | {"max_sol", "max_date", "total_photos", "cameras"}
    assert (long_rover["max_sol"], long_rover["total_photos"]) == (manifest["max_sol"], manifest["total_photos"])
    assert {"name": "NAVCAM_LEFT", "full_name": "Navigation Camera - Left"} in long_rover["cameras"]
    assert curiosity[0]["img_src"].startswith("http://mars.jpl.nasa.gov/msl-raw-images/proj/msl/redops/ods/surface/")
    assert perseverance[0]["img_src"].startswith("https://mars.nasa.gov/mars2020-raw-images/pub/ods/surface/sol/00100/")
    ids = [p["id"] for path in FIXTURES.glob("photos/*/*.json") for p in json.loads(path.read_text())["photos"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("rover", ["curiosity", "perseverance"])
def test_waypoints_are_plausible_and_measured_on_the_mars_ellipsoid(rover: str) -> None:
    home = ROVERS[rover]
    features = load(f"waypoints/{home.mmgis_mission}_waypoints.json")["features"]
    assert 20 <= len(features) <= 40
    sols = [f["properties"]["sol"] for f in features]
    assert sols == sorted(sols) and set(DEMO_SOLS[rover]) <= set(sols)
    total = features[0]["properties"]["dist_total_m"]
    for previous, feature in itertools.pairwise(features):
        props = feature["properties"]
        lon, lat, elev = feature["geometry"]["coordinates"]
        assert (lon, lat, elev) == (props["lon"], props["lat"], props["elev_geoid"])
        _, _, step = MARS_ELLIPSOID.inv(*previous["geometry"]["coordinates"][:2], lon, lat)
        assert props["dist_m"] == pytest.approx(step, rel=0.02, abs=0.05)
        total += props["dist_m"]
        assert props["dist_total_m"] == pytest.approx(total, abs=0.05)
        assert props["RMC"] == f"{props['site']}_{props['drive']}"
        _, _, from_home = MARS_ELLIPSOID.inv(home.landing_lon, home.landing_lat, lon, lat)
        assert from_home < 20_000


def test_error_bodies_are_the_gateways() -> None:
    assert load("errors/over_rate_limit.json")["error"]["code"] == "OVER_RATE_LIMIT"
    assert load("errors/api_key_invalid.json")["error"]["code"] == "API_KEY_INVALID"
    assert load("errors/invalid_rover.json") == {"errors": "Invalid Rover Name"}


# --- the server ----------------------------------------------------------------------------------------------------


def test_serves_pages_with_mirrored_images_and_rate_headers(server: MarsReplayServer) -> None:
    answer = get(f"{server.photos_url}/rovers/curiosity/photos", params={"sol": 1001, "page": 2})
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert answer.headers["X-RateLimit-Limit"] == "1000" and answer.headers["X-RateLimit-Remaining"] == "999"
    photos = answer.json()["photos"]
    recorded = load("photos/curiosity/sol-01001-page-2.json")["photos"]
    assert [p["id"] for p in photos] == [p["id"] for p in recorded]
    original = recorded[0]["img_src"].removeprefix("http://")
    assert photos[0]["img_src"] == f"{server.base_url}/images/{original}"
    assert (
        get(f"{server.photos_url}/rovers/curiosity/photos", params={"sol": 1001}).json()["photos"][0]["id"]
        == (load("photos/curiosity/sol-01001-page-1.json")["photos"][0]["id"])
    )  # page defaults to 1
    past_the_end = get(f"{server.photos_url}/rovers/curiosity/photos", params={"sol": 1001, "page": 3})
    assert past_the_end.json() == {"photos": []} and past_the_end.headers["X-RateLimit-Remaining"] == "997"
    assert get(f"{server.photos_url}/rovers/spirit/photos", params={"sol": 5}).json() == {"photos": []}
    long_shape = get(f"{server.photos_url}/rovers/Perseverance/photos", params={"sol": 100, "page": 1}).json()
    assert "cameras" in long_shape["photos"][0]["rover"]
    assert [(r.query, r.status) for r in server.requests_to(f"{API}/rovers/curiosity/photos?sol=1001")] == [
        ("sol=1001&page=2", 200),
        ("sol=1001", 200),
        ("sol=1001&page=3", 200),
    ]


def test_manifests_waypoints_and_unknown_things(server: MarsReplayServer) -> None:
    manifest = get(f"{server.photos_url}/manifests/curiosity")
    assert manifest.json() == load("manifests/curiosity.json")
    unknown = get(f"{server.photos_url}/rovers/pathfinder/photos", params={"sol": 1})
    assert unknown.status_code == 400 and unknown.json() == {"errors": "Invalid Rover Name"}
    assert get(f"{server.photos_url}/manifests/sojourner").status_code == 400
    not_recorded = get(f"{server.photos_url}/manifests/spirit")
    assert not_recorded.status_code == 404 and "manifests/spirit.json" in not_recorded.json()["error"]["message"]
    waypoints = get(f"{server.mmgis_url}/M20/Layers/json/M20_waypoints.json")
    assert waypoints.content == (FIXTURES / "waypoints" / "M20_waypoints.json").read_bytes()
    assert "X-RateLimit-Remaining" not in waypoints.headers  # MMGIS is another service, without a limit
    assert get(f"{server.mmgis_url}/M20/Layers/json/MSL_waypoints.json").status_code == 404
    assert get(f"{server.mmgis_url}/MER/Layers/json/MER_waypoints.json").status_code == 404


def test_api_key_is_checked_in_header_or_parameter() -> None:
    with MarsReplayServer(FIXTURES, api_key="k-123456") as server:
        url = f"{server.photos_url}/manifests/curiosity"
        missing, wrong = get(url), get(url, params={"api_key": "nope"})
        assert (missing.status_code, missing.json()["error"]["code"]) == (403, "API_KEY_MISSING")
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (403, "API_KEY_INVALID")
        assert get(url, params={"api_key": "k-123456"}).status_code == 200
        assert get(url, headers={"X-Api-Key": "k-123456"}).status_code == 200
        logged = server.requests
    assert [r.status for r in logged] == [403, 403, 200, 200]
    assert logged[2].query == "api_key=***" and logged[2].key_sent and not logged[0].key_sent


def test_hourly_limit_counts_down_then_answers_429() -> None:
    with MarsReplayServer(FIXTURES, hourly_limit=2, send_rate_limit_reset=True) as server:
        url = f"{server.photos_url}/manifests/perseverance"
        remaining = [get(url).headers["X-RateLimit-Remaining"] for _ in range(2)]
        refused = get(url)
        assert get(f"{server.mmgis_url}/MSL/Layers/json/MSL_waypoints.json").status_code == 200
    assert remaining == ["1", "0"]
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "OVER_RATE_LIMIT"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 3590 <= int(refused.headers["Retry-After"]) <= 3600
    assert 3590 <= int(refused.headers["X-RateLimit-Reset"]) <= 3600


def test_images_are_generated_per_path_and_can_go_missing(server: MarsReplayServer) -> None:
    photos = get(f"{server.photos_url}/rovers/perseverance/photos", params={"sol": 102}).json()["photos"]
    first, second = get(photos[0]["img_src"]), get(photos[1]["img_src"])
    assert first.status_code == 200 and first.headers["Content-Type"] == "image/jpeg"
    assert first.content == get(photos[0]["img_src"]).content != second.content
    image = Image.open(io.BytesIO(first.content))
    assert image.format == "JPEG" and image.mode == "L" and all(64 <= side <= 256 for side in image.size)
    assert first.content == render_photo(
        MarsReplayServer.image_path(load("photos/perseverance/sol-00102-page-1.json")["photos"][0]["img_src"])
    )
    assert get(f"{server.base_url}/images/mars.nasa.gov/not/a/photo.jpg").status_code == 404
    server.missing_images({photos[0]["id"], "ZL0_0102"})
    assert get(photos[0]["img_src"]).status_code == 404
    assert [get(p["img_src"]).status_code for p in photos if "/zcam/" in p["img_src"]] == [404, 404, 404]
    assert get(photos[1]["img_src"]).status_code == 200
    server.redirect_images_to("http://localhost:9")
    moved = get(photos[1]["img_src"])
    assert moved.status_code == 302
    assert moved.headers["Location"] == "http://localhost:9" + photos[1]["img_src"].removeprefix(server.base_url)


def test_fail_next_scripts_answers_for_matching_requests_only(server: MarsReplayServer) -> None:
    page_2 = f"{API}/rovers/curiosity/photos?sol=1001&page=2"
    server.fail_next(page_2, 503, count=2, retry_after=3)
    server.fail_next(f"{API}/manifests/", 500, body={"oops": True})
    url = f"{server.photos_url}/rovers/curiosity/photos"
    assert get(url, params={"sol": 1001, "page": 1}).status_code == 200
    failed = get(url, params={"sol": 1001, "page": 2, "api_key": "x"})  # the key is not part of the match
    assert failed.status_code == 503 and failed.headers["Retry-After"] == "3"
    assert failed.json()["error"]["code"] == "HTTP_503" and "X-RateLimit-Remaining" in failed.headers
    assert get(url, params={"sol": 1001, "page": 2}).status_code == 503
    assert get(url, params={"sol": 1001, "page": 2}).status_code == 200
    assert get(f"{server.photos_url}/manifests/curiosity").json() == {"oops": True}
    server.fail_next(API, 429, 1)
    limited = get(f"{server.photos_url}/manifests/curiosity")
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "OVER_RATE_LIMIT"


def test_truncate_next_in_both_modes(server: MarsReplayServer) -> None:
    url = f"{server.photos_url}/rovers/perseverance/photos"
    server.truncate_next(f"{API}/rovers/perseverance/photos", mode="cut_json")
    cut = get(url, params={"sol": 101})
    assert cut.status_code == 200 and int(cut.headers["Content-Length"]) == len(cut.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)
    server.truncate_next(f"{API}/rovers/perseverance/photos", mode="short_body")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(url, params={"sol": 101})
    assert len(get(url, params={"sol": 101}).json()["photos"]) == 4
    with pytest.raises(ValueError, match="unknown truncation mode"):
        server.truncate_next(API, mode="half")


def test_refuses_a_folder_without_recordings(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no recorded Mars responses"):
        MarsReplayServer(tmp_path)
