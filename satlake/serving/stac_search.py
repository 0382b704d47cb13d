"""One STAC search, from its parameters (GET or POST alike) to the catalog query of a page: each parameter is
checked and a bad one is refused with :class:`BadParameter` (HTTP 400 naming it); the conditions carry every user
value as a bound parameter."""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import shapely
from stac_fastapi.types.errors import InvalidQueryParameter

from satlake.catalog.search import MAX_LIMIT, SearchQuery, parse_datetime_range
from satlake.serving.access import Principal
from satlake.serving.catalog_backend import DEFAULT_SORT, SORTABLE_COLUMNS, CatalogQuery
from satlake.serving.catalog_index import IndexQuery
from satlake.serving.cql2_sql import (
    FilterError,
    bbox_geometry,
    earth_intersects_sql,
    filter_sql,
    parse_filter,
    query_geometry_wkb,
)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$")
_MAX_LIST = 1_000
# Fields every item keeps whatever ``fields`` asks, so it stays a valid STAC Item.
REQUIRED_FIELDS = ("type", "stac_version", "id", "links")
# The default set of the Fields extension: what an item keeps when a search names no field to include.
DEFAULT_FIELDS = ("type", "stac_version", "id", "collection", "geometry", "bbox", "links", "assets",
                  "properties.datetime")  # fmt: skip
DEFAULT_CRS = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


class BadParameter(InvalidQueryParameter):
    """A search parameter that cannot be used; the message starts with the parameter's name."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}" if not message.startswith(f"{parameter}:") else message)
        self.parameter = parameter


@dataclass(frozen=True)
class SearchParams:
    """A checked search; every field is optional except the page size."""

    collections: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    bbox: tuple[float, float, float, float] | None = None
    intersects: Mapping[str, Any] | None = None
    datetime: str | None = None
    limit: int = 10
    sortby: tuple[tuple[str, bool], ...] = ()
    filter_tree: Any = None
    fields_include: tuple[str, ...] = ()
    fields_exclude: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint_source(self) -> dict[str, Any]:
        """What identifies the search across its pages (not the page size, not the fields)."""
        return {
            "collections": self.collections,
            "ids": self.ids,
            "bbox": self.bbox,
            "intersects": self.intersects,
            "datetime": self.datetime,
            "sortby": self.sortby,
            "filter": self.filter_tree,
        }


def id_list(values: Sequence[str] | str | None, parameter: str) -> tuple[str, ...] | None:
    """Collection or item ids, each checked (letters, digits, '.', '_', ':', '-')."""
    if values is None:
        return None
    if isinstance(values, str):
        values = values.split(",")
    cleaned = tuple(v.strip() for v in values if isinstance(v, str) and v.strip())
    if len(cleaned) != len(values) or not cleaned:
        raise BadParameter(parameter, "expected a comma-separated list of ids")
    if len(cleaned) > _MAX_LIST:
        raise BadParameter(parameter, f"at most {_MAX_LIST} ids per search")
    for value in cleaned:
        if not _ID.match(value):
            raise BadParameter(parameter, f"{value[:60]!r} is not an id (letters, digits, '.', '_', ':', '-')")
    return cleaned


def parse_bbox_value(value: str | Sequence[Any] | None) -> tuple[float, float, float, float] | None:
    """A bbox from ``"W,S,E,N"`` or a list of 4 (or 6, with heights) numbers, in lon/lat degrees."""
    if value is None or value == "":
        return None
    parts: Sequence[Any] = value.split(",") if isinstance(value, str) else value
    try:
        numbers = [float(v) for v in parts]
    except (TypeError, ValueError):
        raise BadParameter("bbox", f"{str(value)[:80]!r} is not a list of numbers W,S,E,N") from None
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise BadParameter("bbox", "expected four finite numbers W,S,E,N (or six with heights)")
    west, south, east, north = numbers
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
        raise BadParameter("bbox", f"{numbers} is not W,S,E,N in degrees (lon -180..180, lat -90..90, S <= N)")
    return west, south, east, north


def parse_intersects(value: str | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A GeoJSON geometry (text or object), checked to be one."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise BadParameter("intersects", 'not JSON; give a GeoJSON geometry such as {"type": "Point", …}') from None
    if not isinstance(value, Mapping) or "type" not in value or ("bbox" in value and "coordinates" not in value):
        raise BadParameter("intersects", "not a GeoJSON geometry (an object with 'type' and 'coordinates')")
    try:
        query_geometry_wkb(value, "intersects")
    except FilterError as error:
        raise BadParameter("intersects", str(error)) from None
    return value


def check_datetime(value: str | None) -> str | None:
    """An RFC 3339 date-time or interval of date-times (STAC API takes no bare dates), open ends as ``..``."""
    if value is None or value == "":
        return None
    for part in value.split("/"):
        if part.strip() not in ("", "..") and "t" not in part.lower():
            raise BadParameter("datetime", f"{part[:40]!r} is a date without a time; write 2024-05-01T00:00:00Z")
    try:
        parse_datetime_range(value)
    except ValueError as error:
        raise BadParameter("datetime", str(error)) from None
    return value


def check_limit(value: Any) -> int:
    if value is None:
        return 10
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadParameter("limit", f"{value!r} is not a whole number")
    if value < 1:
        raise BadParameter("limit", f"{value} is below 1; ask for 1 to {MAX_LIMIT} items per page")
    return min(value, MAX_LIMIT)  # OGC API Features: a larger limit is served as the maximum, not refused


def parse_sortby(values: Sequence[Any] | None) -> tuple[tuple[str, bool], ...]:
    """``["-datetime", "+id"]`` (GET) or ``[{"field": ..., "direction": ...}]`` (POST) as (column, descending)."""
    if not values:
        return ()
    order: list[tuple[str, bool]] = []
    for value in values:
        if isinstance(value, str):
            text = value.strip()
            descending, name = text.startswith("-"), text.lstrip("+- ")
        else:
            name = getattr(value, "field", None) or (value.get("field") if isinstance(value, Mapping) else None)
            direction = getattr(value, "direction", None) or (
                value.get("direction") if isinstance(value, Mapping) else "asc"
            )
            descending = str(getattr(direction, "value", direction)).lower() == "desc"
        name = str(name or "").removeprefix("properties.")
        column = SORTABLE_COLUMNS.get(name)
        if column is None:
            raise BadParameter("sortby", f"{name[:60]!r} is not sortable; sort by one of {', '.join(SORTABLE_COLUMNS)}")
        order.append((column, descending))
    return tuple(order)


def parse_fields(values: Sequence[str] | Mapping[str, Any] | Any | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(include, exclude) from GET ``fields=a,-b`` or POST ``{"include": [...], "exclude": [...]}``.

    No include means every field; an include given but empty (POST) means the default set, less what is excluded.
    """
    if not values:
        return (), ()
    if isinstance(values, (list, tuple)):
        include = tuple(v.lstrip("+") for v in values if v and not v.startswith("-"))
        exclude = tuple(v[1:] for v in values if v.startswith("-"))
    else:
        include = tuple(sorted(getattr(values, "include", None) or ()))
        exclude = tuple(sorted(getattr(values, "exclude", None) or ()))
        if not include and "include" in getattr(values, "model_fields_set", ()):
            include = tuple(name for name in DEFAULT_FIELDS if name not in exclude)
    for name in (*include, *exclude):
        if not re.match(r"^[A-Za-z0-9_:.-]{1,120}$", name):
            raise BadParameter("fields", f"{name[:60]!r} is not a field path such as properties.eo:cloud_cover")
    return include, exclude


