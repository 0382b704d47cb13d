"""The STAC API 1.0 of the catalog, built on stac-fastapi: a ``BaseCoreClient`` over :class:`CatalogBackend` and
one extension list per app (``stac_extensions()``: Sort, Fields, Filter, token paging) handed to both StacApi and
its request models, so the conformance classes come from the extensions."""

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any
from urllib.parse import urlencode

import attr
from brotli_asgi import BrotliMiddleware
from fastapi import Query, Request
from pydantic import field_validator
from stac_fastapi.api.app import StacApi
from stac_fastapi.api.middleware import ProxyHeaderMiddleware
from stac_fastapi.api.models import (
    ItemCollectionUri,
    create_get_request_model,
    create_post_request_model,
    create_request_model,
)
from stac_fastapi.extensions import FieldsExtension, FilterExtension, SortExtension, TokenPaginationExtension
from stac_fastapi.extensions.fields.fields import FieldsConformanceClasses
from stac_fastapi.extensions.filter.client import BaseFiltersClient
from stac_fastapi.extensions.filter.filter import FilterConformanceClasses
from stac_fastapi.extensions.sort.sort import SortConformanceClasses
from stac_fastapi.types.config import ApiSettings
from stac_fastapi.types.core import BaseCoreClient
from stac_fastapi.types.errors import NotFoundError
from stac_fastapi.types.extension import ApiExtension
from stac_fastapi.types.search import BaseSearchGetRequest, BaseSearchPostRequest
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from satlake.catalog.items import EARTH, MEDIA_TYPE_GEOJSON, MEDIA_TYPE_JSON, format_datetime
from satlake.catalog.validation import SSYS_EXTENSION
from satlake.serving.access import API_KEY_HEADER, request_principal
from satlake.serving.catalog_backend import CatalogBackend, CollectionSummary
from satlake.serving.cql2_sql import check_filter_size, parse_filter
from satlake.serving.paging import PageTokenError, PageTokens, search_fingerprint
from satlake.serving.stac_queryables import queryables_schema
from satlake.serving.stac_search import (
    BadParameter,
    SearchParams,
    apply_fields,
    catalog_query,
    check_datetime,
    check_limit,
    id_list,
    parse_bbox_value,
    parse_fields,
    parse_filter_param,
    parse_intersects,
    parse_sortby,
)

LANDING_ID = "satlake"
LANDING_TITLE = "satlake catalog"
LANDING_DESCRIPTION = "Scenes and derived products catalogued by satlake, served from the lakehouse."
MAP_PATH = "/map"
_BBOX_HELP = "W,S,E,N in degrees; only items on Earth meet it"
_DATETIME_HELP = "RFC 3339 date-time or interval: A, A/B, ../B, A/.."


class SatlakeFiltersClient(BaseFiltersClient):
    """``/queryables``: the properties a CQL2 filter may name (the same for every collection)."""

    def get_queryables(self, collection_id: str | None = None, **kwargs: Any) -> dict[str, Any]:
        request: Request = kwargs["request"]
        return queryables_schema(str(request.url).split("?", 1)[0])


# Only what cql2_sql translates: comparisons, AND/OR/NOT, IS NULL, S_INTERSECTS, the temporal functions and the
# array functions (on ssys:targets). BETWEEN, IN and LIKE work too, but advanced comparison is not declared: its
# conformance tests name properties no satlake item has, which satlake refuses (400) rather than match nothing.
# Filters apply to /search, not to /collections/{id}/items.
FILTER_CONFORMANCE = [
    FilterConformanceClasses.FILTER,
    FilterConformanceClasses.SEARCH,
    FilterConformanceClasses.BASIC_CQL2,
    FilterConformanceClasses.CQL2_TEXT,
    FilterConformanceClasses.CQL2_JSON,
    FilterConformanceClasses.BASIC_SPATIAL_FUNCTIONS,
    FilterConformanceClasses.TEMPORAL_FUNCTIONS,
    FilterConformanceClasses.ARRAY_FUNCTIONS,
]
# Sort 1.0 as well as 1.1 (the same sortby; clients such as pystac-client look for 1.0 only).
SORT_V1_0 = "https://api.stacspec.org/v1.0.0/item-search#sort"


def stac_extensions() -> list[ApiExtension]:
    """The one extension list of an API, handed to StacApi and to its request models alike. New objects per app:
    an extension keeps its own router, which registering it in a second app would fill twice."""
    # Sort and Fields apply to /search only (not to the items of a collection, nor to collection search).
    return [
        SortExtension(conformance_classes=[SORT_V1_0, SortConformanceClasses.ITEM_SEARCH_SORT]),
        FieldsExtension(conformance_classes=[FieldsConformanceClasses.SEARCH]),
        FilterExtension(client=SatlakeFiltersClient(), conformance_classes=FILTER_CONFORMANCE),
        TokenPaginationExtension(),
    ]


