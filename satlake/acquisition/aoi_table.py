"""The Delta table ``catalog/areas_of_interest``: its schema, and adding, listing, finding and removing AOIs
(a removal stamps ``removed_at``, so the table keeps every AOI there ever was)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import shapely

from satlake.acquisition.aoi import NAME_PATTERN, AoiError, AreaOfInterest, check_name
from satlake.resources.lakehouse import Lakehouse, TableRef

AREAS_OF_INTEREST = TableRef("catalog", "areas_of_interest")

_TS = pa.timestamp("us", tz="UTC")
AREAS_OF_INTEREST_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("geometry_wkb", pa.binary(), nullable=False, metadata={"doc": "(Multi)Polygon in lon/lat"}),
        pa.field("bbox_xmin", pa.float64(), nullable=False),
        pa.field("bbox_ymin", pa.float64(), nullable=False),
        pa.field("bbox_xmax", pa.float64(), nullable=False),
        pa.field("bbox_ymax", pa.float64(), nullable=False),
        pa.field("area_km2", pa.float64(), nullable=False, metadata={"doc": "geodesic, WGS84 ellipsoid"}),
        pa.field("collections", pa.list_(pa.string()), nullable=False),
        pa.field("cloud_cover_max", pa.float64(), metadata={"doc": "percent; null: any cover"}),
        pa.field("since", pa.date32()),
        pa.field("source", pa.string(), nullable=False, metadata={"doc": "source name or URL, as given"}),
        pa.field("source_url", pa.string(), nullable=False, metadata={"doc": "STAC API root when added"}),
        pa.field("alert_min_ha", pa.float64(), nullable=False),
        pa.field("created_by", pa.string(), nullable=False),
        pa.field("created_at", _TS, nullable=False),
        pa.field("removed_at", _TS, metadata={"doc": "null while the AOI is active"}),
    ]
)


def aoi_row(aoi: AreaOfInterest, source_url: str) -> dict[str, Any]:
    west, south, east, north = aoi.bbox
    return {
        "name": aoi.name,
        "geometry_wkb": shapely.to_wkb(aoi.geometry),
        "bbox_xmin": west,
        "bbox_ymin": south,
        "bbox_xmax": east,
        "bbox_ymax": north,
        "area_km2": aoi.area_km2,
        "collections": list(aoi.collections),
        "cloud_cover_max": aoi.cloud_cover_max,
        "since": aoi.since,
        "source": aoi.source,
        "source_url": source_url,
        "alert_min_ha": aoi.alert_min_ha,
        "created_by": aoi.created_by,
        "created_at": aoi.created_at,
        "removed_at": aoi.removed_at,
    }


def aoi_from_row(row: dict[str, Any]) -> AreaOfInterest:
    return AreaOfInterest(
        name=row["name"],
        geometry=shapely.from_wkb(row["geometry_wkb"]),
        collections=tuple(row["collections"]),
        cloud_cover_max=row["cloud_cover_max"],
        since=row["since"],
        source=row["source"],
        alert_min_ha=row["alert_min_ha"],
        created_by=row["created_by"],
        created_at=row["created_at"].astimezone(UTC),
        area_km2=row["area_km2"],
        removed_at=row["removed_at"].astimezone(UTC) if row["removed_at"] is not None else None,
    )


def _rows(lakehouse: Lakehouse, name: str | None = None) -> list[dict[str, Any]]:
    filters = [("name", "=", name)] if name is not None else None
    table = lakehouse.read(AREAS_OF_INTEREST, filters=filters)
    return table.to_pylist() if table is not None else []


def load_aois(lakehouse: Lakehouse, include_removed: bool = False) -> list[AreaOfInterest]:
    """The AOIs by name (each name's history oldest first with ``include_removed``); [] before the first add."""
    aois = [aoi_from_row(row) for row in _rows(lakehouse)]
    if not include_removed:
        aois = [aoi for aoi in aois if aoi.active]
    return sorted(aois, key=lambda aoi: (aoi.name, aoi.created_at))


def _missing(lakehouse: Lakehouse, name: str) -> AoiError:
    known = [aoi.name for aoi in load_aois(lakehouse)]
    if not known:
        return AoiError(f"no AOI named {name!r}: there are no AOIs yet; add one with `satlake aoi add`")
    return AoiError(f"no AOI named {name!r}: the AOIs are {', '.join(known)} (`satlake aoi list` shows them)")


def get_aoi(lakehouse: Lakehouse, name: str) -> AreaOfInterest:
    """The active AOI called ``name``; ``AoiError`` naming the known AOIs when there is none."""
    active = [aoi for aoi in map(aoi_from_row, _existing_rows(lakehouse, name)) if aoi.active]
    if not active:
        raise _missing(lakehouse, name)
    return max(active, key=lambda aoi: aoi.created_at)


def _existing_rows(lakehouse: Lakehouse, name: str) -> list[dict[str, Any]]:
    # A name no AOI can have is simply missing: the answer lists the names there are.
    return _rows(lakehouse, name) if isinstance(name, str) and NAME_PATTERN.match(name) else []


def _replace_name(lakehouse: Lakehouse, name: str, rows: list[dict[str, Any]], change: str) -> int:
    # Every write replaces the rows of one name in one commit: the name passed check_name, so the predicate
    # is safe, and other AOIs' rows are never rewritten.
    data = pa.Table.from_pylist(rows, schema=AREAS_OF_INTEREST_SCHEMA)
    return lakehouse.replace_where(
        AREAS_OF_INTEREST, data, f"name = '{name}'", partition_by=[], commit_metadata={"satlake.aoi": change}
    )


def add_aoi(lakehouse: Lakehouse, aoi: AreaOfInterest, source_url: str) -> int:
    """Store a new active AOI (its earlier, removed namesakes stay); refuses a name that is active already.
    Returns the table version committed."""
    history = _rows(lakehouse, check_name(aoi.name))
    active = [row for row in history if row["removed_at"] is None]
    if active:
        since = active[0]["created_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        raise AoiError(
            f"AOI {aoi.name!r} exists already (added {since} by {active[0]['created_by']}): choose another name, "
            f"or `satlake aoi remove {aoi.name}` first"
        )
    return _replace_name(lakehouse, aoi.name, [*history, aoi_row(aoi, source_url)], f"add {aoi.name}")


def remove_aoi(lakehouse: Lakehouse, name: str, now: datetime | None = None) -> AreaOfInterest:
    """Mark the active AOI ``name`` removed (its row stays, with ``removed_at``); returns it as removed."""
    history = _existing_rows(lakehouse, name)
    active = [row for row in history if row["removed_at"] is None]
    if not active:
        raise _missing(lakehouse, name)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    for row in active:
        row["removed_at"] = moment
    _replace_name(lakehouse, name, history, f"remove {name}")
    return aoi_from_row(active[-1])
