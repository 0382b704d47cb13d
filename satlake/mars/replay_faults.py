"""What the Mars replay server does besides replaying: api.nasa.gov's hourly rate limit, the failures tests
script (error answers, truncated bodies, image redirects to another host, missing images) and the request log.

Kept apart from the HTTP handling so each piece is small; ``MarsReplayServer`` exposes these as its methods.
Every state change happens under a lock: the server answers from several threads.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

TRUNCATE_MODES = ("short_body", "cut_json")
LOG_SETTLE_S = 5.0  # longest wait for requests being answered before the request log is read
_T = TypeVar("_T")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server answered."""

    method: str
    path: str  # without the query
    query: str  # as received (the api_key parameter, when one was sent, shows as api_key=***)
    status: int
    bytes_sent: int
    key_sent: bool  # an API key arrived (X-Api-Key header or api_key parameter)

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


@dataclass(frozen=True)
class ScriptedAnswer:
    """An error answer ``fail_next`` scripted."""

    status: int
    retry_after: str | None
    body: bytes

    @classmethod
    def of(cls, status: int, retry_after: float | str | None, body: Any, default: bytes | None) -> ScriptedAnswer:
        """``body`` bytes/str as is, anything else as JSON; None: ``default``, else a gateway-style error body."""
        if body is None and default is not None:
            data = default
        elif body is None:
            reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
            message = f"{reason} (scripted by the replay server)"
            data = json.dumps({"error": {"code": f"HTTP_{status}", "message": message}}).encode()
        elif isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
        after = retry_after if isinstance(retry_after, str | None) else str(round(retry_after))
        return cls(status, after, data)


class RequestLog:
    """The requests a server answered. A client can hold a whole answer before the handler has logged it, so
    ``entries`` waits (briefly) for the requests being answered."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._entries: list[RecordedRequest] = []
        self._in_flight = 0

    def started(self) -> None:
        with self._lock:
            self._in_flight += 1

    def record(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._entries.append(entry)
            self._in_flight -= 1
            self._lock.notify_all()

    def entries(self) -> list[RecordedRequest]:
        with self._lock:
            self._lock.wait_for(lambda: self._in_flight == 0, timeout=LOG_SETTLE_S)
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class RateLimit:
    """A rolling-hour request counter like api.nasa.gov's: ``limit`` requests, then 429 until the hour ends."""

    def __init__(self, limit: int, window_s: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1:
            raise ValueError(f"hourly_limit must be at least 1, got {limit}")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._used = 0
        self._window_start: float | None = None

    def _roll(self) -> None:
        if self._window_start is not None and self._clock() - self._window_start >= self.window_s:
            self._used, self._window_start = 0, None

    def take(self) -> bool:
        """Count one request; False when the hour's requests are spent (the request is refused, not counted)."""
        with self._lock:
            self._roll()
            if self._used >= self.limit:
                return False
            if self._window_start is None:
                self._window_start = self._clock()
            self._used += 1
            return True

    @property
    def remaining(self) -> int:
        with self._lock:
            self._roll()
            return self.limit - self._used

    def reset_in_s(self) -> int:
        """Whole seconds until the window ends (what Retry-After says on a 429)."""
        with self._lock:
            if self._window_start is None:
                return 0
            return max(1, math.ceil(self.window_s - (self._clock() - self._window_start)))

    def spend(self, count: int | None = None) -> None:
        """Use up ``count`` requests (all when None), as another client of the same key would."""
        with self._lock:
            self._roll()
            if self._window_start is None:
                self._window_start = self._clock()
            self._used = min(self.limit, self._used + (self.limit if count is None else count))


class FaultScript:
    """The scripted failures of one server. Path prefixes match the request path or the path with its query
    (``/mars-photos/api/v1/rovers/curiosity/photos?sol=1001&page=2`` picks one page: the client sends sol first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[tuple[str, list[ScriptedAnswer]]] = []
        self._truncations: list[tuple[str, list[str]]] = []
        self.redirect_images_to: str | None = None
        self._missing_ids: set[int] = set()
        self._missing_parts: set[str] = set()

    @staticmethod
    def _matches(prefix: str, targets: tuple[str, ...]) -> bool:
        return any(target.startswith(prefix) for target in targets)

    def fail_next(self, prefix: str, answer: ScriptedAnswer, count: int) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        with self._lock:
            self._failures.append((prefix, [answer] * count))

    def truncate_next(self, prefix: str, count: int, mode: str) -> None:
        if mode not in TRUNCATE_MODES:
            raise ValueError(f"unknown truncation mode {mode!r}; use one of {TRUNCATE_MODES}")
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        with self._lock:
            self._truncations.append((prefix, [mode] * count))

    def next_failure(self, targets: tuple[str, ...]) -> ScriptedAnswer | None:
        """The scripted answer for this request (consumed), or None: scripts are played in the order given."""
        return self._pop(self._failures, targets)

    def next_truncation(self, targets: tuple[str, ...]) -> str | None:
        return self._pop(self._truncations, targets)

    def _pop(self, scripts: list[tuple[str, list[_T]]], targets: tuple[str, ...]) -> _T | None:
        with self._lock:
            for index, (prefix, left) in enumerate(scripts):
                if self._matches(prefix, targets):
                    item = left.pop(0)
                    if not left:
                        del scripts[index]
                    return item
            return None

    def set_missing(self, items: Iterable[int | str]) -> None:
        ids, parts = set(), set()
        for item in items:
            (ids if isinstance(item, int) else parts).add(item)
        with self._lock:
            self._missing_ids, self._missing_parts = ids, {str(part) for part in parts}

    def image_missing(self, path: str, photo_ids: Iterable[int]) -> bool:
        with self._lock:
            return bool(self._missing_ids.intersection(photo_ids)) or any(p in path for p in self._missing_parts)

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()
            self._truncations.clear()
            self.redirect_images_to = None
            self._missing_ids, self._missing_parts = set(), set()
