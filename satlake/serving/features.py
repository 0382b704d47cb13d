"""The serving tables as OGC API Features and vector tiles (Mapbox Vector Tiles), by tipg: QGIS, GeoServer or a
web map add ``serving.catalog_footprints``, ``serving.forest_change`` or ``serving.satellite_health`` by URL.

``features_app(settings)`` is a FastAPI app of its own, for ``satlake serve`` to mount at ``/features`` in stack
mode. It connects to the database on its first request rather than at startup (a mounted app's lifespan does
not run), and re-reads the table list every ``CATALOG_TTL_S``, so tables the serving/* assets create later
appear without a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import parse_qs

import asyncpg
import jinja2
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.routing import Router
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send
from tipg.collections import register_collection_catalog
from tipg.database import close_db_connection, connect_to_db
from tipg.errors import DEFAULT_STATUS_CODES, add_exception_handlers
from tipg.factory import Endpoints
from tipg.middleware import CatalogUpdateMiddleware
from tipg.settings import DatabaseSettings, PostgresSettings

from satlake.resources.postgis import PostgisServing
from satlake.serving.api_docs import add_offline_docs
from satlake.serving.features_errors import refuse_bad_input
from satlake.serving.postgis import SCHEMA
from satlake.settings import Settings

TITLE = "satlake serving tables: OGC API Features and Tiles"
CATALOG_TTL_S = 60
MAX_CONNECTIONS = 4


def tipg_database_settings() -> DatabaseSettings:
    """The serving schema only; the health table has no geometry and is served as plain features."""
    return DatabaseSettings(schemas=[SCHEMA], only_spatial_tables=False)


def tipg_postgres_settings(postgis: PostgisServing) -> PostgresSettings:
    return PostgresSettings(
        postgres_user=postgis.user,
        postgres_pass=postgis.require_password(),
        postgres_host=postgis.host,
        postgres_port=postgis.port,
        postgres_dbname=postgis.database,
        db_min_conn_size=1,
        db_max_conn_size=MAX_CONNECTIONS,
    )


class MountedJsonOnly:
    """In front of the features app, mounted at ``/features``:

    - Links name the mount. Starlette keeps the parent app's router and root path (``app_root_path``) in the scope
      of a mounted app, so tipg's ``url_for`` would link its landing page, collections and docs to the STAC API's
      root; each request here gets this app's own router (``router``) and mount path, so links stay under
      ``/features``.
    - JSON only. tipg's HTML pages load Leaflet and Bootstrap from a CDN, which satlake's pages never do: a
      browser's ``Accept: text/html`` gets JSON instead, and ``f=html`` is a 400 naming ``f``. QGIS and GeoServer
      ask for JSON, GeoJSON or vector tiles and are unaffected."""

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = {**scope, "router": self.router, "app_root_path": scope.get("root_path", "")}
        if scope["path"].endswith("/api.html"):
            await self.app(scope, receive, send)
            return
        if "html" in parse_qs(scope.get("query_string", b"").decode("latin-1")).get("f", []):
            description = "f=html: HTML pages are not served here; use f=json or f=geojson (or QGIS, by this URL)"
            await JSONResponse({"code": "BadRequest", "parameter": "f", "description": description}, 400)(
                scope, receive, send
            )
            return
        headers = [(name, value) for name, value in scope["headers"] if name != b"accept"]
        accept = Headers(scope=scope).get("accept", "")
        kept = [part for part in accept.split(",") if "text/html" not in part and part.strip()]
        headers.append((b"accept", (",".join(kept) or "application/json").encode("latin-1")))
        await self.app({**scope, "headers": headers}, receive, send)


def features_app(settings: Settings) -> FastAPI:
    """OGC API Features + Tiles over the PostGIS serving schema (stack mode; needs SATLAKE_POSTGRES_PASSWORD)."""
    postgis = PostgisServing.from_settings(settings)
    database = tipg_database_settings()
    postgres = tipg_postgres_settings(postgis)
    connecting = asyncio.Lock()

    async def ensure_connected(app: FastAPI) -> None:
        async with connecting:
            if getattr(app.state, "pool", None) is None:
                await connect_to_db(app, schemas=database.schemas, settings=postgres)
                await register_collection_catalog(app, db_settings=database)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if getattr(app.state, "pool", None) is not None:
            await close_db_connection(app)

    app = FastAPI(title=TITLE, openapi_url="/api", docs_url=None, lifespan=lifespan)
    add_offline_docs(app, "/api", TITLE)
    loader = jinja2.ChoiceLoader([jinja2.PackageLoader("tipg", "templates")])
    endpoints = Endpoints(
        title=TITLE, templates=Jinja2Templates(env=jinja2.Environment(loader=loader)), with_tiles_viewer=False
    )
    app.include_router(endpoints.router)
    add_exception_handlers(app, DEFAULT_STATUS_CODES)
    refuse_bad_input(app)
    app.add_middleware(MountedJsonOnly, router=app.router)
    app.add_middleware(
        CatalogUpdateMiddleware,  # type: ignore[arg-type]
        func=register_collection_catalog,  # type: ignore[arg-type]
        ttl=CATALOG_TTL_S,
        db_settings=database,
    )

    @app.middleware("http")
    async def connect_on_first_request(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            await ensure_connected(request.app)
        except (OSError, asyncpg.PostgresError) as error:
            return JSONResponse(
                status_code=503,
                content={"code": "ServiceUnavailable", "description": f"{postgis.describe()} is unreachable: {error}"},
            )
        return await call_next(request)

    return app
