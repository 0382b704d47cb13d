"""Every Item Search parameter of the STAC API, GET and POST, on the five-item catalog: the ids found, in order,
and the paging through ``next`` links; Core, Collections and Features alongside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.unit.serving.stac_catalog import (
    ALL_IDS,
    ARCTIC,
    COLLECTIONS,
    EARLY_UTM,
    FIJI,
    LATE_UTM,
    MARS,
    api_client,
    catalog_items,
    catalogued_root,
    ids,
    triangle_item,
    write_catalog,
)

UTM_TILE = {"type": "Polygon", "coordinates": [[[15.01, 45.13], [15.02, 45.13], [15.02, 45.14], [15.01, 45.13]]]}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    return api_client(catalogued_root(tmp_path_factory.mktemp("root")))


def test_landing_page_declares_the_classes_it_serves_and_links_the_map(client: TestClient) -> None:
    landing = client.get("/").json()
    conforms = set(landing["conformsTo"])
    assert {
        "https://api.stacspec.org/v1.0.0/core",
        "https://api.stacspec.org/v1.0.0/collections",
        "https://api.stacspec.org/v1.0.0/ogcapi-features",
        "https://api.stacspec.org/v1.0.0/item-search",
        "https://api.stacspec.org/v1.1.0/item-search#sort",
        "https://api.stacspec.org/v1.0.0/item-search#fields",
        "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
        "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
        "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
        "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    } <= conforms
    assert "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators" not in conforms
    assert client.get("/conformance").json()["conformsTo"] == landing["conformsTo"]
    alternate = [link for link in landing["links"] if link["rel"] == "alternate"]
    assert alternate == [{"rel": "alternate", "href": "http://testserver/map", "type": "text/html",
                          "title": "Map of the catalog"}]  # fmt: skip


def test_a_browser_asking_the_root_for_html_goes_to_the_map(client: TestClient) -> None:
    response = client.get("/", headers={"Accept": "text/html,application/xhtml+xml"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/map"
    assert client.get("/", headers={"Accept": "application/json"}).json()["type"] == "Catalog"


def test_the_api_docs_page_is_served_from_satlakes_own_files(client: TestClient) -> None:
    """FastAPI's Swagger page loads its scripts from a CDN; satlake's loads the copy installed beside the map's."""
    service_doc = next(link for link in client.get("/").json()["links"] if link["rel"] == "service-doc")
    assert service_doc["href"] == "http://testserver/api.html"
    page = client.get("/api.html")
    assert page.status_code == 200 and "/map/vendor/swagger-ui/swagger-ui-bundle.js" in page.text
    assert "'/api'" in page.text and "https://" not in page.text and "http://" not in page.text
    assert client.get("/api").json()["info"]["title"]


def test_collections_come_from_the_table_with_their_extents(client: TestClient) -> None:
    collections = {c["id"]: c for c in client.get("/collections").json()["collections"]}
    assert sorted(collections) == COLLECTIONS
    landsat = collections["landsat-c2-l2"]
    assert landsat["extent"]["temporal"]["interval"] == [["2024-05-01T10:00:00Z", "2024-05-17T10:00:00Z"]]
    west, south, east, north = landsat["extent"]["spatial"]["bbox"][0]
    assert west > east  # Fiji carries the union across the antimeridian
    assert south < -16 and north > 45
    assert collections["mars-ctx"]["ssys:targets"] == ["mars"]
    assert collections["mars-ctx"]["stac_extensions"] == ["https://stac-extensions.github.io/ssys/v1.1.0/schema.json"]
    one = client.get("/collections/polar-mosaics").json()
    assert one["id"] == "polar-mosaics" and one["extent"] == collections["polar-mosaics"]["extent"]


