"""The fast path of the STAC search: the searches ``satlake search`` also answers (a box, a time range, collections,
a cloud-cover ceiling; newest first) go to the in-memory index of the catalog table
(:class:`satlake.catalog.search_index.DeltaCatalogSearch`), which answers them in milliseconds at a million items
where a scan of the table takes a tenth of a second or more.

The index compares bounding boxes; the API promises footprints, so each page is cut to the items whose footprint
meets the query geometry, asking the index for more rows whenever the cut leaves the page short.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from typing import Any

import shapely
from shapely.geometry import shape

from satlake.catalog.search import MAX_LIMIT, SearchQuery
from satlake.catalog.search_index import DeltaCatalogSearch
from satlake.resources.lakehouse import Lakehouse
from satlake.scenes.tables import CATALOG_ITEMS

_GROWTH = 4  # each retry asks the index for this many times more rows


@dataclass(frozen=True, slots=True)
class IndexQuery:
    """A page of a search the index can answer: its conditions as a SearchQuery (whose limit is ignored), the exact
    footprint test, a strict cloud-cover bound, and the page window."""

    conditions: SearchQuery
    geometry_wkb: bytes | None
    cloud_cover_below: float | None
    limit: int
    offset: int


def _meets(item: dict[str, Any], geometry: shapely.Geometry | None, cloud_below: float | None) -> bool:
    if cloud_below is not None and not item["properties"].get("eo:cloud_cover", cloud_below) < cloud_below:
        return False
    if geometry is None or not item.get("geometry"):
        return True  # an item without a footprint was matched by its bbox
    return bool(shapely.intersects(shape(item["geometry"]), geometry))


class IndexedCatalog:
    """The catalog table's search index, opened on first use and followed to each new table version."""

    def __init__(self, lakehouse: Lakehouse) -> None:
        self.lakehouse = lakehouse
        self._lock = threading.Lock()
        self._search: DeltaCatalogSearch | None = None

    def _searcher(self) -> DeltaCatalogSearch | None:
        if self._search is None:
            if self.lakehouse.open(CATALOG_ITEMS) is None:
                return None
            self._search = DeltaCatalogSearch(
                self.lakehouse.uri(CATALOG_ITEMS), storage_options=self.lakehouse.storage_options or None
            )
        return self._search

    def warm(self) -> None:
        """Open the index now (reading the search columns of every row) rather than on the first search."""
        with self._lock:
            searcher = self._searcher()
            if searcher is not None:
                searcher.refresh()

    def search(self, query: IndexQuery) -> list[dict[str, Any]] | None:
        """STAC items of the page, newest first (then by id), footprints and strict bounds applied; None when the
        page lies beyond what the index returns for one search (the caller scans the table instead)."""
        geometry = shapely.from_wkb(query.geometry_wkb) if query.geometry_wkb is not None else None
        wanted = query.offset + query.limit
        if wanted > MAX_LIMIT:
            return None
        ask = wanted
        while True:
            with self._lock:
                searcher = self._searcher()
                if searcher is None:
                    return []
                rows = searcher.search(replace(query.conditions, limit=ask))
            items = [json.loads(row["item_json"]) for row in rows]
            kept = [item for item in items if _meets(item, geometry, query.cloud_cover_below)]
            if len(kept) >= wanted or len(rows) < ask:
                return kept[query.offset : wanted]
            if ask >= MAX_LIMIT:
                return None
            ask = min(ask * _GROWTH, MAX_LIMIT)
