"""Small bronze Mars tables (photos, waypoints, manifests) with known duplicates and revisions, for the Mars dbt
model tests, in the bronze schemas of satlake/mars/tables.py, partitioned by rover like bronze."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake

from satlake.mars.tables import MARS_MANIFESTS_SCHEMA, MARS_PHOTOS_SCHEMA, MARS_WAYPOINTS_SCHEMA

FIRST_FETCH = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
SECOND_FETCH = FIRST_FETCH + timedelta(days=1)
CAMERA_NAMES = {
    "FHAZ": "Front Hazard Avoidance Camera",
    "NAVCAM": "Navigation Camera",
    "MAST": "Mast Camera",
    "CHEMCAM": "Chemistry and Camera Complex",
    "NAVCAM_LEFT": "Navigation Camera - Left",
    "FRONT_HAZCAM_LEFT_A": "Front Hazard Camera - Left",
    "PANCAM": "Panoramic Camera",
}
FIRST_SOL_DATES = {"curiosity": (1000, date(2015, 5, 30)), "perseverance": (100, date(2021, 5, 30)),
                   "spirit": (50, date(2004, 2, 23))}  # fmt: skip


def earth_date(rover: str, sol: int) -> date:
    first_sol, first_date = FIRST_SOL_DATES[rover]
    return first_date + timedelta(days=sol - first_sol)


def photo(
    photo_id: int,
    rover: str,
    sol: int,
    camera: str,
    fetched_at: datetime,
    *,
    img_src: str | None = None,
    camera_full_name: str | None = None,
) -> dict[str, Any]:
    return {
        "id": photo_id,
        "rover_name": rover,
        "sol": sol,
        "earth_date": earth_date(rover, sol),
        "camera_name": camera,
        "camera_full_name": camera_full_name or CAMERA_NAMES[camera],
        "img_src": img_src or f"https://mars.nasa.gov/raw/{rover}/{sol:05d}/{photo_id}.jpg",
        "rover_shape": "long" if rover == "perseverance" else "short",
        "page": 1,
        "response_id": f"photos-{rover}-{sol}-{fetched_at:%Y%m%d}",
        "fetched_at": fetched_at,
    }


# Fetch 1: Curiosity sols 1000, 1001, 1003; Perseverance 100, 101; Spirit 50 (a rover without a traverse).
FIRST_PHOTOS = [
    photo(101, "curiosity", 1000, "FHAZ", FIRST_FETCH),
    photo(102, "curiosity", 1000, "FHAZ", FIRST_FETCH, img_src="http://mars.jpl.nasa.gov/msl-raw-images/102.JPG"),
    photo(103, "curiosity", 1000, "NAVCAM", FIRST_FETCH, camera_full_name="Navigation Camera (old caption)"),
    photo(104, "curiosity", 1001, "MAST", FIRST_FETCH),
    photo(105, "curiosity", 1001, "MAST", FIRST_FETCH),
    photo(106, "curiosity", 1003, "FHAZ", FIRST_FETCH),
    photo(201, "perseverance", 100, "NAVCAM_LEFT", FIRST_FETCH),
    photo(202, "perseverance", 100, "NAVCAM_LEFT", FIRST_FETCH),
    photo(203, "perseverance", 100, "FRONT_HAZCAM_LEFT_A", FIRST_FETCH),
    photo(204, "perseverance", 101, "NAVCAM_LEFT", FIRST_FETCH, img_src="http://mars.nasa.gov/old/204.jpg"),
    photo(301, "spirit", 50, "PANCAM", FIRST_FETCH),
    photo(302, "spirit", 50, "NAVCAM", FIRST_FETCH),
]
# Fetch 2, a day later: Curiosity sol 1000 again (102 now https, 103's caption corrected, a new photo 107) and
# Perseverance sol 101 (204 moved). Written to Delta BEFORE fetch 1, so "latest" must mean fetched_at.
SECOND_PHOTOS = [
    photo(101, "curiosity", 1000, "FHAZ", SECOND_FETCH),
    photo(102, "curiosity", 1000, "FHAZ", SECOND_FETCH),
    photo(103, "curiosity", 1000, "NAVCAM", SECOND_FETCH),
    photo(107, "curiosity", 1000, "CHEMCAM", SECOND_FETCH),
    photo(204, "perseverance", 101, "NAVCAM_LEFT", SECOND_FETCH),
]


def waypoint(
    rover: str,
    sol: int,
    site: int,
    drive: int,
    segment_m: float | None,
    dist_m: float,
    dist_total_m: float,
    fetched_at: datetime,
) -> dict[str, Any]:
    mission = {"curiosity": "MSL", "perseverance": "M20"}[rover]
    lon, lat = (137.4417, -4.5895) if rover == "curiosity" else (77.4509, 18.4447)
    lon, lat = lon + site * 1e-4 + drive * 1e-6, lat + drive * 1e-6
    return {
        "rover_name": rover,
        "mission": mission,
        "sol": sol,
        "site": site,
        "drive": drive,
        "lon": lon,
        "lat": lat,
        "elev_geoid_m": -4500.0,
        "dist_m": dist_m,
        "dist_total_m": dist_total_m,
        "segment_m": segment_m,
        "crs": "IAU_2015:49902",
        "geometry_wkb": struct.pack("<BIdd", 1, 1, lon, lat),
        "response_id": f"waypoints-{mission}-{fetched_at:%Y%m%d}",
        "fetched_at": fetched_at,
    }


# Curiosity's traverse, fetched twice: the second file revises (51, 300)'s published dist_m (41 -> 42 m, so the
# odometer after it grows by 1 m) and adds a sol 1003 drive. The rows of sol 1000 are out of (site, drive)
# order, as a file may list them. Distances are binary fractions, so sums are exact.
FIRST_CURIOSITY_TRAVERSE = [
    waypoint("curiosity", 999, 50, 0, None, 0.0, 0.0, FIRST_FETCH),
    waypoint("curiosity", 1000, 51, 0, 0.5, 0.5, 31.0, FIRST_FETCH),
    waypoint("curiosity", 1000, 50, 100, 10.5, 10.0, 10.0, FIRST_FETCH),
    waypoint("curiosity", 1000, 50, 250, 20.25, 20.5, 30.5, FIRST_FETCH),
    waypoint("curiosity", 1002, 51, 300, 40.0, 41.0, 72.0, FIRST_FETCH),
]
SECOND_CURIOSITY_TRAVERSE = [
    waypoint("curiosity", 999, 50, 0, None, 0.0, 0.0, SECOND_FETCH),
    waypoint("curiosity", 1000, 51, 0, 0.5, 0.5, 31.0, SECOND_FETCH),
    waypoint("curiosity", 1000, 50, 100, 10.5, 10.0, 10.0, SECOND_FETCH),
    waypoint("curiosity", 1000, 50, 250, 20.25, 20.5, 30.5, SECOND_FETCH),
    waypoint("curiosity", 1002, 51, 300, 40.0, 42.0, 73.0, SECOND_FETCH),
    waypoint("curiosity", 1003, 51, 500, 5.0, 5.0, 78.0, SECOND_FETCH),
]
PERSEVERANCE_TRAVERSE = [
    waypoint("perseverance", 99, 3, 0, None, 0.0, 0.0, FIRST_FETCH),
    waypoint("perseverance", 101, 3, 80, 12.5, 13.0, 37.0, FIRST_FETCH),
    waypoint("perseverance", 101, 3, 40, 25.0, 24.0, 24.0, FIRST_FETCH),
]


def manifest_row(rover: str, sol: int, total_photos: int, fetched_at: datetime, max_sol: int) -> dict[str, Any]:
    return {
        "rover_name": rover,
        "sol": sol,
        "earth_date": earth_date(rover, sol),
        "total_photos": total_photos,
        "cameras": ["FHAZ", "NAVCAM"],
        "max_sol": max_sol,
        "max_date": earth_date(rover, max_sol),
        "status": "complete" if rover == "spirit" else "active",
        "manifest_total_photos": 1_000_000,
        "response_id": f"manifest-{rover}-{fetched_at:%Y%m%d}",
        "fetched_at": fetched_at,
    }


# Curiosity's manifest, fetched twice: the later one counts 5 photos on sol 1000 (was 3) and adds sol 1004. No
# manifest lists Curiosity's sol 1002 (a drive without photos).
MANIFESTS = [
    *(manifest_row("curiosity", sol, n, FIRST_FETCH, 1003) for sol, n in ((999, 10), (1000, 3), (1001, 2), (1003, 1))),
    *(manifest_row("curiosity", sol, n, SECOND_FETCH, 1004)
      for sol, n in ((999, 10), (1000, 5), (1001, 2), (1003, 1), (1004, 7))),
    *(manifest_row("perseverance", sol, n, FIRST_FETCH, 101) for sol, n in ((99, 4), (100, 3), (101, 1))),
    manifest_row("spirit", 50, 2, FIRST_FETCH, 2208),
]  # fmt: skip


def write_table(lake_uri: Path, name: str, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    """Append ``rows`` to ``lake/bronze/<name>`` (one Delta commit), partitioned by rover like bronze."""
    table = pa.Table.from_pylist(rows, schema=schema)
    write_deltalake(lake_uri / "bronze" / name, table, mode="append", partition_by=["rover_name"])


def plant_bronze(lake_uri: Path) -> None:
    """The three bronze Mars tables; the later fetches are committed first."""
    write_table(lake_uri, "mars_photos", SECOND_PHOTOS, MARS_PHOTOS_SCHEMA)
    write_table(lake_uri, "mars_photos", FIRST_PHOTOS, MARS_PHOTOS_SCHEMA)
    write_table(lake_uri, "mars_waypoints", SECOND_CURIOSITY_TRAVERSE, MARS_WAYPOINTS_SCHEMA)
    write_table(lake_uri, "mars_waypoints", FIRST_CURIOSITY_TRAVERSE + PERSEVERANCE_TRAVERSE,
                MARS_WAYPOINTS_SCHEMA)  # fmt: skip
    write_table(lake_uri, "mars_manifests", MANIFESTS, MARS_MANIFESTS_SCHEMA)