def test_features_items_of_a_collection_and_one_item(client: TestClient) -> None:
    assert ids(client.get("/collections/landsat-c2-l2/items")) == [LATE_UTM, FIJI, EARLY_UTM]
    item = client.get(f"/collections/landsat-c2-l2/items/{EARLY_UTM}").json()
    assert item["properties"]["eo:cloud_cover"] == 12.5
    self_link = next(link["href"] for link in item["links"] if link["rel"] == "self")
    assert self_link == f"http://testserver/collections/landsat-c2-l2/items/{EARLY_UTM}"
    assert client.get(f"/collections/polar-mosaics/items/{EARLY_UTM}").status_code == 404
    assert client.get("/collections/no-such-collection").status_code == 404


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ALL_IDS),
        ({"collections": "landsat-c2-l2,polar-mosaics"}, [LATE_UTM, FIJI, EARLY_UTM, ARCTIC]),
        ({"ids": f"{ARCTIC},{MARS}"}, [ARCTIC, MARS]),
        ({"bbox": "14.9,45,15.1,45.2"}, [LATE_UTM, EARLY_UTM]),
        ({"bbox": "179,-20,-179,-15"}, [FIJI]),  # a box across the antimeridian
        ({"bbox": "-180,-90,180,90"}, [LATE_UTM, FIJI, EARLY_UTM, ARCTIC]),  # Mars is never on Earth
        ({"intersects": json.dumps(UTM_TILE)}, [LATE_UTM, EARLY_UTM]),
        ({"datetime": "2024-05-01T00:00:00Z/2024-05-10T00:00:00Z"}, [FIJI, EARLY_UTM]),
        ({"datetime": "../2024-04-30T00:00:00Z"}, [ARCTIC, MARS]),
        ({"datetime": "2024-05-17T10:00:00Z"}, [LATE_UTM]),
        ({"sortby": "+eo:cloud_cover"}, [ARCTIC, EARLY_UTM, FIJI, LATE_UTM, MARS]),
        ({"sortby": "-properties.eo:cloud_cover"}, [LATE_UTM, FIJI, EARLY_UTM, ARCTIC, MARS]),
        ({"sortby": "platform,-datetime"}, [LATE_UTM, EARLY_UTM, FIJI, MARS, ARCTIC]),
        ({"limit": 2}, [LATE_UTM, FIJI]),
    ],
)
def test_get_search_parameters(client: TestClient, params: dict[str, object], expected: list[str]) -> None:
    assert ids(client.get("/search", params=params)) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"collections": ["polar-mosaics", "mars-ctx"]}, [ARCTIC, MARS]),
        ({"ids": [FIJI]}, [FIJI]),
        ({"bbox": [14.9, 45, 15.1, 45.2]}, [LATE_UTM, EARLY_UTM]),
        ({"intersects": UTM_TILE, "datetime": "2024-05-10T00:00:00Z/.."}, [LATE_UTM]),
        ({"sortby": [{"field": "properties.eo:cloud_cover", "direction": "asc"}]}, [ARCTIC, EARLY_UTM, FIJI,
                                                                                   LATE_UTM, MARS]),
        ({"limit": 1, "collections": "mars-ctx"}, [MARS]),
    ],
)  # fmt: skip
def test_post_search_parameters(client: TestClient, body: dict[str, object], expected: list[str]) -> None:
    assert ids(client.post("/search", json=body)) == expected


def test_get_next_links_page_through_every_item_once(client: TestClient) -> None:
    seen: list[str] = []
    response = client.get("/search", params={"limit": 2})
    while True:
        seen += ids(response)
        following = [link for link in response.json()["links"] if link["rel"] == "next"]
        if not following:
            break
        assert "token=" in following[0]["href"] and "limit=2" in following[0]["href"]
        response = client.get(following[0]["href"])
    assert seen == ALL_IDS


def test_post_next_links_carry_the_body_and_page_through(client: TestClient) -> None:
    body = {"limit": 2, "collections": ["landsat-c2-l2"], "sortby": [{"field": "id", "direction": "asc"}]}
    first = client.post("/search", json=body)
    following = next(link for link in first.json()["links"] if link["rel"] == "next")
    assert following["method"] == "POST" and following["body"]["collections"] == ["landsat-c2-l2"]
    second = client.post(following["href"], json=following["body"])
    assert ids(first) + ids(second) == sorted([LATE_UTM, FIJI, EARLY_UTM])
    assert not [link for link in second.json()["links"] if link["rel"] == "next"]


def test_items_of_a_collection_page_with_next_links(client: TestClient) -> None:
    first = client.get("/collections/landsat-c2-l2/items", params={"limit": 2})
    following = next(link["href"] for link in first.json()["links"] if link["rel"] == "next")
    assert ids(first) + ids(client.get(following)) == [LATE_UTM, FIJI, EARLY_UTM]


