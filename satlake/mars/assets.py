"""The fetching assets: ``raw/mars_manifests`` (per rover), ``raw/mars_photos`` (per rover and sol) and
``raw/mars_traverses`` (per rover).

Each asks the API (or MMGIS) through the polite session, keeps every response as received in
``raw.mars_responses`` with its request and time, and lands every one in the landing area (error answers too:
bronze turns them into reject rows with the reason), where their announcements start the bronze partitions
(``sensors.mars_landing_sensor``). A run that reaches the hourly
request budget stops asking, keeps what it fetched, and says which sols are left (check ``fetched_to_the_end``).
"""

import dataclasses
from datetime import UTC, datetime

import dagster as dg

from satlake.mars.client import ApiResponse
from satlake.mars.fetch import HourlyBudgetSpent, build_client, record_responses
from satlake.mars.partitions import ROVER_PARTITIONS, ROVER_SOL_PARTITIONS, request_id_of, rover_sols, sol_ranges
from satlake.mars.rovers import rover_named
from satlake.resources.event_log import EventLog
from satlake.resources.http import BudgetExceeded
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.object_store import ObjectStore
from satlake.settings import Settings

GROUP = "mars"
MANIFESTS_KEY = dg.AssetKey(["raw", "mars_manifests"])
PHOTOS_KEY = dg.AssetKey(["raw", "mars_photos"])
TRAVERSES_KEY = dg.AssetKey(["raw", "mars_traverses"])
FETCHED_TO_THE_END = "fetched_to_the_end"


def _fetched_check(key: dg.AssetKey, passed: bool, description: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=FETCHED_TO_THE_END,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
    )


def _fetched_spec(key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        FETCHED_TO_THE_END,
        asset=key,
        description="every response the run needed was fetched (not cut off by the hourly request budget)",
    )


def _summary(rows: list[dict[str, object]]) -> dict[str, object]:
    errors = [f"{row['url']}: {row['error']}" for row in rows if row["error"]]
    return {"responses": len(rows), "unusable_responses": len(errors), "errors": dg.MetadataValue.json(errors[:20])}


@dg.asset(
    key=MANIFESTS_KEY,
    group_name=GROUP,
    kinds={"delta", "json"},
    partitions_def=ROVER_PARTITIONS,
    pool="mars_api",
    check_specs=[_fetched_spec(MANIFESTS_KEY)],
    description="The rover's mission manifest (sols, photo counts per sol and camera) from the Mars rover photo "
    "API, kept as received in raw.mars_responses and landed under mars-api/<rover>/manifest/.",
)
def raw_mars_manifests(
    context: dg.AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    lakehouse: dg.ResourceParam[Lakehouse],
    event_log: dg.ResourceParam[EventLog],
    landing_store: dg.ResourceParam[ObjectStore],
) -> dg.MaterializeResult:
    rover = rover_named(context.partition_key)
    try:
        client = build_client(settings, lakehouse)
        responses = [client.manifest(rover.name)]
    except (HourlyBudgetSpent, BudgetExceeded) as error:
        context.log.warning(str(error))
        return dg.MaterializeResult(
            metadata={"responses": 0}, check_results=[_fetched_check(MANIFESTS_KEY, False, str(error))]
        )
    rows = record_responses(
        lakehouse,
        landing_store,
        event_log,
        settings.object_events_topic,
        request_id_of(context),
        responses,
        context.log.warning,
    )
    for row in rows:
        if row["error"]:
            context.log.warning(f"{rover.name} manifest: {row['error']}")
    return dg.MaterializeResult(
        metadata=_summary(rows), check_results=[_fetched_check(MANIFESTS_KEY, True, f"{rover.name}: manifest fetched")]
    )


