"""Catalog search: parse user input (bbox, datetime range), build parameterised SQL for DuckDB or Trino.

User values only ever travel as bound parameters; the only text spliced into SQL is a validated table
identifier and an integer limit, so nothing a user types can change the statement.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from satlake.resources.trino import TrinoLake

Dialect = Literal["duckdb", "trino"]
DIALECTS: tuple[str, ...] = ("duckdb", "trino")

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
SEARCH_COLUMNS: tuple[str, ...] = (
    "id",
    "collection",
    "datetime",
    "platform",
    "cloud_cover",
    "bbox_xmin",
    "bbox_ymin",
    "bbox_xmax",
    "bbox_ymax",
    "body",
    "item_json",
)

_MAX_INPUT_CHARS = 200
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_RFC3339_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_RFC3339_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_COLLECTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What to look for; every field is optional except the row limit."""

    bbox: tuple[float, float, float, float] | None = None  # W, S, E, N; W > E crosses the antimeridian
    datetime_range: tuple[datetime | None, datetime | None] | None = None  # inclusive, UTC-aware, None = open
    cloud_cover_max: float | None = None  # percent; items with unknown cloud cover do not match
    collections: Sequence[str] | None = None
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        if self.bbox is not None:
            _check_bbox(tuple(self.bbox), source=f"SearchQuery.bbox {self.bbox!r}")
        if self.datetime_range is not None:
            _check_datetime_range(self.datetime_range, source="SearchQuery.datetime_range")
        if self.cloud_cover_max is not None and not (
            isinstance(self.cloud_cover_max, (int, float)) and 0.0 <= self.cloud_cover_max <= 100.0
        ):
            raise ValueError(f"cloud cover maximum {self.cloud_cover_max!r} must be a number from 0 to 100 (percent)")
        if self.collections is not None:
            if isinstance(self.collections, str) or not self.collections:
                raise ValueError(
                    f"collections {self.collections!r} must be a non-empty list of collection ids, e.g. ['landsat-8']"
                )
            for collection in self.collections:
                if not isinstance(collection, str) or not _COLLECTION_ID.match(collection):
                    raise ValueError(
                        f"collection {collection!r} is not a valid collection id (letters, digits, '.', '_', '-')"
                    )
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit {self.limit!r} must be a whole number from 1 to {MAX_LIMIT}")


def _check_bbox(bbox: tuple[Any, ...], *, source: str) -> tuple[float, float, float, float]:
    if len(bbox) != 4 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox):
        raise ValueError(f"{source}: expected four finite numbers W, S, E, N")
    west, south, east, north = (float(v) for v in bbox)
    if not (-180.0 <= west <= 180.0 and -180.0 <= east <= 180.0):
        raise ValueError(f"{source}: longitudes must lie in [-180, 180] (west {west}, east {east})")
    if not (-90.0 <= south <= 90.0 and -90.0 <= north <= 90.0):
        raise ValueError(f"{source}: latitudes must lie in [-90, 90] (south {south}, north {north})")
    if south > north:
        raise ValueError(f"{source}: south {south} is north of north {north}; order is W,S,E,N")
    return west, south, east, north


def _check_datetime_range(value: tuple[Any, ...], *, source: str) -> None:
    if len(value) != 2:
        raise ValueError(f"{source} {value!r}: expected (start, end), either may be None for an open end")
    start, end = value
    for moment in (start, end):
        if moment is not None and (not isinstance(moment, datetime) or moment.tzinfo is None):
            raise ValueError(f"{source}: {moment!r} must be a timezone-aware datetime (or None for an open end)")
    if start is None and end is None:
        raise ValueError(f"{source}: both ends are open; give at least a start or an end, or no range at all")
    if start is not None and end is not None and start > end:
        raise ValueError(f"{source}: start {start.isoformat()} is after end {end.isoformat()}")


def _check_length(text: str, what: str) -> str:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be text, got {type(text).__name__}")
    if len(text) > _MAX_INPUT_CHARS:
        raise ValueError(f"{what} is {len(text)} characters long; at most {_MAX_INPUT_CHARS} are accepted")
    return text.strip()


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """Parse ``"W,S,E,N"`` in degrees (W > E for a box crossing the antimeridian)."""
    cleaned = _check_length(text, "bbox")
    parts = [part.strip() for part in cleaned.split(",")]
    if len(parts) != 4:
        raise ValueError(
            f"bbox {text!r}: expected four comma-separated numbers W,S,E,N (e.g. 5.9,45.8,10.5,47.8), "
            f"got {len(parts)} part(s)"
        )
    for position, part in zip(("west", "south", "east", "north"), parts, strict=True):
        if not _NUMBER.match(part):
            raise ValueError(f"bbox {text!r}: {position} {part!r} is not a number; use decimal degrees")
    return _check_bbox(tuple(float(part) for part in parts), source=f"bbox {text!r}")


