"""The bronze assets: typed rows from the latest usable responses, and a reject row with the reason for every
record (or whole response) that cannot be one.

``bronze/mars_manifests`` and ``bronze/mars_waypoints`` are per rover, ``bronze/mars_photos`` per rover and sol;
each run replaces exactly its partitions' rows, so re-running one leaves the tables as if it ran once. A newer
response that is unusable (an error body, a cut-off page) never replaces good rows: it becomes a reject row and
the last good response stays what bronze reads.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa

from satlake.mars import checks
from satlake.mars.assets import GROUP, MANIFESTS_KEY, PHOTOS_KEY, TRAVERSES_KEY
from satlake.mars.landing import MANIFEST, PHOTOS, WAYPOINTS
from satlake.mars.parse import ParseResult, parse_manifest, parse_photos
from satlake.mars.parse_waypoints import parse_waypoints
from satlake.mars.partitions import ROVER_PARTITIONS, ROVER_SOL_PARTITIONS, rover_sols
from satlake.mars.responses import Latest, latest_by_sol, latest_responses, manifest_max_sol
from satlake.mars.rovers import rover_named
from satlake.mars.tables import (
    MARS_MANIFESTS,
    MARS_MANIFESTS_SCHEMA,
    MARS_PHOTOS,
    MARS_PHOTOS_SCHEMA,
    MARS_REJECTS,
    MARS_REJECTS_SCHEMA,
    MARS_WAYPOINTS,
    MARS_WAYPOINTS_SCHEMA,
)
from satlake.resources.lakehouse import Lakehouse

BRONZE_MANIFESTS_KEY = dg.AssetKey(["bronze", "mars_manifests"])
BRONZE_PHOTOS_KEY = dg.AssetKey(["bronze", "mars_photos"])
BRONZE_WAYPOINTS_KEY = dg.AssetKey(["bronze", "mars_waypoints"])


def _reject_rows(
    kind: str, rover: str, sol: int | None, response_id: str | None, rejects: list[tuple[str, str]], now: datetime
) -> list[dict[str, object]]:
    return [
        {
            "kind": kind,
            "rover": rover,
            "sol": sol,
            "response_id": response_id,
            "record": record[:4000],
            "reason": reason,
            "rejected_at": now,
        }
        for record, reason in rejects
    ]


def _write(
    lakehouse: Lakehouse,
    table_ref: object,
    schema: pa.Schema,
    rows: list[dict[str, object]],
    predicate: str,
    partition_by: list[str],
) -> int:
    table = pa.Table.from_pylist(rows, schema=schema)
    lakehouse.replace_where(table_ref, table, predicate, partition_by=partition_by, retries=8)  # type: ignore[arg-type]
    return table.num_rows


def _sols_predicate(column: str, sols: list[int]) -> str:
    return f"{column} IN ({', '.join(str(int(sol)) for sol in sols)})"


@dg.asset(
    key=BRONZE_MANIFESTS_KEY,
    group_name=GROUP,
    kinds={"delta"},
    partitions_def=ROVER_PARTITIONS,
    deps=[MANIFESTS_KEY],
    check_specs=checks.MANIFEST_CHECKS,
    description="One row per sol of the rover's latest manifest: earth date, photos and cameras of the sol, and "
    "the rover's max sol and status. Unusable responses go to bronze.mars_rejects with the reason.",
)
def bronze_mars_manifests(
    context: dg.AssetExecutionContext, lakehouse: dg.ResourceParam[Lakehouse]
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    rover = rover_named(context.partition_key).name
    now = datetime.now(UTC)
    latest = latest_responses(lakehouse, rover, MANIFEST)
    rows: list[dict[str, object]] = []
    rejects = _reject_rows(MANIFEST, rover, None, None, [], now)
    for failed in latest.errors:
        rejects += _reject_rows(MANIFEST, rover, None, failed.response_id, [(failed.excerpt, failed.error)], now)
    for response in latest.usable:
        parsed: ParseResult = parse_manifest(response.body, rover, response.response_id, response.fetched_at)
        rows += parsed.rows
        rejects += _reject_rows(MANIFEST, rover, None, response.response_id, parsed.rejects, now)
    if latest.usable or not lakehouse.exists(MARS_MANIFESTS):  # no good response yet: keep what bronze has
        _write(lakehouse, MARS_MANIFESTS, MARS_MANIFESTS_SCHEMA, rows, f"rover_name = '{rover}'", ["rover_name"])
    _write(
        lakehouse, MARS_REJECTS, MARS_REJECTS_SCHEMA, rejects, f"kind = '{MANIFEST}' AND rover = '{rover}'", ["kind"]
    )
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "rejects": len(rejects),
            "max_sol": max((int(r["max_sol"] or 0) for r in rows), default=None),
        }
    )
    yield from checks.manifest_checks(lakehouse, rover, now)


@dg.asset(
    key=BRONZE_PHOTOS_KEY,
    group_name=GROUP,
    kinds={"delta"},
    partitions_def=ROVER_SOL_PARTITIONS,
    deps=[
        PHOTOS_KEY,
        dg.AssetDep(BRONZE_MANIFESTS_KEY, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("rover")),
    ],
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=checks.PHOTO_CHECKS,
    description="One row per photo of the sol (id, camera, earth date, img_src), from every page of the sol's "
    "latest fetch, in either rover shape the API served. Records that cannot be a photo go to bronze.mars_rejects.",
)
def bronze_mars_photos(
    context: dg.AssetExecutionContext, lakehouse: dg.ResourceParam[Lakehouse]
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    now = datetime.now(UTC)
    written, rejected = 0, 0
    for rover, sols in rover_sols(context.partition_keys).items():
        max_sol = manifest_max_sol(lakehouse, rover)
        rows: list[dict[str, object]] = []
        rejects: list[dict[str, object]] = []
        fetched: list[int] = []  # sols with a usable fetch: their rows are replaced, the others' kept
        by_sol = latest_by_sol(lakehouse, rover, PHOTOS, sols)
        for sol in sols:
            latest = by_sol.get(sol, Latest())
            if latest.usable:
                fetched.append(sol)
            for failed in latest.errors:
                rejects += _reject_rows(PHOTOS, rover, sol, failed.response_id, [(failed.excerpt, failed.error)], now)
            for response in latest.usable:
                parsed = parse_photos(
                    response.body,
                    rover,
                    sol,
                    response.page or 1,
                    response.response_id,
                    response.fetched_at,
                    max_sol=max_sol,
                )
                rows += parsed.rows
                rejects += _reject_rows(PHOTOS, rover, sol, response.response_id, parsed.rejects, now)
        if fetched:
            written += _write(
                lakehouse,
                MARS_PHOTOS,
                MARS_PHOTOS_SCHEMA,
                rows,
                f"rover_name = '{rover}' AND {_sols_predicate('sol', fetched)}",
                ["rover_name"],
            )
        rejected += _write(
            lakehouse,
            MARS_REJECTS,
            MARS_REJECTS_SCHEMA,
            rejects,
            f"kind = '{PHOTOS}' AND rover = '{rover}' AND {_sols_predicate('sol', sols)}",
            ["kind"],
        )
        for reject in rejects[:10]:
            context.log.warning(f"{rover} sol {reject['sol']}: {reject['reason']}")
    yield dg.MaterializeResult(metadata={"dagster/row_count": written, "rejects": rejected})
    yield from checks.photo_checks(lakehouse, rover_sols(context.partition_keys))


@dg.asset(
    key=BRONZE_WAYPOINTS_KEY,
    group_name=GROUP,
    kinds={"delta"},
    partitions_def=ROVER_PARTITIONS,
    deps=[TRAVERSES_KEY],
    check_specs=checks.WAYPOINT_CHECKS,
    description="One row per traverse waypoint (sol, site, drive, lon/lat in IAU_2015:49902 Mars planetocentric, "
    "the distances as published, and the geodesic from the previous waypoint on the Mars ellipsoid). Never given "
    "an Earth bbox. Waypoints with invalid or Earth coordinates go to bronze.mars_rejects.",
)
def bronze_mars_waypoints(
    context: dg.AssetExecutionContext, lakehouse: dg.ResourceParam[Lakehouse]
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    rover = rover_named(context.partition_key)
    now = datetime.now(UTC)
    latest = latest_responses(lakehouse, rover.name, WAYPOINTS)
    rows: list[dict[str, object]] = []
    rejects: list[dict[str, object]] = []
    warnings: list[str] = []
    for failed in latest.errors:
        rejects += _reject_rows(WAYPOINTS, rover.name, None, failed.response_id, [(failed.excerpt, failed.error)], now)
    for response in latest.usable:
        parsed = parse_waypoints(
            response.body, rover.name, rover.mmgis_mission or "", response.response_id, response.fetched_at
        )
        rows += parsed.rows
        warnings += parsed.warnings
        rejects += _reject_rows(WAYPOINTS, rover.name, None, response.response_id, parsed.rejects, now)
    if latest.usable or not lakehouse.exists(MARS_WAYPOINTS):
        _write(lakehouse, MARS_WAYPOINTS, MARS_WAYPOINTS_SCHEMA, rows, f"rover_name = '{rover.name}'", ["rover_name"])
    _write(
        lakehouse,
        MARS_REJECTS,
        MARS_REJECTS_SCHEMA,
        rejects,
        f"kind = '{WAYPOINTS}' AND rover = '{rover.name}'",
        ["kind"],
    )
    for warning in warnings[:10]:
        context.log.warning(f"{rover.name} traverse: {warning}")
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "rejects": len(rejects),
            "warnings": dg.MetadataValue.json(warnings[:20]),
        }
    )
    yield from checks.waypoint_checks(lakehouse, rover.name)
