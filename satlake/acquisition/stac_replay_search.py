"""The documents of the replayed STAC API: landing page, conformance, collections, and search pages (which
items match, in which order, and the ``next`` links each service writes), for the replay server to send.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

_ES_CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0/item-search#fields",
    # Earth Search answers CQL2-JSON filters (pystac-client's test_filter cassette, 2025).
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
_PC_CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "https://api.stacspec.org/v1.0.0/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "https://api.stacspec.org/v1.0.0/item-search#fields",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
]


class SearchRequestError(ValueError):
    """A search the service answers with 400, with the reason in the message."""


@dataclass(frozen=True)
class SearchRequest:
    """The parameters of one search, decoded from a POST body or a GET query."""

    collections: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    area: BaseGeometry | None = None  # bbox or intersects, lon/lat
    start: datetime | None = None
    end: datetime | None = None
    limit: int | None = None
    query: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    filter: Mapping[str, Any] | None = None
    token: tuple[str, str] | None = None  # ("next" | "prev", item id)
    token_text: str | None = None


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
    "eq": operator.eq,
    "neq": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "=": operator.eq,
    "<>": operator.ne,
}


def _listed(value: Any) -> list[Any]:
    return [v for v in value.split(",") if v] if isinstance(value, str) else list(value)


def _decoded(value: Any, name: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise SearchRequestError(f"{name} is not valid JSON ({error})") from error


def _instant(text: str) -> datetime | None:
    if text in ("", ".."):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise SearchRequestError(f"datetime {text!r} is not RFC 3339") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_search(params: Mapping[str, Any], flavour: str) -> SearchRequest:
    """Decode search parameters (POST JSON body or GET query values); SearchRequestError when malformed."""
    area: BaseGeometry | None = None
    if params.get("bbox") is not None:
        try:
            values = [float(v) for v in _listed(params["bbox"])]
        except ValueError as error:
            raise SearchRequestError(f"bbox {params['bbox']!r} is not a list of numbers") from error
        if len(values) not in (4, 6):
            raise SearchRequestError(f"bbox needs 4 or 6 numbers, got {len(values)}")
        half = len(values) // 2
        area = box(values[0], values[1], values[half], values[half + 1])
    if params.get("intersects") is not None:
        try:
            area = shape(_decoded(params["intersects"], "intersects"))
        except (ValueError, TypeError, AttributeError, KeyError) as error:
            raise SearchRequestError(f"intersects is not a GeoJSON geometry ({error})") from error
    start = end = None
    if params.get("datetime"):
        text = str(params["datetime"])
        if "/" in text:
            first, last = text.split("/", 1)
            start, end = _instant(first), _instant(last)
        else:
            start = end = _instant(text)
    limit = None
    if params.get("limit") is not None:
        try:
            limit = int(params["limit"])
        except ValueError as error:
            raise SearchRequestError(f"limit {params['limit']!r} is not an integer") from error
        if limit < 1:
            raise SearchRequestError(f"limit must be at least 1, got {limit}")
    if params.get("filter") is not None and params.get("filter-lang", "cql2-json") != "cql2-json":
        raise SearchRequestError(f"filter-lang {params['filter-lang']!r} is not supported; send cql2-json")
    token_name = "next" if flavour == "earth-search" else "token"
    token_text = params.get(token_name)
    token = None
    if token_text:
        if flavour == "earth-search":
            parts = str(token_text).split(",")
            token = ("next", parts[1]) if len(parts) == 3 else None
        else:
            kind, _, rest = str(token_text).partition(":")
            token = (kind, rest.partition(":")[2]) if kind in ("next", "prev") and ":" in rest else None
        if token is None:
            raise SearchRequestError(f"{token_name} {token_text!r} is not a paging token of this service")
    return SearchRequest(
        collections=tuple(_listed(params["collections"])) if params.get("collections") else None,
        ids=tuple(_listed(params["ids"])) if params.get("ids") else None,
        area=area,
        start=start,
        end=end,
        limit=limit,
        query=_decoded(params.get("query") or {}, "query"),
        filter=_decoded(params["filter"], "filter") if params.get("filter") is not None else None,
        token=token,
        token_text=str(token_text) if token_text else None,
    )


def _matches_filter(expression: Mapping[str, Any], properties: Mapping[str, Any]) -> bool:
    op = str(expression.get("op", "")).lower()
    args = expression.get("args", [])
    if op in ("and", "or"):
        results = [_matches_filter(arg, properties) for arg in args]
        return all(results) if op == "and" else any(results)
    if op == "not":
        return not _matches_filter(args[0], properties)
    if op in _COMPARE and len(args) == 2 and isinstance(args[0], Mapping) and "property" in args[0]:
        value = properties.get(args[0]["property"])
        return value is not None and _COMPARE[op](value, args[1])
    raise SearchRequestError(
        f"filter expression {json.dumps(expression)} is not supported by the replay server "
        "(and/or/not of property comparisons <, <=, >, >=, =, <>)"
    )


def _matches(item: Mapping[str, Any], request: SearchRequest) -> bool:
    properties = item["properties"]
    if request.collections is not None and item.get("collection") not in request.collections:
        return False
    if request.ids is not None and item["id"] not in request.ids:
        return False
    if request.area is not None and not request.area.intersects(shape(item["geometry"])):
        return False
    moment = _instant(properties["datetime"])
    if request.start is not None and moment is not None and moment < request.start:
        return False
    if request.end is not None and moment is not None and moment > request.end:
        return False
    for name, conditions in request.query.items():
        for op, bound in conditions.items():
            if op not in _COMPARE:
                raise SearchRequestError(
                    f"query operator {op!r} on {name} is not supported (lt, lte, gt, gte, eq, neq)"
                )
            value = properties.get(name)
            if value is None or not _COMPARE[op](value, bound):
                return False
    return request.filter is None or _matches_filter(request.filter, properties)


def match_items(items: Sequence[Mapping[str, Any]], request: SearchRequest) -> list[Mapping[str, Any]]:
    """Items matching ``request``, newest first (ties by id), the default order of both services."""
    matched = sorted((item for item in items if _matches(item, request)), key=lambda item: item["id"])
    return sorted(matched, key=lambda item: item["properties"]["datetime"], reverse=True)


class StacDocuments:
    """Builds the API's JSON answers for one flavour; ``api_url()`` and ``render_item`` come from the server."""

    def __init__(
        self,
        items: Sequence[dict[str, Any]],
        flavour: str,
        page_size: int,
        loop_next: bool,
        api_url: Callable[[], str],
        render_item: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        self.items = items
        self.flavour = flavour
        self.page_size = page_size
        self.loop_next = loop_next
        self.api_url = api_url
        self.render_item = render_item
        self.prefix = flavour == "planetary-computer"  # its API root ends with a slash in its own links

    def _api(self, path: str = "") -> str:
        return self.api_url() + path

    def landing(self) -> dict[str, Any]:
        collections = sorted({item["collection"] for item in self.items})
        es = self.flavour == "earth-search"
        links = [
            {"rel": "self", "type": "application/json", "href": self.api_url() + ("" if es else "/")},
            {"rel": "root", "type": "application/json", "href": self.api_url() + ("" if es else "/")},
            {"rel": "conformance", "type": "application/json", "href": self._api("/conformance")},
            {"rel": "data", "type": "application/json", "href": self._api("/collections")},
            {"rel": "search", "type": "application/geo+json", "href": self._api("/search"), "method": "GET"},
            {"rel": "search", "type": "application/geo+json", "href": self._api("/search"), "method": "POST"},
        ]
        links += [
            {"rel": "child", "type": "application/json", "href": self._api(f"/collections/{c}")} for c in collections
        ]
        return {
            "type": "Catalog",
            "id": "earth-search-aws" if es else "microsoft-pc",
            "title": "Earth Search by Element 84 (satlake replay)" if es else "Planetary Computer STAC API (replay)",
            "description": "Items replayed locally by satlake in the shape of the live service",
            "stac_version": "1.0.0",
            "conformsTo": _ES_CONFORMANCE if es else _PC_CONFORMANCE,
            "links": links,
        }

    def collection(self, collection_id: str) -> dict[str, Any] | None:
        members = [item for item in self.items if item["collection"] == collection_id]
        if not members:
            return None
        boxes = [item["bbox"] for item in members]
        times = sorted(item["properties"]["datetime"] for item in members)
        href = self._api(f"/collections/{collection_id}")
        return {
            "type": "Collection",
            "id": collection_id,
            "stac_version": "1.0.0",
            "title": collection_id,
            "description": f"{collection_id} items replayed by satlake",
            "license": "proprietary",
            "extent": {
                "spatial": {
                    "bbox": [
                        [
                            min(b[0] for b in boxes),
                            min(b[1] for b in boxes),
                            max(b[2] for b in boxes),
                            max(b[3] for b in boxes),
                        ]
                    ]
                },
                "temporal": {"interval": [[times[0], times[-1]]]},
            },
            "links": [
                {"rel": "self", "type": "application/json", "href": href},
                {"rel": "root", "type": "application/json", "href": self.api_url()},
                {"rel": "parent", "type": "application/json", "href": self.api_url()},
                {"rel": "items", "type": "application/geo+json", "href": f"{href}/items"},
            ],
        }

    # -- search -------------------------------------------------------------------------------------------
    def search(self, params: dict[str, Any], method: str) -> dict[str, Any]:
        """One page of a search; ``params`` is the POST body or the decoded GET query."""
        request = parse_search(params, self.flavour)
        matched = match_items(self.items, request)
        limit = min(request.limit or self.page_size, self.page_size)
        ids = [item["id"] for item in matched]
        if request.token is None:
            start = 0
        elif request.token[1] not in ids:
            raise SearchRequestError(f"the paging token {request.token_text!r} names no item of this search")
        elif request.token[0] == "next":
            start = ids.index(request.token[1]) + 1
        else:
            start = max(0, ids.index(request.token[1]) - limit)
        page = matched[start : start + limit]
        features = [self.render_item(item) for item in page]
        links: list[dict[str, Any]] = []
        if start + limit < len(matched):
            last = page[-1]
            if self.loop_next and start // limit == 1:
                last = matched[start - 1]  # page 2's next link repeats page 1's: a client following it loops
            links.append(self._page_link("next", last, params, method))
        if self.flavour == "planetary-computer" and start > 0:
            links.append(self._page_link("previous", page[0], params, method))
        root = {
            "rel": "root",
            "type": "application/json",
            "href": self.api_url() + ("/" if self.prefix else ""),
        }
        if self.flavour == "earth-search":
            links.append({"rel": "root", "type": "application/json", "href": self.api_url()})
            return {
                "type": "FeatureCollection",
                "stac_version": "1.0.0",
                "stac_extensions": [],
                "context": {"limit": limit, "matched": len(matched), "returned": len(features)},
                "numberMatched": len(matched),
                "numberReturned": len(features),
                "features": features,
                "links": links,
            }
        links += [root, {"rel": "self", "type": "application/json", "href": self._api("/search")}]
        return {"type": "FeatureCollection", "features": features, "links": links, "numberReturned": len(features)}

    def _page_link(self, rel: str, item: dict[str, Any], params: dict[str, Any], method: str) -> dict[str, Any]:
        if self.flavour == "earth-search":
            name, token = "next", f"{item['properties']['datetime']},{item['id']},{item['collection']}"
        else:
            name, token = "token", f"{'next' if rel == 'next' else 'prev'}:{item['collection']}:{item['id']}"
        base = {k: v for k, v in params.items() if k not in ("next", "token")}
        link: dict[str, Any] = {"rel": rel, "type": "application/geo+json", "method": method}
        if self.flavour == "earth-search":
            link["title"] = "Next page of Items"
        if method == "POST":
            link.update({"href": self._api("/search"), "body": {**base, name: token}})
            if self.flavour == "earth-search":
                link["merge"] = False
        else:
            link["href"] = self._api("/search") + "?" + urlencode({**base, name: token})
        return link