def _parse_instant(text: str, *, end_of_day: bool) -> datetime:
    date_match = _RFC3339_DATE.match(text)
    try:
        if date_match:
            day = date(*(int(g) for g in date_match.groups()))
            # A bare date means the whole UTC day: from its first to its last microsecond.
            return datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)
        match = _RFC3339_DATETIME.match(text)
        if not match:
            raise ValueError("not RFC 3339")
        year, month, day_, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
        microsecond = int((fraction or "0")[:6].ljust(6, "0"))
        if not zulu and (int(off_h) > 23 or int(off_m) > 59):
            raise ValueError(f"UTC offset {sign}{off_h}:{off_m} is not an offset (hours 00-23, minutes 00-59)")
        offset = timedelta(0) if zulu else timedelta(hours=int(off_h), minutes=int(off_m))
        if sign == "-":
            offset = -offset
        naive = datetime(int(year), int(month), int(day_), int(hour), int(minute), int(second), microsecond)
        return (naive - offset).replace(tzinfo=UTC)
    except (ValueError, OverflowError) as error:  # OverflowError: an offset moving 0001-01-01 or 9999-12-31 out
        raise ValueError(
            f"{text!r} is not an RFC 3339 date or date-time (e.g. 2024-05-01 or 2024-05-01T10:30:00Z; "
            f"a time needs 'Z' or an offset like +02:00): {error}"
        ) from None


def parse_datetime_range(text: str) -> tuple[datetime | None, datetime | None]:
    """Parse ``"A/B"``, ``"../B"``, ``"A/.."`` or a single ``"A"`` (RFC 3339 dates or date-times) into UTC.

    Ends are inclusive; a bare date covers its whole UTC day; a single date-time matches that instant.
    """
    cleaned = _check_length(text, "datetime range")
    if not cleaned:
        raise ValueError("datetime range is empty; use A/B, A/.., ../B or a single date such as 2024-05-01")
    parts = cleaned.split("/")
    if len(parts) > 2:
        raise ValueError(f"datetime range {text!r}: expected at most one '/' between start and end")
    if len(parts) == 1:
        start = _parse_instant(parts[0], end_of_day=False)
        end = _parse_instant(parts[0], end_of_day=True)
    else:
        start_text, end_text = (part.strip() for part in parts)
        start = None if start_text in ("", "..") else _parse_instant(start_text, end_of_day=False)
        end = None if end_text in ("", "..") else _parse_instant(end_text, end_of_day=True)
    _check_datetime_range((start, end), source=f"datetime range {text!r}")
    return start, end


def validate_table_ref(table_ref: str) -> str:
    """Check that ``table_ref`` is an identifier path: ``table``, ``schema.table`` or ``cat.schema.table``."""
    parts = table_ref.split(".") if isinstance(table_ref, str) else []
    if not 1 <= len(parts) <= 3 or not all(_IDENTIFIER.match(part) for part in parts):
        raise ValueError(
            f"table reference {table_ref!r} is not an identifier path such as catalog_items or "
            "lake.catalog.items (letters, digits and '_' separated by '.')"
        )
    return table_ref


def _quoted_column(name: str) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"column {name!r} is not an identifier (letters, digits and '_')")
    return f'"{name}"'


def _longitude_branches(west: float, east: float) -> list[tuple[str, list[Any]]]:
    """Disjoint conditions on the longitude columns whose union is "the item meets [west, east] in longitude".

    Items crossing the antimeridian are stored with bbox_xmin > bbox_xmax (``crosses_antimeridian``) and cover
    [xmin, 180] and [-180, xmax]. Splitting on that flag leaves each branch a plain conjunction of column-vs-value
    comparisons, which DuckDB and Trino push into the Parquet reader to skip row groups and files by their
    min/max statistics; one OR across columns would make every row group a candidate.
    """
    if west <= east:
        return [
            ('"crosses_antimeridian" = FALSE AND "bbox_xmin" <= ? AND "bbox_xmax" >= ?', [east, west]),
            ('"crosses_antimeridian" = TRUE AND ("bbox_xmin" <= ? OR "bbox_xmax" >= ?)', [east, west]),
        ]
    # The query itself crosses: it is [west, 180] plus [-180, east]. Every crossing item contains longitude 180,
    # so meets it; an ordinary item meets it when it reaches west, or else (disjoint branch) when it reaches east.
    return [
        ('"crosses_antimeridian" = FALSE AND "bbox_xmax" >= ?', [west]),
        ('"crosses_antimeridian" = FALSE AND "bbox_xmax" < ? AND "bbox_xmin" <= ?', [west, east]),
        ('"crosses_antimeridian" = TRUE', []),
    ]


