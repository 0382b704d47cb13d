"""CQL2 filters of the STAC API translated to parameterised SQL over the catalog table.

The ``cql2`` package parses CQL2 text or JSON into the JSON syntax tree; this module walks that tree and emits a
WHERE condition whose only spliced text is fixed column names and operators chosen from whitelists. Every literal a
user writes travels as a bound ``?`` parameter. Only the queryables in :data:`QUERYABLES` may be named.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import cql2
import shapely
from shapely.geometry import box, shape

from satlake.catalog.items import EARTH
from satlake.catalog.search import parse_datetime_range

FILTER_PARAMETER = "filter"
MAX_FILTER_NODES = 500
MAX_FILTER_CHARS = 20_000
# The DuckDB function (registered by the catalog backend) testing a WKB footprint against a WKB query geometry.
INTERSECTS_FUNCTION = "satlake_intersects"


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

_COMPARISONS = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_SPATIAL_OPS = frozenset({"s_intersects"})
_OPEN = (None, "..", "")

Endpoint = Any  # a column reference (_Column), a UTC datetime, or one of the infinities below
_NEG_INF, _POS_INF = float("-inf"), float("inf")

# Each temporal relation of CQL2 between A = [as, ae] and B = [bs, be], as a conjunction (or, for t_disjoint, a
# disjunction) of endpoint comparisons. An item's datetime is the instant interval [datetime, datetime].
_TEMPORAL: Mapping[str, tuple[str, tuple[tuple[str, str, str], ...]]] = {
    "t_after": ("AND", (("as", ">", "be"),)),
    "t_before": ("AND", (("ae", "<", "bs"),)),
    "t_contains": ("AND", (("as", "<", "bs"), ("ae", ">", "be"))),
    "t_disjoint": ("OR", (("ae", "<", "bs"), ("as", ">", "be"))),
    "t_during": ("AND", (("as", ">", "bs"), ("ae", "<", "be"))),
    "t_equals": ("AND", (("as", "=", "bs"), ("ae", "=", "be"))),
    "t_finishedby": ("AND", (("as", "<", "bs"), ("ae", "=", "be"))),
    "t_finishes": ("AND", (("as", ">", "bs"), ("ae", "=", "be"))),
    "t_intersects": ("AND", (("as", "<=", "be"), ("ae", ">=", "bs"))),
    "t_meets": ("AND", (("ae", "=", "bs"),)),
    "t_metby": ("AND", (("as", "=", "be"),)),
    "t_overlappedby": ("AND", (("as", ">", "bs"), ("as", "<", "be"), ("ae", ">", "be"))),
    "t_overlaps": ("AND", (("as", "<", "bs"), ("ae", ">", "bs"), ("ae", "<", "be"))),
    "t_startedby": ("AND", (("as", "=", "bs"), ("ae", ">", "be"))),
    "t_starts": ("AND", (("as", "=", "bs"), ("ae", "<", "be"))),
}
_ARRAY_OPS = frozenset({"a_contains", "a_containedby", "a_overlaps", "a_equals"})


@dataclass(frozen=True, slots=True)
class _Column:
    sql: str


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
    _count_nodes(tree)
    params: list[Any] = []
    return _condition(tree, params), params


def _count_nodes(tree: Any) -> None:
    stack, count = [tree], 0
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_FILTER_NODES:
            raise FilterError(f"the expression has more than {MAX_FILTER_NODES} terms; simplify it")
        if isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


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
        if op in _TEMPORAL:
            return _temporal(op, args, params)
        raise FilterError(f"operator {op!r} is not supported; supported: {', '.join(sorted(_supported_ops()))}")
    return handler(op, args, params)


def _supported_ops() -> set[str]:
    return set(_HANDLERS) | set(_TEMPORAL)


def _logical(op: str, args: list[Any], params: list[Any]) -> str:
    if op == "not":
        if len(args) != 1:
            raise FilterError("NOT takes exactly one argument")
        return f"(NOT COALESCE({_condition(args[0], params)}, FALSE))"
    if not args:
        raise FilterError(f"{op.upper()} needs at least one argument")
    joiner = " AND " if op == "and" else " OR "
    return "(" + joiner.join(_condition(arg, params) for arg in args) + ")"


def _property(node: Any) -> tuple[str, Queryable] | None:
    if isinstance(node, Mapping) and "property" in node:
        name = node["property"]
        queryable = QUERYABLES.get(name) if isinstance(name, str) else None
        if queryable is None:
            raise FilterError(f"property {name!r} is not queryable; queryables: {', '.join(QUERYABLES)}")
        return name, queryable
    return None


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
        start, end = _instant_bounds(value)
        if start != end and not (isinstance(value, Mapping) and "date" in value):
            raise FilterError(f"{name} compares with one TIMESTAMP or DATE, not an interval")
        return start
    raise FilterError(f"{name} is a geometry: use S_INTERSECTS(geometry, <geometry>) instead")


def _comparison(op: str, args: list[Any], params: list[Any]) -> str:
    if len(args) != 2:
        raise FilterError(f"comparison {op!r} takes two arguments")
    left, right = args
    named = _property(left)
    if named is None:
        named, right, op = _property(right), left, _MIRRORED[op]
    if named is None or _property(right) is not None:
        raise FilterError(f"comparison {op!r} must compare one queryable property with a literal value")
    name, queryable = named
    if queryable.kind == "datetime" and isinstance(right, Mapping) and "date" in right:
        # A DATE is its whole UTC day: "= day" is within it, "< day" before its start, "> day" after its end.
        day_start, day_end = _instant_bounds(right)
        if op in ("=", "<>"):
            params.extend([day_start, day_end])
            return f'("{queryable.column}" {"NOT " if op == "<>" else ""}BETWEEN ? AND ?)'
        params.append(day_start if op in ("<", ">=") else day_end)
        return f'("{queryable.column}" {_COMPARISONS[op]} ?)'
    params.append(_scalar(name, queryable, right))
    return f'("{queryable.column}" {_COMPARISONS[op]} ?)'


_MIRRORED = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _is_null(op: str, args: list[Any], params: list[Any]) -> str:
    named = _property(args[0]) if len(args) == 1 else None
    if named is None:
        raise FilterError("IS NULL takes one queryable property")
    return f'("{named[1].column}" IS NULL)'


def _between(op: str, args: list[Any], params: list[Any]) -> str:
    if len(args) == 2 and isinstance(args[1], list):
        args = [args[0], *args[1]]
    named = _property(args[0]) if len(args) == 3 else None
    if named is None or named[1].kind != "number":
        raise FilterError("BETWEEN takes a numeric queryable and two numbers: eo:cloud_cover BETWEEN 0 AND 20")
    params.extend([_scalar(*named, args[1]), _scalar(*named, args[2])])
    return f'("{named[1].column}" BETWEEN ? AND ?)'


def _in(op: str, args: list[Any], params: list[Any]) -> str:
    named = _property(args[0]) if len(args) == 2 and isinstance(args[1], list) else None
    if named is None or not args[1]:
        raise FilterError("IN takes a queryable and a non-empty list: platform IN ('landsat-8', 'sentinel-2a')")
    params.extend(_scalar(*named, value) for value in args[1])
    return f'("{named[1].column}" IN ({", ".join("?" for _ in args[1])}))'


def _like(op: str, args: list[Any], params: list[Any]) -> str:
    named = _property(args[0]) if len(args) == 2 else None
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
    named = _property(args[0]) if len(args) == 2 else None
    if named is None or named[1].kind != "geometry":
        raise FilterError("S_INTERSECTS takes the geometry property and a geometry literal")
    return earth_intersects_sql(query_geometry_wkb(args[1]), params)


def _array(op: str, args: list[Any], params: list[Any]) -> str:
    named = _property(args[0]) if len(args) == 2 else None
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
    named = _property(args[0]) if len(args) == 2 else None
    if named is not None and named[1].kind == "targets":
        if op not in ("=", "<>"):
            raise FilterError(f"ssys:targets takes = or <> with a body name, not {op!r}")
        params.append(_scalar(*named, args[1]).lower())
        return f'("body" {op} ?)'
    return _comparison(op, args, params)


def _instant_bounds(value: Any) -> tuple[datetime | float, datetime | float]:
    """A temporal literal as its [start, end] (open ends as infinities)."""
    try:
        if isinstance(value, Mapping) and "timestamp" in value:
            start, end = parse_datetime_range(str(value["timestamp"]))
            return start or _NEG_INF, start or _POS_INF
        if isinstance(value, Mapping) and "date" in value:
            start, end = parse_datetime_range(str(value["date"]))
            return start or _NEG_INF, end or _POS_INF
        if isinstance(value, Mapping) and "interval" in value and len(value["interval"]) == 2:
            ends = [_interval_end(v, i == 1) for i, v in enumerate(value["interval"])]
            return ends[0], ends[1]
    except ValueError as error:
        raise FilterError(f"bad temporal literal {json.dumps(value)[:80]}: {error}") from None
    raise FilterError(f"expected TIMESTAMP(...), DATE(...) or INTERVAL(...), not {json.dumps(value)[:80]}")


def _interval_end(value: Any, is_end: bool) -> datetime | float:
    if isinstance(value, Mapping):
        value = value.get("timestamp", value.get("date"))
    if value in _OPEN:
        return _POS_INF if is_end else _NEG_INF
    start, end = parse_datetime_range(str(value))
    moment = end if is_end else start
    return moment if moment is not None else (_POS_INF if is_end else _NEG_INF)


def _temporal_operand(node: Any) -> tuple[Endpoint, Endpoint]:
    named = _property(node)
    if named is not None:
        if named[1].kind != "datetime":
            raise FilterError(f"{named[0]} is not temporal; temporal functions take datetime")
        column = _Column(f'"{named[1].column}"')
        return column, column
    return _instant_bounds(node)


def _endpoint_comparison(left: Endpoint, op: str, right: Endpoint, params: list[Any]) -> str:
    if not isinstance(left, _Column) and not isinstance(right, _Column):
        return "TRUE" if _compare_values(left, op, right) else "FALSE"
    if isinstance(left, float) or isinstance(right, float):  # a column against an open end
        column_is_left = isinstance(left, _Column)
        infinite = right if column_is_left else left
        # A finite column value is above -inf and below +inf, never equal to either.
        below = (infinite == _POS_INF) == column_is_left
        holds = {"<": below, "<=": below, ">": not below, ">=": not below, "=": False}[op]
        return "TRUE" if holds else "FALSE"
    left_sql = left.sql if isinstance(left, _Column) else "?"
    right_sql = right.sql if isinstance(right, _Column) else "?"
    params.extend(v for v in (left, right) if not isinstance(v, _Column))
    return f"{left_sql} {op} {right_sql}"


def _compare_values(left: datetime | float, op: str, right: datetime | float) -> bool:
    def key(v: datetime | float) -> float:
        return v if isinstance(v, float) else v.astimezone(UTC).timestamp()

    a, b = key(left), key(right)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "=": a == b}[op]


def _temporal(op: str, args: list[Any], params: list[Any]) -> str:
    if len(args) != 2:
        raise FilterError(f"{op.upper()} takes two temporal arguments")
    (a_start, a_end), (b_start, b_end) = _temporal_operand(args[0]), _temporal_operand(args[1])
    ends = {"as": a_start, "ae": a_end, "bs": b_start, "be": b_end}
    joiner, comparisons = _TEMPORAL[op]
    parts = [_endpoint_comparison(ends[x], cmp, ends[y], params) for x, cmp, y in comparisons]
    return "(" + f" {joiner} ".join(parts) + ")"


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
