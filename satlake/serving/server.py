"""The whole access-layer service of ``satlake serve``: the STAC API, its access control and error replies, and
the place where the tiles and map routers join it.

``get_item(request, collection_id, item_id)`` gives routers beside the STAC API (tiles) the full STAC item of the
catalog, after the same access check as the API's own item route.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from stac_fastapi.types.errors import NotFoundError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from satlake.resources import build_resources
from satlake.serving.access import (
    AccessDenied,
    AccessPolicy,
    access_policy,
    denial_response,
    is_open_path,
    request_api_key,
)
from satlake.serving.api_docs import add_offline_docs
from satlake.serving.catalog_backend import CatalogBackend, DuckDbCatalog
from satlake.serving.paging import PageTokens, load_or_create_secret
from satlake.serving.stac_app import LANDING_TITLE, MAP_PATH, SatlakeCoreClient, build_stac_api
from satlake.serving.stac_search import BadParameter
from satlake.settings import Mode, Settings, SettingsError

DEFAULT_HOST = "127.0.0.1"
SERVING_DIR_NAME = "serving"
logger = logging.getLogger(__name__)


def _bad_request(parameter: str, description: str) -> JSONResponse:
    return JSONResponse({"code": "BadRequest", "parameter": parameter, "description": description}, status_code=400)


def _validation_error(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's request validation, as satlake's 400: the first wrong parameter named, with the reason."""
    problems = error.errors() if isinstance(error, RequestValidationError) else []
    first = problems[0] if problems else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("query", "body", "path")]
    parameter = location[0] if location else "body"
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return _bad_request(parameter, message if message.startswith(f"{parameter}:") else f"{parameter}: {message}")


def _error_handlers() -> dict[Any, Callable[[Request, Any], Awaitable[Response] | Response]]:
    def bad_parameter(request: Request, error: BadParameter) -> JSONResponse:
        return _bad_request(error.parameter, str(error))

    def denied(request: Request, error: AccessDenied) -> JSONResponse:
        return denial_response(error)

    def not_found(request: Request, error: NotFoundError) -> JSONResponse:
        return JSONResponse({"code": "NotFound", "description": str(error)}, status_code=404)

    def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}.get(error.status_code)
        return JSONResponse(
            {"code": code or "HTTPError", "description": str(error.detail)},
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("%s %s failed", request.method, request.url.path)
        description = "the server failed to answer; the error is in its log"
        return JSONResponse({"code": "InternalServerError", "description": description}, status_code=500)

    return {
        Exception: unexpected,
        BadParameter: bad_parameter,
        AccessDenied: denied,
        NotFoundError: not_found,
        RequestValidationError: _validation_error,
        StarletteHTTPException: http_error,
    }


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


class AccessControl:
    """ASGI middleware in front of every route: the principal of each request (``request.state.principal``), a
    401 for an unknown key, a 401/403 for requests past the open paths from principals that may read no collection,
    and browsers asking ``/`` for HTML sent to the map. CORS preflights pass (they carry no credentials)."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            principal = self.policy.principal(request_api_key(request))
        except AccessDenied as error:
            await denial_response(error)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        path = request.url.path
        if path == "/" and scope["method"] == "GET" and _wants_html(request):
            await RedirectResponse(MAP_PATH, status_code=303)(scope, receive, send)
        elif principal.reads_nothing and not is_open_path(path):
            await denial_response(principal.denial(path))(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def get_item(request: Request, collection_id: str, item_id: str) -> dict[str, Any]:
    """The full STAC item ``item_id`` of ``collection_id`` for routers beside the API (tiles); raises
    HTTPException 400 (bad id), 401/403 (access) or 404 (no such item)."""
    client: SatlakeCoreClient = request.app.state.stac_client
    try:
        return client.get_item(item_id, collection_id, request=request)
    except AccessDenied as error:
        raise HTTPException(status_code=error.status_code, detail=str(error)) from None
    except BadParameter as error:
        raise HTTPException(status_code=400, detail=str(error)) from None
    except NotFoundError as error:
        raise HTTPException(status_code=404, detail=str(error)) from None


def build_app(
    settings: Settings,
    host: str = DEFAULT_HOST,
    *,
    backend: CatalogBackend | None = None,
    routers: Sequence[APIRouter] = (),
    environ: Mapping[str, str] | None = None,
) -> FastAPI:
    """The service of ``satlake serve`` for ``settings``, bound to ``host`` (which sets the anonymous default).

    ``routers`` join the app after the STAC API (the tiles router, ``tiles_router(get_item)``, and the map
    router, ``map_router()``), behind the same access control. ``environ`` (default ``os.environ``) overrides
    the secrets file for the API keys and the public collection list.
    """
    if backend is None:
        backend = DuckDbCatalog(build_resources(settings).lakehouse)
    tokens = PageTokens(load_or_create_secret(settings.root / SERVING_DIR_NAME))
    stac_api = build_stac_api(backend, tokens)
    app = stac_api.app
    app.state.stac_client = stac_api.client
    app.state.settings = settings
    add_offline_docs(app, stac_api.settings.openapi_url, LANDING_TITLE)
    for router in routers:
        app.include_router(router)
    for error_type, handler in _error_handlers().items():
        app.add_exception_handler(error_type, handler)  # type: ignore[arg-type]
    app.add_middleware(AccessControl, policy=access_policy(settings, host, environ))
    return app


FEATURES_PATH = "/features"


def build_service(settings: Settings, host: str = DEFAULT_HOST) -> FastAPI:
    """The whole service of ``satlake serve``: the STAC API with the tiles of every item and the map page, plus, in
    stack mode, the PostGIS serving tables as OGC API Features and vector tiles (tipg) at ``/features``.

    ``app.state.features_note`` says where the features are served, or why not (embedded mode, or a stack without
    the serving database's password: the rest of the service runs all the same)."""
    from satlake.serving.map_page import map_router
    from satlake.serving.tiles import tiles_router

    app = build_app(settings, host, routers=[tiles_router(get_item, settings), map_router()])
    app.state.features_note = "PostGIS features: served in stack mode only"
    if settings.mode is Mode.STACK:
        from satlake.serving.features import features_app

        try:
            app.mount(FEATURES_PATH, features_app(settings))
        except SettingsError as error:
            app.state.features_note = f"PostGIS features: not served at {FEATURES_PATH} ({error})"
        else:
            app.state.features_note = f"PostGIS features (OGC API Features, vector tiles) at {FEATURES_PATH}"
    return app
