"""Fixtures for the catalog tests: items built from the hand-made scenes in catalog_scenes.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from satlake.catalog.items import build_stac_item
from satlake.scenes.metadata import SceneMetadata
from tests.unit.catalog.catalog_scenes import antimeridian_scene, earth_utm_scene, mars_scene, polar_scene, scene_assets


@pytest.fixture
def make_item() -> Callable[..., dict[str, Any]]:
    def build(meta: SceneMetadata, base: str = "/data/satlake") -> dict[str, Any]:
        return build_stac_item(meta, scene_assets(meta, base))

    return build


@pytest.fixture
def four_items(make_item: Callable[..., dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        make_item(earth_utm_scene()),
        make_item(antimeridian_scene()),
        make_item(polar_scene()),
        make_item(mars_scene()),
    ]
