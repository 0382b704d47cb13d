"""Catalog search: input parsing, hostile input, and SQL run on DuckDB over a table built from known items."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest

from satlake.catalog.checks import bbox_matches, bbox_mismatches, item_assets_exist
from satlake.catalog.search import (
    SearchQuery,
    parse_bbox,
    parse_datetime_range,
    search_catalog_duckdb,
    search_sql,
    validate_table_ref,
)
from satlake.catalog.table import catalog_rows
from tests.unit.catalog.catalog_scenes import antimeridian_scene, earth_utm_scene, mars_scene, polar_scene

TABLE = "catalog_items"


@pytest.fixture
def con(make_item) -> duckdb.DuckDBPyConnection:
    items = [
        make_item(earth_utm_scene()),  # 15°E 45°N, 2024-05-01, cloud 12.5
        make_item(
            earth_utm_scene(
                scene_id="LC08_T33_20240517",
                cloud_cover=80.0,
                acquired_at=datetime(2024, 5, 17, 10, 0, tzinfo=UTC),
            )
        ),
        make_item(
            earth_utm_scene(
                scene_id="LC08_T33_20240602",
                cloud_cover=None,
                acquired_at=datetime(2024, 6, 2, 10, 0, tzinfo=UTC),
            )
        ),
        make_item(antimeridian_scene()),  # 179.5°E..179.5°W, 17°S, 2024-05-03, cloud 40
        make_item(polar_scene()),  # every longitude, 85..90°N, 2024-04-20, cloud 5
        make_item(mars_scene()),  # no Earth bbox, 2024-02-01
    ]
    connection = duckdb.connect()
    arrow_table = catalog_rows(items)  # noqa: F841 - DuckDB finds the Arrow table by its Python name
    connection.execute(f"CREATE TABLE {TABLE} AS SELECT * FROM arrow_table")
    return connection


def ids(con, **query) -> list[str]:
    return [row["id"] for row in search_catalog_duckdb(con, TABLE, SearchQuery(**query))]


def test_no_filter_returns_everything_newest_first(con) -> None:
    assert ids(con) == [
        "LC08_T33_20240602",
        "LC08_T33_20240517",
        "fiji_20240503",
        "LC08_T33_20240501",
        "arctic_20240420",
        "ctx_gale_20240201",
    ]


def test_bbox_over_the_utm_tile(con) -> None:
    assert ids(con, bbox=parse_bbox("14.9,45.0,15.01,45.2")) == [
        "LC08_T33_20240602",
        "LC08_T33_20240517",
        "LC08_T33_20240501",
    ]


def test_bbox_that_misses_everything(con) -> None:
    assert ids(con, bbox=parse_bbox("-10,-10,-5,-5")) == []


def test_query_bbox_crossing_the_antimeridian_is_split(con) -> None:
    assert ids(con, bbox=parse_bbox("170,-20,-170,-10")) == ["fiji_20240503"]


def test_query_touching_only_the_western_half_of_a_crossing_item(con) -> None:
    assert ids(con, bbox=parse_bbox("-179.9,-18,-179,-16")) == ["fiji_20240503"]
    assert ids(con, bbox=parse_bbox("179.6,-18,179.9,-16")) == ["fiji_20240503"]
    assert ids(con, bbox=parse_bbox("-179.4,-18,-170,-16")) == []


def test_polar_item_matches_any_longitude_near_the_pole(con) -> None:
    assert ids(con, bbox=parse_bbox("-100,86,-99,87")) == ["arctic_20240420"]


def test_mars_item_never_matches_an_earth_bbox(con) -> None:
    assert "ctx_gale_20240201" not in ids(con, bbox=parse_bbox("-180,-90,180,90"))
    assert len(ids(con, bbox=parse_bbox("-180,-90,180,90"))) == 5


def test_datetime_range_with_dates_is_inclusive_of_whole_days(con) -> None:
    window = parse_datetime_range("2024-05-01/2024-05-17")
    assert ids(con, datetime_range=window) == ["LC08_T33_20240517", "fiji_20240503", "LC08_T33_20240501"]


def test_open_ended_datetime_ranges(con) -> None:
    assert ids(con, datetime_range=parse_datetime_range("2024-05-20T00:00:00Z/..")) == ["LC08_T33_20240602"]
    assert ids(con, datetime_range=parse_datetime_range("../2024-04-20")) == [
        "arctic_20240420",
        "ctx_gale_20240201",
    ]


def test_cloud_cover_filter_excludes_unknown_cover(con) -> None:
    assert ids(con, cloud_cover_max=20) == ["LC08_T33_20240501", "arctic_20240420"]


def test_filters_combine_with_collection_and_limit(con) -> None:
    assert ids(con, collections=["landsat-c2-l2"], cloud_cover_max=50) == [
        "fiji_20240503",
        "LC08_T33_20240501",
    ]
    assert ids(con, collections=["mars-ctx", "polar-mosaics"], limit=1) == ["arctic_20240420"]


def test_sql_is_parameterised_and_identical_for_trino(con) -> None:
    query = SearchQuery(
        bbox=(170.0, -20.0, -170.0, -10.0),
        datetime_range=(datetime(2024, 1, 1, tzinfo=UTC), None),
        cloud_cover_max=33.5,
        collections=["landsat-c2-l2"],
        limit=7,
    )
    duck_sql, duck_params = search_sql(query, TABLE, "duckdb")
    trino_sql, trino_params = search_sql(query, "lake.catalog.items", "trino")

    assert duck_sql.count("?") == len(duck_params) == trino_sql.count("?") == len(trino_params)
    assert "33.5" not in duck_sql and "landsat-c2-l2" not in duck_sql and "170" not in duck_sql
    assert duck_sql.endswith('ORDER BY "datetime" DESC, "id" ASC LIMIT 7')
    assert " FROM lake.catalog.items " in trino_sql


# --- parsing and hostile input ---------------------------------------------------------------------------


def test_parse_bbox_accepts_plain_and_signed_numbers() -> None:
    assert parse_bbox(" -10.5, -2e1 ,+10,20 ") == (-10.5, -20.0, 10.0, 20.0)
    assert parse_bbox("170,-20,-170,-10") == (170.0, -20.0, -170.0, -10.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2,3,4; DROP TABLE x", "north '4; DROP TABLE x' is not a number"),
        ("1,2,3,'4'", "north \"'4'\" is not a number"),
        ("1,2,3", "got 3 part"),
        ("1,2,3,4,5", "got 5 part"),
        ("nan,0,1,1", "west 'nan' is not a number"),
        ("inf,0,1,1", "west 'inf' is not a number"),
        ("0,10,1,5", "south 10.0 is north of north 5.0"),
        ("0,-91,1,5", "latitudes must lie in"),
        ("-181,0,1,5", "longitudes must lie in"),
        ("1," * 300 + "1", "at most 200"),
    ],
)
def test_parse_bbox_rejects_bad_input_with_a_clear_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_bbox(text)
    assert message in str(error.value)


def test_parse_datetime_range_forms() -> None:
    start, end = parse_datetime_range("2024-05-01T10:00:00+02:00/2024-05-02")
    assert start == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert end == datetime(2024, 5, 2, 23, 59, 59, 999999, tzinfo=UTC)
    assert parse_datetime_range("2024-05-01") == (
        datetime(2024, 5, 1, tzinfo=UTC),
        datetime(2024, 5, 1, 23, 59, 59, 999999, tzinfo=UTC),
    )
    assert (
        parse_datetime_range("2024-05-01T10:00:00.123456789Z")
        == (datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC),) * 2
    )
    assert parse_datetime_range("/2024-01-01")[0] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2024-05-01T10:00:00", "needs 'Z' or an offset"),  # RFC 3339 requires a zone
        ("2024-13-01", "month must be in 1..12"),
        ("yesterday", "not an RFC 3339"),
        ("2024-05-01'; DROP TABLE x; --", "not an RFC 3339"),
        ("../..", "both ends are open"),
        ("2024-06-01/2024-05-01", "is after end"),
        ("2024-01-01/2024-02-01/2024-03-01", "at most one '/'"),
        ("", "is empty"),
    ],
)
def test_parse_datetime_range_rejects_bad_input(text: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_datetime_range(text)
    assert message in str(error.value)


@pytest.mark.parametrize("table_ref", ["items; DROP TABLE x", 'lake."items"', "a.b.c.d", "1items", "", "x--"])
def test_table_reference_must_be_an_identifier_path(table_ref: str) -> None:
    with pytest.raises(ValueError, match="not an identifier path"):
        validate_table_ref(table_ref)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"collections": ["x' OR '1'='1"]}, "not a valid collection id"),
        ({"collections": "landsat"}, "non-empty list"),
        ({"cloud_cover_max": 101}, "from 0 to 100"),
        ({"limit": 0}, "from 1 to"),
        ({"limit": True}, "from 1 to"),
        ({"bbox": (0, 0, 1)}, "four finite numbers"),
        ({"datetime_range": (datetime(2024, 1, 1), None)}, "timezone-aware"),
    ],
)
def test_search_query_rejects_bad_values(kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchQuery(**kwargs)


def test_unknown_dialect_is_refused() -> None:
    with pytest.raises(ValueError, match="not supported"):
        search_sql(SearchQuery(), TABLE, "postgres")  # type: ignore[arg-type]


# --- checks ----------------------------------------------------------------------------------------------


def test_item_assets_exist_lists_missing_hrefs(make_item) -> None:
    item = make_item(earth_utm_scene())
    present = {item["assets"]["cog"]["href"]}
    assert item_assets_exist(item, present.__contains__) == [
        "s3://satlake-raw/raw/scenes/landsat-c2-l2/LC08_T33_20240501/MTL.txt",
        "/data/satlake/quicklooks/LC08_T33_20240501.png",
    ]


def test_bbox_matches_within_tolerance_and_across_the_antimeridian(make_item) -> None:
    item = make_item(earth_utm_scene())
    assert bbox_matches(item, (15.0, 45.1265, 15.0382, 45.1535), tolerance=1e-3)
    assert bbox_mismatches(item, (15.1, 45.1265, 15.0382, 45.1535), tolerance=1e-3) == [
        "bbox west is 15.0, raster bounds say 15.1 (tolerance 0.001)"
    ]
    fiji = make_item(antimeridian_scene())
    assert bbox_matches(fiji, (-180.5 + 360, -17.5, -179.5, -16.5), tolerance=1e-9)
    assert bbox_matches(fiji, (179.5, -17.5, 180.5 - 360, -16.5), tolerance=1e-9)


def test_bbox_check_of_a_mars_item_uses_the_native_bbox(make_item) -> None:
    item = make_item(mars_scene())
    assert bbox_mismatches(item, (0, 0, 1, 1), 1.0) == ["item 'ctx_gale_20240201' has no bbox"]
    assert bbox_matches(item, mars_scene().bounds_native, tolerance=0.01, field="proj:bbox")
