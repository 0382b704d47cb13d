"""``stac-api-validator``, the STAC community's validator, run as its CLI in a subprocess against a live API, for
every conformance class the API's landing page declares."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

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
REPO = Path(__file__).resolve().parents[3]


def declared_validator_classes(api_url: str) -> list[str]:
    """The validator's names of the conformance classes the landing page at ``api_url`` declares."""
    with urllib.request.urlopen(f"{api_url}/", timeout=30) as response:
        declared = json.load(response)["conformsTo"]
    return sorted({VALIDATOR_CLASSES[uri] for uri in declared if uri in VALIDATOR_CLASSES})


def run_stac_api_validator(
    api_url: str, collection: str, geometry: dict[str, Any], nested_property: str
) -> tuple[int, str, list[str]]:
    """(exit code, output, classes validated) of stac-api-validator on ``api_url``; ``nested_property`` must be a
    property with a truthy value on the collection's first item (the validator tests values for truth)."""
    classes = declared_validator_classes(api_url)
    command = [sys.executable, "-c", VALIDATOR_RUNNER, "--root-url", f"{api_url}/", "--collection", collection,
               "--geometry", json.dumps(geometry), "--fields-nested-property", nested_property]  # fmt: skip
    for name in classes:
        command += ["--conformance", name]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
    return result.returncode, result.stdout + result.stderr, classes