def parse_filter_param(value: Any, lang: str | None, crs: str | None = None) -> Any:
    if value is None or value == "":
        return None
    if crs not in (None, "", DEFAULT_CRS):
        raise BadParameter("filter-crs", f"only {DEFAULT_CRS} is supported")
    try:
        tree = parse_filter(value, lang)
        filter_sql(tree)  # checks the queryables and literals now, so a bad filter is a 400 before any query
    except FilterError as error:
        raise BadParameter(error.parameter, str(error)) from None
    return tree


def catalog_query(search: SearchParams, principal: Principal, offset: int, limit: int) -> CatalogQuery:
    """The catalog query of the ``limit`` items from ``offset`` of ``search``, limited to what ``principal`` may
    read, with its index form when the index can answer it."""
    conditions: list[str] = []
    params: list[Any] = []
    collections = search.collections
    if collections is not None:
        denied = [c for c in collections if not principal.may_read(c)]
        if denied:
            raise principal.denial(f"collection {denied[0]!r}")
    elif principal.collections is not None:
        collections = tuple(sorted(principal.collections))
    if collections is not None:
        conditions.append(f'"collection" IN ({", ".join("?" for _ in collections)})')
        params.extend(collections)
    if search.ids is not None:
        conditions.append(f'"id" IN ({", ".join("?" for _ in search.ids)})')
        params.extend(search.ids)
    if search.bbox is not None:
        conditions.append(earth_intersects_sql(bbox_geometry_wkb(search.bbox), params))
    if search.intersects is not None:
        conditions.append(earth_intersects_sql(query_geometry_wkb(search.intersects, "intersects"), params))
    if search.datetime is not None:
        start, end = parse_datetime_range(search.datetime)
        if start is not None:
            conditions.append('"datetime" >= ?')
            params.append(start)
        if end is not None:
            conditions.append('"datetime" <= ?')
            params.append(end)
    if search.filter_tree is not None:
        sql, filter_params = filter_sql(search.filter_tree)
        conditions.append(sql)
        params.extend(filter_params)
    index = _index_query(search, collections, offset, limit)
    return CatalogQuery(conditions, params, search.sortby or DEFAULT_SORT, limit, offset, index)


