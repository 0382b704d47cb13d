"""CQL2 filters (text and JSON) on the five-item catalog through /search, and their translation to SQL: every
literal a bound parameter, only queryables named, Mars found by its target and never by an Earth geometry."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from satlake.serving.cql2_sql import FilterError, filter_sql, parse_filter
from tests.unit.serving.stac_catalog import (
    ALL_IDS,
    ARCTIC,
    EARLY_UTM,
    FIJI,
    LATE_UTM,
    MARS,
    api_client,
    catalogued_root,
    ids,
)

EARTH_IDS = [i for i in ALL_IDS if i != MARS]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    return api_client(catalogued_root(tmp_path_factory.mktemp("root")))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("eo:cloud_cover < 20", [EARLY_UTM, ARCTIC]),
        ("eo:cloud_cover >= 40 AND eo:cloud_cover <> 60", [FIJI]),
        ("eo:cloud_cover = 5 OR platform = 'landsat-9'", [FIJI, ARCTIC]),
        ("NOT platform = 'landsat-8'", [FIJI, ARCTIC, MARS]),
        ("eo:cloud_cover IS NULL", [MARS]),
        ("eo:cloud_cover BETWEEN 10 AND 45", [FIJI, EARLY_UTM]),
        ("platform IN ('mro', 'sentinel-2a')", [ARCTIC, MARS]),
        ("platform LIKE 'landsat%'", [LATE_UTM, FIJI, EARLY_UTM]),
        ("collection = 'polar-mosaics'", [ARCTIC]),
        (f"id = '{FIJI}'", [FIJI]),
        ("datetime > TIMESTAMP('2024-05-01T10:00:00Z')", [LATE_UTM, FIJI]),
        ("datetime = DATE('2024-05-01')", [EARLY_UTM]),
        ("T_INTERSECTS(datetime, INTERVAL('2024-04-01T00:00:00Z', '2024-05-02T00:00:00Z'))", [EARLY_UTM, ARCTIC]),
        ("T_BEFORE(datetime, TIMESTAMP('2024-04-20T12:00:00Z'))", [MARS]),
        ("T_AFTER(datetime, INTERVAL('..', '2024-05-03T22:15:00Z'))", [LATE_UTM]),
        ("T_DURING(datetime, INTERVAL('2024-05-01T10:00:00Z', '..'))", [LATE_UTM, FIJI]),
        ("S_INTERSECTS(geometry, BBOX(14.9, 45, 15.1, 45.2))", [LATE_UTM, EARLY_UTM]),
        ("S_INTERSECTS(geometry, POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90)))", EARTH_IDS),
        ("S_INTERSECTS(geometry, POINT(15.02 45.14)) AND eo:cloud_cover < 50", [EARLY_UTM]),
        ("A_CONTAINS(ssys:targets, ('mars'))", [MARS]),
        ("ssys:targets = 'earth'", EARTH_IDS),
        ("A_OVERLAPS(ssys:targets, ('moon', 'mars'))", [MARS]),
        ("NOT A_CONTAINS(ssys:targets, ('mars')) AND S_INTERSECTS(geometry, BBOX(-180, -90, 180, 90))", EARTH_IDS),
    ],
)
def test_cql2_text_filters(client: TestClient, text: str, expected: list[str]) -> None:
    assert ids(client.get("/search", params={"filter": text, "filter-lang": "cql2-text"})) == expected


def test_cql2_json_filters_get_and_post(client: TestClient) -> None:
    tree = {
        "op": "and",
        "args": [
            {"op": "<=", "args": [{"property": "eo:cloud_cover"}, 40]},
            {"op": "t_intersects", "args": [{"property": "datetime"}, {"interval": ["2024-05-01", "2024-05-31"]}]},
        ],
    }
    posted = client.post("/search", json={"filter": tree, "filter-lang": "cql2-json"})
    assert ids(posted) == [FIJI, EARLY_UTM]
    got = client.get("/search", params={"filter": json.dumps(tree), "filter-lang": "cql2-json"})
    assert ids(got) == [FIJI, EARLY_UTM]
    mars = {"op": "a_contains", "args": [{"property": "ssys:targets"}, ["mars"]]}
    assert ids(client.post("/search", json={"filter": mars})) == [MARS]


def test_queryables_list_what_a_filter_may_name(client: TestClient) -> None:
    schema = client.get("/queryables").json()
    assert schema["$id"] == "http://testserver/queryables"
    assert {"eo:cloud_cover", "datetime", "platform", "ssys:targets", "geometry"} <= set(schema["properties"])
    assert client.get("/collections/mars-ctx/queryables").json()["properties"] == schema["properties"]


def test_user_values_travel_only_as_parameters() -> None:
    sql, params = filter_sql(parse_filter("platform = 'x'' OR 1=1; DROP TABLE items; --'"))
    assert sql == '("platform" = ?)' and params == ["x' OR 1=1; DROP TABLE items; --"]
    sql, params = filter_sql(parse_filter("T_INTERSECTS(datetime, INTERVAL('2024-01-01T00:00:00Z', '..'))"))
    assert sql == '(TRUE AND "datetime" >= ?)' and params == [datetime(2024, 1, 1, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mission = 'x'", "property 'mission' is not queryable"),
        ("eo:cloud_cover = 'high'", "compares with numbers"),
        ("platform = 3", "compares with text"),
        ("eo:cloud_cover >", "does not parse as CQL2"),
        ("S_INTERSECTS(geometry, POINT(500 500))", "outside lon"),
        ("S_CROSSES(geometry, POINT(1 1))", "not supported"),
    ],
)
def test_filters_that_cannot_run_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        filter_sql(parse_filter(text))
