"""tipg's OGC API Features and vector tiles over the serving tables of a real PostgreSQL + PostGIS, mounted at
/features the way `satlake serve` mounts it in stack mode."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import morecantile
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from shapely.geometry import box

from satlake.resources.postgis import PostgisServing
from satlake.serving.features import features_app
from satlake.serving.postgis import (
    ensure_serving_tables,
    sync_health_days,
    sync_scene_footprints,
    sync_scene_forest_change,
)
from satlake.settings import Mode, Settings
from satlake.stack.isolated import free_port_pair
from tests.unit.serving.postgis_fixtures import catalog_table, health_table, polygons_table, private_postgis

CLEARING = box(15.0, 45.0, 15.01, 45.01)
MVT = "application/vnd.mapbox-vector-tile"


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with private_postgis() as serving:
        _load(serving)
        settings = Settings(
            mode=Mode.STACK,
            postgres_host=serving.host,
            postgres_port=serving.port,
            postgres_user=serving.user,
            postgres_password=serving.password,
            postgres_database=serving.database,
        )
        parent = FastAPI()
        parent.mount("/features", features_app(settings))
        with TestClient(parent, raise_server_exceptions=False) as test_client:
            yield test_client


def _load(serving: PostgisServing) -> None:
    catalog = catalog_table()
    with serving.connect() as connection:
        ensure_serving_tables(connection)
        sync_scene_footprints(connection, catalog.column("id").to_pylist(), catalog)
        sync_scene_forest_change(connection, ["after_1"], polygons_table("after_1", [CLEARING]), {"after_1": "earth"})
        sync_health_days(
            connection, date(2024, 5, 1), date(2024, 5, 1), health_table(date(2024, 5, 1), {"SAT-1": "ok"})
        )


def test_every_serving_table_is_a_collection(client: TestClient) -> None:
    response = client.get("/features/collections", params={"f": "json"})
    assert response.status_code == 200, response.text
    ids = {collection["id"] for collection in response.json()["collections"]}
    assert {"serving.catalog_footprints", "serving.forest_change", "serving.satellite_health"} <= ids


def test_footprints_are_searched_by_bbox(client: TestClient) -> None:
    response = client.get(
        "/features/collections/serving.catalog_footprints/items", params={"bbox": "15,45,15.1,45.2", "f": "geojson"}
    )
    assert response.status_code == 200, response.text
    features = response.json()["features"]
    assert [feature["properties"]["id"] for feature in features] == ["LC08_T33_20240501"]
    assert features[0]["geometry"]["type"] == "Polygon"
    everything = client.get(
        "/features/collections/serving.catalog_footprints/items", params={"bbox": "-180,-90,180,90", "f": "geojson"}
    ).json()
    assert sorted(feature["properties"]["body"] for feature in everything["features"]) == ["earth"] * 3


def test_forest_change_polygon_and_health_rows_are_served(client: TestClient) -> None:
    change = client.get("/features/collections/serving.forest_change/items", params={"f": "geojson"}).json()
    assert [(f["properties"]["scene_id"], f["properties"]["area_ha"]) for f in change["features"]] == [
        ("after_1", 12.5)
    ]
    health = client.get("/features/collections/serving.satellite_health/items", params={"f": "geojson"}).json()
    assert [(f["properties"]["satellite_name"], f["properties"]["health_status"]) for f in health["features"]] == [
        ("SAT-1", "ok")
    ]


def test_vector_tiles_hold_the_polygon_where_it_is_and_nothing_elsewhere(client: TestClient) -> None:
    tms = morecantile.tms.get("WebMercatorQuad")
    over = tms.tile(15.005, 45.005, 12)
    elsewhere = tms.tile(-60.0, -10.0, 12)
    path = "/features/collections/serving.forest_change/tiles/WebMercatorQuad/{z}/{x}/{y}"
    hit = client.get(path.format(z=over.z, x=over.x, y=over.y))
    assert hit.status_code == 200, hit.text
    assert hit.headers["content-type"].startswith(MVT)
    assert b"after_1" in hit.content  # the polygon's scene_id attribute is in the tile's value table
    miss = client.get(path.format(z=elsewhere.z, x=elsewhere.x, y=elsewhere.y))
    assert miss.status_code == 200
    assert b"after_1" not in miss.content


ITEMS = "/features/collections/serving.catalog_footprints/items"
TILES = "/features/collections/serving.forest_change/tiles/WebMercatorQuad"


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        (ITEMS, {"bbox": "15,45,oops"}, "bbox"),
        (ITEMS, {"bbox": "1,2,3"}, "bbox"),
        (ITEMS, {"datetime": "yesterday"}, "datetime"),
        (ITEMS, {"datetime": "2024-01-01T00:00:00Z/2024-02-01T00:00:00Z/x"}, "datetime"),
        (ITEMS, {"limit": "-1"}, "limit"),
        (ITEMS, {"limit": "100000000"}, "limit"),
        (ITEMS, {"filter": "cloud_cover >"}, "filter"),
        (ITEMS, {"filter-lang": "cql2-json", "filter": "{bad"}, "filter"),
        (ITEMS, {"filter": "nope = 1"}, "filter"),
        (ITEMS, {"cloud_cover": "1'; DROP TABLE serving.forest_change;--"}, "cloud_cover"),
        (ITEMS, {"sortby": "nope"}, "sortby"),
        (f"{TILES}/99/1/1", {}, "z"),
        (f"{TILES}/3/-1/1", {}, "x"),
        ("/features/collections/x';--/items", {}, "collectionId"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(
    client: TestClient, path: str, params: dict[str, str], parameter: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400, response.text
    assert response.json()["parameter"] == parameter
    # Nothing a request sent was executed: the table it tried to drop still answers.
    assert client.get("/features/collections/serving.forest_change/items").status_code == 200


def test_sql_text_in_an_id_filter_matches_nothing(client: TestClient) -> None:
    response = client.get(ITEMS, params={"ids": "x'); DROP TABLE serving.catalog_footprints;--", "f": "geojson"})
    assert response.status_code == 200, response.text
    assert response.json()["features"] == []
    assert len(client.get(ITEMS, params={"f": "geojson"}).json()["features"]) == 3


def test_an_unreachable_database_is_a_503_not_a_500() -> None:
    closed_port = free_port_pair(set())
    settings = Settings(mode=Mode.STACK, postgres_port=closed_port, postgres_password="unused")
    with TestClient(features_app(settings), raise_server_exceptions=False) as unreachable:
        response = unreachable.get("/collections")
    assert response.status_code == 503
    assert f"127.0.0.1:{closed_port}" in response.json()["description"]


def test_browsers_get_json_and_html_pages_are_refused(client: TestClient) -> None:
    """tipg's HTML templates load their scripts from a CDN; satlake serves its data as JSON to browsers too."""
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = client.get("/features/collections", headers={"Accept": browser})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    assert "serving.forest_change" in {c["id"] for c in response.json()["collections"]}
    items = client.get("/features/collections/serving.forest_change/items", headers={"Accept": browser})
    assert items.status_code == 200 and items.json()["type"] == "FeatureCollection"
    refused = client.get("/features/collections", params={"f": "html"})
    assert refused.status_code == 400 and refused.json()["parameter"] == "f"


def test_the_api_docs_page_loads_nothing_from_elsewhere(client: TestClient) -> None:
    page = client.get("/features/api.html")
    assert page.status_code == 200
    assert "/map/vendor/swagger-ui/swagger-ui-bundle.js" in page.text and "'/features/api'" in page.text
    assert "https://" not in page.text and "http://" not in page.text
    landing = client.get("/features/", headers={"Accept": "application/json"}).json()
    assert any(link["href"].endswith("/features/api.html") for link in landing["links"]), landing["links"]


def test_links_stay_under_the_mount(client: TestClient) -> None:
    """QGIS follows the links: under /features, never to the STAC API at the root of `satlake serve`."""
    landing = client.get("/features/", headers={"Accept": "application/json"}).json()
    assert {link["rel"]: link["href"] for link in landing["links"]}["self"] == "http://testserver/features/"
    assert all("/features/" in link["href"] for link in landing["links"]), landing["links"]
    collection = client.get("/features/collections/serving.forest_change").json()
    items = [link["href"] for link in collection["links"] if link["rel"] == "items"]
    assert items and all(href.startswith("http://testserver/features/collections/") for href in items), items
