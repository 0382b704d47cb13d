"""A local HTTP server replaying recorded answers of NASA's Mars rover photo API and of MMGIS, with the photos'
images: the source of the Mars demo and of the client's (and the source's) tests, which never touch the network.

It answers like the live services (see ``tests/fixtures/mars/README.md`` for the recordings and their shapes):

- ``/mars-photos/api/v1/manifests/{rover}`` and ``/mars-photos/api/v1/rovers/{rover}/photos?sol=N&page=P`` as
  api.nasa.gov does: the API key in ``api_key`` or ``X-Api-Key`` (403 ``API_KEY_INVALID``/``API_KEY_MISSING`` when
  the server has a key and the request another or none), ``X-RateLimit-Limit``/``X-RateLimit-Remaining`` on
  every answer, counting down over a rolling hour, then 429 ``OVER_RATE_LIMIT`` with ``Retry-After``; a page
  with no recording is ``{"photos": []}`` (past the end), a rover the API does not know 400 ``Invalid Rover Name``.
- ``/mmgis-maps/{MISSION}/Layers/json/{MISSION}_waypoints.json`` as mars.nasa.gov's MMGIS does (no key).
- ``/images/<original host>/<original path>``: each photo's ``img_src`` is rewritten to point here, as a mirror
  would, and answered with a small JPEG generated from the path (deterministic), so photos are reachable.

Scripted failures (``fail_next``, ``truncate_next``, ``redirect_images_to``, ``missing_images``) and the request
log (``requests``) let tests check retries, paging and error handling against real HTTP.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from PIL import Image, ImageDraw

from satlake.mars.replay_faults import (
    TRUNCATE_MODES,
    FaultScript,
    RateLimit,
    RecordedRequest,
    RequestLog,
    ScriptedAnswer,
)
from satlake.mars.rovers import ROVERS

__all__ = ["TRUNCATE_MODES", "MarsReplayServer", "RecordedRequest", "render_photo"]

PHOTOS_PREFIX = "/mars-photos/api/v1"
MMGIS_PREFIX = "/mmgis-maps"
IMAGES_PREFIX = "/images"
API_JSON = "application/json; charset=utf-8"
_NOT_FOUND = b"<html><body><h1>404 Not Found</h1></body></html>"
_KEY_PARAM = re.compile(r"(?i)(api_key=)[^&]*")
_WAYPOINTS = re.compile(r"^/(?P<mission>[A-Za-z0-9_]+)/Layers/json/(?P<name>[A-Za-z0-9_]+)_waypoints\.json$")
_SOL_IN_PATH = re.compile(r"/(?:sol|msss)/(\d{5})/")
_GATEWAY = "https://api.nasa.gov:443"


def _gateway_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


_ERROR_BODIES = {  # used when the recordings have no errors/<name>.json
    "api_key_invalid": _gateway_error("API_KEY_INVALID", f"An invalid api_key was supplied. Get one at {_GATEWAY}"),
    "api_key_missing": _gateway_error("API_KEY_MISSING", f"No api_key was supplied. Get one at {_GATEWAY}"),
    "over_rate_limit": _gateway_error(
        "OVER_RATE_LIMIT",
        f"You have exceeded your rate limit. Try again later or contact us at {_GATEWAY}/contact/ for assistance",
    ),
    "invalid_rover": {"errors": "Invalid Rover Name"},
}


@functools.lru_cache(maxsize=1024)
def render_photo(path: str) -> bytes:
    """A small greyscale JPEG standing in for the photo at ``path``: size (64..256 px a side) and grey level from
    the path's hash, the hash and the sol written on it. The same path always gives the same bytes."""
    digest = hashlib.sha256(path.encode()).digest()
    width, height = 64 + digest[0] * 193 // 256, 64 + digest[1] * 193 // 256
    grey = 40 + digest[2] * 176 // 256
    image = Image.new("L", (width, height), grey)
    draw = ImageDraw.Draw(image)
    ink = 255 if grey < 128 else 0
    draw.rectangle((1, 1, width - 2, height - 2), outline=ink)
    draw.text((4, 4), digest.hex()[:8], fill=ink)
    sol = _SOL_IN_PATH.search(path)
    if sol:
        draw.text((4, 18), f"sol {int(sol.group(1))}", fill=ink)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64
    replay: MarsReplayServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client hanging up mid-answer is normal here (truncation tests)


