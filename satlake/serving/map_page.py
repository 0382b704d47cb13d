"""The map page of `satlake serve` (`/map`): one HTML page, its script and style, and the browser libraries that
infra/install_map_assets.sh installs from npm into `map/vendor/`, all served by this service so the page works
with no internet."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

MAP_DIR = Path(__file__).resolve().parent / "map"
INSTALL_COMMAND = "bash infra/install_map_assets.sh"
# The files of vendor/ the page loads; any one missing means the install did not run (or did not finish).
VENDOR_FILES = (
    "leaflet/leaflet.js",
    "leaflet/leaflet.css",
    "topojson-client/topojson-client.min.js",
    "world-atlas/countries-50m.json",
    "swagger-ui/swagger-ui-bundle.js",
    "swagger-ui/swagger-ui.css",
)
PAGE_FILES = {"app.js": "text/javascript", "app.css": "text/css"}
VENDOR_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".json": "application/json", ".png": "image/png"}
# Installed libraries change only with the lock file; the page's own files may change with an upgrade.
VENDOR_CACHE = "public, max-age=86400"
PAGE_CACHE = "no-cache"

log = logging.getLogger(__name__)


def missing_vendor_files(map_dir: Path = MAP_DIR) -> list[str]:
    """The files of ``map_dir/vendor`` the page needs and that are not there (empty when installed)."""
    return [name for name in VENDOR_FILES if not (map_dir / "vendor" / name).is_file()]


def assets_missing_message(missing: list[str]) -> str:
    """What a user reads when the page's libraries are not installed, and what to run."""
    return (
        f"The map page's browser libraries are not installed (missing: {', '.join(missing)}): "
        f"run {INSTALL_COMMAND} from the satlake checkout, then reload this page."
    )


def _assets_missing_response(request: Request, missing: list[str]) -> Response:
    message = assets_missing_message(missing)
    if "text/html" in request.headers.get("accept", ""):
        page = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>satlake map: not installed</title>"
            f"</head><body><h1>satlake map</h1><p id='assets-missing'>{message}</p></body></html>"
        )
        return HTMLResponse(page, status_code=503)
    return JSONResponse({"code": "MapAssetsMissing", "description": message}, status_code=503)


def _vendor_file(map_dir: Path, path: str) -> Path | None:
    """The file of vendor/ that ``path`` names, or None for anything else (no way out of vendor/)."""
    vendor = (map_dir / "vendor").resolve()
    target = (vendor / path).resolve()
    if not target.is_relative_to(vendor) or not target.is_file() or target.suffix not in VENDOR_MEDIA_TYPES:
        return None
    return target


def map_router(map_dir: Path = MAP_DIR) -> APIRouter:
    """The routes of the map page: ``/map`` (the page), ``/map/app.js``, ``/map/app.css`` and
    ``/map/vendor/{path}`` (the npm-installed libraries and basemap). When vendor/ is missing, the page and its
    files answer 503 saying to run infra/install_map_assets.sh, and the router logs it once when built."""
    router = APIRouter(include_in_schema=False)
    missing_at_start = missing_vendor_files(map_dir)
    if missing_at_start:
        log.warning("%s", assets_missing_message(missing_at_start))

    @router.get("/map", response_model=None)
    def map_page(request: Request) -> Response:
        missing = missing_vendor_files(map_dir)
        if missing:
            return _assets_missing_response(request, missing)
        return FileResponse(map_dir / "index.html", media_type="text/html", headers={"Cache-Control": PAGE_CACHE})

    @router.get("/map/{name}", response_model=None)
    def page_file(name: str) -> Response:
        if name not in PAGE_FILES:
            return JSONResponse({"code": "NotFound", "description": f"the map page has no file {name!r}"}, 404)
        return FileResponse(map_dir / name, media_type=PAGE_FILES[name], headers={"Cache-Control": PAGE_CACHE})

    @router.get("/map/vendor/{path:path}", response_model=None)
    def vendor_file(request: Request, path: str) -> Response:
        missing = missing_vendor_files(map_dir)
        if missing:
            return _assets_missing_response(request, missing)
        target = _vendor_file(map_dir, path)
        if target is None:
            return JSONResponse({"code": "NotFound", "description": f"the map page has no library file {path!r}"}, 404)
        media_type = VENDOR_MEDIA_TYPES[target.suffix]
        return FileResponse(target, media_type=media_type, headers={"Cache-Control": VENDOR_CACHE})

    return router
