"""The Mars asset checks: every manifest sol has its photo partition, photo ids are unique, photo counts per sol
match the manifest, the traverse is valid and monotonic in sol, and each active rover's latest sol is fresh."""

from collections.abc import Iterator, Mapping
from datetime import datetime

import dagster as dg
import pyarrow.compute as pc
import shapely

from satlake.mars.geodesy import MARS_CRS_CODE
from satlake.mars.tables import MARS_MANIFESTS, MARS_PHOTOS, MARS_REQUESTS, MARS_RESPONSES, MARS_WAYPOINTS
from satlake.resources.lakehouse import Lakehouse

FRESH_SOLS = 7  # an active rover's photos are fetched up to this many sols behind its manifest's max sol
MANIFEST_KEY = dg.AssetKey(["bronze", "mars_manifests"])
PHOTOS_KEY = dg.AssetKey(["bronze", "mars_photos"])
WAYPOINTS_KEY = dg.AssetKey(["bronze", "mars_waypoints"])
WARN, ERROR = dg.AssetCheckSeverity.WARN, dg.AssetCheckSeverity.ERROR

MANIFEST_CHECKS = [
    dg.AssetCheckSpec(
        "manifest_sols_have_photo_partitions",
        asset=MANIFEST_KEY,
        description="every manifest sol in a requested range has its photos fetched",
    ),
    dg.AssetCheckSpec(
        "latest_sol_fresh",
        asset=MANIFEST_KEY,
        description=f"an active rover's photos are fetched to within {FRESH_SOLS} sols of its max sol",
    ),
]
PHOTO_CHECKS = [
    dg.AssetCheckSpec("photo_ids_unique", asset=PHOTOS_KEY, description="no photo id appears twice"),
    dg.AssetCheckSpec(
        "photo_counts_match_manifest",
        asset=PHOTOS_KEY,
        description="each fetched sol has as many photos as the manifest lists for it",
    ),
]
WAYPOINT_CHECKS = [
    dg.AssetCheckSpec(
        "traverse_valid_and_monotonic",
        asset=WAYPOINTS_KEY,
        description="every waypoint is a valid Mars point and sols never go back along the traverse",
    ),
]


def _result(
    key: dg.AssetKey, name: str, problems: list[str], ok: str, severity: dg.AssetCheckSeverity, **metadata: object
) -> dg.AssetCheckResult:
    description = ok if not problems else f"{len(problems)} problems: " + "; ".join(problems[:8])
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=not problems,
        severity=severity,
        description=description,
        metadata=dict(metadata),
    )  # type: ignore[arg-type]


def _manifest(lakehouse: Lakehouse, rover: str) -> dict[int, dict[str, object]]:
    table = lakehouse.read(MARS_MANIFESTS, filters=[("rover_name", "=", rover)])
    return {int(row["sol"]): row for row in (table.to_pylist() if table is not None else [])}


def _fetched_sols(lakehouse: Lakehouse, rover: str) -> set[int]:
    """Sols with a usable photos response (a fetched partition)."""
    table = lakehouse.read(
        MARS_RESPONSES, filters=[("rover", "=", rover), ("kind", "=", "photos")], columns=["sol", "error"]
    )
    if table is None:
        return set()
    return {
        int(sol)
        for sol, error in zip(table["sol"].to_pylist(), table["error"].to_pylist(), strict=True)
        if error is None and sol is not None
    }


def _requested_sols(lakehouse: Lakehouse, rover: str) -> set[int]:
    table = lakehouse.read(MARS_REQUESTS, filters=[("rover", "=", rover)], columns=["first_sol", "last_sol"])
    sols: set[int] = set()
    for row in table.to_pylist() if table is not None else []:
        sols.update(range(row["first_sol"], row["last_sol"] + 1))
    return sols