@attr.s
class SearchGetBase(BaseSearchGetRequest):
    """GET /search parameters as sent; satlake checks them itself so each error names its parameter."""

    bbox: Annotated[str | None, Query(description=_BBOX_HELP)] = attr.ib(default=None)
    datetime: Annotated[str | None, Query(description=_DATETIME_HELP)] = attr.ib(default=None)


class SearchPostBase(BaseSearchPostRequest):
    """POST /search body; ``collections`` and ``ids`` may also be given as one comma-separated string."""

    @field_validator("collections", "ids", mode="before")
    @classmethod
    def _split_text(cls, value: Any) -> Any:
        return value.split(",") if isinstance(value, str) else value

    @field_validator("filter_expr", mode="before", check_fields=False)
    @classmethod
    def _filter_text(cls, value: Any) -> Any:
        # pystac-client posts CQL2 text as a string with filter-lang cql2-text; the model holds the JSON tree.
        tree = parse_filter(value) if isinstance(value, str) else value
        check_filter_size(tree)  # before pydantic copies it, which fails on deep nesting
        return tree

    @field_validator("filter_lang", mode="before", check_fields=False)
    @classmethod
    def _text_becomes_json(cls, value: Any) -> Any:
        # The CQL2 text of a POST body is parsed to its JSON tree above, so the body now holds CQL2 JSON.
        return "cql2-json" if value == "cql2-text" else value

    @field_validator("fields", mode="before", check_fields=False)
    @classmethod
    def _fields_object(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError('fields must be an object such as {"include": [...], "exclude": [...]}')
        return value


@attr.s
class ItemsGetBase(ItemCollectionUri):
    """GET /collections/{collection_id}/items parameters as sent."""

    bbox: Annotated[str | None, Query(description=_BBOX_HELP)] = attr.ib(default=None)
    datetime: Annotated[str | None, Query(description=_DATETIME_HELP)] = attr.ib(default=None)
    token: Annotated[str | None, Query(description="paging token of a 'next' link")] = attr.ib(default=None)


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _collection_document(summary: CollectionSummary, base: str) -> dict[str, Any]:
    url = f"{base}/collections/{summary.collection_id}"
    collection: dict[str, Any] = {
        "type": "Collection",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": summary.collection_id,
        "description": f"Scenes of collection {summary.collection_id}.",
        "license": "other",
        "extent": {
            "spatial": {"bbox": [summary.bbox or [-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [[format_datetime(summary.start), format_datetime(summary.end)]]},
        },
        "summaries": {"ssys:targets": summary.bodies},
        "links": [
            {"rel": "self", "href": url, "type": MEDIA_TYPE_JSON},
            {"rel": "root", "href": f"{base}/", "type": MEDIA_TYPE_JSON},
            {"rel": "parent", "href": f"{base}/", "type": MEDIA_TYPE_JSON},
            {"rel": "items", "href": f"{url}/items", "type": MEDIA_TYPE_GEOJSON},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables", "href": f"{url}/queryables",
             "type": "application/schema+json"},
        ],
    }  # fmt: skip
    if summary.bodies != [EARTH]:
        collection["ssys:targets"] = summary.bodies
        collection["stac_extensions"] = [SSYS_EXTENSION]
    return collection


def api_item(item: dict[str, Any], base: str) -> dict[str, Any]:
    """A catalog item with the API's links in place of the static catalog's relative ones."""
    collection_url = f"{base}/collections/{item['collection']}"
    links = [link for link in item.get("links", []) if link.get("rel") not in {"self", "root", "parent", "collection"}]
    item["links"] = [
        {"rel": "self", "href": f"{collection_url}/items/{item['id']}", "type": MEDIA_TYPE_GEOJSON},
        {"rel": "parent", "href": collection_url, "type": MEDIA_TYPE_JSON},
        {"rel": "collection", "href": collection_url, "type": MEDIA_TYPE_JSON},
        {"rel": "root", "href": f"{base}/", "type": MEDIA_TYPE_JSON},
        *links,
    ]
    return item


@attr.s
class SatlakeCoreClient(BaseCoreClient):
    """STAC Core, Collections, Features and Item Search over the catalog table."""

    backend: CatalogBackend = attr.ib(kw_only=True)
    tokens: PageTokens = attr.ib(kw_only=True)

    def landing_page(self, **kwargs: Any) -> dict[str, Any]:
        page = dict(super().landing_page(**kwargs))
        base = _base_url(kwargs["request"])
        page["links"] = [*page["links"], {"rel": "alternate", "href": f"{base}{MAP_PATH}", "type": "text/html",
                                          "title": "Map of the catalog"}]  # fmt: skip
        return page

    # Collections
    def _summaries(self, request: Request) -> list[CollectionSummary]:
        principal = request_principal(request)
        return [s for s in self.backend.collections() if principal.may_read(s.collection_id)]

    def all_collections(self, **kwargs: Any) -> dict[str, Any]:
        request: Request = kwargs["request"]
        base = _base_url(request)
        return {
            "collections": [_collection_document(s, base) for s in self._summaries(request)],
            "links": [
                {"rel": "self", "href": f"{base}/collections", "type": MEDIA_TYPE_JSON},
                {"rel": "root", "href": f"{base}/", "type": MEDIA_TYPE_JSON},
            ],
        }

    def _readable(self, request: Request, collection_id: str) -> CollectionSummary:
        principal = request_principal(request)
        collection = id_list([collection_id], "collection_id")[0]  # type: ignore[index]
        if not principal.may_read(collection):
            raise principal.denial(f"collection {collection!r}")
        summary = next((s for s in self.backend.collections() if s.collection_id == collection), None)
        if summary is None:
            raise NotFoundError(f"collection {collection!r} does not exist; GET /collections lists them")
        return summary

    def get_collection(self, collection_id: str, **kwargs: Any) -> dict[str, Any]:
        request: Request = kwargs["request"]
        return _collection_document(self._readable(request, collection_id), _base_url(request))

    def get_item(self, item_id: str, collection_id: str, **kwargs: Any) -> dict[str, Any]:
        request: Request = kwargs["request"]
        self._readable(request, collection_id)
        id_list([item_id], "item_id")
        found = self.backend.item(collection_id, item_id)
        if found is None:
            raise NotFoundError(f"item {item_id!r} is not in collection {collection_id!r}")
        return api_item(found, _base_url(request))

    def item_collection(self, collection_id: str, **kwargs: Any) -> Response:  # type: ignore[override]
        request: Request = kwargs["request"]
        self._readable(request, collection_id)
        search = SearchParams(
            collections=(collection_id,),
            bbox=parse_bbox_value(kwargs.get("bbox")),
            datetime=check_datetime(kwargs.get("datetime")),
            limit=check_limit(kwargs.get("limit")),
        )
        return self._page(request, search, kwargs.get("token"), method="GET")

    # Item Search
    def get_search(self, **kwargs: Any) -> Response:  # type: ignore[override]
        request: Request = kwargs["request"]
        include, exclude = parse_fields(kwargs.get("fields"))
        search = SearchParams(
            collections=id_list(kwargs.get("collections"), "collections"),
            ids=id_list(kwargs.get("ids"), "ids"),
            bbox=parse_bbox_value(kwargs.get("bbox")),
            intersects=parse_intersects(kwargs.get("intersects")),
            datetime=check_datetime(kwargs.get("datetime")),
            limit=check_limit(kwargs.get("limit")),
            sortby=parse_sortby(kwargs.get("sortby")),
            filter_tree=parse_filter_param(kwargs.get("filter_expr"), kwargs.get("filter_lang"),
                                           kwargs.get("filter_crs")),
            fields_include=include,
            fields_exclude=exclude,
        )  # fmt: skip
        _one_spatial(search)
        return self._page(request, search, kwargs.get("token"), method="GET")

    def post_search(self, search_request: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        request: Request = kwargs["request"]
        body = search_request.model_dump(mode="json", by_alias=True, exclude_none=True)
        include, exclude = parse_fields(getattr(search_request, "fields", None))
        search = SearchParams(
            collections=id_list(search_request.collections, "collections"),
            ids=id_list(search_request.ids, "ids"),
            bbox=parse_bbox_value(search_request.bbox),
            intersects=parse_intersects(body.get("intersects")),
            datetime=check_datetime(search_request.datetime),
            limit=check_limit(search_request.limit),
            sortby=parse_sortby(getattr(search_request, "sortby", None)),
            filter_tree=parse_filter_param(body.get("filter"), body.get("filter-lang") or body.get("filter_lang")),
            fields_include=include,
            fields_exclude=exclude,
            extra=body,
        )
        _one_spatial(search)
        return self._page(request, search, getattr(search_request, "token", None), method="POST")

    def _page(self, request: Request, search: SearchParams, token: str | None, method: str) -> Response:
        """One page of a search, already serialised: FastAPI's ``jsonable_encoder`` walking a 100-item page cost
        32 of a request's 50 ms (``json.dumps`` of the same page: 2 ms; docs/benchmarks.md section 6)."""
        page = self._page_document(request, search, token, method)
        return Response(json.dumps(page, separators=(",", ":"), allow_nan=False), media_type=MEDIA_TYPE_GEOJSON)

    def _page_document(self, request: Request, search: SearchParams, token: str | None, method: str) -> dict[str, Any]:
        principal = request_principal(request)
        if search.collections is not None:
            known = {s.collection_id for s in self.backend.collections()}
            unknown = [c for c in search.collections if c not in known and principal.may_read(c)]
            if unknown:
                raise BadParameter(
                    "collections", f"collection {unknown[0]!r} does not exist; GET /collections lists them"
                )
        fingerprint = search_fingerprint({**search.fingerprint_source(), "path": request.url.path})
        try:
            offset = self.tokens.decode(token, fingerprint) if token else 0
        except PageTokenError as error:
            raise BadParameter("token", str(error)) from None
        # One row past the page tells whether a next page exists without counting every match.
        rows = self.backend.search(catalog_query(search, principal, offset, search.limit + 1))
        base = _base_url(request)
        features = [
            apply_fields(api_item(item, base), search.fields_include, search.fields_exclude)
            for item in rows[: search.limit]
        ]
        links: list[dict[str, Any]] = [
            {"rel": "self", "href": str(request.url), "type": MEDIA_TYPE_GEOJSON},
            {"rel": "root", "href": f"{base}/", "type": MEDIA_TYPE_JSON},
        ]
        if len(rows) > search.limit:
            links.append(
                self._next_link(request, search, self.tokens.encode(offset + search.limit, fingerprint), method)
            )
        return {"type": "FeatureCollection", "features": features, "links": links, "numberReturned": len(features)}

    @staticmethod
    def _next_link(request: Request, search: SearchParams, token: str, method: str) -> dict[str, Any]:
        url = str(request.url).split("?", 1)[0]
        if method == "POST":
            body = {**search.extra, "token": token}
            return {"rel": "next", "href": url, "type": MEDIA_TYPE_GEOJSON, "method": "POST", "body": body}
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        return {"rel": "next", "href": f"{url}?{urlencode([*params, ('token', token)])}", "type": MEDIA_TYPE_GEOJSON}


def _one_spatial(search: SearchParams) -> None:
    if search.bbox is not None and search.intersects is not None:
        raise BadParameter("intersects", "bbox and intersects cannot be combined; give one of them")


# Responses already compressed (PNG, JPEG, WebP, COG tiles): brotli would spend time for nothing.
IMAGE_PATHS = (r"/items/[^/]+/tiles/", r"/items/[^/]+/preview", r"/items/[^/]+/bbox/", r"/items/[^/]+/feature")


def service_middlewares() -> list[Middleware]:
    """stac-fastapi's middlewares (compression, CORS as STAC API recommends, proxy headers), with CORS also
    admitting the credentials satlake reads and compression skipping images."""
    return [
        Middleware(BrotliMiddleware, excluded_handlers=list(IMAGE_PATHS)),
        Middleware(
            CORSMiddleware,
            allow_origins=["*"],
            allow_methods=["OPTIONS", "POST", "GET"],
            allow_headers=["Content-Type", "Authorization", API_KEY_HEADER],
            max_age=600,
        ),
        Middleware(ProxyHeaderMiddleware),
    ]


def _satlake_version() -> str:
    try:
        return version("satlake")
    except PackageNotFoundError:
        return "0+unknown"


def build_stac_api(backend: CatalogBackend, tokens: PageTokens) -> StacApi:
    """The STAC API (its FastAPI app is ``.app``) over ``backend``, paging with ``tokens``."""
    settings = ApiSettings(
        stac_fastapi_title=LANDING_TITLE, stac_fastapi_description=LANDING_DESCRIPTION,
        stac_fastapi_landing_id=LANDING_ID, stac_fastapi_version=_satlake_version(),
    )  # fmt: skip
    client = SatlakeCoreClient(
        backend=backend,
        tokens=tokens,
        landing_page_id=LANDING_ID,
        title=LANDING_TITLE,
        description=LANDING_DESCRIPTION,
    )
    extensions = stac_extensions()
    items_model = create_request_model("ItemsGetRequest", base_model=ItemsGetBase, request_type="GET")
    return StacApi(
        settings=settings,
        client=client,
        extensions=extensions,
        search_get_request_model=create_get_request_model(extensions, base_model=SearchGetBase),
        search_post_request_model=create_post_request_model(extensions, base_model=SearchPostBase),
        items_get_request_model=items_model,
        middlewares=service_middlewares(),
    )
