"""Offline STAC 1.1 validation: core and extension JSON schemas shipped in ``satlake/catalog/schemas``.

Every ``$ref`` (GeoJSON, PROJJSON, the JSON Schema meta-schema) resolves from local files, so validation never
touches the network and gives the same answer on an air-gapped machine.
"""

from __future__ import annotations

import functools
import json
import math
import posixpath
from collections.abc import Iterator
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

STAC_VERSION = "1.1.0"

_SPEC_BASE = f"https://schemas.stacspec.org/v{STAC_VERSION}"
CORE_SCHEMA_URLS: dict[str, str] = {
    "Feature": f"{_SPEC_BASE}/item-spec/json-schema/item.json",
    "Collection": f"{_SPEC_BASE}/collection-spec/json-schema/collection.json",
    "Catalog": f"{_SPEC_BASE}/catalog-spec/json-schema/catalog.json",
}

EO_EXTENSION = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
PROJECTION_EXTENSION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER_EXTENSION = "https://stac-extensions.github.io/raster/v2.0.0/schema.json"
FILE_EXTENSION = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
VIEW_EXTENSION = "https://stac-extensions.github.io/view/v1.1.0/schema.json"
SSYS_EXTENSION = "https://stac-extensions.github.io/ssys/v1.1.0/schema.json"
EXTENSION_SCHEMA_URLS: frozenset[str] = frozenset(
    {EO_EXTENSION, PROJECTION_EXTENSION, RASTER_EXTENSION, FILE_EXTENSION, VIEW_EXTENSION, SSYS_EXTENSION}
)


def _schema_dir() -> Traversable:
    return files("satlake.catalog") / "schemas"


def _json_files(directory: Traversable) -> Iterator[Traversable]:
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            yield from _json_files(entry)
        elif entry.name.endswith(".json"):
            yield entry


@functools.cache
def schema_registry() -> Registry:
    """Every shipped schema, keyed by its ``$id`` (and by its published URL where the two differ)."""
    resources: list[tuple[str, Resource]] = []
    for path in _json_files(_schema_dir()):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resource = DRAFT7.create_resource(contents)
        schema_id = contents["$id"].rstrip("#")
        resources.append((schema_id, resource))
        # stac-spec v1.1.0 ships common.json with the $id ".../commonjson" (an upstream typo); siblings refer
        # to it as "common.json", so it must also answer at the URL its file name implies.
        published_url = posixpath.join(posixpath.dirname(schema_id), path.name)
        if schema_id.startswith(_SPEC_BASE) and published_url != schema_id:
            resources.append((published_url, resource))
    return Registry().with_resources(resources)


@functools.cache
def _validator(schema_url: str) -> Draft7Validator:
    schema = schema_registry().contents(schema_url)
    return Draft7Validator(schema, registry=schema_registry(), format_checker=Draft7Validator.FORMAT_CHECKER)


_DISCRIMINATING_VALIDATORS = frozenset({"const", "enum", "type"})


def _leaf_errors(error: ValidationError) -> list[ValidationError]:
    """The innermost errors of the oneOf/anyOf branch the author most likely meant."""
    if not error.context:
        return [error]
    branches: dict[object, list[ValidationError]] = {}
    for sub_error in error.context:
        branches.setdefault(sub_error.relative_schema_path[0], []).append(sub_error)

    # A branch that fails on a discriminator right at this level ("type": "Collection" vs "Feature", geometry
    # null vs object) is the wrong branch; among the rest, the one with fewest errors is the intended one.
    def implausibility(errors: list[ValidationError]) -> tuple[int, int]:
        discriminators = sum(
            1 for e in errors if e.validator in _DISCRIMINATING_VALIDATORS and len(e.relative_path) <= 1
        )
        return discriminators, len(errors)

    intended = min(branches.values(), key=implausibility)
    return [leaf for sub_error in intended for leaf in _leaf_errors(sub_error)]


def _describe(error: ValidationError, schema_name: str) -> list[str]:
    problems = []
    for leaf in _leaf_errors(error):
        location = "/".join(str(part) for part in leaf.absolute_path) or "(document root)"
        problems.append(f"{schema_name}: {location}: {leaf.message}")
    return problems


def validate_stac_object(obj: dict[str, Any]) -> list[str]:
    """Validate a STAC 1.1 Item, Collection or Catalog against core and every listed extension, offline.

    Returns human-readable problems, each naming the schema and the JSON path of the offending field;
    an empty list means the object is valid.
    """
    if not isinstance(obj, dict):
        return [f"expected a STAC object (a JSON object), got {type(obj).__name__}"]
    stac_type = obj.get("type")
    if stac_type not in CORE_SCHEMA_URLS:
        return [f"type: {stac_type!r} is not a STAC type; expected one of {sorted(CORE_SCHEMA_URLS)}"]
    if obj.get("stac_version") != STAC_VERSION:
        return [
            f"stac_version: {obj.get('stac_version')!r} is not supported; satlake validates STAC {STAC_VERSION} only"
        ]

    problems = [
        problem
        for error in _validator(CORE_SCHEMA_URLS[stac_type]).iter_errors(obj)
        for problem in _describe(error, "core")
    ]
    problems += non_finite_numbers(obj) + _bbox_range_problems(obj)
    extensions = obj.get("stac_extensions", [])
    if not isinstance(extensions, list):
        return problems  # core validation already reported the malformed stac_extensions
    for extension_url in extensions:
        if extension_url not in EXTENSION_SCHEMA_URLS:
            problems.append(
                f"stac_extensions: {extension_url!r} has no schema shipped with satlake, so it cannot be "
                f"validated offline; use one of {sorted(EXTENSION_SCHEMA_URLS)} or add its schema to "
                "satlake/catalog/schemas"
            )
            continue
        name = extension_url.split("/")[3]
        for error in _validator(extension_url).iter_errors(obj):
            problems.extend(_describe(error, name))
    return problems


def non_finite_numbers(obj: Any, path: str = "") -> list[str]:
    """Where ``obj`` holds NaN or an infinity: JSON has no such numbers (``json.dumps`` writes the invalid
    tokens ``NaN``/``Infinity``) and JSON Schema's "number" does not refuse them, so they are checked here."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return [f"json: {path or '(document root)'}: {obj!r} is not a JSON number; fix the metadata it came from"]
    if isinstance(obj, dict):
        return [problem for key, value in obj.items() for problem in non_finite_numbers(value, f"{path}/{key}")]
    if isinstance(obj, list | tuple):
        return [problem for index, value in enumerate(obj) for problem in non_finite_numbers(value, f"{path}/{index}")]
    return []


def _bbox_range_problems(obj: dict[str, Any]) -> list[str]:
    """RFC 7946 bounds: longitudes in [-180, 180], latitudes in [-90, 90] with south <= north."""
    bbox = obj.get("bbox") if obj.get("type") == "Feature" else None
    if not isinstance(bbox, list) or len(bbox) not in (4, 6) or not all(isinstance(v, int | float) for v in bbox):
        return []
    half = len(bbox) // 2
    west, south, east, north = bbox[0], bbox[1], bbox[half], bbox[half + 1]
    if all(-180 <= lon <= 180 for lon in (west, east)) and -90 <= south <= north <= 90:
        return []
    return [f"core: bbox: {bbox} is outside lon [-180, 180] / lat [-90, 90] or has south > north"]
