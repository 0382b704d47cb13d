"""Reading back what the fetching assets recorded: the latest usable responses of a rover (per sol for photos)
and the errors of the latest attempt, from ``raw.mars_responses``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow.compute as pc

from satlake.mars.tables import MARS_MANIFESTS, MARS_RESPONSES
from satlake.resources.lakehouse import Lakehouse

EXCERPT_CHARS = 500


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response_id: str
    request_id: str | None
    sol: int | None
    page: int | None
    body: bytes
    fetched_at: datetime
    error: str | None

    @property
    def excerpt(self) -> str:
        return self.body[:EXCERPT_CHARS].decode("utf-8", errors="replace")


@dataclass
class Latest:
    """The pages of the latest fetch that had usable responses, and the failures of the latest attempt (when
    that attempt failed, bronze keeps the earlier good pages and rejects the failures with their reasons)."""

    usable: list[StoredResponse] = field(default_factory=list)
    errors: list[StoredResponse] = field(default_factory=list)


def _latest(responses: list[StoredResponse]) -> Latest:
    latest = Latest()
    if not responses:
        return latest
    newest = max(responses, key=lambda r: r.fetched_at)
    latest.errors = [r for r in responses if r.error and r.request_id == newest.request_id]
    good = [r for r in responses if not r.error]
    if good:
        fetch = max(good, key=lambda r: r.fetched_at).request_id
        by_page: dict[int | None, StoredResponse] = {}
        for response in sorted((r for r in good if r.request_id == fetch), key=lambda r: r.fetched_at):
            by_page[response.page] = response  # a page asked twice in one fetch: the later answer
        latest.usable = [by_page[page] for page in sorted(by_page, key=lambda p: p or 0)]
    return latest


def latest_by_sol(
    lakehouse: Lakehouse, rover: str, kind: str, sols: Sequence[int] | None = None
) -> dict[int | None, Latest]:
    """Per sol (None for manifests and waypoints), the latest fetch's usable responses and latest errors."""
    filters: list[tuple[str, str, object]] = [("rover", "=", rover), ("kind", "=", kind)]
    if sols is not None:
        filters.append(("sol", "in", [int(sol) for sol in sols]))
    table = lakehouse.read(
        MARS_RESPONSES,
        filters=filters,
        columns=["response_id", "request_id", "sol", "page", "body", "fetched_at", "error"],
    )
    grouped: dict[int | None, list[StoredResponse]] = {}
    for row in table.to_pylist() if table is not None else []:
        grouped.setdefault(row["sol"], []).append(
            StoredResponse(
                row["response_id"],
                row["request_id"],
                row["sol"],
                row["page"],
                row["body"] or b"",
                row["fetched_at"],
                row["error"],
            )
        )
    return {sol: _latest(responses) for sol, responses in grouped.items()}


def latest_responses(lakehouse: Lakehouse, rover: str, kind: str) -> Latest:
    """The latest usable response(s) and latest errors of a per-rover kind (manifest, waypoints)."""
    return latest_by_sol(lakehouse, rover, kind).get(None, Latest())


def manifest_max_sol(lakehouse: Lakehouse, rover: str) -> int | None:
    """The rover's max sol in its latest manifest (bronze.mars_manifests), None before any manifest."""
    table = lakehouse.read(MARS_MANIFESTS, filters=[("rover_name", "=", rover)], columns=["max_sol"])
    if table is None or not table.num_rows:
        return None
    value = pc.max(table["max_sol"]).as_py()
    return int(value) if value is not None else None
