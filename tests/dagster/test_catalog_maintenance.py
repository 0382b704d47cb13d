"""The catalog layout job run in process on an embedded lake: items written scene by scene are rewritten once,
and the rewrite is visible on the catalog/items asset."""

from __future__ import annotations

from typing import Any

import pytest

from satlake.catalog.items import build_stac_item
from satlake.catalog.maintenance import SEARCH_LAYOUT_OPERATION
from satlake.catalog.table import catalog_rows
from satlake.resources.table_maintenance import MAINTENANCE_OPERATION_KEY
from satlake.scenes.assets import ITEMS_KEY
from satlake.scenes.tables import CATALOG_ITEMS, replace_rows
from tests.dagster.conftest import Pipeline
from tests.unit.catalog.catalog_scenes import antimeridian_scene, earth_utm_scene, mars_scene, scene_assets


@pytest.fixture
def items() -> list[dict[str, Any]]:
    return [
        build_stac_item(meta, scene_assets(meta, "/data"))
        for meta in (earth_utm_scene(), antimeridian_scene(), mars_scene())
    ]


def test_the_layout_job_rewrites_scene_by_scene_items_once(pipeline: Pipeline, items: list[dict[str, Any]]) -> None:
    lakehouse = pipeline.resources.lakehouse
    job = pipeline.defs.resolve_job_def("catalog_search_layout_job")
    assert job.execute_in_process(instance=pipeline.instance).success  # no catalog yet: nothing to do

    for item in items:
        replace_rows(lakehouse, CATALOG_ITEMS, catalog_rows([item]), "id", item["id"])
    assert job.execute_in_process(instance=pipeline.instance).success

    table = lakehouse.open(CATALOG_ITEMS)
    assert table is not None
    assert len(table.file_uris()) == 1
    assert table.history(1)[0][MAINTENANCE_OPERATION_KEY] == SEARCH_LAYOUT_OPERATION
    assert sorted(table.to_pyarrow_table().column("id").to_pylist()) == sorted(item["id"] for item in items)
    [observation] = pipeline.instance.fetch_observations(ITEMS_KEY, limit=10).records
    asset_observation = observation.event_log_entry.asset_observation
    assert asset_observation is not None
    metadata = asset_observation.metadata
    assert (metadata["items"].value, metadata["files_before"].value, metadata["files_after"].value) == (3, 3, 1)

    version = table.version()
    assert job.execute_in_process(instance=pipeline.instance).success
    assert lakehouse.open(CATALOG_ITEMS).version() == version  # nothing changed since: no rewrite