def _instant_parameter(dialect: Dialect) -> tuple[str, Callable[[datetime], datetime]]:
    """The placeholder a time bound takes in ``dialect`` and how its value is bound.

    Trino reads the catalog's ``datetime`` as ``timestamp(3) with time zone`` while its client sends a Python
    datetime as a ``timestamp(6)`` literal. Compared as they are, Trino casts the *column* up to the literal's
    precision, and a cast column is a filter it can no longer push into the Delta file statistics or the Parquet
    row-group statistics: every file of the table gets read. Cast to the column's type, the bound becomes a
    constant the scan prunes with. Bounds are floored to the millisecond first, so the cast never rounds; a search
    through Trino therefore sees times at millisecond precision, as every Trino query of the table does.
    """
    if dialect == "trino":
        return "CAST(? AS TIMESTAMP(3) WITH TIME ZONE)", _utc_millisecond
    return "?", _utc


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _utc_millisecond(moment: datetime) -> datetime:
    utc = moment.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def _filter_conditions(query: SearchQuery, dialect: Dialect) -> tuple[list[str], list[Any]]:
    """The conditions every row must meet apart from longitude, with their parameters in order."""
    conditions: list[str] = []
    params: list[Any] = []
    instant, to_instant = _instant_parameter(dialect)
    if query.bbox is not None:
        _, south, _, north = query.bbox
        conditions.append('"bbox_ymin" <= ? AND "bbox_ymax" >= ?')
        params.extend([north, south])
    if query.datetime_range is not None:
        start, end = query.datetime_range
        if start is not None:
            conditions.append(f'"datetime" >= {instant}')
            params.append(to_instant(start))
        if end is not None:
            conditions.append(f'"datetime" <= {instant}')
            params.append(to_instant(end))
    if query.cloud_cover_max is not None:
        conditions.append('"cloud_cover" <= ?')
        params.append(float(query.cloud_cover_max))
    if query.collections is not None:
        placeholders = ", ".join("?" for _ in query.collections)
        conditions.append(f'"collection" IN ({placeholders})')
        params.extend(query.collections)
    return conditions, params


def search_sql(
    query: SearchQuery, table_ref: str, dialect: Dialect = "duckdb", columns: Sequence[str] = SEARCH_COLUMNS
) -> tuple[str, list[Any]]:
    """A parameterised (``?`` placeholders) SELECT over the catalog table, newest first.

    With a bbox the statement is a UNION ALL of disjoint branches (see :func:`_longitude_branches`), each
    already cut to the limit, so every branch can skip data by statistics. DuckDB and the Trino DB-API client
    both bind ``?`` parameters; the statement text is the same for both.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"SQL dialect {dialect!r} is not supported; use one of {DIALECTS}")
    table = validate_table_ref(table_ref)
    conditions, params = _filter_conditions(query, dialect)
    selected = ", ".join(_quoted_column(column) for column in columns)
    # limit is a validated int (SearchQuery), never user text; Trino does not accept a parameter in LIMIT.
    order = f'ORDER BY "datetime" DESC, "id" ASC LIMIT {int(query.limit)}'
    if query.bbox is None:
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return f"SELECT {selected} FROM {table}{where} {order}", params
    west, _, east, _ = query.bbox
    branches: list[str] = []
    branch_params: list[Any] = []
    for longitude, longitude_params in _longitude_branches(west, east):
        branches.append(f"(SELECT {selected} FROM {table} WHERE {' AND '.join([*conditions, longitude])} {order})")
        branch_params.extend([*params, *longitude_params])
    return f'SELECT {selected} FROM ({" UNION ALL ".join(branches)}) AS "matches" {order}', branch_params


def search_catalog_duckdb(con: Any, table_ref: str, query: SearchQuery) -> list[dict[str, Any]]:
    """Run :func:`search_sql` on a DuckDB connection; one dict per matching item, newest first."""
    sql, params = search_sql(query, table_ref, "duckdb")
    cursor = con.execute(sql, params)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def search_catalog_trino(
    trino: TrinoLake, table_ref: str, query: SearchQuery, user: str | None = None
) -> list[dict[str, Any]]:
    """Run :func:`search_sql` through Trino (as ``user``, default the client's); one dict per item, newest first."""
    sql, params = search_sql(query, table_ref, "trino")
    names, rows = trino.query(sql, params, user=user)
    return [dict(zip(names, row, strict=True)) for row in rows]
