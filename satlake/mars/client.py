"""The client of NASA's Mars rover photo API (api.nasa.gov) and of MMGIS's rover traverses (mars.nasa.gov): one
method per kind of request, each answering an ``ApiResponse`` that keeps the body exactly as received.

Why a response object rather than parsed rows: the source records every answer, usable or not, in
``raw.mars_responses`` and parses it later, so a failed request must not stop the run. HTTP errors, bodies that
are not complete JSON and transport failures (retries exhausted, truncated transfers, redirects to another host)
become an ``ApiResponse`` whose ``error`` says what went wrong; the caller records a reject and goes on. Only
``BudgetExceeded`` propagates: the run's request budget or the API's hourly limit is spent, so fetching stops.

Every request goes through ``PoliteSession`` (timeouts, retries honouring ``Retry-After``, the request budget,
same-host redirects). The API key travels in the ``X-Api-Key`` header, which api.nasa.gov (an api.data.gov
gateway) accepts as it does the ``api_key`` query parameter: it never appears in a URL, so no URL that is stored,
logged or put in an error message can leak it. The client also reads ``X-RateLimit-Remaining`` on every API
answer and refuses to send more API requests once it reaches 0, instead of collecting 429s.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests

from satlake.mars.rovers import ROVERS
from satlake.resources.http import BudgetExceeded, HttpError, PoliteSession

log = logging.getLogger(__name__)

PAGE_SIZE = 25  # photos per page of the photo API; a shorter page is the last one
API_KEY_HEADER = "X-Api-Key"
PUBLIC_KEY = "DEMO_KEY"  # api.nasa.gov's shared key for trying the API
HOURLY_LIMITS = "api.nasa.gov allows 1,000 requests an hour per key, 30 with DEMO_KEY"
MANIFEST, PHOTOS, WAYPOINTS, IMAGE = "manifest", "photos", "waypoints", "image"
_KEY_PARAM = re.compile(r"(?i)(api_key=)[^&\s'\"]*")
_TAG = re.compile(r"<[^>]*>")
_KEY_HINT = "set SATLAKE_NASA_API_KEY to a key from https://api.nasa.gov (DEMO_KEY allows 30 requests an hour)"
_HINTS = {
    "API_KEY_INVALID": _KEY_HINT,
    "API_KEY_MISSING": _KEY_HINT,
    "OVER_RATE_LIMIT": f"wait for the hourly limit to reset ({HOURLY_LIMITS})",
}


def mars_session(
    timeout_s: float = 30.0,
    max_retries: int = 3,
    request_budget: int = 25,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> PoliteSession:
    """The polite session of a Mars run: its budget message names the setting to raise and the API's limit."""
    return PoliteSession(
        timeout_s,
        max_retries,
        request_budget,
        sleep=sleep,
        budget_hint=f"raise SATLAKE_MARS_REQUEST_BUDGET ({HOURLY_LIMITS}) or fetch fewer sols",
    )


@dataclass(frozen=True)
class ApiResponse:
    """One answer (or failure to get one), as ``raw.mars_responses`` records it."""

    kind: str  # manifest | photos | waypoints | image
    rover: str  # lower case, the API's path segment
    sol: int | None
    page: int | None
    url: str  # without the API key
    status: int  # 0 when no HTTP answer arrived (transport failure)
    content_type: str | None
    body: bytes  # exactly as received
    fetched_at: datetime  # UTC
    error: str | None = None  # why the response is not usable; None when it is

    @property
    def ok(self) -> bool:
        return self.error is None

    def json(self) -> Any:
        """The decoded body; ValueError saying which response when it is not JSON."""
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"the {self.kind} response from {self.url} is not JSON: {error}") from None


def strip_api_key(url: str) -> str:
    """``url`` without any ``api_key`` query parameter."""
    parts = urlsplit(url)
    if "api_key" not in parts.query.lower():
        return url
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() != "api_key"])
    return urlunsplit(parts._replace(query=query))


