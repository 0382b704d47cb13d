"""The static catalog is uploaded children first, so a failed upload never leaves a link to a missing file."""

from __future__ import annotations

from pathlib import Path

from satlake.catalog.static import children_before_parents


def test_items_then_collections_then_the_root_catalog() -> None:
    paths = [
        Path("stac/catalog.json"),
        Path("stac/landsat-8/collection.json"),
        Path("stac/landsat-8/LC08_X/LC08_X.json"),
        Path("stac/satlake-sim/collection.json"),
        Path("stac/satlake-sim/sim_t00/sim_t00.json"),
    ]
    assert children_before_parents(paths) == [
        Path("stac/landsat-8/LC08_X/LC08_X.json"),
        Path("stac/satlake-sim/sim_t00/sim_t00.json"),
        Path("stac/landsat-8/collection.json"),
        Path("stac/satlake-sim/collection.json"),
        Path("stac/catalog.json"),
    ]
