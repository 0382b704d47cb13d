"""The STAC replay server answers real HTTP clients (requests, pystac-client, GDAL's /vsicurl/) the way Earth
Search and the Planetary Computer do: paged searches, filters, signed asset reads, ranges and scripted faults."""

from __future__ import annotations

import hashlib
import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pystac_client
import pytest
import rasterio
import requests
from rasterio.windows import Window

from satlake.acquisition.stac_replay import Faults, ReplayItem, StacReplayServer, replay_items_from_scenes
from satlake.scenes.synthetic import DEFAULT_DATES, make_synthetic_scenes

FLAVOURS = ("earth-search", "planetary-computer")
COLLECTION = "sentinel-2-l2a"
ALL_YEAR = "2024-01-01T00:00:00Z/2024-12-31T23:59:59Z"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_synthetic_scenes(tmp_path_factory.mktemp("scenes"), tiles=2, size=256)


@pytest.fixture(scope="module")
def replay_items(scenes: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[ReplayItem]]:
    return {
        flavour: replay_items_from_scenes(scenes, tmp_path_factory.mktemp(flavour), flavour, COLLECTION)
        for flavour in FLAVOURS
    }


def _bbox_of_all(items: list[ReplayItem]) -> list[float]:
    boxes = [replay.item["bbox"] for replay in items]
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def _expected_order(items: list[ReplayItem]) -> list[str]:
    ordered = sorted((r.item for r in items), key=lambda item: item["id"])
    return [item["id"] for item in sorted(ordered, key=lambda item: item["properties"]["datetime"], reverse=True)]


def _red_key(flavour: str) -> str:
    return "red" if flavour == "earth-search" else "B04"


def _signed(server: StacReplayServer, href: str) -> str:
    if server.flavour != "planetary-computer":
        return href
    token = requests.get(f"{server.sas_url}/token/{COLLECTION}", timeout=5).json()["token"]
    return f"{href}?{token}"


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_pystac_client_pages_through_every_item(
    replay_items: dict[str, list[ReplayItem]], flavour: str, method: str
) -> None:
    items = replay_items[flavour]
    with StacReplayServer(items, flavour=flavour, page_size=3) as server:
        search = pystac_client.Client.open(server.url).search(
            collections=[COLLECTION], bbox=_bbox_of_all(items), datetime=ALL_YEAR, max_items=None, method=method
        )
        found = [item.id for item in search.items()]
        searches = [r for r in server.requests if r.path.endswith("/search")]
    assert found == _expected_order(items)
    assert len(searches) == math.ceil(len(items) / 3) == 3
    assert all(r.method == method and r.status == 200 for r in searches)
    token_name = "next" if flavour == "earth-search" else "token"
    if method == "POST":
        assert token_name not in searches[0].body
        assert all(token_name in r.body for r in searches[1:])
    else:
        assert all(f"{token_name}=" in r.query for r in searches[1:])


