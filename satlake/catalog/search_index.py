"""Embedded catalog search in milliseconds at a million items: an in-memory index over one Delta catalog table,
kept in step with the table's versions.

Searching the Parquet files directly, even with tight row-group statistics, costs a query plan over every file and
the decoding of whole row groups on every call (tens of milliseconds at a million items, on two busy cores). Here
the narrow search columns of every row stay in memory as arrays, sorted so that the items that can meet a latitude
band form a few contiguous slices; a search evaluates the conditions of :func:`satlake.catalog.search.search_sql`
on those slices only, vectorised, and reads the full STAC item (``item_json``) only for the rows it returns, from
the row groups that hold them. The tests hold the two implementations of the conditions to the same answers.
"""

from __future__ import annotations

import bisect
import os
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from deltalake import DeltaTable

from satlake.catalog.search import SEARCH_COLUMNS, SearchQuery
from satlake.catalog.table import CATALOG_TABLE_SCHEMA

ITEM_COLUMN = "item_json"
# What the index holds per row: every returned column except the item itself, the flag the search needs, and where
# the row lives (data file, row number in it).
INDEX_COLUMNS: tuple[str, ...] = (*(c for c in SEARCH_COLUMNS if c != ITEM_COLUMN), "crosses_antimeridian")
FILE_COLUMN, ROW_COLUMN = "_file", "_row"
# Latitude extents (degrees) that split items into classes. In a class whose tallest item is h degrees, an item
# meeting [south, north] has bbox_ymin in [south - h, north]: one slice of rows sorted by bbox_ymin. Polar caps and
# other tall items get classes of their own so that they do not widen the slice of ordinary footprints.
HEIGHT_CLASS_LIMITS: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0)
_SLICE_MARGIN_DEG = 1e-6  # rounding of ymax - ymin must never cut a touching item out of its slice
_COARSE_MTIME_NS = 2_000_000_000
_OPEN_FILES = 64  # Parquet files kept open (footers parsed) for reading items
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.to_numpy(), dtype=np.float64)  # nulls become NaN: every comparison with them is False


def _timestamp_micros(column: pa.ChunkedArray) -> np.ndarray:
    # Whatever unit a writer chose, the conditions compare microseconds (as SearchQuery's datetimes carry).
    return pc.cast(column, pa.timestamp("us", tz="UTC")).to_numpy().view(np.int64)


