"""The catalog the STAC API reads: DuckDB over the Delta table ``catalog.items`` read through delta-rs.

There is no copy to keep in sync: every request checks the table's latest version (one small log read) and, when
a run has committed since, the next query sees the new rows. The statements come from the STAC layer as
conditions with ``?`` placeholders; this module adds only fixed column names.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import shapely
from deltalake import DeltaTable

from satlake.catalog.items import EARTH, union_longitudes
from satlake.resources.lakehouse import Lakehouse
from satlake.scenes.tables import CATALOG_ITEMS
from satlake.serving.catalog_index import IndexedCatalog, IndexQuery
from satlake.serving.cql2_sql import INTERSECTS_FUNCTION

# Sortable properties of an item and the catalog column holding each.
SORTABLE_COLUMNS: dict[str, str] = {
    "datetime": "datetime",
    "id": "id",
    "collection": "collection",
    "eo:cloud_cover": "cloud_cover",
    "platform": "platform",
    "gsd": "gsd",
}
DEFAULT_SORT: tuple[tuple[str, bool], ...] = (("datetime", True), ("id", False))  # (column, descending)
_VIEW = "catalog_items"
_CACHED_ITEMS = 256


@dataclass(frozen=True, slots=True)
class CatalogQuery:
    """One page of a search: SQL conditions (ANDed, ``?`` placeholders) with their parameters, order and window."""

    conditions: Sequence[str] = ()
    params: Sequence[Any] = ()
    sort: Sequence[tuple[str, bool]] = DEFAULT_SORT  # (catalog column, descending)
    limit: int = 10
    offset: int = 0
    index: IndexQuery | None = None  # the same page as an index search, when the index can answer it


@dataclass(frozen=True, slots=True)
class CollectionSummary:
    """What the catalog table knows of one collection: its item count, extents and target bodies."""

    collection_id: str
    item_count: int
    start: datetime
    end: datetime
    bbox: list[float] | None  # W, S, E, N on Earth; None when no item has an Earth footprint
    bodies: list[str] = field(default_factory=list)


class CatalogBackend(Protocol):
    """What the STAC client needs from a catalog engine."""

    def search(self, query: CatalogQuery) -> list[dict[str, Any]]:
        """STAC item dicts of one page, in order."""
        ...

    def collections(self) -> list[CollectionSummary]:
        """A summary of every collection with at least one item, by id."""
        ...

    def item(self, collection_id: str, item_id: str) -> dict[str, Any] | None:
        """One STAC item, or None when the collection holds no such item."""
        ...

    def warm(self) -> None:
        """Do now what the first requests would otherwise wait for (open the table, build indexes)."""
        ...


def _intersects(footprints: pa.Array, query: pa.Array) -> pa.Array:
    """Vectorised S_INTERSECTS for DuckDB: WKB footprints against WKB query geometries (nulls never match)."""
    geometries = shapely.from_wkb(footprints.to_numpy(zero_copy_only=False))
    targets = shapely.from_wkb(query.to_numpy(zero_copy_only=False))
    valid = ~shapely.is_missing(geometries)
    result = shapely.intersects(geometries, targets) & valid
    return pa.array(result, type=pa.bool_())


class DuckDbCatalog:
    """The catalog table of a lakehouse (local or object store) queried by an embedded DuckDB, and by the
    table's in-memory search index for the searches it answers (``use_index``)."""

    def __init__(self, lakehouse: Lakehouse, use_index: bool = True) -> None:
        self.lakehouse = lakehouse
        self._index = IndexedCatalog(lakehouse) if use_index else None
        self._lock = threading.Lock()
        self._table: DeltaTable | None = None
        self._registered_version: int | None = None
        # Per table version: the collection summaries (an aggregate over every row) and the items fetched one by
        # one (the tiles of a map view ask for the same item again and again).
        self._summaries: list[CollectionSummary] | None = None
        self._items: OrderedDict[tuple[str, str], dict[str, Any] | None] = OrderedDict()
        self._con = duckdb.connect()
        self._con.create_function(
            INTERSECTS_FUNCTION,
            _intersects,
            [duckdb.sqltypes.BLOB, duckdb.sqltypes.BLOB],
            duckdb.sqltypes.BOOLEAN,
            type="arrow",
            null_handling="special",
            side_effects=False,
        )

    def _refresh(self) -> bool:
        """Point the view at the table's latest version; False when nothing was ever catalogued."""
        if self._table is None:
            self._table = self.lakehouse.open(CATALOG_ITEMS)
            if self._table is None:
                return False
        else:
            self._table.update_incremental()
        version = self._table.version()
        if version != self._registered_version:
            self._con.register(_VIEW, self._table.to_pyarrow_dataset())
            self._registered_version = version
            self._summaries = None
            self._items.clear()
        return True

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]] | None:
        with self._lock:
            if not self._refresh():
                return None
            return self._con.execute(sql, list(params)).fetchall()

    def search(self, query: CatalogQuery) -> list[dict[str, Any]]:
        if query.index is not None and self._index is not None:
            found = self._index.search(query.index)
            if found is not None:
                return found
        where = f" WHERE {' AND '.join(query.conditions)}" if query.conditions else ""
        allowed = set(SORTABLE_COLUMNS.values())
        order_terms = []
        for column, descending in [*query.sort, ("id", False)]:
            if column not in allowed:
                raise ValueError(f"column {column!r} is not sortable")
            order_terms.append(f'"{column}" {"DESC" if descending else "ASC"} NULLS LAST')
        sql = f'SELECT "item_json" FROM {_VIEW}{where} ORDER BY {", ".join(order_terms)} LIMIT ? OFFSET ?'
        rows = self._rows(sql, [*query.params, int(query.limit), int(query.offset)])
        return [json.loads(row[0]) for row in rows or []]

    def collections(self) -> list[CollectionSummary]:
        sql = f"""
            SELECT "collection", "crosses_antimeridian", count(*), min("datetime"), max("datetime"),
                   min("bbox_xmin"), min("bbox_ymin"), max("bbox_xmax"), max("bbox_ymax"), list(DISTINCT "body")
            FROM {_VIEW} GROUP BY "collection", "crosses_antimeridian" ORDER BY "collection"
        """
        with self._lock:
            if not self._refresh():
                return []
            if self._summaries is None:
                grouped: dict[str, list[tuple[Any, ...]]] = {}
                for row in self._con.execute(sql).fetchall():
                    grouped.setdefault(row[0], []).append(row)
                self._summaries = [_summary(collection_id, groups) for collection_id, groups in grouped.items()]
            return list(self._summaries)

    def warm(self) -> None:
        self.collections()
        if self._index is not None:
            self._index.warm()

    def item(self, collection_id: str, item_id: str) -> dict[str, Any] | None:
        key = (collection_id, item_id)
        sql = f'SELECT "item_json" FROM {_VIEW} WHERE "collection" = ? AND "id" = ? LIMIT 1'
        with self._lock:
            if not self._refresh():
                return None
            if key not in self._items:
                rows = self._con.execute(sql, [collection_id, item_id]).fetchall()
                self._items[key] = json.loads(rows[0][0]) if rows else None
                while len(self._items) > _CACHED_ITEMS:
                    self._items.popitem(last=False)
            self._items.move_to_end(key)
            found = self._items[key]
        return copy.deepcopy(found) if found is not None else None


def _summary(collection_id: str, groups: list[tuple[Any, ...]]) -> CollectionSummary:
    longitudes: list[tuple[float, float]] = []
    souths: list[float] = []
    norths: list[float] = []
    for _, _, _, _, _, west, south, east, north in (g[:9] for g in groups):
        if west is None:
            continue
        # Crossers span [xmin, 180] and [-180, xmax], so their union is the crossing interval (min xmin, max xmax).
        longitudes.append((west, east))
        souths.append(south)
        norths.append(north)
    bbox = None
    if longitudes:
        west, east = union_longitudes(longitudes)
        bbox = [west, min(souths), east, max(norths)]
    bodies = sorted({body for g in groups for body in g[9]})
    return CollectionSummary(
        collection_id=collection_id,
        item_count=sum(g[2] for g in groups),
        start=min(g[3] for g in groups),
        end=max(g[4] for g in groups),
        bbox=bbox,
        bodies=bodies or [EARTH],
    )