def test_next_links_are_shaped_like_each_service(replay_items: dict[str, list[ReplayItem]]) -> None:
    with StacReplayServer(replay_items["earth-search"], page_size=2) as server:
        page = requests.post(f"{server.url}/search", json={"collections": [COLLECTION]}, timeout=5).json()
    (next_link,) = [link for link in page["links"] if link["rel"] == "next"]
    newest_second = page["features"][1]
    assert next_link["method"] == "POST" and next_link["merge"] is False
    assert next_link["body"] == {
        "collections": [COLLECTION],
        "next": f"{newest_second['properties']['datetime']},{newest_second['id']},{COLLECTION}",
    }
    assert page["numberMatched"] == page["context"]["matched"] == len(replay_items["earth-search"])
    assert page["numberReturned"] == page["context"]["returned"] == 2

    with StacReplayServer(replay_items["planetary-computer"], flavour="planetary-computer", page_size=2) as server:
        page = requests.get(f"{server.url}/search", params={"collections": COLLECTION}, timeout=5).json()
    (next_link,) = [link for link in page["links"] if link["rel"] == "next"]
    assert next_link["method"] == "GET"
    assert next_link["href"].endswith(f"token=next%3A{COLLECTION}%3A{page['features'][1]['id']}")
    assert "numberMatched" not in page and page["numberReturned"] == 2


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_cloud_cover_filters_with_query_and_cql2(replay_items: dict[str, list[ReplayItem]], flavour: str) -> None:
    items = replay_items[flavour]
    clear = {r.item["id"] for r in items if r.item["properties"]["eo:cloud_cover"] < 5}
    assert 0 < len(clear) < len(items)  # the synthetic scenes have clouded dates
    with StacReplayServer(items, flavour=flavour, page_size=2) as server:
        client = pystac_client.Client.open(server.url)
        by_query = client.search(collections=[COLLECTION], query={"eo:cloud_cover": {"lt": 5}}, max_items=None)
        by_filter = client.search(
            collections=[COLLECTION],
            filter={"op": "<=", "args": [{"property": "eo:cloud_cover"}, 4.99]},
            filter_lang="cql2-json",
            max_items=None,
        )
        assert {item.id for item in by_query.items()} == clear
        assert {item.id for item in by_filter.items()} == clear
        refused = requests.post(f"{server.url}/search", json={"filter": {"op": "like", "args": []}}, timeout=5)
    assert refused.status_code == 400 and refused.json()["code"] == "BadRequest"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_items_carry_the_services_asset_keys(
    scenes: list[Path], replay_items: dict[str, list[ReplayItem]], flavour: str
) -> None:
    replay = replay_items[flavour][0]
    item = replay.item
    expected = (
        {"blue", "green", "red", "nir", "scl", "visual", "thumbnail"}
        if flavour == "earth-search"
        else {"B02", "B03", "B04", "B08", "SCL", "visual"}
    )
    assert set(item["assets"]) == expected
    common = {key: asset["eo:bands"][0]["common_name"] for key, asset in item["assets"].items() if "eo:bands" in asset}
    assert common[_red_key(flavour)] == "red"
    props = item["properties"]
    assert props["proj:code"] == "EPSG:32633" and props["proj:shape"] == [256, 256]
    assert props["datetime"].startswith("2024-05-02T10:00:00")
    west, south, east, north = item["bbox"]
    assert 12 < west < east < 16 and 49 < south < north < 52  # lon/lat of the UTM 33N tile
    with (
        rasterio.open(replay.files[_red_key(flavour)]) as cog,
        rasterio.open(next(p for p in scenes if p.stem == item["id"])) as scene,
    ):
        # satlake's COG options shrink tiles to 128 px for a 256-px scene so it keeps an overview level
        assert cog.block_shapes[0] == (128, 128) and cog.overviews(1) == [2]
        assert np.array_equal(cog.read(1), scene.read(3))
        assert cog.descriptions[0] == "red"


def test_cloud_band_marks_clouded_pixels(replay_items: dict[str, list[ReplayItem]]) -> None:
    cloudy = max(replay_items["earth-search"], key=lambda r: r.item["properties"]["eo:cloud_cover"])
    with rasterio.open(cloudy.files["scl"]) as scl:
        values = scl.read(1)
    share = float((values == 9).mean()) * 100
    assert set(np.unique(values)) <= {4, 9}
    assert abs(share - cloudy.item["properties"]["eo:cloud_cover"]) < 10


def test_range_and_head_answers(replay_items: dict[str, list[ReplayItem]]) -> None:
    replay = replay_items["earth-search"][0]
    data = replay.files["red"].read_bytes()
    size = len(data)
    with StacReplayServer(replay_items["earth-search"]) as server:
        href = server.asset_href(replay.item["id"], "red")
        middle = requests.get(href, headers={"Range": "bytes=100-199"}, timeout=5)
        tail = requests.get(href, headers={"Range": "bytes=-50"}, timeout=5)
        open_ended = requests.get(href, headers={"Range": f"bytes={size - 10}-"}, timeout=5)
        beyond = requests.get(href, headers={"Range": f"bytes={size}-"}, timeout=5)
        head = requests.head(href, timeout=5)
        whole = requests.get(href, timeout=5)
        path = href.removeprefix(server.base_url)
        sent = server.bytes_sent(path)
    assert (middle.status_code, middle.content) == (206, data[100:200])
    assert middle.headers["Content-Range"] == f"bytes 100-199/{size}"
    assert (tail.status_code, tail.content) == (206, data[-50:])
    assert (
        open_ended.content == data[-10:]
        and open_ended.headers["Content-Range"] == f"bytes {size - 10}-{size - 1}/{size}"
    )
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{size}"
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) == size and head.headers["Accept-Ranges"] == "bytes"
    assert head.headers["ETag"] == '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    assert head.headers["Last-Modified"].endswith("GMT")
    assert whole.status_code == 200 and whole.content == data
    assert sent == 100 + 50 + 10 + size