@dataclass(frozen=True)
class CatalogIndex:
    """The index rows (``INDEX_COLUMNS`` + file + row), sorted by (height class, bbox_ymin), rows without a bbox
    last, with the columns the conditions read as NumPy arrays in the same order."""

    rows: pa.Table
    classes: tuple[tuple[int, int, float], ...]  # (first row, end row, tallest item) of each height class
    ymin: np.ndarray
    ymax: np.ndarray
    xmin: np.ndarray
    xmax: np.ndarray
    crosses: np.ndarray  # 1 across the antimeridian, 0 not, -1 unknown (as SQL, unknown matches neither branch)
    micros: np.ndarray  # datetime, microseconds since 1970
    cloud: np.ndarray
    collection_codes: np.ndarray  # -1 for null
    collection_names: dict[str, int]

    @classmethod
    def build(cls, rows: pa.Table) -> CatalogIndex:
        ymin, ymax = _floats(rows.column("bbox_ymin")), _floats(rows.column("bbox_ymax"))
        height = ymax - ymin
        has_bbox = ~np.isnan(ymin)
        no_bbox_class = len(HEIGHT_CLASS_LIMITS) + 1
        klass = np.where(has_bbox, np.searchsorted(HEIGHT_CLASS_LIMITS, np.nan_to_num(height)), no_bbox_class)
        order = np.lexsort((np.where(has_bbox, ymin, np.inf), klass))
        rows, klass, height = rows.take(pa.array(order)), klass[order], height[order]
        classes = []
        for value in range(no_bbox_class):
            start, end = int(np.searchsorted(klass, value, "left")), int(np.searchsorted(klass, value, "right"))
            if end > start:
                known = height[start:end][~np.isnan(height[start:end])]
                classes.append((start, end, float(known.max()) if known.size else 0.0))
        crosses = rows.column("crosses_antimeridian")
        collections = pc.dictionary_encode(rows.column("collection")).combine_chunks()
        return cls(
            rows=rows,
            classes=tuple(classes),
            ymin=ymin[order],
            ymax=ymax[order],
            xmin=_floats(rows.column("bbox_xmin")),
            xmax=_floats(rows.column("bbox_xmax")),
            crosses=np.where(pc.is_null(crosses).to_numpy(), -1, pc.fill_null(crosses, False).to_numpy()).astype(
                np.int8
            ),
            micros=_timestamp_micros(rows.column("datetime")),
            cloud=_floats(rows.column("cloud_cover")),
            collection_codes=pc.fill_null(collections.indices, -1).to_numpy().astype(np.int32),
            collection_names={name: code for code, name in enumerate(collections.dictionary.to_pylist())},
        )

    @property
    def nbytes(self) -> int:
        arrays = (self.ymin, self.ymax, self.xmin, self.xmax, self.crosses, self.micros, self.cloud)
        return self.rows.nbytes + sum(array.nbytes for array in arrays) + self.collection_codes.nbytes

    def candidate_ranges(self, query: SearchQuery) -> list[tuple[int, int]]:
        """Row ranges holding every match (a superset): one slice per height class for a bbox, else all rows."""
        if query.bbox is None:
            return [(0, self.rows.num_rows)]
        _, south, _, north = query.bbox
        ranges = []
        for start, end, tallest in self.classes:
            ymin = self.ymin[start:end]
            low = start + int(np.searchsorted(ymin, south - tallest - _SLICE_MARGIN_DEG, "left"))
            high = start + int(np.searchsorted(ymin, north + _SLICE_MARGIN_DEG, "right"))
            if high > low:
                ranges.append((low, high))
        return ranges

    def matches(self, query: SearchQuery, low: int, high: int) -> np.ndarray:
        """Positions in [low, high) meeting every condition of ``search_sql`` (NaN/unknown never meets one)."""
        window = slice(low, high)
        keep = np.ones(high - low, dtype=bool)
        if query.bbox is not None:
            west, south, east, north = query.bbox
            keep &= (self.ymin[window] <= north) & (self.ymax[window] >= south)
            keep &= self._longitudes_meet(window, west, east)
        if query.datetime_range is not None:
            start, end = query.datetime_range
            if start is not None:
                keep &= self.micros[window] >= _micros(start)
            if end is not None:
                keep &= self.micros[window] <= _micros(end)
        if query.cloud_cover_max is not None:
            keep &= self.cloud[window] <= float(query.cloud_cover_max)
        if query.collections is not None:
            wanted = [self.collection_names[name] for name in query.collections if name in self.collection_names]
            keep &= np.isin(self.collection_codes[window], wanted)
        return low + np.flatnonzero(keep)

    def _longitudes_meet(self, window: slice, west: float, east: float) -> np.ndarray:
        # The branches of search._longitude_branches, in the same order and with the same comparisons.
        xmin, xmax, crosses = self.xmin[window], self.xmax[window], self.crosses[window]
        ordinary, crossing = crosses == 0, crosses == 1
        if west <= east:
            return (ordinary & (xmin <= east) & (xmax >= west)) | (crossing & ((xmin <= east) | (xmax >= west)))
        return (ordinary & (xmax >= west)) | (ordinary & (xmax < west) & (xmin <= east)) | crossing

    def search(self, query: SearchQuery) -> np.ndarray:
        """Positions of the first ``query.limit`` matches, newest first, then by id (the order of search_sql)."""
        parts = [self.matches(query, low, high) for low, high in self.candidate_ranges(query)]
        found = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
        if found.size > query.limit:  # keep the newest, and every row tied with the last of them
            newest = self.micros[found]
            cutoff = np.partition(newest, newest.size - query.limit)[newest.size - query.limit]
            found = found[newest >= cutoff]
        ids = np.array(self.rows.column("id").take(pa.array(found)).to_pylist(), dtype=object)
        order = np.lexsort((ids, -self.micros[found])) if found.size else found
        return found[order][: query.limit]


