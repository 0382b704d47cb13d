"""Scripted failures of the local STAC replay server: which answers go wrong, how, and in which order.

The server asks a ``FaultState`` (thread-safe, one per running server) what to do for each request, so tests can
make a downloader meet rate limits, broken JSON, looping pages, missing or truncated assets and foreign redirects.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Faults:
    """Failures the replay server plays; everything empty means a healthy service.

    Path prefixes are matched against the request path and against the path relative to the API root, so
    ``"/search"`` means the search endpoint of either flavour and ``"/assets/"`` every asset file.
    """

    # Per path prefix, statuses answered (in order, one per matching request) before the normal answer, e.g.
    # {"/search": [429, 429]}: the first two searches get 429, the third and later ones 200.
    status_sequence: dict[str, list[int]] = field(default_factory=dict)
    # Retry-After header sent with scripted 429/503 answers (seconds or an HTTP date); None sends none.
    retry_after: str | None = "1"
    # Path prefixes answered 200 with a JSON body cut in half (every time: a retry does not help).
    malformed_json_on: set[str] = field(default_factory=set)
    # The next link of page 2 repeats page 1's next link (token and body), so a client following it loops.
    loop_next: bool = False
    # Asset keys whose files answer 404 (the item still lists them).
    missing_assets: set[str] = field(default_factory=set)
    # Base URL of another host ("http://localhost:8123"): every asset GET/HEAD answers 302 to it, same path.
    redirect_assets_to: str | None = None
    # Asset keys whose GETs declare the full Content-Length, send half the bytes and close the connection.
    truncate_assets: set[str] = field(default_factory=set)
    # Item id -> asset keys left out of that item's JSON (a scene delivered without some bands).
    drop_bands: dict[str, set[str]] = field(default_factory=dict)


def path_matches(prefixes: set[str] | list[str] | dict[str, object], paths: tuple[str, ...]) -> str | None:
    """The first prefix that starts any of ``paths`` (longest prefixes first), else None."""
    for prefix in sorted(prefixes, key=len, reverse=True):
        if any(path.startswith(prefix) for path in paths):
            return prefix
    return None


class FaultState:
    """The faults of one running server; consumes ``status_sequence`` entries under a lock."""

    def __init__(self, faults: Faults | None) -> None:
        self.faults = faults or Faults()
        self._lock = threading.Lock()
        # Copies, so the caller's Faults stays as written and can be reused for another server.
        self._remaining = {prefix: list(statuses) for prefix, statuses in self.faults.status_sequence.items()}

    def scripted_status(self, paths: tuple[str, ...]) -> int | None:
        """The next scripted status for a request on ``paths``, consuming it; None when nothing is scripted."""
        with self._lock:
            prefix = path_matches({p for p, left in self._remaining.items() if left}, paths)
            if prefix is None:
                return None
            return self._remaining[prefix].pop(0)

    def malformed(self, paths: tuple[str, ...]) -> bool:
        return path_matches(self.faults.malformed_json_on, paths) is not None

    def dropped(self, item_id: str) -> set[str]:
        return set(self.faults.drop_bands.get(item_id, set()))
