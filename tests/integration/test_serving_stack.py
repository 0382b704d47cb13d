"""`satlake serve` in stack mode, as a deployment runs it: ``build_service`` served by uvicorn over the stack's
MinIO (the STAC API reads the Delta catalog table there through delta-rs), with tiles of ``s3://`` COGs, tipg's
features at ``/features`` and the API keys of the secrets file. A scene landed and catalogued while the server runs
is found by the next request, with no restart and no copy to refresh."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import morecantile
import numpy as np
import psycopg
import pytest
import rasterio
import requests
from dagster._core.definitions.partitions.context import partition_loading_context
from pystac_client import Client
from rasterio.warp import transform as warp_transform

from satlake.definitions import build_definitions
from satlake.instance_state import SensorStateStore
from satlake.resources.kafka_event_log import KafkaEventLog
from satlake.resources.postgis import PostgisServing
from satlake.runner import run_pending_work
from satlake.scenes.commands import put_files
from satlake.scenes.sensors import SensorCursor, object_events_sensor
from satlake.scenes.synthetic import make_synthetic_scenes
from satlake.serving.access import API_KEY_HEADER, ROLE_KEY_SECRETS, ensure_api_keys
from satlake.serving.server import build_service
from satlake.serving.tiles import gdal_environment
from satlake.settings import Settings, read_secrets_file
from satlake.stack.access import OPS, SCIENCE
from tests.unit.serving.stac_catalog import served

pytestmark = pytest.mark.integration
SCENE_DATE = datetime(2024, 9, 14, 10, 30, tzinfo=UTC)
CATALOGUE_TIMEOUT_S = 300.0
ZOOM = 14


@dataclass(frozen=True)
class StackService:
    """A running ``satlake serve`` of the stack, its base URL, its settings and the key of every role."""

    url: str
    settings: Settings
    keys: dict[str, str]

    def get(self, path: str, role: str | None = None, **params: Any) -> requests.Response:
        headers = {API_KEY_HEADER: self.keys[role]} if role else {}
        return requests.get(f"{self.url}{path}", params=params, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def service(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackService]:
    settings = stack.with_overrides(root=tmp_path_factory.mktemp("serve-root"))
    ensure_api_keys(settings)
    secrets = read_secrets_file(settings.secrets_file)
    keys = {role: secrets[name] for role, name in ROLE_KEY_SECRETS.items()}
    # Served on loopback, stack mode still opens nothing but the landing page to anonymous requests.
    with served(build_service(settings, "127.0.0.1")) as url:
        yield StackService(url, settings, keys)


def _land_unique_scene(settings: Settings, directory: Path) -> str:
    """One synthetic scene under a name no earlier run used, landed in MinIO's landing bucket; its scene id."""
    [path] = make_synthetic_scenes(directory, tiles=1, dates=[SCENE_DATE], size=256, seed=23)
    scene_id = f"sim_serve_{uuid.uuid4().hex[:10]}"
    put_files(settings, [path.rename(directory / f"{scene_id}.tif")], say=print)
    return scene_id


def _found(service: StackService, scene_id: str) -> list[str]:
    response = service.get("/search", SCIENCE, ids=scene_id)
    assert response.status_code == 200, response.text
    return [feature["id"] for feature in response.json()["features"]]


def _has_footprint(settings: Settings, scene_id: str) -> bool:
    """Whether the serving/* assets have copied the scene's footprint into PostGIS yet."""
    try:
        with PostgisServing.from_settings(settings).connect() as connection:
            row = connection.execute("SELECT count(*) FROM serving.catalog_footprints WHERE id = %s", (scene_id,))
            return row.fetchone() == (1,)
    except psycopg.errors.UndefinedTable:
        return False


