"""A small catalog table for the STAC API tests, written with satlake's own catalog code on a temporary embedded
root: two Landsat scenes of one UTM tile, one across the antimeridian, one at the North Pole and one on Mars."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from deltalake import write_deltalake
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from satlake.catalog.items import build_stac_item
from satlake.catalog.table import catalog_rows
from satlake.resources.lakehouse import Lakehouse
from satlake.scenes.tables import CATALOG_ITEMS
from satlake.serving.catalog_backend import DuckDbCatalog
from satlake.serving.server import build_app
from satlake.settings import Mode, Settings
from tests.unit.catalog.catalog_scenes import (
    antimeridian_scene,
    earth_utm_scene,
    mars_scene,
    polar_scene,
    scene_assets,
)

# Item ids, newest first, and what each is.
LATE_UTM = "LC08_T33_20240517"  # landsat-c2-l2, landsat-8, 60 % cloud, 15°E 45.1°N
FIJI = "fiji_20240503"  # landsat-c2-l2, landsat-9, 40 %, across the antimeridian
EARLY_UTM = "LC08_T33_20240501"  # landsat-c2-l2, landsat-8, 12.5 %, same tile as LATE_UTM
ARCTIC = "arctic_20240420"  # polar-mosaics, sentinel-2a, 5 %, North Pole
MARS = "ctx_gale_20240201"  # mars-ctx, mro, no cloud cover, on Mars
ALL_IDS = [LATE_UTM, FIJI, EARLY_UTM, ARCTIC, MARS]
COLLECTIONS = ["landsat-c2-l2", "mars-ctx", "polar-mosaics"]


def catalog_items() -> list[dict[str, Any]]:
    """The five STAC items, as the scene pipeline builds them."""
    late = earth_utm_scene(scene_id=LATE_UTM, acquired_at=datetime(2024, 5, 17, 10, 0, tzinfo=UTC), cloud_cover=60.0)
    scenes = [late, antimeridian_scene(), earth_utm_scene(), polar_scene(), mars_scene()]
    return [build_stac_item(meta, scene_assets(meta, "/data/satlake")) for meta in scenes]


TRIANGLE = "LC08_T33_20240520"  # landsat-c2-l2: the UTM tile's bbox, but only its south-west half as footprint


def triangle_item() -> dict[str, Any]:
    """An item whose footprint is half of its bbox, so a box can meet the bbox and miss the footprint."""
    meta = earth_utm_scene(
        scene_id=TRIANGLE,
        acquired_at=datetime(2024, 5, 20, 10, 0, tzinfo=UTC),
        footprint_geographic_wkt="POLYGON ((15 45.126466, 15.038166 45.126466, 15 45.153477, 15 45.126466))",
    )
    return build_stac_item(meta, scene_assets(meta, "/data/satlake"))


def write_catalog(root: Path, items: list[dict[str, Any]], mode: str = "append") -> None:
    """Append ``items`` to ``root``'s catalog table, as the catalog asset does."""
    write_deltalake(Lakehouse(root_uri=str(root / "lake")).uri(CATALOG_ITEMS), catalog_rows(items), mode=mode)


def embedded_settings(root: Path, mode: Mode = Mode.EMBEDDED) -> Settings:
    return Settings(mode=mode, root=root, secrets_path=root / "secrets.env")


def api_client(
    root: Path,
    host: str = "127.0.0.1",
    environ: Mapping[str, str] | None = None,
    mode: Mode = Mode.EMBEDDED,
    routers: Sequence[APIRouter] = (),
    use_index: bool = True,
) -> TestClient:
    """The whole service of ``satlake serve`` over ``root``'s catalog table, in process (in stack mode too, whose
    access defaults differ)."""
    backend = DuckDbCatalog(Lakehouse(root_uri=str(root / "lake")), use_index=use_index)
    app = build_app(embedded_settings(root, mode), host=host, backend=backend, routers=routers, environ=environ or {})
    return TestClient(app)


def ids(response: Any) -> list[str]:
    """The item ids of a search response, after checking it succeeded."""
    assert response.status_code == 200, response.text
    return [feature["id"] for feature in response.json()["features"]]


def catalogued_root(directory: Path) -> Path:
    """``directory`` as an embedded root whose catalog table holds the five items."""
    write_catalog(directory, catalog_items())
    return directory


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served(app: FastAPI, start_timeout_s: float = 60.0) -> Iterator[str]:
    """``app`` served by a real uvicorn on a free loopback port in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