@dg.asset(
    key=PHOTOS_KEY,
    group_name=GROUP,
    kinds={"delta", "json"},
    partitions_def=ROVER_SOL_PARTITIONS,
    deps=[dg.AssetDep(MANIFESTS_KEY, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("rover"))],
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="mars_api",
    check_specs=[_fetched_spec(PHOTOS_KEY)],
    description="Photo metadata of each sol, every page (25 photos a page) until the last, kept as received in "
    "raw.mars_responses and landed under mars-api/<rover>/photos/sol-<sol>/. A backfill runs once per rover.",
)
def raw_mars_photos(
    context: dg.AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    lakehouse: dg.ResourceParam[Lakehouse],
    event_log: dg.ResourceParam[EventLog],
    landing_store: dg.ResourceParam[ObjectStore],
) -> dg.MaterializeResult:
    wanted = rover_sols(context.partition_keys)
    responses: list[ApiResponse] = []
    left: list[str] = []
    stopped: str | None = None
    try:
        client = build_client(settings, lakehouse)
    except HourlyBudgetSpent as error:
        client, stopped = None, str(error)
    for rover, sols in wanted.items():
        for number, sol in enumerate(sols):
            if client is None or stopped:
                left += [f"{rover} sols {a}..{b}" for a, b in sol_ranges(sols[number:])]
                break
            try:
                pages = client.photos_for_sol(rover, sol)
            except BudgetExceeded as error:
                stopped = str(error)
                left += [f"{rover} sols {a}..{b}" for a, b in sol_ranges(sols[number:])]
                break
            responses += pages
            photos = sum(len(page.json().get("photos", [])) for page in pages if page.error is None)
            context.log.info(f"{rover} sol {sol}: {len(pages)} pages, {photos} photos")
    rows = record_responses(
        lakehouse,
        landing_store,
        event_log,
        settings.object_events_topic,
        request_id_of(context),
        responses,
        context.log.warning,
    )
    for row in rows:
        if row["error"]:
            context.log.warning(f"{row['rover']} sol {row['sol']} page {row['page']}: {row['error']}")
    description = (
        f"stopped: {stopped}; not fetched: {', '.join(left)}"
        if stopped
        else f"{sum(len(s) for s in wanted.values())} sols fetched"
    )
    if stopped:
        context.log.warning(description)
    return dg.MaterializeResult(
        metadata={
            **_summary(rows),
            "sols": dg.MetadataValue.json({r: sol_ranges(s) for r, s in wanted.items()}),
            "not_fetched": dg.MetadataValue.json(left),
        },
        check_results=[_fetched_check(PHOTOS_KEY, not stopped, description)],
    )


@dg.asset(
    key=TRAVERSES_KEY,
    group_name=GROUP,
    kinds={"delta", "geojson"},
    partitions_def=ROVER_PARTITIONS,
    pool="mars_api",
    check_specs=[_fetched_spec(TRAVERSES_KEY)],
    description="The rover's traverse: MMGIS's waypoints GeoJSON (M20 for Perseverance, MSL for Curiosity), kept "
    "as received in raw.mars_responses and landed under mars-api/<rover>/waypoints/. MMGIS publishes none for "
    "Spirit and Opportunity.",
)
def raw_mars_traverses(
    context: dg.AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    lakehouse: dg.ResourceParam[Lakehouse],
    event_log: dg.ResourceParam[EventLog],
    landing_store: dg.ResourceParam[ObjectStore],
) -> dg.MaterializeResult:
    rover = rover_named(context.partition_key)
    if rover.mmgis_mission is None:
        note = f"MMGIS publishes no traverse for {rover.display_name}; nothing to fetch"
        context.log.info(note)
        return dg.MaterializeResult(
            metadata={"responses": 0, "note": note}, check_results=[_fetched_check(TRAVERSES_KEY, True, note)]
        )
    try:
        client = build_client(settings, lakehouse)
        response = client.waypoints(rover.mmgis_mission)
    except (HourlyBudgetSpent, BudgetExceeded) as error:
        return dg.MaterializeResult(
            metadata={"responses": 0}, check_results=[_fetched_check(TRAVERSES_KEY, False, str(error))]
        )
    response = dataclasses.replace(response, rover=rover.name)
    rows = record_responses(
        lakehouse,
        landing_store,
        event_log,
        settings.object_events_topic,
        request_id_of(context),
        [response],
        context.log.warning,
        mission=rover.mmgis_mission,
    )
    if response.error:
        context.log.warning(f"{rover.name} traverse: {response.error}")
    return dg.MaterializeResult(
        metadata={**_summary(rows), "fetched_at": datetime.now(UTC).isoformat()},
        check_results=[_fetched_check(TRAVERSES_KEY, True, f"{rover.name}: {rover.mmgis_mission} waypoints fetched")],
    )