@pytest.fixture(scope="module")
def new_scene(service: StackService, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A scene landed, catalogued and copied to PostGIS by sensors and automation while the server runs."""
    settings = service.settings
    log = KafkaEventLog(settings.kafka_bootstrap)
    start = SensorCursor(offsets=log.end_offsets(settings.object_events_topic)).to_json()
    log.close()
    scene_id = _land_unique_scene(settings, tmp_path_factory.mktemp("scene"))
    assert _found(service, scene_id) == []
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        SensorStateStore(instance).save_cursor(object_events_sensor, start)
        deadline = time.monotonic() + CATALOGUE_TIMEOUT_S
        # MinIO announces the upload asynchronously; each round asks the running API, as a client would.
        while not (_found(service, scene_id) and _has_footprint(settings, scene_id)):
            assert time.monotonic() < deadline, f"{scene_id} not served after {CATALOGUE_TIMEOUT_S:.0f} s"
            with partition_loading_context(dynamic_partitions_store=instance):
                outcomes = run_pending_work(defs, instance)
            assert all(o.success for o in outcomes), [o.description for o in outcomes if not o.success]
            time.sleep(2)
    return scene_id


def test_anonymous_requests_see_only_the_landing_page(service: StackService) -> None:
    landing = service.get("/")
    assert landing.status_code == 200 and landing.json()["type"] == "Catalog"
    for path in ("/collections", "/search", "/collections/satlake-sim/items", "/features/collections"):
        response = service.get(path)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["code"] == "Unauthorized" and API_KEY_HEADER in response.json()["description"]
    assert service.get("/search", SCIENCE).status_code == 200
    wrong = requests.get(f"{service.url}/search", headers={"Authorization": "Bearer not-a-key-of-any-role"}, timeout=60)
    assert wrong.status_code == 401 and wrong.json()["code"] == "Unauthorized"


def test_a_scene_catalogued_while_serving_is_found_by_pystac_client(service: StackService, new_scene: str) -> None:
    client = Client.open(f"{service.url}/", headers={API_KEY_HEADER: service.keys[SCIENCE]})
    assert "satlake-sim" in {collection.id for collection in client.get_collections()}
    [item] = client.search(ids=[new_scene], collections=["satlake-sim"]).items()
    assert item.datetime == SCENE_DATE and item.collection_id == "satlake-sim"
    assert item.assets["red"].href.startswith(f"s3://{service.settings.lake_bucket}/")
    west, south, east, north = item.bbox
    area = client.search(bbox=[west, south, east, north], datetime="2024-09-14", collections=["satlake-sim"])
    assert new_scene in {found.id for found in area.items()}
    mars = client.search(filter="A_CONTAINS(ssys:targets, ('mars'))", filter_lang="cql2-text", max_items=50)
    # Mars scenes, and rover photos when a Mars stack test ran first; never an Earth scene.
    assert all(found.collection_id in ("satlake-sim-mars", None) or found.collection_id.startswith("mars-")
               for found in mars.items())  # fmt: skip


def _red_at(service: StackService, href: str, lon: float, lat: float) -> int:
    """The red band's value at (lon, lat), read straight from the COG in MinIO."""
    with rasterio.Env(**gdal_environment(service.settings)), rasterio.open(href) as dataset:
        [x], [y] = warp_transform("EPSG:4326", dataset.crs, [lon], [lat])
        return int(next(dataset.sample([(x, y)]))[0])


def test_the_new_scene_is_tiled_from_minio(service: StackService, new_scene: str) -> None:
    item_path = f"/collections/satlake-sim/items/{new_scene}"
    item = service.get(item_path, SCIENCE).json()
    west, south, east, north = item["bbox"]
    lon, lat = (west + east) / 2, (south + north) / 2
    point = service.get(f"{item_path}/point/{lon},{lat}", SCIENCE, assets="red")
    assert point.status_code == 200, point.text
    served_value = point.json()["values"][0]
    assert served_value == _red_at(service, item["assets"]["red"]["href"], lon, lat)
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, ZOOM)
    npy = service.get(f"{item_path}/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.npy", SCIENCE, assets="red")
    assert npy.status_code == 200, npy.text
    data = np.load(io.BytesIO(npy.content))
    assert data.shape == (2, 256, 256)  # the band and its mask
    assert data[1].any() and data[0][data[1] > 0].max() > 0
    png = service.get(f"{item_path}/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png", SCIENCE, render="ndvi")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert service.get(f"{item_path}/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png").status_code == 401


def test_features_serve_the_new_scenes_footprint_with_a_key(service: StackService, new_scene: str) -> None:
    response = service.get("/features/collections", SCIENCE)
    assert response.status_code == 200, response.text
    assert "serving.catalog_footprints" in {collection["id"] for collection in response.json()["collections"]}
    items = service.get("/features/collections/serving.catalog_footprints/items", SCIENCE, ids=new_scene)
    assert items.status_code == 200, items.text
    [feature] = items.json()["features"]
    assert feature["properties"]["collection"] == "satlake-sim" and feature["geometry"]["type"] in (
        "Polygon",
        "MultiPolygon",
    )


def test_the_ops_role_sees_what_anonymous_requests_see(service: StackService) -> None:
    for path in ("/collections", "/search", "/collections/satlake-sim/items", "/features/collections"):
        anonymous, ops = service.get(path), service.get(path, OPS)
        assert (anonymous.status_code, ops.status_code) == (401, 403), path
        assert ops.json()["code"] == "Forbidden" and "'ops'" in ops.json()["description"]
    assert service.get("/", OPS).json() == service.get("/").json()
