"""Maintenance of the catalog table: rewrite it in the search layout.

Each scene run replaces its own item in ``lake/catalog/items`` with a one-row commit, so a catalog built scene by
scene is thousands of one-row files in arrival order: every search opens them all. Once a day the whole table is
rewritten sorted by (body, antimeridian, cell, time) in 1,024-row Parquet groups (``catalog.table.search_layout``),
so a bbox search reads a few row groups: the layout ``bench.catalog_search`` measures at a million items.

``commits_since_search_layout`` decides from the table's history whether anything changed since the last rewrite;
the op, its job and its schedule only call it and ``rewrite_in_search_layout``.
"""

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from satlake.catalog.table import (
    CATALOG_ITEMS,
    SEARCH_LAYOUT_FILE_BYTES,
    SEARCH_LAYOUT_ROW_GROUP_ROWS,
    search_layout,
    search_layout_writer_properties,
)
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.table_maintenance import MAINTENANCE_OPERATION_KEY
from satlake.scenes.assets import ITEMS_KEY

SEARCH_LAYOUT_OPERATION = "search_layout"
# A day of scenes is far fewer commits than this; older history is not needed to know whether a rewrite is due.
HISTORY_COMMITS = 10_000


@dataclass(frozen=True, slots=True)
class SearchLayoutRewrite:
    """What rewriting the catalog table in the search layout did."""

    rows: int
    files_before: int
    files_after: int
    version: int
    seconds: float


def commits_since_search_layout(history: Iterable[Mapping[str, Any]]) -> int:
    """How many commits of ``history`` (newest first, as ``DeltaTable.history`` gives it) came after the newest
    search-layout rewrite: all of them when there was none."""
    count = 0
    for commit in history:
        if commit.get(MAINTENANCE_OPERATION_KEY) == SEARCH_LAYOUT_OPERATION:
            break
        count += 1
    return count


def rewrite_in_search_layout(
    table: DeltaTable, target_file_bytes: int = SEARCH_LAYOUT_FILE_BYTES
) -> SearchLayoutRewrite:
    """Rewrite every row of the catalog ``table`` in the search layout, in ONE overwrite commit based on the
    table's loaded version, in files of about ``target_file_bytes``; ``table`` is brought to the new version.

    Rows do not change, only their order and files. An item appended meanwhile by another writer survives the
    overwrite (its file was not read, so it is not removed); an item replaced meanwhile makes the commit fail
    with ``CommitFailedError`` instead of bringing the old row back: call again. The table is held in memory
    while sorted (about 2 KiB per item).
    """
    started = time.perf_counter()
    files_before = len(table.file_uris())
    rows = table.to_pyarrow_table()
    write_deltalake(
        table,
        search_layout(rows),
        mode="overwrite",
        writer_properties=search_layout_writer_properties(),
        target_file_size=target_file_bytes,
        commit_properties=CommitProperties(custom_metadata={MAINTENANCE_OPERATION_KEY: SEARCH_LAYOUT_OPERATION}),
    )
    table.update_incremental()
    return SearchLayoutRewrite(
        rows=rows.num_rows,
        files_before=files_before,
        files_after=len(table.file_uris()),
        version=table.version(),
        seconds=time.perf_counter() - started,
    )


@dg.op(
    out={},
    description="Rewrites lake/catalog/items sorted by (body, antimeridian, cell, time) into "
    f"{SEARCH_LAYOUT_FILE_BYTES // 2**20} MiB files of {SEARCH_LAYOUT_ROW_GROUP_ROWS:,}-row "
    "Parquet groups, in one Delta commit, when items changed since the last rewrite. Items never change.",
)
def lay_out_catalog_for_search(
    context: dg.OpExecutionContext, lakehouse: dg.ResourceParam[Lakehouse]
) -> Iterator[dg.AssetObservation]:
    table = lakehouse.open(CATALOG_ITEMS)
    if table is None:
        context.log.info(f"{CATALOG_ITEMS}: not written yet, nothing to lay out")
        return
    changes = commits_since_search_layout(table.history(HISTORY_COMMITS))
    if changes == 0:
        context.log.info(f"{CATALOG_ITEMS}: no commit since the last search-layout rewrite, nothing to do")
        return
    context.log.info(f"{CATALOG_ITEMS}: {changes} commits since the last search-layout rewrite, rewriting")
    try:
        report = rewrite_in_search_layout(table)  # based on the version whose history was read
    except CommitFailedError as error:
        # A scene run replaced its item meanwhile; the next pass sees that commit and rewrites then.
        context.log.warning(f"{CATALOG_ITEMS}: left for the next pass, a concurrent write won ({error})")
        return
    context.log.info(
        f"{CATALOG_ITEMS}: {report.rows} items, {report.files_before} -> {report.files_after} files, "
        f"delta v{report.version}, {report.seconds:.1f} s"
    )
    yield dg.AssetObservation(
        asset_key=ITEMS_KEY,
        metadata={
            "layout": "search (body, crosses_antimeridian, cell_key, datetime)",
            "items": report.rows,
            "files_before": report.files_before,
            "files_after": report.files_after,
            "delta_version": report.version,
        },
    )


@dg.job(description="Rewrite the catalog table in the search layout when items changed")
def catalog_search_layout_job() -> None:
    lay_out_catalog_for_search()


catalog_search_layout_schedule = dg.ScheduleDefinition(
    job=catalog_search_layout_job,
    cron_schedule="30 6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Once a day, rewrites the catalog table in the search layout if scenes added or replaced items.",
)