class MarsReplayServer:
    """The photo API, MMGIS and the image host on one local port; a context manager (or ``start()``/``stop()``)."""

    def __init__(
        self,
        recordings: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        hourly_limit: int = 1000,
        send_rate_limit_reset: bool = False,
    ) -> None:
        self.recordings = Path(recordings)
        if not (self.recordings / "manifests").is_dir():
            raise FileNotFoundError(
                f"no recorded Mars responses at {self.recordings} (expected manifests/, photos/, waypoints/); "
                "point the replay server at tests/fixtures/mars"
            )
        self.host, self.port, self.api_key = host, port, api_key
        self.rate_limit = RateLimit(hourly_limit)
        self.send_rate_limit_reset = send_rate_limit_reset  # api.nasa.gov sends no X-RateLimit-Reset
        self.faults = FaultScript()
        self.manifests = {
            p.stem: json.loads(p.read_bytes()) for p in sorted((self.recordings / "manifests").glob("*.json"))
        }
        self.pages: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.image_ids: dict[str, list[int]] = {}  # /images/<host>/<path> -> ids of the photos showing it
        for path in sorted((self.recordings / "photos").glob("*/sol-*-page-*.json")):
            match = re.fullmatch(r"sol-(\d+)-page-(\d+)", path.stem)
            if match is None:
                continue
            document = json.loads(path.read_bytes())
            self.pages[(path.parent.name, int(match.group(1)), int(match.group(2)))] = document
            for photo in document.get("photos", []):
                if isinstance(photo.get("img_src"), str):
                    self.image_ids.setdefault(self.image_path(photo["img_src"]), []).append(photo.get("id"))
        self.waypoints = {p.name: p.read_bytes() for p in sorted((self.recordings / "waypoints").glob("*.json"))}
        self.errors = {name: json.dumps(body).encode() for name, body in _ERROR_BODIES.items()}
        self.errors.update({p.stem: p.read_bytes() for p in sorted((self.recordings / "errors").glob("*.json"))})
        self.log = RequestLog()
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> MarsReplayServer:
        if self._server is None:
            server = _HttpServer((self.host, self.port), _Handler)
            server.replay = self
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="mars-replay", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> MarsReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ------------------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Mars replay server is not running; use it as a context manager or call start()")
        return f"http://{self.host}:{self._server.server_address[1]}"

    @property
    def photos_url(self) -> str:
        """What ``SATLAKE_MARS_PHOTOS_URL`` is for the live API."""
        return self.base_url + PHOTOS_PREFIX

    @property
    def mmgis_url(self) -> str:
        """What ``SATLAKE_MMGIS_URL`` is for the live MMGIS."""
        return self.base_url + MMGIS_PREFIX

    @staticmethod
    def image_path(img_src: str) -> str:
        """The path this server serves a recorded ``img_src`` at: ``/images/<host>/<path>``."""
        parts = urlsplit(img_src)
        return f"{IMAGES_PREFIX}/{parts.netloc}{parts.path}"

    def image_url(self, img_src: str) -> str:
        return self.base_url + self.image_path(img_src)

    # -- faults ---------------------------------------------------------------------------------------------------
    def fail_next(
        self,
        path_prefix: str,
        status: int,
        count: int = 1,
        retry_after: float | str | None = None,
        body: bytes | str | Any = None,
    ) -> None:
        """Answer the next ``count`` requests matching ``path_prefix`` with ``status`` (before anything else).
        ``body``: bytes/str as is, anything else as JSON; by default api.nasa.gov's OVER_RATE_LIMIT body for a
        429 and an ``{"error": {"code", "message"}}`` body otherwise."""
        default = self.errors["over_rate_limit"] if status == 429 else None
        self.faults.fail_next(path_prefix, ScriptedAnswer.of(status, retry_after, body, default), count)

    def truncate_next(self, path_prefix: str, count: int = 1, mode: str = "short_body") -> None:
        """Cut the next ``count`` successful answers matching ``path_prefix``: ``short_body`` declares the full
        Content-Length, sends half and closes the connection; ``cut_json`` sends half the JSON with a correct
        length (a body that arrives whole but is not complete JSON)."""
        self.faults.truncate_next(path_prefix, count, mode)

    def redirect_images_to(self, other_base_url: str | None) -> None:
        """Answer image requests 302 to the same path on ``other_base_url`` (None: serve them again)."""
        self.faults.redirect_images_to = other_base_url.rstrip("/") if other_base_url else None

    def missing_images(self, items: Iterable[int | str]) -> None:
        """Answer 404 for the images of these photo ids (ints) or whose path contains these strings."""
        self.faults.set_missing(items)

    def spend_rate_limit(self, count: int | None = None) -> None:
        """Use up ``count`` (default: all) of this hour's API requests, as another client of the key would."""
        self.rate_limit.spend(count)

    @property
    def rate_limit_remaining(self) -> int:
        return self.rate_limit.remaining

    # -- request log ----------------------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered so far, in order (waits briefly for requests being answered)."""
        return self.log.entries()

    def requests_to(self, path_prefix: str) -> list[RecordedRequest]:
        """The requests whose path, or path and query (``...photos?sol=1001``), starts with ``path_prefix``."""
        return [r for r in self.requests if r.target.startswith(path_prefix)]

    def clear_requests(self) -> None:
        self.log.clear()

    # -- answers --------------------------------------------------------------------------------------------------
    def rate_headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.rate_limit.limit),
            "X-RateLimit-Remaining": str(self.rate_limit.remaining),
        }
        if self.send_rate_limit_reset:
            headers["X-RateLimit-Reset"] = str(self.rate_limit.reset_in_s() or int(self.rate_limit.window_s))
        return headers

    def api_answer(self, path: str, params: dict[str, str], key: str | None) -> tuple[int, bytes, dict[str, str]]:
        """An api.nasa.gov answer: key check, the hourly limit, then the route."""
        if self.api_key is not None and key != self.api_key:
            return 403, self.errors["api_key_missing" if not key else "api_key_invalid"], {"Content-Type": API_JSON}
        if not self.rate_limit.take():
            headers = {
                "Content-Type": API_JSON,
                "Retry-After": str(self.rate_limit.reset_in_s()),
                **self.rate_headers(),
            }
            return 429, self.errors["over_rate_limit"], headers
        status, body = self._api_route(path[len(PHOTOS_PREFIX) :], params)
        return status, body, {"Content-Type": API_JSON, **self.rate_headers()}

    def _api_route(self, path: str, params: dict[str, str]) -> tuple[int, bytes]:
        segments = [s for s in path.split("/") if s]
        if len(segments) == 2 and segments[0] == "manifests":
            rover = segments[1].lower()
            if rover not in ROVERS:
                return 400, self.errors["invalid_rover"]
            if rover not in self.manifests:
                return 404, _not_recorded(f"the manifest of {rover}", f"manifests/{rover}.json")
            return 200, _compact(self.manifests[rover])
        if len(segments) == 3 and segments[0] == "rovers" and segments[2] == "photos":
            rover = segments[1].lower()
            if rover not in ROVERS:
                return 400, self.errors["invalid_rover"]
            try:
                sol, page = int(params["sol"]), int(params.get("page") or 1)
            except (KeyError, ValueError):
                return 400, json.dumps({"errors": "this replay answers ?sol=N[&page=P] with whole numbers"}).encode()
            document = self.pages.get((rover, sol, page), {"photos": []})
            return 200, _compact(self._mirrored(document))
        return 404, json.dumps({"error": {"code": "NOT_FOUND", "message": f"No route matches {path}"}}).encode()

    def _mirrored(self, document: dict[str, Any]) -> dict[str, Any]:
        photos = [
            {**photo, "img_src": self.image_url(photo["img_src"])} if "img_src" in photo else photo
            for photo in document.get("photos", [])
        ]
        return {**document, "photos": photos}

    def mmgis_answer(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        match = _WAYPOINTS.match(path[len(MMGIS_PREFIX) :])
        if match and match["mission"] == match["name"] and f"{match['mission']}_waypoints.json" in self.waypoints:
            return 200, self.waypoints[f"{match['mission']}_waypoints.json"], {"Content-Type": "application/json"}
        return 404, _NOT_FOUND, {"Content-Type": "text/html"}

    def image_answer(self, path: str, target: str) -> tuple[int, bytes, dict[str, str]]:
        if self.faults.redirect_images_to:
            return 302, b"", {"Location": self.faults.redirect_images_to + target}
        ids = self.image_ids.get(path)
        if ids is None or self.faults.image_missing(path, ids):
            return 404, _NOT_FOUND, {"Content-Type": "text/html"}
        return 200, render_photo(path), {"Content-Type": "image/jpeg"}


def _compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _not_recorded(what: str, file: str) -> bytes:
    message = f"the replay server has no recording of {what}; add {file} to the recordings"
    return json.dumps({"error": {"code": "NOT_RECORDED", "message": message}}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the request log is MarsReplayServer.requests

    def do_GET(self) -> None:
        replay = self.server.replay
        parts = urlsplit(self.path)
        path, query = parts.path, parts.query
        params = {name: values[-1] for name, values in parse_qs(query).items()}
        key = params.pop("api_key", None) or self.headers.get("X-Api-Key")
        keyless = urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() != "api_key"])
        targets = (path, f"{path}?{keyless}" if keyless else path)
        status, sent = 500, 0
        replay.log.started()
        try:
            status, body, headers = self._answer(replay, path, params, key, targets)
            truncation = replay.faults.next_truncation(targets) if status == 200 else None
            sent = self._send(status, body, headers, truncation)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            replay.log.record(
                RecordedRequest("GET", path, _KEY_PARAM.sub(r"\1***", query), status, sent, key is not None)
            )

    def _answer(
        self, replay: MarsReplayServer, path: str, params: dict[str, str], key: str | None, targets: tuple[str, ...]
    ) -> tuple[int, bytes, dict[str, str]]:
        api = path.startswith(PHOTOS_PREFIX + "/")
        scripted = replay.faults.next_failure(targets)
        if scripted is not None:
            headers = {"Content-Type": API_JSON, **(replay.rate_headers() if api else {})}
            if scripted.retry_after is not None:
                headers["Retry-After"] = scripted.retry_after
            return scripted.status, scripted.body, headers
        if api:
            return replay.api_answer(path, params, key)
        if path.startswith(MMGIS_PREFIX + "/"):
            return replay.mmgis_answer(path)
        if path.startswith(IMAGES_PREFIX + "/"):
            return replay.image_answer(path, self.path)
        return 404, _NOT_FOUND, {"Content-Type": "text/html"}

    def _send(self, status: int, body: bytes, headers: dict[str, str], truncation: str | None) -> int:
        if truncation == "cut_json":
            body = body[: len(body) // 2]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if truncation == "short_body":
            self.send_header("Connection", "close")
            self.close_connection = True
            body = body[: len(body) // 2]
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        return len(body)
