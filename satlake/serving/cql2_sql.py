"""CQL2 filters of the STAC API translated to parameterised SQL over the catalog table.

The ``cql2`` package parses CQL2 text or JSON into the JSON syntax tree; this module walks that tree and emits a
WHERE condition whose only spliced text is fixed column names and operators chosen from whitelists. Every literal a
user writes travels as a bound ``?`` parameter. Only the queryables in :data:`QUERYABLES` may be named.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import cql2
import shapely
from shapely.geometry import box, shape

from satlake.catalog.items import EARTH
from satlake.serving.stac_cql2_temporal import TEMPORAL_OPS, instant_bounds, temporal_sql
from satlake.serving.stac_queryables import FILTER_PARAMETER, QUERYABLES, FilterError, Queryable, named_property

__all__ = ["QUERYABLES", "FilterError", "filter_sql", "parse_filter", "query_geometry_wkb"]

MAX_FILTER_NODES = 500
MAX_FILTER_DEPTH = 64
MAX_FILTER_CHARS = 20_000
# The DuckDB function (registered by the catalog backend) testing a WKB footprint against a WKB query geometry.
INTERSECTS_FUNCTION = "satlake_intersects"

_COMPARISONS = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_SPATIAL_OPS = frozenset({"s_intersects"})
_ARRAY_OPS = frozenset({"a_contains", "a_containedby", "a_overlaps", "a_equals"})


def parse_filter(value: str | Mapping[str, Any], lang: str | None = None) -> dict[str, Any]:
    """Parse a CQL2 filter (text, a JSON string, or an already decoded JSON object) into its JSON syntax tree."""
    if lang not in (None, "cql2-text", "cql2-json"):
        raise FilterError(f"filter language {lang!r} is not supported; use cql2-text or cql2-json", "filter-lang")
    if isinstance(value, str):
        if len(value) > MAX_FILTER_CHARS:
            raise FilterError(f"the expression is {len(value)} characters long; at most {MAX_FILTER_CHARS}")
        text = value.strip()
        if lang == "cql2-json" or (lang is None and text.startswith("{")):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                raise FilterError(f"not valid CQL2 JSON: {error}") from None
    if not isinstance(value, (str, Mapping, bool)):
        raise FilterError(f"expected a CQL2 expression, got {type(value).__name__}")
    try:
        expression = cql2.Expr(value if not isinstance(value, Mapping) else dict(value))
        tree = expression.to_json()
    except Exception as error:  # cql2 raises plain Exception, ParseError or ValidationError alike
        detail = " ".join(str(error).split())[:300] or type(error).__name__
        raise FilterError(f"the expression does not parse as CQL2: {detail}") from None
    return tree


def filter_sql(tree: Any) -> tuple[str, list[Any]]:
    """A SQL condition (``?`` placeholders) and its parameters for a CQL2 JSON syntax tree."""
    check_filter_size(tree)
    params: list[Any] = []
    return _condition(tree, params), params


def check_filter_size(tree: Any) -> None:
    """Refuse a syntax tree with more than MAX_FILTER_NODES terms or nested deeper than MAX_FILTER_DEPTH (the
    translation recurses once per level)."""
    stack, count = [(tree, 1)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_FILTER_NODES:
            raise FilterError(f"the expression has more than {MAX_FILTER_NODES} terms; simplify it")
        if depth > MAX_FILTER_DEPTH:
            raise FilterError(f"the expression nests deeper than {MAX_FILTER_DEPTH} levels; simplify it")
        if isinstance(node, Mapping):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


def _condition(node: Any, params: list[Any]) -> str:
    if isinstance(node, bool):
        return "TRUE" if node else "FALSE"
    if not isinstance(node, Mapping) or "op" not in node:
        raise FilterError(f"expected a boolean expression, got {json.dumps(node)[:80]}")
    op = str(node["op"]).lower()
    args = node.get("args", [])
    if not isinstance(args, list):
        raise FilterError(f"operator {op!r}: 'args' must be a list")
    handler = _HANDLERS.get(op)
    if handler is None:
        if op in TEMPORAL_OPS:
            return temporal_sql(op, args, params)
        raise FilterError(f"operator {op!r} is not supported; supported: {', '.join(sorted(_supported_ops()))}")
    return handler(op, args, params)


def _supported_ops() -> set[str]:
    return set(_HANDLERS) | set(TEMPORAL_OPS)


def _logical(op: str, args: list[Any], params: list[Any]) -> str:
    if op == "not":
        if len(args) != 1:
            raise FilterError("NOT takes exactly one argument")
        return f"(NOT COALESCE({_condition(args[0], params)}, FALSE))"
    if not args:
        raise FilterError(f"{op.upper()} needs at least one argument")
    joiner = " AND " if op == "and" else " OR "
    return "(" + joiner.join(_condition(arg, params) for arg in args) + ")"


def _scalar(name: str, queryable: Queryable, value: Any) -> Any:
    """A literal compared with ``queryable``, checked against its type and converted for binding."""
    if queryable.kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise FilterError(f"{name} compares with numbers, not {json.dumps(value)[:60]}")
        return float(value)
    if queryable.kind in ("string", "targets"):
        if not isinstance(value, str):
            raise FilterError(f"{name} compares with text in quotes, not {json.dumps(value)[:60]}")
        return value
    if queryable.kind == "datetime":
        start, end = instant_bounds(value)
        if start != end and not (isinstance(value, Mapping) and "date" in value):
            raise FilterError(f"{name} compares with one TIMESTAMP or DATE, not an interval")
        return start
    raise FilterError(f"{name} is a geometry: use S_INTERSECTS(geometry, <geometry>) instead")


def _comparison(op: str, args: list[Any], params: list[Any]) -> str:
    if len(args) != 2:
        raise FilterError(f"comparison {op!r} takes two arguments")
    left, right = args
    named = named_property(left)
    if named is None:
        named, right, op = named_property(right), left, _MIRRORED[op]
    if named is None or named_property(right) is not None:
        raise FilterError(f"comparison {op!r} must compare one queryable property with a literal value")
    name, queryable = named
    if queryable.kind == "datetime" and isinstance(right, Mapping) and "date" in right:
        # A DATE is its whole UTC day: "= day" is within it, "< day" before its start, "> day" after its end.
        day_start, day_end = instant_bounds(right)
        if op in ("=", "<>"):
            params.extend([day_start, day_end])
            return f'("{queryable.column}" {"NOT " if op == "<>" else ""}BETWEEN ? AND ?)'
        params.append(day_start if op in ("<", ">=") else day_end)
        return f'("{queryable.column}" {_COMPARISONS[op]} ?)'
    params.append(_scalar(name, queryable, right))
    return f'("{queryable.column}" {_COMPARISONS[op]} ?)'


_MIRRORED = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _is_null(op: str, args: list[Any], params: list[Any]) -> str:
    named = named_property(args[0]) if len(args) == 1 else None
    if named is None:
        raise FilterError("IS NULL takes one queryable property")
    return f'("{named[1].column}" IS NULL)'


def _between(op: str, args: list[Any], params: list[Any]) -> str:
    if len(args) == 2 and isinstance(args[1], list):
        args = [args[0], *args[1]]
    named = named_property(args[0]) if len(args) == 3 else None
    if named is None or named[1].kind != "number":
        raise FilterError("BETWEEN takes a numeric queryable and two numbers: eo:cloud_cover BETWEEN 0 AND 20")
    params.extend([_scalar(*named, args[1]), _scalar(*named, args[2])])
    return f'("{named[1].column}" BETWEEN ? AND ?)'


def _in(op: str, args: list[Any], params: list[Any]) -> str:
    named = named_property(args[0]) if len(args) == 2 and isinstance(args[1], list) else None
    if named is None or not args[1]:
        raise FilterError("IN takes a queryable and a non-empty list: platform IN ('landsat-8', 'sentinel-2a')")
    params.extend(_scalar(*named, value) for value in args[1])
    return f'("{named[1].column}" IN ({", ".join("?" for _ in args[1])}))'


def _like(op: str, args: list[Any], params: list[Any]) -> str:
    named = named_property(args[0]) if len(args) == 2 else None
    if named is None or named[1].kind != "string" or not isinstance(args[1], str):
        raise FilterError("LIKE takes a text queryable and a pattern: platform LIKE 'landsat%'")
    params.append(args[1])
    return f"(\"{named[1].column}\" LIKE ? ESCAPE '\\')"


def query_geometry_wkb(value: Any, parameter: str = FILTER_PARAMETER) -> bytes:
    """WKB of a GeoJSON geometry or a ``{"bbox": [...]}`` literal in lon/lat, checked to be valid and on Earth."""
    try:
        if isinstance(value, Mapping) and "bbox" in value:
            west, south, east, north = (float(v) for v in value["bbox"][:2] + value["bbox"][-2:])
            geometry = bbox_geometry(west, south, east, north)
        elif isinstance(value, Mapping) and "type" in value:
            geometry = shape(value)
        else:
            raise ValueError("expected a GeoJSON geometry or BBOX(w, s, e, n)")
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, shapely.errors.ShapelyError) as error:
        raise FilterError(f"not a geometry: {error}", parameter) from None
    if geometry.is_empty:
        raise FilterError("the geometry is empty", parameter)
    minx, miny, maxx, maxy = geometry.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise FilterError(f"coordinates {geometry.bounds} are outside lon [-180, 180], lat [-90, 90]", parameter)
    return shapely.to_wkb(geometry)


def bbox_geometry(west: float, south: float, east: float, north: float) -> shapely.Geometry:
    """The area of a W, S, E, N box; one crossing the antimeridian (W > E) becomes two boxes."""
    if west > east:
        return shapely.MultiPolygon([box(west, south, 180.0, north), box(-180.0, south, east, north)])
    return box(west, south, east, north)


def earth_intersects_sql(wkb: bytes, params: list[Any]) -> str:
    """Items on Earth whose footprint meets the WKB geometry; items of other bodies never match.

    The bbox columns come first: plain comparisons DuckDB evaluates (and prunes row groups with) before the exact
    test of the footprint, which only the rows whose bbox meets the geometry's bounds reach. A row without a
    footprint (``geometry_wkb`` null) is judged by its bbox alone.
    """
    west, south, east, north = shapely.from_wkb(wkb).bounds
    params.extend([EARTH, north, south, east, west, east, west, wkb])
    return (
        '("body" = ? AND "bbox_ymin" <= ? AND "bbox_ymax" >= ? AND ('
        '("crosses_antimeridian" = FALSE AND "bbox_xmin" <= ? AND "bbox_xmax" >= ?) OR '
        '("crosses_antimeridian" = TRUE AND ("bbox_xmin" <= ? OR "bbox_xmax" >= ?))) AND '
        f'("geometry_wkb" IS NULL OR {INTERSECTS_FUNCTION}("geometry_wkb", ?)))'
    )


def _spatial(op: str, args: list[Any], params: list[Any]) -> str:
    named = named_property(args[0]) if len(args) == 2 else None
    if named is None or named[1].kind != "geometry":
        raise FilterError("S_INTERSECTS takes the geometry property and a geometry literal")
    return earth_intersects_sql(query_geometry_wkb(args[1]), params)


def _array(op: str, args: list[Any], params: list[Any]) -> str:
    named = named_property(args[0]) if len(args) == 2 else None
    if named is None or named[1].kind != "targets" or not isinstance(args[1], list):
        raise FilterError(f"{op.upper()} takes ssys:targets and a list of bodies: A_CONTAINS(ssys:targets, ('mars'))")
    bodies = sorted({_scalar(*named, value).lower() for value in args[1]})
    # An item targets exactly one body, so its target array is [body].
    if op in ("a_contains", "a_equals"):
        if len(bodies) > 1:
            return "FALSE"
        if not bodies:
            return "TRUE" if op == "a_contains" else "FALSE"
        params.append(bodies[0])
        return '("body" = ?)'
    if not bodies:
        return "FALSE"
    params.extend(bodies)
    return f'("body" IN ({", ".join("?" for _ in bodies)}))'


def _targets_comparison(op: str, args: list[Any], params: list[Any]) -> str:
    named = named_property(args[0]) if len(args) == 2 else None
    if named is not None and named[1].kind == "targets":
        if op not in ("=", "<>"):
            raise FilterError(f"ssys:targets takes = or <> with a body name, not {op!r}")
        params.append(_scalar(*named, args[1]).lower())
        return f'("body" {op} ?)'
    return _comparison(op, args, params)


_HANDLERS: Mapping[str, Callable[[str, list[Any], list[Any]], str]] = {
    "and": _logical,
    "or": _logical,
    "not": _logical,
    **dict.fromkeys(_COMPARISONS, _targets_comparison),
    "isnull": _is_null,
    "between": _between,
    "in": _in,
    "like": _like,
    **dict.fromkeys(_SPATIAL_OPS, _spatial),
    **dict.fromkeys(_ARRAY_OPS, _array),
}
