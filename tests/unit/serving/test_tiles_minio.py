"""Tiles of ``s3://`` assets in stack mode, read from a real MinIO (started for this module, about 2 s): only the
hrefs and the GDAL options differ from the embedded tests, and the pixels are the same."""

from __future__ import annotations

import copy
import io
import secrets
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from satlake.resources.object_store import build_scene_stores
from satlake.settings import Mode, Settings
from satlake.stack import InstallToolMissing, stack_down, stack_up
from satlake.stack.isolated import isolated_stack_environment
from tests.unit.serving import tile_fixtures as fixtures
from tests.unit.serving.tile_fixtures import COLLECTION, TILE

pytestmark = pytest.mark.integration

TILE_PATH = f"tiles/WebMercatorQuad/{TILE.z}/{TILE.x}/{TILE.y}"


def _progress(message: str) -> None:
    print(f"[minio] {message}", file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def minio_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    environment = isolated_stack_environment(tmp_path_factory.mktemp("tiles-stack"))
    settings = Settings.from_env(environment)
    try:
        stack_up(settings, servers=("minio",), progress=_progress)
    except InstallToolMissing as error:
        pytest.skip(f"MinIO cannot be installed on this machine: {error}")
    try:
        yield Settings.from_env(environment).with_overrides(mode=Mode.STACK)
    finally:
        stack_down(settings, progress=_progress)


@pytest.fixture(scope="module")
def s3_items(minio_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Any]:
    """The unit tests' items, their COGs uploaded to the lake bucket and their hrefs rewritten to ``s3://``."""
    items = fixtures.build_tile_items(tmp_path_factory.mktemp("tiles-local"))
    lake = build_scene_stores(minio_settings).lake
    for item in items.values():
        for asset in item["assets"].values():
            if not asset["href"].startswith("s3://"):  # items share some asset objects
                local = Path(asset["href"])
                asset["href"] = lake.uri(lake.put_file(local, f"cogs/tiles-test/{local.name}").key)
    return items


@pytest.fixture(scope="module")
def client(minio_settings: Settings, s3_items: dict[tuple[str, str], Any]) -> Iterator[TestClient]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with TestClient(fixtures.tiles_app(s3_items, minio_settings), raise_server_exceptions=False) as test_client:
            yield test_client


def test_s3_hrefs_are_tiled_to_the_same_pixels(client: TestClient, s3_items: dict[tuple[str, str], Any]) -> None:
    assert s3_items[(COLLECTION, "pattern")]["assets"]["red"]["href"].startswith("s3://satlake/")
    response = client.get(
        f"/collections/{COLLECTION}/items/pattern/{TILE_PATH}.npy", params={"assets": "red", "tilesize": fixtures.SIZE}
    )
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(np.load(io.BytesIO(response.content))[0], fixtures.known_pattern(0))


def test_renderings_are_scaled_from_the_objects(client: TestClient) -> None:
    renders = client.get(f"/collections/{COLLECTION}/items/vegetation/renders").json()["renders"]
    assert renders["truecolor"]["params"]["rescale"] == ["400,1200"] * 3
    tile = client.get(f"/collections/{COLLECTION}/items/vegetation/{TILE_PATH}.png", params={"render": "ndvi"})
    assert tile.status_code == 200
    assert tile.headers["content-type"] == "image/png"


def _item_with_red_at(s3_items: dict[tuple[str, str], Any], href: str) -> dict[tuple[str, str], Any]:
    item = copy.deepcopy(s3_items[(COLLECTION, "pattern")])
    item["assets"]["red"]["href"] = href
    return {(COLLECTION, "pattern"): item}


@pytest.mark.parametrize("credentials", ["right", "wrong"])
def test_an_unreadable_object_is_a_json_error_that_says_what_to_check(
    minio_settings: Settings, s3_items: dict[tuple[str, str], Any], tmp_path: Path, credentials: str
) -> None:
    lake = build_scene_stores(minio_settings).lake
    if credentials == "right":
        href = lake.uri("cogs/tiles-test/never-written.tif")
        settings = minio_settings
    else:
        # An object GDAL has not read yet (it caches what it read, whatever the keys of a later request).
        local = fixtures.write_tile_cog(tmp_path / "fresh.tif", fixtures.known_pattern(7))
        href = lake.uri(lake.put_file(local, f"cogs/tiles-test/fresh-{tmp_path.name}.tif").key)
        wrong_secret = secrets.token_urlsafe(16)
        settings = minio_settings.with_overrides(s3_secret_key=wrong_secret)
    app = fixtures.tiles_app(_item_with_red_at(s3_items, href), settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(f"/collections/{COLLECTION}/items/pattern/{TILE_PATH}.png", params={"assets": "red"})
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "AssetUnreadable"
    assert "SATLAKE_S3_" in body["detail"]
    assert settings.s3_secret_key not in body["detail"]
