"""The tiles router inside ``satlake serve``'s app (``build_app``): items come from the Delta catalog table through
the STAC API's own ``get_item``, behind its access control; the pixels are the COG's."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from satlake.serving.server import build_app, get_item
from satlake.serving.tiles import tiles_router
from tests.unit.serving.stac_catalog import embedded_settings, write_catalog
from tests.unit.serving.tile_fixtures import COLLECTION, SIZE, TILE, build_tile_items, known_pattern

TILE_PATH = f"tiles/WebMercatorQuad/{TILE.z}/{TILE.x}/{TILE.y}"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded root whose catalog table holds the tile tests' items (their COGs beside it)."""
    root = tmp_path_factory.mktemp("tiles-root")
    items = build_tile_items(root / "objects")
    write_catalog(root, [item for item in items.values() if item["collection"] == COLLECTION])
    return root


@pytest.fixture(scope="module")
def client(root: Path) -> Iterator[TestClient]:
    settings = embedded_settings(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        app = build_app(settings, routers=[tiles_router(get_item, settings)], environ={})
        with TestClient(app, raise_server_exceptions=False) as test_client:
            yield test_client


def test_a_catalogued_item_is_tiled_to_its_pixels(client: TestClient) -> None:
    response = client.get(
        f"/collections/{COLLECTION}/items/pattern/{TILE_PATH}.npy", params={"assets": "green", "tilesize": SIZE}
    )
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(np.load(io.BytesIO(response.content))[0], known_pattern(1))


def test_tilejson_of_a_catalogued_item_links_its_tiles(client: TestClient) -> None:
    response = client.get(f"/collections/{COLLECTION}/items/vegetation/WebMercatorQuad/tilejson.json?render=ndvi")
    assert response.status_code == 200, response.text
    tiles = response.json()["tiles"][0]
    assert tiles.startswith(f"http://testserver/collections/{COLLECTION}/items/vegetation/tiles/WebMercatorQuad/")
    assert "render=ndvi" in tiles


def test_an_item_not_in_the_catalog_is_a_404(client: TestClient) -> None:
    response = client.get(f"/collections/{COLLECTION}/items/no-such-item/{TILE_PATH}.png")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")


def test_mars_from_the_catalog_is_refused_on_earth_tiles(client: TestClient) -> None:
    response = client.get(f"/collections/{COLLECTION}/items/mars-scene/WebMercatorQuad/tilejson.json")
    assert response.status_code == 400
    assert response.json()["parameter"] == "tileMatrixSetId"


def test_anonymous_tiles_follow_the_apis_access_control(root: Path) -> None:
    # Bound beyond loopback, an anonymous client sees nothing but the landing page: tiles are denied.
    settings = embedded_settings(root)
    app = build_app(settings, "0.0.0.0", routers=[tiles_router(get_item, settings)], environ={})
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(f"/collections/{COLLECTION}/items/pattern/{TILE_PATH}.png", params={"assets": "red"})
    assert response.status_code in (401, 403)
    assert response.headers["content-type"].startswith("application/json")
