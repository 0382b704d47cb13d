"""Searching with pystac-client through the polite session against the local replay of Earth Search and the
Planetary Computer: paging to the end, cloud filters, retries, loops, broken answers, signing, band selection."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from shapely.geometry import box

from satlake.acquisition.search import (
    MissingBands,
    PlanetaryComputerSigner,
    SearchError,
    href_signer,
    search_items,
    select_band_assets,
)
from satlake.acquisition.sources import StacSource
from satlake.acquisition.stac_replay import Faults, ReplayItem, StacReplayServer, replay_items_from_scenes
from satlake.resources.http import BudgetExceeded, PoliteSession
from satlake.scenes.synthetic import make_synthetic_scenes

COLLECTION = "sentinel-2-l2a"
DATES = [datetime(2024, month, 2, 10, tzinfo=UTC) for month in (5, 6, 7)]


@pytest.fixture(scope="module")
def replay_items(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[ReplayItem]]:
    work = tmp_path_factory.mktemp("search-replay")
    scenes = make_synthetic_scenes(work / "scenes", tiles=1, dates=DATES, size=128)
    return {
        flavour: replay_items_from_scenes(scenes, work / flavour, flavour, COLLECTION)
        for flavour in ("earth-search", "planetary-computer")
    }


def _source(server: StacReplayServer) -> StacSource:
    signing = "planetary-computer" if server.flavour == "planetary-computer" else None
    return StacSource(server.flavour, server.url, signing)


def _aoi(items: list[ReplayItem]) -> box:
    west, south, east, north = items[0].item["bbox"]
    return box(west + (east - west) * 0.3, south + (north - south) * 0.3, west + (east - west) * 0.6, north - 0.001)


def _session(**kwargs: object) -> tuple[PoliteSession, list[float]]:
    slept: list[float] = []
    return PoliteSession(timeout_s=10, sleep=slept.append, **kwargs), slept  # type: ignore[arg-type]


@pytest.fixture
def earth_search(replay_items: dict[str, list[ReplayItem]]) -> Iterator[StacReplayServer]:
    with StacReplayServer(replay_items["earth-search"], flavour="earth-search", page_size=2) as server:
        yield server


@pytest.mark.parametrize("flavour", ["earth-search", "planetary-computer"])
def test_search_follows_next_links_to_the_last_page(replay_items: dict[str, list[ReplayItem]], flavour: str) -> None:
    items = replay_items[flavour]
    with StacReplayServer(items, flavour=flavour, page_size=1) as server:
        session, _ = _session()
        found = list(search_items(_source(server), _aoi(items), [COLLECTION], "2024-01-01/2024-12-31", None, session))
        searches = [r for r in server.requests if r.path.endswith("/search")]
        base_url = server.base_url
        served = len(server.requests)
    assert sorted(item["id"] for item in found) == sorted(item.item["id"] for item in items)
    assert len(searches) == 3  # one page per item: the first search and two next links
    assert found[0]["assets"]["visual"]["href"].startswith(base_url)  # items as the API sent them
    assert session.requests_made == served  # every request of the search went through the session


def test_datetime_and_cloud_cover_filter(earth_search: StacReplayServer, replay_items: dict) -> None:
    items = replay_items["earth-search"]
    covers = {item.item["id"]: item.item["properties"]["eo:cloud_cover"] for item in items}
    threshold = sorted(covers.values())[1]
    session, _ = _session()
    source = _source(earth_search)
    found = list(search_items(source, _aoi(items), [COLLECTION], "2024-01-01/2024-12-31", threshold, session))
    assert sorted(item["id"] for item in found) == sorted(i for i, cover in covers.items() if cover <= threshold)
    june = list(search_items(source, _aoi(items), [COLLECTION], "2024-06-01/2024-06-30", None, session))
    assert [item["id"] for item in june] == [items[1].item["id"]]


def test_rate_limited_search_waits_retry_after_and_completes(replay_items: dict) -> None:
    items = replay_items["earth-search"]
    faults = Faults(status_sequence={"/search": [429, 429]}, retry_after="1")
    with StacReplayServer(items, page_size=5, faults=faults) as server:
        session, slept = _session()
        found = list(search_items(_source(server), _aoi(items), [COLLECTION], None, None, session))
        statuses = [r.status for r in server.requests if r.path == "/search"]
    assert len(found) == 3
    assert statuses == [429, 429, 200] and slept == [1.0, 1.0]


def test_search_still_failing_after_retries_names_url_and_status(replay_items: dict) -> None:
    items = replay_items["earth-search"]
    with StacReplayServer(items, faults=Faults(status_sequence={"/search": [503] * 10}, retry_after=None)) as server:
        session, slept = _session(max_retries=2)
        with pytest.raises(SearchError, match=rf"failed on POST {server.url}/search: HTTP 503"):
            list(search_items(_source(server), _aoi(items), [COLLECTION], None, None, session))
    assert slept == [0.5, 1.0]


def test_looping_next_link_is_an_error(replay_items: dict) -> None:
    items = replay_items["earth-search"]
    with StacReplayServer(items, page_size=1, faults=Faults(loop_next=True)) as server:
        session, _ = _session()
        found: list[str] = []
        with pytest.raises(SearchError, match=r"the search's next link loops: POST .*/search"):
            for item in search_items(_source(server), _aoi(items), [COLLECTION], None, None, session):
                found.append(item["id"])
    assert len(found) == len(set(found))  # nothing was yielded twice before the loop was caught


def test_malformed_json_is_an_error_naming_the_url(replay_items: dict) -> None:
    items = replay_items["earth-search"]
    with StacReplayServer(items, faults=Faults(malformed_json_on={"/search"})) as server:
        session, _ = _session()
        with pytest.raises(SearchError, match=rf"answered POST {server.url}/search with malformed JSON"):
            list(search_items(_source(server), _aoi(items), [COLLECTION], None, None, session))


def test_request_budget_stops_a_search(earth_search: StacReplayServer, replay_items: dict) -> None:
    session, _ = _session(request_budget=2)
    with pytest.raises(BudgetExceeded, match="request budget of 2 HTTP requests"):
        list(search_items(_source(earth_search), _aoi(replay_items["earth-search"]), [COLLECTION], None, None, session))
    assert session.requests_made == 2


def test_planetary_computer_hrefs_are_signed_with_a_cached_token(replay_items: dict) -> None:
    items = replay_items["planetary-computer"]
    with StacReplayServer(items, flavour="planetary-computer") as server:
        session, _ = _session()
        item = next(search_items(_source(server), _aoi(items), [COLLECTION], None, None, session))
        red = select_band_assets(item, _source(server))["red"]
        unsigned = session.get(red.href, headers={"Range": "bytes=0-15"})
        sign = href_signer(_source(server), server.sas_url, session)
        assert isinstance(sign, PlanetaryComputerSigner)
        signed = sign(red.href, COLLECTION)
        answer = session.get(signed, headers={"Range": "bytes=0-15"})
        assert sign(select_band_assets(item, _source(server))["nir"].href, COLLECTION).endswith(signed.split("?")[1])
        assert sign(signed, COLLECTION) == signed  # signed already
        token_requests = [r for r in server.requests if r.path.startswith("/api/sas/v1/token")]
    assert unsigned.status_code == 403
    assert answer.status_code == 206 and answer.content[:4] in (b"II*\x00", b"MM\x00*")
    assert len(token_requests) == 1


def test_unsigned_sources_keep_hrefs() -> None:
    session, _ = _session()
    sign = href_signer(StacSource("earth-search", "https://x", None), "http://unused", session)
    assert sign("https://x/a.tif", COLLECTION) == "https://x/a.tif"
    assert session.requests_made == 0


def test_token_endpoint_errors_are_clear(earth_search: StacReplayServer) -> None:
    session, _ = _session()
    signer = PlanetaryComputerSigner(earth_search.base_url + "/no-sas", session)
    with pytest.raises(SearchError, match=r"SAS token endpoint .*/no-sas/token/sentinel-2-l2a answered HTTP 404"):
        signer("http://127.0.0.1/a.tif", COLLECTION)


def test_band_selection_by_common_name_then_table(replay_items: dict) -> None:
    es_item = replay_items["earth-search"][0].item
    es = select_band_assets(es_item, StacSource("earth-search", "https://es", None))
    assert {role: band.key for role, band in es.items()} == {
        "blue": "blue", "green": "green", "red": "red", "nir": "nir", "cloud": "scl",
    }  # fmt: skip
    assert es["cloud"].description == "scl" and es["nir"].description == "nir"
    pc_item = copy.deepcopy(replay_items["planetary-computer"][0].item)
    for asset in pc_item["assets"].values():  # no eo:bands: only the source's table can tell the bands
        asset.pop("eo:bands", None)
    pc = select_band_assets(pc_item, StacSource("planetary-computer", "https://pc", "planetary-computer"))
    assert {role: band.key for role, band in pc.items()} == {
        "blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "cloud": "SCL",
    }  # fmt: skip
    # A bare URL source has no table: common names for colours, the usual keys for the cloud mask.
    url = select_band_assets(replay_items["planetary-computer"][0].item, StacSource("url", "https://any", None))
    assert url["red"].key == "B04" and url["cloud"].key == "SCL"


def test_missing_bands_are_listed(replay_items: dict) -> None:
    items = replay_items["earth-search"]
    item_id = items[0].item["id"]
    with StacReplayServer(items, faults=Faults(drop_bands={item_id: {"nir", "scl"}})) as server:
        session, _ = _session()
        found = {i["id"]: i for i in search_items(_source(server), _aoi(items), [COLLECTION], None, None, session)}
    with pytest.raises(MissingBands, match=rf"item '{item_id}' has no GeoTIFF asset for band role\(s\) nir, cloud"):
        select_band_assets(found[item_id], StacSource("earth-search", "https://es", None))


def test_visual_is_never_taken_for_a_single_band(replay_items: dict) -> None:
    item = copy.deepcopy(replay_items["earth-search"][0].item)
    del item["assets"]["red"]
    with pytest.raises(MissingBands, match=r"band role\(s\) red \("):
        select_band_assets(item, StacSource("url", "https://any", None))
