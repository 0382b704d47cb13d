"""The STAC API as clients meet it: a real uvicorn server on a free port over a catalogued root, searched by
pystac-client and checked by the STAC community's ``stac-api-validator`` (its CLI, in a subprocess) for every
conformance class the landing page declares."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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

# stac-api-validator checks items and collections against the STAC JSON schemas, which it downloads; this
# machine is offline, so its runner resolves them from the schemas satlake ships (satlake/catalog/schemas).
VALIDATOR_RUNNER = """
import sys
import stac_validator.utilities as utilities
from satlake.catalog.validation import schema_registry

registry, download = schema_registry(), utilities.fetch_and_parse_file

def shipped_or_download(path, headers=None):
    try:
        return registry.contents(path.rstrip("#"))
    except Exception:
        return download(path, headers)

utilities.fetch_and_parse_file = shipped_or_download
from stac_api_validator.__main__ import main
sys.exit(main())
"""
# The validator's names for the conformance URIs a landing page may declare.
VALIDATOR_CLASSES = {
    "https://api.stacspec.org/v1.0.0/core": "core",
    "https://api.stacspec.org/v1.0.0/collections": "collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features": "features",
    "https://api.stacspec.org/v1.0.0/item-search": "item-search",
    "https://api.stacspec.org/v1.1.0/item-search#sort": "item-search#sort",
    "https://api.stacspec.org/v1.0.0/item-search#fields": "item-search#fields",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter": "filter",
}
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


def test_stac_api_validator_passes_the_declared_conformance_classes(api_url: str, tmp_path: Path) -> None:
    declared = Client.open(f"{api_url}/").to_dict()["conformsTo"]
    classes = sorted({VALIDATOR_CLASSES[uri] for uri in declared if uri in VALIDATOR_CLASSES})
    assert classes == sorted(VALIDATOR_CLASSES.values())
    command = [sys.executable, "-c", VALIDATOR_RUNNER, "--root-url", f"{api_url}/", "--collection", "landsat-c2-l2",
               "--geometry", json.dumps(UTM_AREA), "--fields-nested-property", "properties.platform"]  # fmt: skip
    for name in classes:
        command += ["--conformance", name]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[3])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "Errors: none" in output, output[-6000:]
