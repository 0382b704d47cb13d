"""The polite HTTP session every request to a remote service goes through: timeouts, retries with backoff that
honours ``Retry-After``, a per-run request budget, same-host redirects only, and counters of requests and bytes.

Acquisition (STAC searches through pystac-client, COG range reads) and the Mars source share it; each names the
setting that raises its budget (``budget_hint``), so an exhausted budget says what to change.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
USER_AGENT = "satlake/1 (+https://github.com/satlake)"


class HttpError(RuntimeError):
    """A request could not be completed; the message names the URL, what went wrong and what to do."""


class BudgetExceeded(HttpError):
    """The run has spent its request budget (or a request its byte budget)."""


class RedirectRefused(HttpError):
    """A server redirected to another host, which this session never follows."""


class TruncatedResponse(HttpError):
    """A response body ended before the length the server declared."""


class RetriesExhausted(HttpError):
    """Connection errors kept happening after every retry."""


class ByteBudgetExceeded(BudgetExceeded):
    """Downloading more would pass the byte budget of the acquisition request."""


class ByteBudget:
    """Bytes one acquisition request may download, shared by all its files. Callers check ``ensure`` before a
    request and ``charge`` what arrived, so a well-behaved server never takes the total past ``limit``."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"byte budget must be at least 1 byte, got {limit}")
        self.limit = limit
        self.used = 0

    @property
    def left(self) -> int:
        return self.limit - self.used

    def ensure(self, size: int, what: str) -> None:
        """Raise ByteBudgetExceeded when ``size`` more bytes would pass the limit."""
        if self.used + size > self.limit:
            raise ByteBudgetExceeded(
                f"byte budget of {self.limit} bytes for this acquisition request is spent ({self.used} used, "
                f"{size} more needed for {what}); raise SATLAKE_ACQUISITION_BYTE_BUDGET or use a smaller area"
            )

    def charge(self, size: int, what: str) -> None:
        """Count ``size`` downloaded bytes; raise ByteBudgetExceeded if a server sent more than was asked."""
        self.used += size
        if self.used > self.limit:
            raise ByteBudgetExceeded(
                f"byte budget of {self.limit} bytes for this acquisition request is spent: {what} sent more than "
                f"requested ({self.used} bytes used); raise SATLAKE_ACQUISITION_BYTE_BUDGET or use a smaller area"
            )