def test_rate_limit_then_success() -> None:
    faults = Faults(status_sequence={"/search": [429, 429]}, retry_after="1")
    with StacReplayServer([], faults=faults) as server:
        answers = [requests.post(f"{server.url}/search", json={}, timeout=5) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "1" and "Retry-After" not in answers[2].headers
    assert answers[2].json()["features"] == []


def test_malformed_json_and_unknown_collection(replay_items: dict[str, list[ReplayItem]]) -> None:
    with StacReplayServer(replay_items["earth-search"], faults=Faults(malformed_json_on={"/search"})) as server:
        broken = requests.post(f"{server.url}/search", json={}, timeout=5)
        missing = requests.get(f"{server.url}/collections/not-there", timeout=5)
        known = requests.get(f"{server.url}/collections/{COLLECTION}", timeout=5).json()
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.content)
    assert missing.status_code == 404
    assert missing.json() == {"code": "NotFoundError", "description": "Collection not-there does not exist."}
    assert known["id"] == COLLECTION and known["extent"]["temporal"]["interval"][0][0].startswith("2024-05-02")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_looping_next_link(replay_items: dict[str, list[ReplayItem]], flavour: str) -> None:
    with StacReplayServer(replay_items[flavour], flavour=flavour, page_size=2, faults=Faults(loop_next=True)) as server:
        first = requests.post(f"{server.url}/search", json={"limit": 2}, timeout=5).json()
        link_1 = next(link for link in first["links"] if link["rel"] == "next")
        second = requests.post(link_1["href"], json=link_1["body"], timeout=5).json()
        link_2 = next(link for link in second["links"] if link["rel"] == "next")
    assert (link_2["href"], link_2["body"]) == (link_1["href"], link_1["body"])
    assert {f["id"] for f in first["features"]}.isdisjoint(f["id"] for f in second["features"])


def test_missing_truncated_and_dropped_assets(replay_items: dict[str, list[ReplayItem]]) -> None:
    items = replay_items["earth-search"]
    first = items[0].item["id"]
    faults = Faults(missing_assets={"red"}, truncate_assets={"nir"}, drop_bands={first: {"green", "scl"}})
    with StacReplayServer(items, faults=faults, page_size=100) as server:
        red = requests.get(server.asset_href(first, "red"), timeout=5)
        blue = requests.get(server.asset_href(first, "blue"), timeout=5)
        nir_href = server.asset_href(first, "nir")
        with requests.get(nir_href, stream=True, timeout=5) as nir:
            declared = int(nir.headers["Content-Length"])
            with pytest.raises(requests.exceptions.ChunkedEncodingError):
                _ = nir.content
        nir_sent = server.bytes_sent(nir_href.removeprefix(server.base_url))
        features = requests.post(f"{server.url}/search", json={}, timeout=5).json()["features"]
        direct = requests.get(f"{server.url}/collections/{COLLECTION}/items/{first}", timeout=5).json()
    assert red.status_code == 404 and b"NoSuchKey" in red.content
    assert blue.status_code == 200 and blue.content == items[0].files["blue"].read_bytes()
    assert declared == items[0].files["nir"].stat().st_size and nir_sent == declared // 2
    by_id = {f["id"]: f for f in features}
    assert set(by_id[first]["assets"]) == {"blue", "red", "nir", "visual", "thumbnail"}
    assert set(direct["assets"]) == set(by_id[first]["assets"])
    assert all("green" in f["assets"] for item_id, f in by_id.items() if item_id != first)


