"""Rewriting the catalog table in the search layout: same rows, one commit, fewer files, and a concurrent
writer's item neither lost nor brought back in its old form."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

import satlake.catalog.maintenance as maintenance
from satlake.catalog.maintenance import (
    SEARCH_LAYOUT_OPERATION,
    commits_since_search_layout,
    rewrite_in_search_layout,
)
from satlake.catalog.search import SearchQuery
from satlake.catalog.search_index import DeltaCatalogSearch
from satlake.catalog.table import UNFILTERED_COLUMNS, catalog_rows, search_layout
from satlake.resources.table_maintenance import MAINTENANCE_OPERATION_KEY

LAYOUT_COMMIT = {MAINTENANCE_OPERATION_KEY: SEARCH_LAYOUT_OPERATION}


def test_commits_since_search_layout_counts_back_to_the_newest_rewrite() -> None:
    scene_commit = {"operation": "WRITE"}
    assert commits_since_search_layout([]) == 0
    assert commits_since_search_layout([scene_commit, scene_commit]) == 2  # never rewritten
    assert commits_since_search_layout([LAYOUT_COMMIT, scene_commit]) == 0
    assert commits_since_search_layout([scene_commit, LAYOUT_COMMIT, scene_commit, LAYOUT_COMMIT]) == 1


@pytest.fixture
def items_table(tmp_path: Path, four_items: list[dict[str, Any]]) -> str:
    """The catalog table as scene runs leave it: one single-item commit (and file) per scene."""
    uri = str(tmp_path / "items")
    for item in four_items:
        write_deltalake(uri, catalog_rows([item]), mode="append")
    return uri


def by_id(rows: pa.Table) -> pa.Table:
    return rows.sort_by("id")


def test_rewrite_keeps_every_row_in_one_file_in_search_layout_order(items_table: str) -> None:
    before = DeltaTable(items_table)
    rows_before = before.to_pyarrow_table()
    assert len(before.file_uris()) == 4

    report = rewrite_in_search_layout(DeltaTable(items_table))

    after = DeltaTable(items_table)
    assert (report.rows, report.files_before, report.files_after, report.version) == (4, 4, 1, 4)
    assert after.history(1)[0][MAINTENANCE_OPERATION_KEY] == SEARCH_LAYOUT_OPERATION
    assert commits_since_search_layout(after.history()) == 0
    stored = after.to_pyarrow_table()
    assert by_id(stored).equals(by_id(rows_before))
    assert stored.column("id").equals(search_layout(rows_before).column("id"))
    footer = pq.ParquetFile(after.file_uris()[0]).metadata.row_group(0)
    statistics = {footer.column(i).path_in_schema: footer.column(i).is_stats_set for i in range(footer.num_columns)}
    assert statistics["bbox_xmin"] and statistics["datetime"]
    assert not any(statistics[column] for column in UNFILTERED_COLUMNS)


def test_rewrite_answers_searches_as_before(items_table: str) -> None:
    query = SearchQuery(bbox=(14.9, 45.0, 15.01, 45.2))
    with DeltaCatalogSearch(items_table) as searcher:
        before = searcher.search(query)
        assert before
        rewrite_in_search_layout(DeltaTable(items_table))
        assert searcher.search(query) == before  # the open index follows the rewrite


def write_during_rewrite(monkeypatch: pytest.MonkeyPatch, write: Any) -> None:
    """Make ``write`` land after the rewrite has read the table and before it commits."""

    def layout_after_a_concurrent_write(rows: pa.Table) -> pa.Table:
        write()
        return search_layout(rows)

    monkeypatch.setattr(maintenance, "search_layout", layout_after_a_concurrent_write)


def test_an_item_appended_during_the_rewrite_survives_it(
    items_table: str, monkeypatch: pytest.MonkeyPatch, four_items: list[dict[str, Any]]
) -> None:
    late = dict(four_items[0], id="LC08_LATE")
    write_during_rewrite(monkeypatch, lambda: write_deltalake(items_table, catalog_rows([late]), mode="append"))

    report = rewrite_in_search_layout(DeltaTable(items_table))

    ids = DeltaTable(items_table).to_pyarrow_table().column("id").to_pylist()
    assert sorted(ids) == sorted([item["id"] for item in four_items] + ["LC08_LATE"])
    assert report.files_after == 2  # the rewritten file and the late item's


def test_an_item_replaced_during_the_rewrite_fails_it_rather_than_come_back_old(
    items_table: str, monkeypatch: pytest.MonkeyPatch, four_items: list[dict[str, Any]]
) -> None:
    first = four_items[0]
    replaced = dict(first, properties={**first["properties"], "eo:cloud_cover": 99.0})

    def replace_first_item() -> None:
        predicate = f"id = '{first['id']}'"
        write_deltalake(items_table, catalog_rows([replaced]), mode="overwrite", predicate=predicate)

    write_during_rewrite(monkeypatch, replace_first_item)

    with pytest.raises(CommitFailedError):
        rewrite_in_search_layout(DeltaTable(items_table))

    rows = DeltaTable(items_table).to_pyarrow_table()
    assert rows.num_rows == 4
    assert rows.filter(pc.equal(rows.column("id"), first["id"])).column("cloud_cover").to_pylist() == [99.0]


def test_rewrite_cuts_files_at_the_layout_size_each_holding_its_own_stretch_of_the_sorted_order(tmp_path: Path) -> None:
    """Files that split the sorted order into disjoint cell ranges are what lets Trino and DuckDB drop whole files
    by the min/max in the Delta log."""
    from bench.catalog_search import synthetic_items

    uri = str(tmp_path / "items")
    write_deltalake(uri, synthetic_items(6_000))

    report = rewrite_in_search_layout(DeltaTable(uri), target_file_bytes=32 * 1024)

    files = DeltaTable(uri).file_uris()
    assert report.files_after == len(files) > 4
    key_ranges = []  # per file, the first and last (antimeridian flag, cell) in the layout's sort order
    for path in files:
        keys = pq.read_table(path, columns=["crosses_antimeridian", "cell_key"]).to_pylist()
        ordered = sorted((row["crosses_antimeridian"], row["cell_key"]) for row in keys)
        key_ranges.append((ordered[0], ordered[-1]))
    assert sum(pq.ParquetFile(path).metadata.num_rows for path in files) == 6_000
    for (_, previous_last), (next_first, _) in pairwise(sorted(key_ranges)):
        assert previous_last <= next_first, key_ranges  # no two files overlap in the sorted order