def _host(url: str) -> str:
    """scheme://host[:port], the unit redirects and ``allowed_hosts`` are checked against."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _hostname(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent/invalid."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _SessionForStac(requests.Session):
    """A ``requests.Session`` whose ``send`` goes through the polite session, for pystac-client's StacApiIO
    (which prepares requests on its ``session`` and calls ``session.send``)."""

    def __init__(self, polite: PoliteSession) -> None:
        super().__init__()
        self._polite = polite
        self.headers["User-Agent"] = USER_AGENT

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        return self._polite.send(request)


class PoliteSession:
    """A ``requests.Session`` wrapper that retries transient failures, keeps to a request budget, follows
    redirects only within a host, and counts requests and bytes received."""

    def __init__(
        self,
        timeout_s: float = 30.0,
        max_retries: int = 5,
        request_budget: int = 2000,
        allowed_hosts: set[str] | None = None,
        *,
        backoff_base_s: float = BACKOFF_BASE_S,
        backoff_cap_s: float = BACKOFF_CAP_S,
        sleep: Callable[[float], None] = time.sleep,
        budget_hint: str = "raise SATLAKE_ACQUISITION_REQUEST_BUDGET or narrow the area/time range",
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if max_retries < 0 or request_budget < 1:
            raise ValueError(f"max_retries must be >= 0 and request_budget >= 1 (got {max_retries}, {request_budget})")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.request_budget = request_budget
        self.allowed_hosts = {host.lower() for host in allowed_hosts} if allowed_hosts is not None else None
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._sleep = sleep
        self.budget_hint = budget_hint
        self.requests_made = 0
        self.bytes_received = 0
        self.retries = 0
        self.slept_s: list[float] = []
        # read_window fetches a window's tile rows from a few threads at once: the counters and the budget's
        # check-then-count must not lose updates or let two threads take the last request.
        self._counters = threading.Lock()
        self._session = requests.Session()
        # Retries are ours (with Retry-After and the budget); urllib3 must not retry behind our back.
        adapter = HTTPAdapter(max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = USER_AGENT

    @property
    def requests_left(self) -> int:
        return self.request_budget - self.requests_made

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> PoliteSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public request API ------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> requests.Response:
        """Send one logical request (retries and same-host redirects included) and return the final response.

        Non-retryable statuses (4xx other than 429) and retryable ones still failing after the last retry are
        returned as they are: the caller knows what a 404 means for it. Raises BudgetExceeded, RedirectRefused,
        TruncatedResponse or RetriesExhausted.
        """
        prepared = self._session.prepare_request(
            requests.Request(method.upper(), url, headers=dict(headers or {}), params=params, json=json)
        )
        return self.send(prepared)

    def get(self, url: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any) -> requests.Response:
        return self.request("GET", url, headers=headers, **kwargs)

    def send(self, prepared: requests.PreparedRequest) -> requests.Response:
        """Send a prepared request with this session's retry, budget and redirect policy."""
        original_url = str(prepared.url)
        current = prepared
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send_with_retries(current)
            if response.status_code not in REDIRECT_STATUSES or "Location" not in response.headers:
                return response
            current = self._redirected(current, response, original_url)
        raise HttpError(
            f"{original_url} redirected more than {MAX_REDIRECTS} times; the server's links are broken or loop, "
            "check the URL in a browser"
        )

    def requests_session(self) -> requests.Session:
        """A ``requests.Session`` look-alike that sends through this session (for libraries taking a Session)."""
        return _SessionForStac(self)

    # -- internals ---------------------------------------------------------------------------------------------

    def _check_host(self, url: str) -> None:
        if self.allowed_hosts is not None and _hostname(url) not in self.allowed_hosts:
            raise HttpError(
                f"refusing to request {url}: host {_hostname(url)!r} is not one of the allowed hosts "
                f"{sorted(self.allowed_hosts)}; add it to the source configuration if it is trusted"
            )

    def _redirected(
        self, request: requests.PreparedRequest, response: requests.Response, original_url: str
    ) -> requests.PreparedRequest:
        target = urljoin(str(request.url), response.headers["Location"])
        if _host(target) != _host(str(request.url)):
            raise RedirectRefused(
                f"{original_url} redirected from host {_host(str(request.url))} to another host {_host(target)}; "
                "satlake follows redirects only within one host. Use the final URL directly if you trust it"
            )
        redirected = request.copy()
        redirected.prepare_url(target, None)
        if response.status_code == 303 or (response.status_code in (301, 302) and request.method == "POST"):
            # As browsers do: 303 (and POST on 301/302) become a GET without body.
            redirected.method = "GET"
            redirected.body = None
            for name in ("Content-Length", "Content-Type"):
                redirected.headers.pop(name, None)
        return redirected

    def _spend_one(self, url: str) -> None:
        with self._counters:
            if self.requests_made >= self.request_budget:
                raise BudgetExceeded(
                    f"request budget of {self.request_budget} HTTP requests for this run is spent (next was {url}); "
                    f"{self.budget_hint}"
                )
            self.requests_made += 1

    def _backoff(self, attempt: int, response: requests.Response | None, url: str) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        exponential = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))
        retry_after = parse_retry_after(response.headers.get("Retry-After")) if response is not None else None
        if retry_after is None:
            return exponential
        if retry_after > self.backoff_cap_s:
            raise HttpError(
                f"{url} answered {response.status_code if response is not None else '?'} with Retry-After "
                f"{retry_after:.0f}s, longer than the {self.backoff_cap_s:.0f}s this run waits; try again later"
            )
        return retry_after

    def _send_with_retries(self, request: requests.PreparedRequest) -> requests.Response:
        url = str(request.url)
        self._check_host(url)
        attempt = 0
        while True:
            self._spend_one(url)
            try:
                # stream=False: requests reads the whole body here, so a body cut short raises inside this try.
                response = self._session.send(request, timeout=self.timeout_s, allow_redirects=False)
            except requests.exceptions.ChunkedEncodingError as error:
                failure: Exception = error
                response = None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
                failure = error
                response = None
            else:
                with self._counters:
                    self.bytes_received += len(response.content)
                if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
                    return response
                failure = HttpError(f"HTTP {response.status_code}")
            if attempt >= self.max_retries:
                break
            attempt += 1
            delay = self._backoff(attempt, response, url)
            with self._counters:
                self.retries += 1
                self.slept_s.append(delay)
            log.info("retrying %s %s in %.1fs (attempt %d): %s", request.method, url, delay, attempt, failure)
            self._sleep(delay)
        if isinstance(failure, requests.exceptions.ChunkedEncodingError):
            raise TruncatedResponse(
                f"{request.method} {url}: the response ended before the length the server declared "
                f"({failure}), {self.max_retries + 1} times; the server or the network cuts transfers, retry later"
            ) from failure
        raise RetriesExhausted(
            f"{request.method} {url} failed after {self.max_retries + 1} attempts: {failure}; "
            "check the network and the service's status page, then retry"
        ) from failure