class DeltaCatalogSearch:
    """Embedded search over one Delta catalog table, kept open between searches (see the module docstring).

    Opening reads the index columns of every row (about 170 bytes of memory per item). Before each search the
    Delta log is checked for new commits (one ``stat`` of ``_delta_log`` for a local table; a log listing on an
    object store) and the index follows: rows of removed files are dropped, rows of added files read, nothing else
    re-read. One search at a time: share an instance between threads only behind a lock.
    """

    def __init__(self, table_uri: str, storage_options: dict[str, str] | None = None) -> None:
        self._table = DeltaTable(table_uri, storage_options=storage_options)
        self._log_dir = _local_log_dir(table_uri)
        self._log_stamp: int | None = None
        self._version: int | None = None
        self._fragments: list[ds.ParquetFileFragment] = []
        self._open_files: OrderedDict[int, tuple[pq.ParquetFile, list[int]]] = OrderedDict()
        self._index = CatalogIndex.build(_empty_index_rows())
        self._follow_table()

    @property
    def version(self) -> int | None:
        """The Delta table version the index holds."""
        return self._version

    @property
    def indexed_rows(self) -> int:
        return self._index.rows.num_rows

    @property
    def index_bytes(self) -> int:
        """Memory the index holds: its rows and the arrays the conditions read."""
        return self._index.nbytes

    def search(self, query: SearchQuery) -> list[dict[str, Any]]:
        """Items matching ``query`` in the table's latest version, newest first (the answer of ``search_sql``)."""
        self.refresh()
        found = self._index.rows.take(pa.array(self._index.search(query))).to_pylist()
        items = self._read_items([(row[FILE_COLUMN], row[ROW_COLUMN], row["id"]) for row in found])
        return [
            {**{column: row[column] for column in SEARCH_COLUMNS if column != ITEM_COLUMN}, ITEM_COLUMN: item}
            for row, item in zip(found, items, strict=True)
        ]

    def refresh(self) -> bool:
        """Follow the table to its latest version; True when it had changed."""
        stamp = self._log_stamp_if_changed()
        if self._log_dir is not None and stamp is None:
            return False
        self._table.update_incremental()
        changed = self._table.version() != self._version
        if changed:
            self._follow_table()
        self._log_stamp = stamp  # only once the index holds what the log said
        return changed

    def close(self) -> None:
        self._open_files.clear()

    def __enter__(self) -> DeltaCatalogSearch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _log_stamp_if_changed(self) -> int | None:
        """The mtime of a local ``_delta_log`` when it may hold a commit the index has not seen, else None."""
        if self._log_dir is None:
            return None
        stamp = os.stat(self._log_dir).st_mtime_ns
        # A commit adds a file to _delta_log, which moves the directory's mtime; on a file system with coarse
        # timestamps two commits within one tick look alike, so a recent mtime always counts as a change.
        recent = time.time_ns() - stamp < _COARSE_MTIME_NS
        return stamp if stamp != self._log_stamp or recent else None

    def _follow_table(self) -> None:
        """Point the index at the table's current files, reading only the files it has not indexed yet."""
        dataset = self._table.to_pyarrow_dataset()
        fragments = list(dataset.get_fragments())
        new_ids = {fragment.path: number for number, fragment in enumerate(fragments)}
        old_paths = [fragment.path for fragment in self._fragments]
        kept = self._index.rows
        if old_paths:
            old_to_new = np.array([new_ids.get(path, -1) for path in old_paths], dtype=np.int32)
            remapped = pa.array(old_to_new[kept.column(FILE_COLUMN).to_numpy()])
            kept = kept.set_column(kept.schema.get_field_index(FILE_COLUMN), FILE_COLUMN, remapped)
            kept = kept.filter(pc.greater_equal(kept.column(FILE_COLUMN), 0))
        indexed = set(old_paths)
        added = [
            _index_rows(fragment, new_ids[fragment.path], dataset.schema)
            for fragment in fragments
            if fragment.path not in indexed
        ]
        parts = [part for part in (kept, *added) if part.num_rows]
        rows = pa.concat_tables(parts, promote_options="permissive").combine_chunks() if parts else kept
        self._index = CatalogIndex.build(rows)
        self._fragments = fragments
        self._open_files.clear()
        self._version = self._table.version()

    def _parquet_file(self, file: int) -> tuple[pq.ParquetFile, list[int]]:
        """Data file ``file``, open with its footer parsed, and the first row of each row group; the least
        recently used files are closed."""
        opened = self._open_files.get(file)
        if opened is None:
            fragment = self._fragments[file]
            # Without pre-buffering a row group's chunks are read as they are decoded: one column of one group is
            # too little to gain from coalesced reads, and skipping the buffer saves 0.1-0.4 ms per group read.
            source = fragment.filesystem.open_input_file(fragment.path)
            parquet_file = pq.ParquetFile(source, pre_buffer=False)
            opened = (parquet_file, _row_group_starts(parquet_file))
            self._open_files[file] = opened
            if len(self._open_files) > _OPEN_FILES:
                self._open_files.popitem(last=False)
        self._open_files.move_to_end(file)
        return opened

    def _read_items(self, locations: list[tuple[int, int, str]]) -> list[str]:
        """``item_json`` of rows given as (file, row, id), decoding only the row groups that hold them."""
        wanted: dict[tuple[int, int], list[tuple[int, int, str]]] = defaultdict(list)
        for position, (file, row, item_id) in enumerate(locations):
            _, starts = self._parquet_file(file)
            group = bisect.bisect_right(starts, row) - 1
            wanted[(file, group)].append((position, row - starts[group], item_id))
        items = [""] * len(locations)
        for (file, group), rows in wanted.items():
            parquet_file, _ = self._parquet_file(file)
            # One row group is too little work to share out; threads only add hand-offs on a busy machine.
            chunk = parquet_file.read_row_group(group, columns=["id", ITEM_COLUMN], use_threads=False)
            taken = chunk.take(pa.array([offset for _, offset, _ in rows])).to_pydict()
            for (position, _, item_id), found_id, item in zip(rows, taken["id"], taken[ITEM_COLUMN], strict=True):
                if found_id != item_id:  # the index and the file disagree: never return another item's JSON
                    path = self._fragments[file].path
                    raise RuntimeError(f"catalog index out of step with {path}: row holds {found_id}, not {item_id}")
                items[position] = item
        return items


