"""Catalog search through Trino: the catalog table in its search layout on MinIO, registered in Trino by the
lakehouse's ``on_table_written`` hook (the benchmark's Trino half, bench/catalog_search.py), answers every query
exactly as the embedded ``DeltaCatalogSearch`` does: the benchmark's three queries, and queries across the
antimeridian and over a polar band."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import trino.dbapi

from bench import catalog_search
from satlake.catalog.search import SearchQuery, search_sql
from satlake.catalog.search_index import DeltaCatalogSearch
from satlake.settings import Settings

pytestmark = pytest.mark.integration

EXTRA_QUERIES = [
    SearchQuery(bbox=(178.0, -70.0, -178.0, 70.0), limit=1_000),  # a band across the antimeridian
    SearchQuery(bbox=(-180.0, 60.0, 180.0, 90.0), limit=1_000),  # everything north of 60°N
    SearchQuery(
        bbox=(-180.0, -90.0, 180.0, 90.0),
        datetime_range=(datetime(2022, 1, 1, tzinfo=UTC), datetime(2022, 1, 31, tzinfo=UTC)),
        cloud_cover_max=50.0,
        collections=[catalog_search.COLLECTION],
    ),
]


def test_trino_search_answers_exactly_like_the_embedded_search(stack: Settings, tmp_path: Path) -> None:
    items = catalog_search.synthetic_items(4_000)
    uri = str(tmp_path / "catalog_items")
    catalog_search.write_catalog(items, uri)
    queries = [*catalog_search.QUERIES.values(), *EXTRA_QUERIES]
    notes: list[str] = []
    with DeltaCatalogSearch(uri) as embedded, catalog_search.trino_catalog(items, notes, stack) as trino_search:
        assert any(note.startswith("Trino:") for note in notes)
        answers = [(trino_search(query), [row["id"] for row in embedded.search(query)]) for query in queries]
    for query, (through_trino, embedded_ids) in zip(queries, answers, strict=True):
        assert through_trino == embedded_ids, query
    crossing = answers[len(catalog_search.QUERIES)][0]
    assert crossing and sum(len(ids) for ids, _ in answers) > 100  # not a comparison of empty answers


def test_trino_prunes_files_by_a_searched_time_range(stack: Settings) -> None:
    """A search for a time range no item falls in reads no data file: the bounds reach the Delta file statistics.

    (Compared as the client sends them, timestamp(6) literals against the timestamp(3) column, Trino cast the
    column instead and read every file.)"""
    items = catalog_search.synthetic_items(2_000)
    before_any_item = SearchQuery(datetime_range=(datetime(1990, 1, 1, tzinfo=UTC), datetime(1990, 12, 31, tzinfo=UTC)))
    within = SearchQuery(datetime_range=(datetime(2022, 1, 1, tzinfo=UTC), datetime(2022, 12, 31, tzinfo=UTC)))
    with catalog_search.registered_trino_table(items, [], stack) as (lake, table_ref):
        connection = trino.dbapi.connect(host=lake.host, port=lake.port, user=lake.user, catalog=lake.catalog)
        try:
            stats = {}
            for name, query in (("none", before_any_item), ("some", within)):
                sql, parameters = search_sql(query, table_ref, "trino")
                cursor = connection.cursor()
                cursor.execute(sql, parameters)
                stats[name] = (len(cursor.fetchall()), cursor.stats["physicalInputBytes"])
        finally:
            connection.close()
    assert stats["none"] == (0, 0), stats
    assert stats["some"][0] > 0 and stats["some"][1] > 0, stats  # the same statement does read when items match
