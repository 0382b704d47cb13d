"""The STAC API as clients meet it: a real uvicorn server on a free port over a catalogued root, searched by
pystac-client and checked by the STAC community's ``stac-api-validator`` (its CLI, in a subprocess) for every
conformance class the landing page declares."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pystac_client import Client

from satlake.resources.lakehouse import Lakehouse
from satlake.serving.catalog_backend import DuckDbCatalog
from satlake.serving.server import build_app
from tests.unit.serving.stac_catalog import (
    ARCTIC,
    EARLY_UTM,
    FIJI,
    LATE_UTM,
    MARS,
    catalogued_root,
    embedded_settings,
    served,
)
from tests.unit.serving.stac_validator import VALIDATOR_CLASSES, run_stac_api_validator

UTM_AREA = {"type": "Polygon", "coordinates": [[[14.9, 45.0], [15.1, 45.0], [15.1, 45.2], [14.9, 45.2], [14.9, 45.0]]]}


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = catalogued_root(tmp_path_factory.mktemp("root"))
    backend = DuckDbCatalog(Lakehouse(root_uri=str(root / "lake")))
    with served(build_app(embedded_settings(root), backend=backend, environ={})) as url:
        yield url


def test_pystac_client_searches_the_api(api_url: str) -> None:
    client = Client.open(f"{api_url}/")
    assert sorted(c.id for c in client.get_collections()) == ["landsat-c2-l2", "mars-ctx", "polar-mosaics"]
    paged = client.search(collections=["landsat-c2-l2", "polar-mosaics"], limit=1, max_items=10)
    assert [item.id for item in paged.items()] == [LATE_UTM, FIJI, EARLY_UTM, ARCTIC]
    near = client.search(intersects=UTM_AREA, datetime="2024-05-01T00:00:00Z/2024-05-10T00:00:00Z")
    assert [item.id for item in near.items()] == [EARLY_UTM]
    cloudy_first = client.search(bbox=[-180, -90, 180, 90], sortby="-eo:cloud_cover", method="GET")
    assert [item.id for item in cloudy_first.items()] == [LATE_UTM, FIJI, EARLY_UTM, ARCTIC]
    on_mars = client.search(filter="A_CONTAINS(ssys:targets, ('mars'))", filter_lang="cql2-text")
    assert [item.id for item in on_mars.items()] == [MARS]
    cql2_json = {"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]}
    assert [item.id for item in client.search(filter=cql2_json).items()] == [EARLY_UTM, ARCTIC]


def test_stac_api_validator_passes_the_declared_conformance_classes(api_url: str) -> None:
    code, output, classes = run_stac_api_validator(api_url, "landsat-c2-l2", UTM_AREA, "properties.platform")
    assert classes == sorted(VALIDATOR_CLASSES.values())
    assert code == 0, output[-6000:]
    assert "Errors: none" in output, output[-6000:]
