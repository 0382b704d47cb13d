"""The Mars client against the replay server over loopback (real HTTP, no mocks): paging, retries and
Retry-After, the request budget and the API's hourly limit, readable errors for every kind of unusable answer,
and an API key that never shows in what is recorded."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from satlake.mars.client import ApiResponse, MarsClient, mars_session, strip_api_key
from satlake.mars.replay import MarsReplayServer
from satlake.resources.http import BudgetExceeded

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mars"
KEY = "k3y-Sup3rSecret-0123456789"
PHOTOS = "/mars-photos/api/v1/rovers"


@pytest.fixture
def server() -> Iterator[MarsReplayServer]:
    with MarsReplayServer(FIXTURES, api_key=KEY) as replay:
        yield replay


@pytest.fixture
def slept() -> list[float]:
    return []


def client_for(
    server: MarsReplayServer, slept: list[float], *, budget: int = 50, retries: int = 3, key: str = KEY
) -> MarsClient:
    session = mars_session(5.0, retries, budget, sleep=slept.append)
    return MarsClient(server.photos_url, server.mmgis_url, key, session)


def photo_count(response: ApiResponse) -> int:
    return len(response.json()["photos"])


def assert_no_key(*texts: object) -> None:
    for text in texts:
        assert KEY not in str(text)


def test_pages_to_the_end_of_a_sol(server: MarsReplayServer, slept: list[float]) -> None:
    client = client_for(server, slept)
    two = client.photos_for_sol("curiosity", 1001)
    one = client.photos_for_sol("perseverance", 100)
    assert [(r.page, r.status, photo_count(r), r.error) for r in two] == [(1, 200, 25, None), (2, 200, 6, None)]
    assert [(r.kind, r.rover, r.sol, photo_count(r)) for r in one] == [("photos", "perseverance", 100, 8)]
    assert [r.query for r in server.requests_to(f"{PHOTOS}/curiosity/")] == ["sol=1001&page=1", "sol=1001&page=2"]
    assert len(server.requests_to(f"{PHOTOS}/perseverance/")) == 1
    assert "cameras" not in two[0].json()["photos"][0]["rover"]  # Curiosity: the short rover shape
    assert one[0].json()["photos"][0]["rover"]["max_sol"] == 107  # Perseverance: the long one
    assert two[0].content_type == "application/json; charset=utf-8" and two[0].fetched_at.tzinfo is not None
    assert two[0].body.startswith(b'{"photos":[')  # as received: the replay answers compact JSON like the API


def test_manifest_and_waypoints(server: MarsReplayServer, slept: list[float]) -> None:
    client = client_for(server, slept)
    manifest = client.manifest("Curiosity")
    assert manifest.ok and manifest.rover == "curiosity" and manifest.json()["photo_manifest"]["max_sol"] == 1006
    waypoints = client.waypoints("msl")
    assert waypoints.ok and waypoints.kind == "waypoints" and waypoints.rover == "curiosity"
    assert waypoints.url == f"{server.mmgis_url}/MSL/Layers/json/MSL_waypoints.json"
    assert len(waypoints.json()["features"]) == 24
    unknown = client.waypoints("MER")
    assert unknown.status == 404 and unknown.error.startswith("127.0.0.1:")
    assert "answered 404 Not Found for the waypoints" in unknown.error
    assert not server.requests_to("/mmgis-maps/")[0].key_sent  # the key goes to api.nasa.gov only


def test_429_is_retried_after_the_retry_after_it_names(server: MarsReplayServer, slept: list[float]) -> None:
    server.fail_next(f"{PHOTOS}/curiosity/photos", 429, count=2, retry_after=7)
    response = client_for(server, slept).photos_page("curiosity", 1000, 1)
    assert response.ok and photo_count(response) == 7
    assert slept == [7.0, 7.0]
    assert [r.status for r in server.requests] == [429, 429, 200]


def test_5xx_is_retried_with_backoff_then_reported(server: MarsReplayServer, slept: list[float]) -> None:
    server.fail_next(f"{PHOTOS}/perseverance/photos", 503, count=1)
    server.fail_next(f"{PHOTOS}/perseverance/photos", 502, count=1)
    client = client_for(server, slept, retries=2)
    assert client.photos_page("perseverance", 101, 1).ok
    assert slept == [0.5, 1.0]  # PoliteSession's exponential backoff: no Retry-After sent
    server.fail_next(f"{PHOTOS}/perseverance/photos", 500, count=3)
    failed = client.photos_page("perseverance", 101, 1)
    assert failed.status == 500 and failed.body  # the last answer, as received
    assert failed.error == (
        f"127.0.0.1:{server.base_url.rsplit(':', 1)[1]} answered 500 HTTP_500: Internal Server Error "
        "(scripted by the replay server)"
    )


def test_the_request_budget_stops_fetching(server: MarsReplayServer, slept: list[float]) -> None:
    client = client_for(server, slept, budget=2)
    assert client.manifest("curiosity").ok
    with pytest.raises(BudgetExceeded) as raised:
        client.photos_for_sol("curiosity", 1001)
    message = str(raised.value)
    assert "request budget of 2 HTTP requests for this run is spent" in message
    assert "raise SATLAKE_MARS_REQUEST_BUDGET (api.nasa.gov allows 1,000 requests an hour per key" in message
    assert "page=2" in message and raised.value.__context__ is None
    assert len(server.requests) == 2
    assert_no_key(message)


def test_no_api_request_once_the_hourly_limit_is_spent(slept: list[float]) -> None:
    with MarsReplayServer(FIXTURES, hourly_limit=3) as server:
        client = client_for(server, slept)
        assert client.manifest("perseverance").ok and client.rate_remaining == 2
        pages = client.photos_for_sol("perseverance", 100) + client.photos_for_sol("perseverance", 101)
        assert [r.ok for r in pages] == [True, True] and client.rate_remaining == 0
        with pytest.raises(BudgetExceeded) as raised:
            client.photos_page("perseverance", 102, 1)
        assert client.waypoints("M20").ok  # MMGIS is another service: not limited
        assert len(server.requests_to("/mars-photos/")) == 3
    message = str(raised.value)
    assert message.startswith("127.0.0.1:") and "hourly limit of 3 requests for this API key is spent" in message
    assert "X-RateLimit-Remaining: 0" in message and "(in an hour)" in message
    assert "sol=102&page=1 was not requested" in message


def test_the_hourly_limit_reset_header_says_when_to_retry(slept: list[float]) -> None:
    with MarsReplayServer(FIXTURES, hourly_limit=1, send_rate_limit_reset=True) as server:
        server.rate_limit.window_s = 600.0
        client = client_for(server, slept)
        assert client.manifest("curiosity").ok
        with pytest.raises(BudgetExceeded, match=r"run again after .* UTC \(in 10 min\)"):
            client.manifest("perseverance")


def test_api_error_bodies_become_readable_errors(server: MarsReplayServer, slept: list[float]) -> None:
    host = server.base_url.removeprefix("http://")
    wrong_key = client_for(server, slept, key="not-the-key").manifest("curiosity")
    assert wrong_key.status == 403 and wrong_key.error.startswith(
        f"{host} answered 403 API_KEY_INVALID: An invalid api_key was supplied. Get one at https://api.nasa.gov:443; "
        "set SATLAKE_NASA_API_KEY"
    )
    client = client_for(server, slept, retries=0)
    unknown = client.photos_page("pathfinder", 1, 1)
    assert unknown.status == 400 and unknown.error.startswith("the API knows no rover 'pathfinder'")
    assert "curiosity, opportunity, perseverance, spirit" in unknown.error
    server.spend_rate_limit()
    limited = client.manifest("curiosity")
    assert limited.status == 429 and limited.error.startswith(
        f"{host} answered 429 OVER_RATE_LIMIT: You have exceeded your rate limit."
    )
    with pytest.raises(BudgetExceeded, match="hourly limit of 1000 requests"):
        client.manifest("perseverance")  # that answer said X-RateLimit-Remaining: 0


def test_a_retry_after_longer_than_the_run_waits_is_a_reject(server: MarsReplayServer, slept: list[float]) -> None:
    server.fail_next(f"{PHOTOS}/curiosity/photos", 429, count=1, retry_after=3600)
    response = client_for(server, slept).photos_page("curiosity", 1002, 1)
    assert response.status == 0 and response.body == b"" and slept == []
    assert "answered 429 with Retry-After 3600s, longer than the 30s this run waits" in response.error


def test_truncated_pages_are_errors(server: MarsReplayServer, slept: list[float]) -> None:
    server.truncate_next(f"{PHOTOS}/curiosity/photos?sol=1001&page=1", mode="cut_json")
    pages = client_for(server, slept).photos_for_sol("curiosity", 1001)
    assert len(pages) == 1 and pages[0].status == 200  # paging stops at the unusable page
    assert pages[0].error.startswith("the body is not complete JSON (") and " at char " in pages[0].error
    assert len(pages[0].body) == server.requests[-1].bytes_sent  # the body is kept as received

    server.truncate_next(f"{PHOTOS}/curiosity/photos", count=1, mode="short_body")
    assert client_for(server, slept).photos_page("curiosity", 1000, 1).ok  # cut transfer: retried
    server.truncate_next(f"{PHOTOS}/curiosity/photos", count=2, mode="short_body")
    cut = client_for(server, slept, retries=1).photos_page("curiosity", 1000, 1)
    assert cut.status == 0 and "the response ended before the length the server declared" in cut.error


def test_images_redirected_to_another_host_are_refused(server: MarsReplayServer, slept: list[float]) -> None:
    client = client_for(server, slept)
    photos = client.photos_page("perseverance", 102, 1).json()["photos"]
    image = client.image(photos[0]["img_src"], rover="perseverance", sol=102)
    assert image.ok and image.kind == "image" and image.content_type == "image/jpeg" and image.body[:2] == b"\xff\xd8"
    server.redirect_images_to(server.base_url.replace("127.0.0.1", "localhost"))
    refused = client.image(photos[1]["img_src"])
    assert refused.status == 0 and "to another host http://localhost:" in refused.error
    server.redirect_images_to(None)
    server.missing_images({photos[2]["id"]})
    missing = client.image(photos[2]["img_src"])
    assert missing.status == 404 and "answered 404 Not Found for the image" in missing.error


def test_transport_failures_become_rejects(slept: list[float]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    session = mars_session(2.0, 1, 10, sleep=slept.append)
    client = MarsClient(f"http://127.0.0.1:{port}/mars-photos/api/v1", f"http://127.0.0.1:{port}/m", KEY, session)
    response = client.manifest("curiosity")
    assert response.status == 0 and "failed after 2 attempts" in response.error and slept == [0.5]
    assert_no_key(response.error)


def test_the_api_key_never_shows(server: MarsReplayServer, slept: list[float]) -> None:
    client = client_for(server, slept)
    responses = [client.manifest("curiosity"), *client.photos_for_sol("curiosity", 1001), client.waypoints("M20")]
    server.fail_next(f"{PHOTOS}/curiosity/photos", 503, count=5)
    responses.append(client.photos_page("curiosity", 1002, 1))
    assert all("api_key" not in r.url for r in responses)
    assert_no_key(repr(client), *[r.url for r in responses], *[r.error for r in responses], *server.requests)
    assert all(r.key_sent for r in server.requests_to("/mars-photos/"))  # sent, in the X-Api-Key header
    assert responses[-1].error is not None and "503" in responses[-1].error


def test_base_urls_are_joined_and_checked(server: MarsReplayServer, slept: list[float]) -> None:
    session = mars_session(5.0, 0, 10, sleep=slept.append)
    client = MarsClient(server.photos_url + "//", server.mmgis_url + "/", KEY, session)
    assert client.manifest("curiosity").url == f"{server.photos_url}/manifests/curiosity"
    assert client.waypoints("M20").ok
    with pytest.raises(ValueError, match="SATLAKE_MARS_PHOTOS_URL must be an http"):
        MarsClient("api.nasa.gov/mars-photos/api/v1", server.mmgis_url, KEY, session)
    with pytest.raises(ValueError, match="must not carry a query"):
        MarsClient(server.photos_url + "?api_key=DEMO_KEY", server.mmgis_url, KEY, session)
    with pytest.raises(ValueError, match="SATLAKE_NASA_API_KEY is empty"):
        MarsClient(server.photos_url, server.mmgis_url, " ", session)
    assert strip_api_key("https://x/a?sol=1&api_key=SECRET&page=2") == "https://x/a?sol=1&page=2"