def test_fields_include_and_exclude(client: TestClient) -> None:
    only = client.get("/search", params={"ids": EARLY_UTM, "fields": "properties.eo:cloud_cover,bbox"}).json()
    item = only["features"][0]
    assert item["properties"] == {"eo:cloud_cover": 12.5}
    assert set(item) == {"type", "stac_version", "id", "links", "properties", "bbox"}
    without = client.post("/search", json={"ids": [EARLY_UTM], "fields": {"exclude": ["assets", "geometry"]}})
    item = without.json()["features"][0]
    assert "assets" not in item and "geometry" not in item and item["properties"]["platform"] == "landsat-8"
    narrowed = client.get("/search", params={"ids": EARLY_UTM, "fields": "-properties,+properties.platform"})
    assert narrowed.json()["features"][0]["properties"] == {"platform": "landsat-8"}


def test_a_scene_catalogued_by_a_run_is_found_on_the_next_request(tmp_path: Path) -> None:
    items = catalog_items()
    write_catalog(tmp_path, items[:2])
    client = api_client(tmp_path)
    assert ids(client.get("/search")) == [LATE_UTM, FIJI]
    write_catalog(tmp_path, items[2:])
    assert ids(client.get("/search")) == ALL_IDS
    assert sorted(c["id"] for c in client.get("/collections").json()["collections"]) == COLLECTIONS


@pytest.mark.parametrize(
    "params",
    [
        {"bbox": "14.9,45,15.1,45.2"},
        {"bbox": "179,-20,-179,-15", "datetime": "2024-05-01T00:00:00Z/.."},
        {"bbox": "15.03,45.15,15.05,45.16"},  # meets the triangle's bbox, not its footprint
        {"bbox": "15.0,45.12,15.01,45.13", "limit": 1},
        {"intersects": json.dumps(UTM_TILE), "collections": "landsat-c2-l2"},
        {"datetime": "../2024-05-02T00:00:00Z", "filter": "eo:cloud_cover < 12.5"},
        {"filter": "eo:cloud_cover <= 40", "limit": 1},
        {"bbox": "-180,-90,180,90", "limit": 2},
    ],
)
def test_the_index_and_the_table_scan_give_the_same_pages(tmp_path: Path, params: dict[str, object]) -> None:
    root = catalogued_root(tmp_path)
    write_catalog(root, [triangle_item()])
    indexed, scanned = api_client(root), api_client(root, use_index=False)

    def pages(client: TestClient) -> list[list[str]]:
        found, response = [], client.get("/search", params=params)
        while True:
            found.append(ids(response))
            following = [link["href"] for link in response.json()["links"] if link["rel"] == "next"]
            if not following:
                return found
            response = client.get(following[0])

    assert pages(indexed) == pages(scanned)
    if params.get("bbox") == "15.03,45.15,15.05,45.16":
        assert pages(indexed) == [[LATE_UTM, EARLY_UTM]]


def test_an_item_without_a_datetime_keeps_its_interval_whatever_fields_are_asked() -> None:
    from satlake.serving.stac_search import DEFAULT_FIELDS, apply_fields

    item = {"type": "Feature", "stac_version": "1.1.0", "id": "mars-perseverance-mcz_left-timelapse", "links": [],
            "properties": {"datetime": None, "start_datetime": "2021-06-07T00:00:00Z",
                           "end_datetime": "2021-06-09T23:59:59Z", "platform": "perseverance"}}  # fmt: skip
    kept = apply_fields(item, [name for name in DEFAULT_FIELDS if name.startswith("properties.")], [])
    assert kept["properties"] == {"datetime": None, "start_datetime": "2021-06-07T00:00:00Z",
                                  "end_datetime": "2021-06-09T23:59:59Z"}  # fmt: skip
    dated = {**item, "properties": {"datetime": "2021-06-08T00:00:00Z", "start_datetime": "x", "end_datetime": "y"}}
    assert apply_fields(dated, ["properties.datetime"], [])["properties"] == {"datetime": "2021-06-08T00:00:00Z"}
