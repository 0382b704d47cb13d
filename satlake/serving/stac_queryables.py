"""What a CQL2 filter of the STAC API may name: the queryables, their catalog columns and types, the
``/queryables`` schema, and the error a filter that cannot run raises."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FILTER_PARAMETER = "filter"


class FilterError(ValueError):
    """A CQL2 filter that cannot be run: the message says what is wrong and names the parameter."""

    def __init__(self, message: str, parameter: str = FILTER_PARAMETER) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class Queryable:
    """A property a filter may name: its catalog column, its JSON-schema type and what it means."""

    column: str
    kind: str  # "string", "number", "datetime", "geometry" or "targets"
    description: str


QUERYABLES: Mapping[str, Queryable] = {
    "id": Queryable("id", "string", "Item id"),
    "collection": Queryable("collection", "string", "Collection id"),
    "datetime": Queryable("datetime", "datetime", "Acquisition time (RFC 3339)"),
    "eo:cloud_cover": Queryable("cloud_cover", "number", "Cloud cover, percent (null when unknown)"),
    "platform": Queryable("platform", "string", "Platform, e.g. landsat-8"),
    "gsd": Queryable("gsd", "number", "Ground sample distance, metres"),
    "ssys:targets": Queryable("body", "targets", "Solar-system bodies imaged; Earth items target 'earth'"),
    "geometry": Queryable("geometry_wkb", "geometry", "Footprint on Earth, lon/lat WGS 84"),
}

_JSON_SCHEMA_TYPES: Mapping[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "number": {"type": "number"},
    "datetime": {"type": "string", "format": "date-time"},
    "geometry": {"$ref": "https://geojson.org/schema/Geometry.json"},
    "targets": {"type": "array", "items": {"type": "string"}},
}


def queryables_schema(url: str) -> dict[str, Any]:
    """The JSON Schema of ``/queryables`` (``$id`` is the URL it is served at)."""
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": url,
        "type": "object",
        "title": "Queryables of the satlake catalog",
        "properties": {name: {"title": q.description, **_JSON_SCHEMA_TYPES[q.kind]} for name, q in QUERYABLES.items()},
        "additionalProperties": False,
    }


def named_property(node: Any) -> tuple[str, Queryable] | None:
    """The queryable a ``{"property": name}`` node names (FilterError if none), or None for any other node."""
    if isinstance(node, Mapping) and "property" in node:
        name = node["property"]
        queryable = QUERYABLES.get(name) if isinstance(name, str) else None
        if queryable is None:
            raise FilterError(f"property {name!r} is not queryable; queryables: {', '.join(QUERYABLES)}")
        return name, queryable
    return None
