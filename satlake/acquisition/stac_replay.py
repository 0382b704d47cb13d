"""A local STAC API that replays items the way Earth Search v1 or the Planetary Computer serve them, and serves
their assets (small COGs) with HTTP range requests: the source of satlake's demo and of the downloader's tests.

Shapes followed, from responses recorded against the live services (pystac-client's test cassettes,
github.com/stac-utils/pystac-client ``tests/cassettes``, recorded 2022-2025):

- Earth Search v1 (stac-server): landing page ``id: earth-search-aws`` with ``search`` links for GET and POST; a
  search answers ``context {limit, matched, returned}``, ``numberMatched``, ``numberReturned`` and a ``next`` link
  ``{"rel": "next", "title": "Next page of Items", "method": "POST", "merge": false, "body": {<request body>,
  "next": "<datetime>,<id>,<collection>"}}`` (``TestCLISearch.test_matched``, ``test_filter``); items carry asset
  keys ``blue, green, red, nir, scl, visual, thumbnail`` with ``eo:bands``, ``raster:bands``, ``proj:shape``,
  ``proj:transform`` and ``proj:epsg`` in the properties.
- Planetary Computer (stac-fastapi-pgstac): a POST search answers a ``next`` link ``{"method": "POST", "body":
  {<request body>, "token": "next:<collection>:<id>"}}`` (no ``merge``) and a ``previous`` link on later pages
  (``TestItemSearch.test_result_paging``); a GET search answers ``GET <api>/search?...&token=next:...``. Items
  carry ``B02, B03, B04, B08, SCL, visual`` with ``eo:bands`` and per-asset ``proj:*`` (``test_datetime_results``).
  Asset hrefs must be signed: ``GET /api/sas/v1/token/<collection>`` (or ``/token/<account>/<container>``, the
  path planetary-computer-sdk-for-python uses) answers ``{"msft:expiry", "token"}`` and a signed href is
  ``<href>?<token>`` (the SDK's ``SASToken.sign``). The server refuses unsigned asset reads with 403.

The replayed API of flavour ``earth-search`` lives at the server root, ``planetary-computer``'s at
``/api/stac/v1`` with its token service at ``/api/sas/v1``; asset files at ``/assets/<collection>/<item>/<file>``.
"""

from __future__ import annotations

import base64
import copy
import email.utils
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from satlake.acquisition.stac_replay_faults import Faults, FaultState
from satlake.acquisition.stac_replay_items import API_PREFIX, FLAVOURS, ReplayItem, replay_items_from_scenes
from satlake.acquisition.stac_replay_search import SearchRequestError, StacDocuments

__all__ = ["Faults", "RecordedRequest", "ReplayItem", "StacReplayServer", "replay_items_from_scenes"]

SAS_PREFIX = "/api/sas/v1"
LOG_SETTLE_S = 5.0  # longest wait for requests being answered before the request log is read
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server answered."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # as received, e.g. headers["Range"]
    status: int
    bytes_sent: int  # response body bytes actually written
    body: Any = None  # the decoded JSON body of a POST, else None


@dataclass(frozen=True)
class _Asset:
    collection: str
    item_id: str
    key: str
    file: Path


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # the default backlog of 5 drops bursts of connections (1 s SYN retry each)
    replay: StacReplayServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-answer (GDAL stops reading a range early) is normal; nothing to print.
        return