def _index_rows(fragment: ds.ParquetFileFragment, file_number: int, schema: pa.Schema) -> pa.Table:
    """The index columns of one data file in file order (partition values filled in), with file and row numbers."""
    rows = fragment.to_table(schema=schema, columns=list(INDEX_COLUMNS))
    numbers = {
        FILE_COLUMN: pa.array(np.full(rows.num_rows, file_number, dtype=np.int32)),
        ROW_COLUMN: pa.array(np.arange(rows.num_rows, dtype=np.int64)),
    }
    for name, values in numbers.items():
        rows = rows.append_column(name, values)
    return rows


def _row_group_starts(parquet_file: pq.ParquetFile) -> list[int]:
    metadata = parquet_file.metadata
    sizes = [metadata.row_group(group).num_rows for group in range(metadata.num_row_groups)]
    return [0, *np.cumsum(sizes)[:-1].tolist()] if sizes else []


def _empty_index_rows() -> pa.Table:
    fields = [CATALOG_TABLE_SCHEMA.field(name) for name in INDEX_COLUMNS]
    return pa.schema([*fields, pa.field(FILE_COLUMN, pa.int32()), pa.field(ROW_COLUMN, pa.int64())]).empty_table()


def _local_log_dir(table_uri: str) -> str | None:
    """The ``_delta_log`` directory of a table on the local file system, None for object stores."""
    path = table_uri.removeprefix("file://")
    return None if "://" in path else os.path.join(path, "_delta_log")