def manifest_checks(lakehouse: Lakehouse, rover: str, now: datetime) -> Iterator[dg.AssetCheckResult]:
    manifest = _manifest(lakehouse, rover)
    fetched = _fetched_sols(lakehouse, rover)
    scope = _requested_sols(lakehouse, rover) | fetched
    missing = sorted(sol for sol in manifest if sol in scope and sol not in fetched)
    yield _result(
        MANIFEST_KEY,
        "manifest_sols_have_photo_partitions",
        [f"{rover} sol {sol} ({manifest[sol]['total_photos']} photos) not fetched" for sol in missing],
        f"{rover}: all {len(scope & set(manifest))} requested manifest sols fetched",
        WARN,
        missing_sols=len(missing),
    )
    any_row = next(iter(manifest.values()), None)
    problems: list[str] = []
    if any_row is not None and any_row["status"] == "active":
        max_sol = int(any_row["max_sol"] or 0)
        latest = max(fetched, default=None)
        if latest is None or latest < max_sol - FRESH_SOLS:
            problems.append(
                f"{rover} is active up to sol {max_sol} but "
                + ("no photos are fetched yet" if latest is None else f"photos are fetched to sol {latest}")
                + "; "
                "the daily schedule requests the new sols (or `satlake mars fetch`)"
            )
    status = any_row["status"] if any_row is not None else "no manifest yet"
    yield _result(
        MANIFEST_KEY,
        "latest_sol_fresh",
        problems,
        f"{rover}: {status}, fetched to sol {max(fetched, default='-')}",
        WARN,
    )


def photo_checks(lakehouse: Lakehouse, wanted: Mapping[str, list[int]]) -> Iterator[dg.AssetCheckResult]:
    duplicates: list[str] = []
    mismatched: list[str] = []
    for rover, sols in wanted.items():
        table = lakehouse.read(MARS_PHOTOS, filters=[("rover_name", "=", rover)], columns=["id", "sol"])
        ids = table["id"] if table is not None else None
        if ids is not None and len(ids):
            counts = pc.value_counts(ids)
            repeated = [item["values"] for item in counts.to_pylist() if item["counts"] > 1]
            duplicates += [f"{rover} photo {photo_id} appears more than once" for photo_id in repeated]
        per_sol: dict[int, int] = {}
        for sol in table["sol"].to_pylist() if table is not None else []:
            per_sol[sol] = per_sol.get(sol, 0) + 1
        manifest = _manifest(lakehouse, rover)
        fetched = _fetched_sols(lakehouse, rover)
        for sol in sols:
            if sol not in fetched or not manifest:
                continue
            expected = int(manifest[sol]["total_photos"] or 0) if sol in manifest else 0
            if per_sol.get(sol, 0) != expected:
                mismatched.append(f"{rover} sol {sol}: {per_sol.get(sol, 0)} photos, the manifest lists {expected}")
    yield _result(PHOTOS_KEY, "photo_ids_unique", duplicates, "photo ids are unique", dg.AssetCheckSeverity.ERROR)
    yield _result(
        PHOTOS_KEY,
        "photo_counts_match_manifest",
        mismatched,
        "photo counts match the manifest for every fetched sol",
        WARN,
    )


def waypoint_checks(lakehouse: Lakehouse, rover: str) -> Iterator[dg.AssetCheckResult]:
    table = lakehouse.read(
        MARS_WAYPOINTS, filters=[("rover_name", "=", rover)], columns=["sol", "lon", "lat", "crs", "geometry_wkb"]
    )
    problems: list[str] = []
    rows = table.to_pylist() if table is not None else []
    previous_sol = None
    for number, row in enumerate(rows):
        where = f"waypoint {number} (sol {row['sol']})"
        if row["crs"] != MARS_CRS_CODE:
            problems.append(f"{where} is in {row['crs']}, not {MARS_CRS_CODE}")
        try:
            point = shapely.from_wkb(row["geometry_wkb"])
        except shapely.errors.GEOSException as error:
            problems.append(f"{where}: geometry does not decode ({error})")
            continue
        if point.geom_type != "Point" or not shapely.is_valid(point) or point.is_empty:
            problems.append(f"{where}: geometry is not a valid point")
        elif not (-180 <= point.x <= 180 and -90 <= point.y <= 90) or (point.x, point.y) != (row["lon"], row["lat"]):
            problems.append(f"{where}: point {point.x}, {point.y} is out of range or differs from lon/lat")
        if previous_sol is not None and row["sol"] < previous_sol:
            problems.append(f"{where} comes after sol {previous_sol}: the traverse goes back in time")
        previous_sol = row["sol"]
    yield _result(
        WAYPOINTS_KEY,
        "traverse_valid_and_monotonic",
        problems,
        f"{rover}: {len(rows)} waypoints, valid and monotonic in sol",
        ERROR,
    )