def bbox_geometry_wkb(bbox: tuple[float, float, float, float]) -> bytes:
    return shapely.to_wkb(bbox_geometry(*bbox))


_NEWEST_FIRST = ((), (("datetime", True),), (("datetime", True), ("id", False)))


def _cloud_ceiling(tree: Any) -> tuple[float, bool] | None:
    """(bound, strict) when the filter is exactly ``eo:cloud_cover <= n`` or ``< n``, else None."""
    if not isinstance(tree, Mapping) or tree.get("op") not in ("<", "<=") or len(tree.get("args", ())) != 2:
        return None
    prop, bound = tree["args"]
    if prop != {"property": "eo:cloud_cover"} or isinstance(bound, bool) or not isinstance(bound, (int, float)):
        return None
    return float(bound), tree["op"] == "<"


def _index_query(
    search: SearchParams, collections: tuple[str, ...] | None, offset: int, limit: int
) -> IndexQuery | None:
    """The page as a search of the catalog index: a box or geometry (by its bounds, then its footprint), a time
    range, collections and a cloud ceiling, newest first; None for anything else."""
    if search.ids is not None or search.sortby not in _NEWEST_FIRST:
        return None
    ceiling = _cloud_ceiling(search.filter_tree) if search.filter_tree is not None else None
    if search.filter_tree is not None and (ceiling is None or not 0 <= ceiling[0] <= 100):
        return None
    wkb = bbox_geometry_wkb(search.bbox) if search.bbox is not None else None
    bbox = search.bbox
    if search.intersects is not None:
        wkb = query_geometry_wkb(search.intersects, "intersects")
        bbox = shapely.from_wkb(wkb).bounds
    conditions = SearchQuery(
        bbox=bbox,
        datetime_range=parse_datetime_range(search.datetime) if search.datetime is not None else None,
        cloud_cover_max=ceiling[0] if ceiling else None,
        collections=list(collections) if collections is not None else None,
    )
    return IndexQuery(conditions, wkb, ceiling[0] if ceiling and ceiling[1] else None, limit, offset)


def apply_fields(item: dict[str, Any], include: Sequence[str], exclude: Sequence[str]) -> dict[str, Any]:
    """``item`` with only the ``include`` paths (plus the required fields), without the ``exclude`` paths."""
    if not include and not exclude:
        return item
    result: dict[str, Any] = item
    if include:
        result = {key: item[key] for key in REQUIRED_FIELDS if key in item}
        for path in include:
            _copy_path(item, result, path.split("."))
        _keep_interval(item, result)
    else:
        result = copy.deepcopy(item)
    for path in exclude:
        # Include wins over exclude for the same path and for anything more specific below it.
        if path in REQUIRED_FIELDS or any(kept == path or kept.startswith(f"{path}.") for kept in include):
            continue
        _drop_path(result, path.split("."))
    return result


def _keep_interval(item: Mapping[str, Any], result: dict[str, Any]) -> None:
    """An item whose ``datetime`` is null is valid STAC only with its ``start_datetime`` and ``end_datetime``
    (a Mars photo's Earth day, a timelapse's span): wherever ``datetime`` is kept, they are kept too."""
    properties, kept = item.get("properties") or {}, result.get("properties")
    if isinstance(kept, dict) and "datetime" in kept and kept["datetime"] is None:
        for name in ("start_datetime", "end_datetime"):
            if name in properties:
                kept.setdefault(name, properties[name])


def _copy_path(source: Mapping[str, Any], target: dict[str, Any], keys: list[str]) -> None:
    key = keys[0]
    if key not in source:
        return
    if len(keys) == 1 or not isinstance(source[key], Mapping):
        target[key] = copy.deepcopy(source[key])
        return
    branch = target.setdefault(key, {})
    if isinstance(branch, dict):
        _copy_path(source[key], branch, keys[1:])


def _drop_path(target: dict[str, Any], keys: list[str]) -> None:
    node: Any = target
    for key in keys[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(keys[-1], None)