def _base_url(url: str, setting: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{setting} must be an http(s) URL like https://api.nasa.gov/mars-photos/api/v1, got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"{setting} must not carry a query or fragment (the API key is a setting of its own): {url!r}")
    return url.strip().rstrip("/")


def _host(url: str) -> str:
    return urlsplit(url).netloc.rpartition("@")[2]


class MarsClient:
    """Requests to the photo API and MMGIS; see the module docstring for what failures become."""

    def __init__(self, photos_url: str, mmgis_url: str, api_key: str, session: PoliteSession) -> None:
        self.photos_url = _base_url(photos_url, "SATLAKE_MARS_PHOTOS_URL")
        self.mmgis_url = _base_url(mmgis_url, "SATLAKE_MMGIS_URL")
        if not api_key or not api_key.strip():
            raise ValueError("SATLAKE_NASA_API_KEY is empty; use DEMO_KEY (30 requests an hour) or your own key")
        self._api_key = api_key.strip()
        self.session = session
        self._lock = threading.Lock()
        self.rate_limit: int | None = None  # X-RateLimit-Limit of the last API answer
        self.rate_remaining: int | None = None  # X-RateLimit-Remaining of the last API answer
        self._spent_until: datetime | None = None  # set when an answer said 0 requests remain

    def __repr__(self) -> str:  # never the key
        return f"MarsClient(photos_url={self.photos_url!r}, mmgis_url={self.mmgis_url!r})"

    # -- requests ------------------------------------------------------------------------------------------------

    def manifest(self, rover: str) -> ApiResponse:
        """The rover's mission manifest: photos per sol, max_sol, status."""
        url = f"{self.photos_url}/manifests/{quote(rover.strip().lower(), safe='')}"
        return self._fetch(MANIFEST, url, rover=rover, api=True)

    def photos_page(self, rover: str, sol: int, page: int) -> ApiResponse:
        """One page (up to 25 photos) of the rover's photos of ``sol``; past the end the API answers no photos."""
        if sol < 0 or page < 1:
            raise ValueError(f"sol must be >= 0 and page >= 1, got sol {sol}, page {page}")
        query = urlencode({"sol": sol, "page": page})
        url = f"{self.photos_url}/rovers/{quote(rover.strip().lower(), safe='')}/photos?{query}"
        return self._fetch(PHOTOS, url, rover=rover, sol=sol, page=page, api=True)

    def photos_for_sol(self, rover: str, sol: int, max_pages: int = 200) -> list[ApiResponse]:
        """Pages 1, 2, ... of ``sol`` until one holds fewer than 25 photos, none, or is not usable (that last
        response is included, so the caller records it). Stops after ``max_pages`` pages with a warning."""
        if max_pages < 1:
            raise ValueError(f"max_pages must be at least 1, got {max_pages}")
        pages: list[ApiResponse] = []
        for page in range(1, max_pages + 1):
            response = self.photos_page(rover, sol, page)
            pages.append(response)
            if response.error is not None or len(response.json()["photos"]) < PAGE_SIZE:
                return pages
        log.warning("%s sol %d still had full pages after %d pages; the rest is not fetched", rover, sol, max_pages)
        return pages

    def waypoints(self, mission: str) -> ApiResponse:
        """MMGIS's traverse of a mission (``MSL``, ``M20``): a GeoJSON FeatureCollection of waypoints."""
        name = mission.strip().upper()
        if not re.fullmatch(r"[A-Z0-9_]+", name):
            raise ValueError(f"MMGIS mission names are letters and digits like MSL or M20, got {mission!r}")
        url = f"{self.mmgis_url}/{name}/Layers/json/{name}_waypoints.json"
        rover = next((r.name for r in ROVERS.values() if r.mmgis_mission == name), name.lower())
        return self._fetch(WAYPOINTS, url, rover=rover)

    def image(self, url: str, *, rover: str = "", sol: int | None = None) -> ApiResponse:
        """A photo's file (its ``img_src``); usable when the answer is a non-empty image."""
        return self._fetch(IMAGE, url, rover=rover, sol=sol)

    # -- internals -----------------------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        text = _KEY_PARAM.sub(r"\1***", text)
        if len(self._api_key) < 6 or self._api_key == PUBLIC_KEY:  # too short to find safely / public anyway
            return text
        return text.replace(self._api_key, "***")

    def _fetch(
        self,
        kind: str,
        url: str,
        *,
        rover: str,
        sol: int | None = None,
        page: int | None = None,
        api: bool = False,
    ) -> ApiResponse:
        shown = strip_api_key(url)
        rover = rover.strip().lower()
        if api:
            self._check_hourly_limit(shown)
        headers = {API_KEY_HEADER: self._api_key} if api else {}
        failure: str | None = None
        spent: BudgetExceeded | None = None
        response: requests.Response | None = None
        try:
            response = self.session.get(url, headers=headers)
        except BudgetExceeded as error:
            spent = BudgetExceeded(self._redact(str(error)))
        except HttpError as error:
            failure = self._redact(str(error))
        except requests.RequestException as error:
            failure = f"GET {shown} failed: {self._redact(str(error))}; check the URL and the network, then retry"
        if spent is not None:
            raise spent  # raised outside the except block: no chained exception holding the unredacted text
        fetched_at = datetime.now(UTC)
        if response is None:
            log.warning("%s %s: %s", kind, shown, failure)
            return ApiResponse(kind, rover, sol, page, shown, 0, None, b"", fetched_at, failure)
        if api:
            self._note_rate_limit(response.headers, fetched_at)
        error = self._problem(kind, rover, shown, response)
        if error is not None:
            log.warning("%s %s: %s", kind, shown, error)
        content_type = response.headers.get("Content-Type")
        return ApiResponse(
            kind, rover, sol, page, shown, response.status_code, content_type, response.content, fetched_at, error
        )

    def _problem(self, kind: str, rover: str, url: str, response: requests.Response) -> str | None:
        """Why ``response`` is not usable, or None."""
        host, status, body = _host(url), response.status_code, response.content
        if not 200 <= status < 300:
            return self._redact(_http_error(host, status, response.reason, body, rover, kind))
        if kind == IMAGE:
            content_type = response.headers.get("Content-Type", "")
            if not content_type.lower().startswith("image/"):
                return f"{host} answered {status} for {url} with {content_type or 'no content type'}, not an image"
            return None if body else f"{host} answered {status} for {url} with an empty image"
        try:
            document = json.loads(body)
        except UnicodeDecodeError as error:
            return f"the body is not text ({error}); {len(body)} bytes arrived from {host}, fetch it again"
        except json.JSONDecodeError as error:
            return (
                f"the body is not complete JSON ({error.msg.removesuffix(' at')} at char {error.pos}); "
                f"{len(body)} bytes arrived from {host}, fetch it again"
            )
        expected = {MANIFEST: "photo_manifest", PHOTOS: "photos", WAYPOINTS: "features"}[kind]
        if isinstance(document, dict) and isinstance(document.get(expected), dict | list):
            return None
        if isinstance(document, dict) and ("error" in document or "errors" in document):
            return self._redact(_http_error(host, status, response.reason, body, rover, kind))
        keys = sorted(document) if isinstance(document, dict) else type(document).__name__
        return f"{host} answered {status} with JSON that is not a {kind} document: no {expected!r} in {keys}"

    def _note_rate_limit(self, headers: Any, now: datetime) -> None:
        remaining = _int_header(headers.get("X-RateLimit-Remaining"))
        if remaining is None:
            return
        with self._lock:
            self.rate_remaining = remaining
            self.rate_limit = _int_header(headers.get("X-RateLimit-Limit")) or self.rate_limit
            self._spent_until = _reset_time(headers.get("X-RateLimit-Reset"), now) if remaining <= 0 else None

    def _check_hourly_limit(self, url: str) -> None:
        with self._lock:
            until = self._spent_until
            if until is None:
                return
            now = datetime.now(UTC)
            if now >= until:
                self._spent_until = None
                return
        limit = f" of {self.rate_limit} requests" if self.rate_limit else ""
        raise BudgetExceeded(
            f"{_host(self.photos_url)}'s hourly limit{limit} for this API key is spent (its last answer said "
            f"X-RateLimit-Remaining: 0), so {url} was not requested; run again after "
            f"{until:%Y-%m-%d %H:%M:%S} UTC ({_in(until - now)}), or set SATLAKE_NASA_API_KEY to your own key "
            f"({HOURLY_LIMITS})"
        )


def _int_header(value: str | None) -> int | None:
    try:
        return int(value.strip()) if value is not None else None
    except ValueError:
        return None


def _reset_time(value: str | None, now: datetime) -> datetime:
    """When an exhausted hourly limit resets: ``X-RateLimit-Reset`` as epoch seconds or seconds from now; an
    hour from now without it (api.nasa.gov sends none; its window is a rolling hour)."""
    try:
        number = float(value) if value is not None else None
    except ValueError:
        number = None
    if number is None or number < 0:
        return now + timedelta(hours=1)
    if number > 1e9:  # an epoch timestamp
        return datetime.fromtimestamp(number, UTC)
    return now + timedelta(seconds=number)


def _in(delta: timedelta) -> str:
    minutes = max(1, round(delta.total_seconds() / 60))
    return "in an hour" if minutes >= 59 else f"in {minutes} min"


def _http_error(host: str, status: int, reason: str | None, body: bytes, rover: str, kind: str) -> str:
    """A readable reason for an error answer, from the gateway's and the API's error bodies."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        code = str(document["error"].get("code") or "").strip()
        message = str(document["error"].get("message") or "").strip()
        text = f"{host} answered {status} {code}: {message}".replace(" : ", ": ").rstrip(": ")
        hint = _HINTS.get(code)
        return f"{text}; {hint}" if hint else text
    if isinstance(document, dict) and "errors" in document:
        errors = document["errors"]
        if isinstance(errors, str) and errors.strip().lower() == "invalid rover name":
            return (
                f"the API knows no rover {rover!r} ({host} answered {status}: {errors}); it serves "
                f"{', '.join(sorted(ROVERS))}"
            )
        return f"{host} answered {status}: {errors if isinstance(errors, str) else json.dumps(errors)}"
    text = " ".join(_TAG.sub(" ", body[:300].decode("utf-8", "replace")).split())  # an HTML error page: its text
    what = f" for the {kind}" if kind else ""
    return f"{host} answered {status} {reason or ''}{what}".rstrip() + (f": {text}" if text else "")
