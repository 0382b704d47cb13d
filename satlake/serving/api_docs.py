"""The human-readable API documentation (Swagger UI at ``/api.html``) served offline.

FastAPI's own docs page loads Swagger UI from a CDN; satlake's pages load nothing from the internet, so the page is
built with the Swagger UI files that ``infra/install_map_assets.sh`` installs beside the map page's libraries. The
route keeps FastAPI's name ``swagger_ui_html``, which stac-fastapi's and tipg's landing pages link to.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse

DOCS_PATH = "/api.html"
SWAGGER_UI = "/map/vendor/swagger-ui"


def add_offline_docs(app: FastAPI, openapi_path: str, title: str, docs_path: str = DOCS_PATH) -> None:
    """Serve Swagger UI for ``openapi_path`` at ``docs_path`` of ``app``, from satlake's own copy of its files,
    in place of FastAPI's page there (an app made by a library, such as stac-fastapi's, may already have it).
    Paths are relative to the app's mount point (``root_path``)."""
    app.router.routes[:] = [route for route in app.router.routes if getattr(route, "name", None) != "swagger_ui_html"]

    async def swagger_ui_html(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_path}",
            title=title,
            swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
        )

    app.add_route(docs_path, swagger_ui_html, include_in_schema=False)