def test_assets_redirect_to_another_host(replay_items: dict[str, list[ReplayItem]]) -> None:
    items = replay_items["earth-search"]
    with StacReplayServer(items) as other:
        port = other.base_url.rsplit(":", 1)[1]
        with StacReplayServer(items, faults=Faults(redirect_assets_to=f"http://localhost:{port}")) as server:
            href = server.asset_href(items[0].item["id"], "blue")
            redirect = requests.get(href, allow_redirects=False, timeout=5)
            followed = requests.get(href, timeout=5)
            path = href.removeprefix(server.base_url)
    assert redirect.status_code == 302 and redirect.headers["Location"] == f"http://localhost:{port}{path}"
    assert followed.status_code == 200 and followed.content == items[0].files["blue"].read_bytes()
    assert [r.path for r in other.requests] == [path]


def test_planetary_computer_assets_need_a_signed_href(replay_items: dict[str, list[ReplayItem]]) -> None:
    items = replay_items["planetary-computer"]
    item_id = items[0].item["id"]
    with StacReplayServer(items, flavour="planetary-computer") as server:
        href = server.asset_href(item_id, "B04")
        unsigned = requests.get(href, timeout=5)
        token = requests.get(f"{server.sas_url}/token/{COLLECTION}", timeout=5).json()
        by_container = requests.get(f"{server.sas_url}/token/account/{COLLECTION}", timeout=5).json()
        signed = requests.get(f"{href}?{token['token']}", headers={"Range": "bytes=0-1023"}, timeout=5)
        container_signed = requests.head(f"{href}?{by_container['token']}", timeout=5)
        other = requests.get(f"{server.sas_url}/token/landsat-c2-l2", timeout=5).json()["token"]
        wrong_collection = requests.get(f"{href}?{other}", timeout=5)
    with StacReplayServer(items, flavour="planetary-computer", token_ttl_s=-60) as expiring:
        stale = requests.get(f"{expiring.sas_url}/token/{COLLECTION}", timeout=5).json()["token"]
        expired = requests.get(f"{expiring.asset_href(item_id, 'B04')}?{stale}", timeout=5)
    assert unsigned.status_code == 403 and b"not signed" in unsigned.content
    assert set(token) == {"msft:expiry", "token"} and "sig=" in token["token"] and "se=" in token["token"]
    assert signed.status_code == 206 and signed.content == items[0].files["B04"].read_bytes()[:1024]
    assert container_signed.status_code == 200
    assert wrong_collection.status_code == 403 and expired.status_code == 403 and b"expired" in expired.content


def test_gdal_reads_a_window_with_few_bytes(tmp_path: Path) -> None:
    scene = make_synthetic_scenes(tmp_path / "big", tiles=1, dates=[DEFAULT_DATES[0]], size=1024)
    items = replay_items_from_scenes(scene, tmp_path / "cogs", "earth-search", COLLECTION)
    red_file = items[0].files["red"]
    window = Window(256, 256, 229, 229)  # 5 % of the area, inside one 256-px tile
    with StacReplayServer(items) as server:
        href = server.asset_href(items[0].item["id"], "red")
        with (
            rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", GDAL_HTTP_MULTIPLEX="NO"),
            rasterio.open(f"/vsicurl/{href}") as remote,
        ):
            assert remote.block_shapes[0] == (256, 256)
            remote_pixels = remote.read(1, window=window)
        sent = server.bytes_sent(href.removeprefix(server.base_url))
        ranged = [r for r in server.requests if r.method == "GET" and "Range" in r.headers]
    with rasterio.open(red_file) as local:
        assert np.array_equal(remote_pixels, local.read(1, window=window))
    assert ranged and all(r.status == 206 for r in ranged)
    assert sent < 0.3 * red_file.stat().st_size, f"{sent} of {red_file.stat().st_size} bytes fetched"


def test_concurrent_requests_are_all_logged_and_quiet(
    replay_items: dict[str, list[ReplayItem]], capfd: pytest.CaptureFixture[str]
) -> None:
    with StacReplayServer(replay_items["earth-search"]) as server:
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(
                pool.map(lambda _: requests.get(f"{server.url}/conformance", timeout=5).status_code, range(40))
            )
        logged = server.requests
    assert statuses == [200] * 40 and len(logged) == 40
    assert capfd.readouterr().err == ""
