"""Catalog search: input parsing, hostile input, and the SQL run on DuckDB, both on a table built from known items
and through ``DeltaCatalogSearch`` on a Delta table in the search layout (the embedded path), which must agree
with each other and with a plain reading of "the bboxes intersect" on random items, across the antimeridian and
over the poles."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable, WriterProperties, write_deltalake

from satlake.catalog.checks import bbox_matches, bbox_mismatches, item_assets_exist
from satlake.catalog.search import (
    SEARCH_COLUMNS,
    SearchQuery,
    parse_bbox,
    parse_datetime_range,
    search_catalog_duckdb,
    search_sql,
    validate_table_ref,
)
from satlake.catalog.search_index import DeltaCatalogSearch
from satlake.catalog.table import (
    CATALOG_TABLE_SCHEMA,
    catalog_rows,
    cell_key,
    search_layout,
    search_layout_writer_properties,
)
from tests.unit.catalog.catalog_scenes import antimeridian_scene, earth_utm_scene, mars_scene, polar_scene

TABLE = "catalog_items"
Search = Callable[[SearchQuery], list[dict[str, Any]]]


@pytest.fixture
def catalog(make_item) -> pa.Table:
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
    return catalog_rows(items)


def duckdb_table_search(rows: pa.Table) -> Search:
    connection = duckdb.connect()
    connection.register("rows", rows)
    connection.execute(f"CREATE TABLE {TABLE} AS SELECT * FROM rows")
    return lambda query: search_catalog_duckdb(connection, TABLE, query)


@pytest.fixture(params=["duckdb-table", "delta-search-layout"])
def search(request: pytest.FixtureRequest, catalog: pa.Table, tmp_path: Path) -> Iterator[Search]:
    """The same search two ways: SQL on an in-memory DuckDB table, and the embedded DeltaCatalogSearch."""
    if request.param == "duckdb-table":
        yield duckdb_table_search(catalog)
        return
    uri = str(tmp_path / "items")
    write_deltalake(uri, search_layout(catalog), writer_properties=search_layout_writer_properties())
    with DeltaCatalogSearch(uri) as searcher:
        assert searcher.indexed_rows == catalog.num_rows
        yield searcher.search


def ids(search: Search, **query: Any) -> list[str]:
    return [row["id"] for row in search(SearchQuery(**query))]


def test_no_filter_returns_everything_newest_first(search) -> None:
    assert ids(search) == [
        "LC08_T33_20240602",
        "LC08_T33_20240517",
        "fiji_20240503",
        "LC08_T33_20240501",
        "arctic_20240420",
        "ctx_gale_20240201",
    ]


def test_bbox_over_the_utm_tile(search) -> None:
    assert ids(search, bbox=parse_bbox("14.9,45.0,15.01,45.2")) == [
        "LC08_T33_20240602",
        "LC08_T33_20240517",
        "LC08_T33_20240501",
    ]


def test_bbox_that_misses_everything(search) -> None:
    assert ids(search, bbox=parse_bbox("-10,-10,-5,-5")) == []


def test_query_bbox_crossing_the_antimeridian_is_split(search) -> None:
    assert ids(search, bbox=parse_bbox("170,-20,-170,-10")) == ["fiji_20240503"]


def test_query_touching_only_the_western_half_of_a_crossing_item(search) -> None:
    assert ids(search, bbox=parse_bbox("-179.9,-18,-179,-16")) == ["fiji_20240503"]
    assert ids(search, bbox=parse_bbox("179.6,-18,179.9,-16")) == ["fiji_20240503"]
    assert ids(search, bbox=parse_bbox("-179.4,-18,-170,-16")) == []


def test_polar_item_matches_any_longitude_near_the_pole(search) -> None:
    assert ids(search, bbox=parse_bbox("-100,86,-99,87")) == ["arctic_20240420"]


def test_mars_item_never_matches_an_earth_bbox(search) -> None:
    assert "ctx_gale_20240201" not in ids(search, bbox=parse_bbox("-180,-90,180,90"))
    assert len(ids(search, bbox=parse_bbox("-180,-90,180,90"))) == 5


def test_datetime_range_with_dates_is_inclusive_of_whole_days(search) -> None:
    window = parse_datetime_range("2024-05-01/2024-05-17")
    assert ids(search, datetime_range=window) == ["LC08_T33_20240517", "fiji_20240503", "LC08_T33_20240501"]


def test_open_ended_datetime_ranges(search) -> None:
    assert ids(search, datetime_range=parse_datetime_range("2024-05-20T00:00:00Z/..")) == ["LC08_T33_20240602"]
    assert ids(search, datetime_range=parse_datetime_range("../2024-04-20")) == [
        "arctic_20240420",
        "ctx_gale_20240201",
    ]


def test_cloud_cover_filter_excludes_unknown_cover(search) -> None:
    assert ids(search, cloud_cover_max=20) == ["LC08_T33_20240501", "arctic_20240420"]


def test_filters_combine_with_collection_and_limit(search) -> None:
    assert ids(search, collections=["landsat-c2-l2"], cloud_cover_max=50) == [
        "fiji_20240503",
        "LC08_T33_20240501",
    ]
    assert ids(search, collections=["mars-ctx", "polar-mosaics"], limit=1) == ["arctic_20240420"]


def test_every_answer_carries_its_own_stac_item(search: Search, catalog: pa.Table) -> None:
    stored = dict(zip(catalog.column("id").to_pylist(), catalog.column("item_json").to_pylist(), strict=True))
    found = search(SearchQuery())
    assert len(found) == catalog.num_rows
    for row in found:
        assert set(row) == set(SEARCH_COLUMNS)
        assert row["item_json"] == stored[row["id"]] and json.loads(row["item_json"])["id"] == row["id"]


def test_sql_is_parameterised_and_identical_for_trino() -> None:
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


def test_trino_time_bounds_take_the_columns_millisecond_type_so_the_scan_can_prune_with_them() -> None:
    start = datetime(2024, 5, 1, 10, 30, 0, 123_999, tzinfo=UTC)
    end = datetime(2024, 5, 2, 12, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=2)))
    query = SearchQuery(datetime_range=(start, end))
    trino_sql, trino_params = search_sql(query, "lake.catalog.items", "trino")
    duck_sql, duck_params = search_sql(query, TABLE, "duckdb")

    assert trino_sql.count('"datetime" >= CAST(? AS TIMESTAMP(3) WITH TIME ZONE)') == 1
    assert trino_sql.count('"datetime" <= CAST(? AS TIMESTAMP(3) WITH TIME ZONE)') == 1
    # floored to the millisecond, so Trino's cast to timestamp(3) never rounds a bound up
    assert trino_params == [start.replace(microsecond=123_000), datetime(2024, 5, 2, 10, 0, 0, 999_000, tzinfo=UTC)]
    assert "CAST" not in duck_sql
    assert duck_params == [start, end.astimezone(UTC)]


def test_bbox_search_is_a_union_of_plain_conjunctions_so_statistics_can_skip_data() -> None:
    plain, _ = search_sql(SearchQuery(bbox=(2.0, 48.0, 3.0, 49.0)), TABLE)
    crossing, _ = search_sql(SearchQuery(bbox=(170.0, -20.0, -170.0, -10.0)), TABLE)
    unfiltered, _ = search_sql(SearchQuery(), TABLE)
    assert plain.count("UNION ALL") == 1 and crossing.count("UNION ALL") == 2 and "UNION" not in unfiltered
    # Only the branch of antimeridian-crossing items (few, kept in their own row groups) needs an OR.
    assert plain.count(" OR ") == 1 and crossing.count(" OR ") == 0


# --- the embedded DeltaCatalogSearch against a plain reading of bbox intersection ------------------------


def random_rows(count: int, seed: int) -> pa.Table:
    """Items anywhere: ordinary, across the antimeridian, around a pole (every longitude), and some on Mars."""
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        kind = rng.random()
        south = rng.uniform(-90, 88)
        north = min(90.0, south + rng.uniform(0, 6))
        if kind < 0.15:  # crossing: starts east of 170, ends west of -170
            west, east = rng.uniform(170, 180), rng.uniform(-180, -170)
        elif kind < 0.2:  # a polar cap: every longitude
            west, east = -180.0, 180.0
            south, north = (80.0, 90.0) if rng.random() < 0.5 else (-90.0, -80.0)
        else:
            west = rng.uniform(-180, 179)
            east = min(180.0, west + rng.uniform(0, 8))
        on_mars = kind > 0.97
        rows.append(
            {
                "id": f"item_{n:05d}",
                "collection": rng.choice(["landsat-c2-l2", "sentinel-2-l2a"]),
                # Some items share an acquisition time, so that the order falls back to the id.
                "datetime": datetime(2024, 1, 1, tzinfo=UTC)
                + timedelta(minutes=rng.randrange(0, 525_600) if rng.random() < 0.7 else rng.randrange(0, 5)),
                "cloud_cover": None if rng.random() < 0.1 else round(rng.uniform(0, 100), 1),
                "bbox": None if on_mars else (west, south, east, north),
                "body": "mars" if on_mars else "earth",
            }
        )
    return rows_as_catalog_table(rows)


def rows_as_catalog_table(rows: list[dict[str, Any]]) -> pa.Table:
    columns = []
    for row in rows:
        bbox = row["bbox"]
        columns.append(
            {
                "id": row["id"],
                "collection": row["collection"],
                "datetime": row["datetime"],
                "date": row["datetime"].date(),
                "platform": "landsat-8",
                "instruments": ["oli"],
                "cloud_cover": row["cloud_cover"],
                "bbox_xmin": bbox[0] if bbox else None,
                "bbox_ymin": bbox[1] if bbox else None,
                "bbox_xmax": bbox[2] if bbox else None,
                "bbox_ymax": bbox[3] if bbox else None,
                "crosses_antimeridian": bool(bbox) and bbox[0] > bbox[2],
                "cell_key": cell_key(bbox) if bbox else f"{row['body']}-0",
                "body": row["body"],
                "geometry_wkb": None,
                "proj_code": None,
                "gsd": None,
                "asset_keys": [],
                "assets_json": "{}",
                "item_json": json.dumps({"id": row["id"]}),  # enough to tell whose item a search returned
            }
        )
    return pa.Table.from_pylist(columns, schema=CATALOG_TABLE_SCHEMA)


def longitudes_meet(item: tuple[float, float], query: tuple[float, float]) -> bool:
    """Whether two longitude ranges (west > east: across the antimeridian) share a longitude."""

    def pieces(west: float, east: float) -> list[tuple[float, float]]:
        return [(west, east)] if west <= east else [(west, 180.0), (-180.0, east)]

    return any(a <= d and c <= b for a, b in pieces(*item) for c, d in pieces(*query))


def expected_ids(rows: list[dict[str, Any]], query: SearchQuery) -> list[str]:
    matches = []
    for row in rows:
        if query.bbox is not None:
            west, south, east, north = query.bbox
            if row["bbox_xmin"] is None or row["bbox_ymin"] > north or row["bbox_ymax"] < south:
                continue
            if not longitudes_meet((row["bbox_xmin"], row["bbox_xmax"]), (west, east)):
                continue
        if query.datetime_range is not None:
            start, end = query.datetime_range
            if (start and row["datetime"] < start) or (end and row["datetime"] > end):
                continue
        if query.cloud_cover_max is not None and (
            row["cloud_cover"] is None or row["cloud_cover"] > query.cloud_cover_max
        ):
            continue
        if query.collections is not None and row["collection"] not in query.collections:
            continue
        matches.append(row)
    matches.sort(key=lambda row: row["id"])
    matches.sort(key=lambda row: row["datetime"], reverse=True)
    return [row["id"] for row in matches[: query.limit]]


def random_query(rng: random.Random) -> SearchQuery:
    south = rng.uniform(-90, 90)
    north = min(90.0, south + rng.choice([0.0, 0.5, 5.0, 30.0]))
    west = rng.choice([rng.uniform(-180, 180), rng.uniform(165, 180), -180.0])
    width = rng.choice([0.0, 1.0, 10.0, 40.0, 360.0])
    east = west + width if west + width <= 180 else west + width - 360  # past 180: a query across the antimeridian
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(0, 365))
    return SearchQuery(
        bbox=(west, south, min(east, 180.0), north) if rng.random() < 0.9 else None,
        datetime_range=(start, start + timedelta(days=rng.choice([1, 30, 365]))) if rng.random() < 0.5 else None,
        cloud_cover_max=rng.choice([None, 20.0, 70.0]),
        collections=rng.choice([None, ["sentinel-2-l2a"]]),
        limit=rng.choice([5, 100]),
    )


def test_embedded_search_and_sql_find_exactly_the_intersecting_items_anywhere_on_earth(tmp_path: Path) -> None:
    rows = random_rows(1_000, seed=5)
    uri = str(tmp_path / "items")
    for part in (rows.slice(0, 400), rows.slice(400, 500), rows.slice(900)):  # three files, small row groups
        layout = search_layout(part)
        write_deltalake(uri, layout, mode="append", writer_properties=WriterProperties(max_row_group_size=64))
    rng = random.Random(9)
    queries = [random_query(rng) for _ in range(120)]
    queries += [
        SearchQuery(bbox=(179.9, -90.0, -179.9, 90.0), limit=10_000),  # a thin band around the antimeridian
        SearchQuery(bbox=(-180.0, 89.0, 180.0, 90.0), limit=10_000),  # the North Pole cap
        SearchQuery(bbox=(-45.0, -90.0, -45.0, -90.0), limit=10_000),  # the South Pole as a point
        SearchQuery(bbox=(180.0, -10.0, 180.0, 10.0), limit=10_000),  # on the antimeridian itself
        SearchQuery(bbox=(-180.0, -10.0, -180.0, 10.0), limit=10_000),
    ]
    reference, sql_search = rows.to_pylist(), duckdb_table_search(rows)
    with DeltaCatalogSearch(uri) as searcher:
        for query in queries:
            expected = expected_ids(reference, query)
            found = searcher.search(query)
            assert [row["id"] for row in found] == expected, query
            assert [json.loads(row["item_json"])["id"] for row in found] == expected, query
            assert [row["id"] for row in sql_search(query)] == expected, query
    nonempty = sum(bool(expected_ids(reference, query)) for query in queries)
    assert nonempty > len(queries) // 2  # the comparison is not between empty lists


def test_embedded_search_follows_new_commits_and_deletions(catalog: pa.Table, tmp_path: Path) -> None:
    uri = str(tmp_path / "items")
    write_deltalake(uri, search_layout(catalog.slice(0, 3)))
    fiji = SearchQuery(bbox=parse_bbox("179,-18,-179,-16"))
    with DeltaCatalogSearch(uri) as searcher:
        assert len(searcher.search(SearchQuery())) == 3 and searcher.version == 0
        assert searcher.search(fiji) == []
        write_deltalake(uri, catalog.slice(3), mode="append")
        assert len(searcher.search(SearchQuery())) == 6 and searcher.version == 1
        assert [row["id"] for row in searcher.search(fiji)] == ["fiji_20240503"]
        assert not searcher.refresh()
        DeltaTable(uri).delete("id = 'fiji_20240503'")  # rewrites the file that held it
        assert searcher.search(fiji) == [] and searcher.indexed_rows == 5 and searcher.version == 2


def test_partitioned_table_gives_the_same_answers(catalog: pa.Table, tmp_path: Path) -> None:
    uri = str(tmp_path / "items")
    write_deltalake(uri, catalog, partition_by=["body"])  # Parquet files alone no longer hold the body column
    query = SearchQuery(bbox=parse_bbox("170,-20,-170,89"), cloud_cover_max=50)
    with DeltaCatalogSearch(uri) as searcher:
        assert [row["id"] for row in searcher.search(query)] == ["fiji_20240503", "arctic_20240420"]
        assert {row["body"] for row in searcher.search(SearchQuery())} == {"earth", "mars"}


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