class StacReplayServer:
    """A STAC API on 127.0.0.1 replaying ``items``; a context manager (or ``start()``/``stop()``)."""

    def __init__(
        self,
        items: Sequence[ReplayItem],
        flavour: str = "earth-search",
        page_size: int = 2,
        faults: Faults | None = None,
        token_ttl_s: float = 2700.0,
    ) -> None:
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown replay flavour {flavour!r}; choose one of {FLAVOURS}")
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self.flavour = flavour
        self.page_size = page_size
        self.items = [copy.deepcopy(replay.item) for replay in items]
        self.faults = FaultState(faults)
        self.documents = StacDocuments(
            self.items, flavour, page_size, self.faults.faults.loop_next, lambda: self.url, self._render_item
        )
        self.token_ttl_s = token_ttl_s
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Condition()
        self._requests: list[RecordedRequest] = []
        # Requests being answered: a client can hold a whole response before the handler has logged it, so the
        # log waits for them (briefly) before it is read.
        self._in_flight = 0
        self._etags: dict[Path, str] = {}
        self._assets: dict[str, _Asset] = {}
        for replay in items:
            for key, path in replay.files.items():
                asset = replay.item["assets"].get(key)
                if asset is None:
                    raise ValueError(f"item {replay.item['id']}: file for asset {key!r} but no such asset in the item")
                href = urlsplit(asset["href"]).path
                self._assets[href] = _Asset(replay.item["collection"], replay.item["id"], key, Path(path))
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> StacReplayServer:
        if self._server is not None:
            return self
        server = _HttpServer(("127.0.0.1", 0), _Handler)
        server.replay = self
        self._server = server
        # A short poll interval so stop() returns promptly (shutdown waits for the serving loop to notice).
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="stac-replay", daemon=True
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

    def __enter__(self) -> StacReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ----------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the replay server is not running; use it as a context manager or call start()")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        """The STAC API root: the server root for earth-search, ``/api/stac/v1`` for planetary-computer."""
        return self.base_url + API_PREFIX[self.flavour]

    @property
    def sas_url(self) -> str:
        """The token service (planetary-computer flavour): ``GET <sas_url>/token/<collection>``."""
        return self.base_url + SAS_PREFIX

    def asset_href(self, item_id: str, asset_key: str) -> str:
        """The unsigned absolute href of an item's asset, as the item JSON carries it."""
        for item in self.items:
            if item["id"] == item_id and asset_key in item["assets"]:
                return self._absolute(item["assets"][asset_key]["href"])
        raise KeyError(f"no asset {asset_key!r} on item {item_id!r}")

    # -- request log --------------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            self._lock.wait_for(lambda: self._in_flight == 0, timeout=LOG_SETTLE_S)
            return list(self._requests)

    def bytes_sent(self, path_prefix: str = "") -> int:
        return sum(r.bytes_sent for r in self.requests if r.path.startswith(path_prefix))

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _started(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _record(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(entry)
            self._in_flight -= 1
            self._lock.notify_all()

    # -- rendering ----------------------------------------------------------------------------------------
    def _absolute(self, href: str) -> str:
        return self.base_url + href if href.startswith("/") else href

    def _render_item(self, item: dict[str, Any]) -> dict[str, Any]:
        rendered = copy.deepcopy(item)
        for key in self.faults.dropped(item["id"]):
            rendered["assets"].pop(key, None)
        for link in rendered.get("links", []):
            link["href"] = self._absolute(link["href"])
        for asset in rendered["assets"].values():
            asset["href"] = self._absolute(asset["href"])
        return rendered

    # -- signing ------------------------------------------------------------------------------------------
    def _signature(self, container: str, expiry: str) -> str:
        digest = hmac.new(self._secret, f"{container}\n{expiry}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def token_for(self, container: str) -> dict[str, str]:
        start = datetime.now(UTC).replace(microsecond=0)
        expiry = (start + timedelta(seconds=self.token_ttl_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
        token = (
            f"st={start:%Y-%m-%dT%H:%M:%SZ}&se={expiry}&sp=rl&sv=2024-05-04&sr=c"
            f"&skoid=satlake-replay&sig={self._signature(container, expiry)}"
        )
        return {"msft:expiry": expiry, "token": token}

    def signature_problem(self, container: str, query: str) -> str | None:
        """Why ``query`` does not authorize reading ``container`` (None when it does)."""
        fields = {k: v[0] for k, v in parse_qs(query).items()}
        if "sig" not in fields or "se" not in fields:
            return "the href is not signed; append the token from the SAS token endpoint as its query string"
        expected = self._signature(container, fields["se"])
        if not hmac.compare_digest(expected, fields["sig"]):
            return f"the signature does not match container {container!r}; get a token for this collection"
        expiry = datetime.strptime(fields["se"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        if expiry <= datetime.now(UTC):
            return f"the token expired at {fields['se']}; get a new one"
        return None

    def etag(self, path: Path) -> str:
        with self._lock:
            if path not in self._etags:
                self._etags[path] = '"' + hashlib.sha256(path.read_bytes()).hexdigest()[:32] + '"'
            return self._etags[path]


def _json(status: int, payload: Any, content_type: str = "application/json") -> _Response:
    return _Response(status, json.dumps(payload).encode(), {"Content-Type": content_type})


def _error(status: int, code: str, description: str) -> _Response:
    return _json(status, {"code": code, "description": description})


def _xml_error(status: int, code: str, message: str) -> _Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return _Response(status, body.encode(), {"Content-Type": "application/xml"})


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(first, last) of a single ``bytes=`` range; None to serve everything; "unsatisfiable" for a 416."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None  # like S3: multiple ranges or another unit get the whole object
    first_text, _, last_text = spec.strip().partition("-")
    try:
        if first_text == "":
            suffix = int(last_text)
            return (max(0, size - suffix), size - 1) if suffix > 0 and size > 0 else "unsatisfiable"
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first >= size or last < first:
        return "unsatisfiable"
    return first, min(last, size - 1)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as GDAL and requests use it against the live services
    disable_nagle_algorithm = True  # headers and body go out in separate writes; no 40 ms delayed-ACK stall
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the request log is StacReplayServer.requests

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        replay = self.server.replay
        parts = urlsplit(self.path)
        path, query = parts.path, parts.query
        body: Any = None
        if method == "POST":
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = raw
        prefix = API_PREFIX[replay.flavour]
        api_path = path[len(prefix) :] or "/" if prefix and path.startswith(prefix) else path
        paths = (path, api_path)
        status, sent = 500, 0
        replay._started()  # logged in the finally below, whatever happens while answering
        try:
            scripted = replay.faults.scripted_status(paths)
            if scripted is not None:
                response = _error(scripted, "ScriptedFault", f"scripted answer {scripted} for {path}")
                if scripted in (429, 503) and replay.faults.faults.retry_after is not None:
                    response.headers["Retry-After"] = replay.faults.faults.retry_after
                status, sent = self._send(response, method)
            elif path in replay._assets:
                status, sent = self._asset(replay, replay._assets[path], method, query)
            else:
                response = self._route(replay, method, path, api_path, query, body)
                if response.status == 200 and replay.faults.malformed(paths):
                    response.body = response.body[: len(response.body) // 2]  # valid headers, JSON cut in half
                status, sent = self._send(response, method)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            headers = {name: value for name, value in self.headers.items()}
            replay._record(RecordedRequest(method, path, query, headers, status, sent, body))

    def _route(
        self, replay: StacReplayServer, method: str, path: str, api_path: str, query: str, body: Any
    ) -> _Response:
        if replay.flavour == "planetary-computer" and path.startswith(SAS_PREFIX + "/token/"):
            segments = [s for s in path[len(SAS_PREFIX + "/token/") :].split("/") if s]
            if method != "GET" or len(segments) not in (1, 2):
                return _error(404, "NotFoundError", f"no token endpoint at {path}")
            return _json(200, replay.token_for(segments[-1]))  # the container is the collection here
        if API_PREFIX[replay.flavour] and api_path == path:
            return _error(404, "NotFoundError", f"{path} is not under the API root {replay.url}")
        segments = [s for s in api_path.split("/") if s]
        geojson = "application/geo+json" + ("; charset=utf-8" if replay.flavour == "earth-search" else "")
        if segments == [] and method == "GET":
            return _json(200, replay.documents.landing())
        if segments == ["conformance"] and method == "GET":
            return _json(200, {"conformsTo": replay.documents.landing()["conformsTo"]})
        if segments == ["search"] and method in ("GET", "POST"):
            if method == "POST" and not isinstance(body, dict):
                return _error(400, "BadRequest", "the search body is not a JSON object")
            params = body if method == "POST" else {k: v[-1] for k, v in parse_qs(query).items()}
            try:
                return _json(200, replay.documents.search(params, method), geojson)
            except SearchRequestError as error:
                return _error(400, "BadRequest", str(error))
        if segments[:1] == ["collections"] and method == "GET":
            if len(segments) == 1:
                ids = sorted({item["collection"] for item in replay.items})
                collections = [replay.documents.collection(c) for c in ids]
                return _json(200, {"collections": collections, "links": [{"rel": "root", "href": replay.url}]})
            collection = replay.documents.collection(segments[1])
            if collection is None:
                return _error(404, "NotFoundError", f"Collection {segments[1]} does not exist.")
            if len(segments) == 2:
                return _json(200, collection)
            if segments[2] == "items" and len(segments) == 3:
                return _json(
                    200,
                    replay.documents.search(
                        {**{k: v[-1] for k, v in parse_qs(query).items()}, "collections": segments[1]}, "GET"
                    ),
                    geojson,
                )
            if segments[2] == "items" and len(segments) in (4, 5):
                found = [i for i in replay.items if i["collection"] == segments[1] and i["id"] == segments[3]]
                if not found:
                    return _error(
                        404, "NotFoundError", f"Item {segments[3]} in Collection {segments[1]} does not exist."
                    )
                item = replay._render_item(found[0])
                if len(segments) == 4:
                    return _json(200, item, geojson)
                if segments[4] == "thumbnail" and "thumbnail" in item["assets"]:
                    return _Response(302, b"", {"Location": item["assets"]["thumbnail"]["href"]})
        return _error(404, "NotFoundError", f"{method} {path} is not a route of this STAC API")

    def _asset(self, replay: StacReplayServer, asset: _Asset, method: str, query: str) -> tuple[int, int]:
        faults = replay.faults.faults
        if replay.flavour == "planetary-computer":
            problem = replay.signature_problem(asset.collection, query)
            if problem is not None:
                return self._send(_xml_error(403, "AuthenticationFailed", problem), method)
        if faults.redirect_assets_to:
            location = faults.redirect_assets_to.rstrip("/") + self.path
            return self._send(_Response(302, b"", {"Location": location}), method)
        if asset.key in faults.missing_assets or not asset.file.is_file():
            code = "BlobNotFound" if replay.flavour == "planetary-computer" else "NoSuchKey"
            return self._send(_xml_error(404, code, f"The specified key does not exist: {asset.key}"), method)
        size = asset.file.stat().st_size
        headers = {
            "Content-Type": "image/jpeg" if asset.file.suffix == ".jpg" else "image/tiff",
            "Accept-Ranges": "bytes",
            "ETag": replay.etag(asset.file),
            "Last-Modified": email.utils.formatdate(asset.file.stat().st_mtime, usegmt=True),
        }
        wanted = _parse_range(self.headers["Range"], size) if self.headers.get("Range") else None
        if wanted == "unsatisfiable":
            headers["Content-Range"] = f"bytes */{size}"
            return self._send(_Response(416, b"", headers), method)
        first, last = wanted if isinstance(wanted, tuple) else (0, size - 1)
        status = 206 if isinstance(wanted, tuple) else 200
        if status == 206:
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        length = last - first + 1
        headers["Content-Length"] = str(length)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        truncate = method == "GET" and asset.key in faults.truncate_assets
        if truncate:
            self.close_connection = True
        self.end_headers()
        if method == "HEAD":
            return status, 0
        to_send = length // 2 if truncate else length
        sent = 0
        with asset.file.open("rb") as handle:
            handle.seek(first)
            while sent < to_send:
                chunk = handle.read(min(_CHUNK, to_send - sent))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    break
                sent += len(chunk)
        if truncate:
            self.wfile.flush()
        return status, sent

    def _send(self, response: _Response, method: str) -> tuple[int, int]:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if method != "HEAD" and response.body:
            self.wfile.write(response.body)
            return response.status, len(response.body)
        return response.status, 0
