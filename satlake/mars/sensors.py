"""The Mars sensors: requests on the Mars requests topic become fetch runs, and responses announced in the
landing area become bronze runs.

``mars_requests_sensor`` reads each request exactly once (``raw.mars_requests``, refused ones with the reason in
``raw.mars_request_rejects``), adds the requested sols as partitions and asks, in this order, for the rover's
manifest, its photos over the sols (one run) and its traverse. ``mars_landing_sensor`` follows the object-events
topic as the scene sensor does, picks out the keys under ``mars-api/`` and asks for the bronze partitions of
what landed (with the photo catalog and image fetch of each sol).
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg

from satlake.automation import SENSOR_DEFAULT_STATUS
from satlake.mars.assets import MANIFESTS_KEY, PHOTOS_KEY, TRAVERSES_KEY
from satlake.mars.bronze import BRONZE_MANIFESTS_KEY, BRONZE_PHOTOS_KEY, BRONZE_WAYPOINTS_KEY
from satlake.mars.landing import MANIFEST, PHOTOS, WAYPOINTS, parse_landing_key
from satlake.mars.partitions import REQUEST_TAG, SOL_PARTITIONS, rover_sol_key
from satlake.mars.photos import PHOTO_ITEMS_KEY
from satlake.mars.request import MarsRequest, parse_request
from satlake.mars.rovers import sol_key
from satlake.mars.tables import MARS_REQUEST_REJECTS, MARS_REQUESTS, MARS_REQUESTS_SCHEMA
from satlake.resources.event_log import EventLog
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.object_events import ObjectEventError, parse_object_events
from satlake.resources.object_store import ObjectStore
from satlake.resources.request_inbox import RequestInbox
from satlake.settings import Settings

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
MAX_EVENTS_PER_TICK = 5000
READ_WAIT_S = 5.0


mars_manifest_job = dg.define_asset_job(
    "mars_manifest_job", selection=[MANIFESTS_KEY], description="Fetch a rover's mission manifest"
)
mars_photos_job = dg.define_asset_job(
    "mars_photos_job", selection=[PHOTOS_KEY], description="Fetch the photo pages of a rover's sols"
)
mars_traverse_job = dg.define_asset_job(
    "mars_traverse_job", selection=[TRAVERSES_KEY], description="Fetch a rover's MMGIS traverse"
)
mars_bronze_manifest_job = dg.define_asset_job(
    "mars_bronze_manifest_job", selection=[BRONZE_MANIFESTS_KEY], description="Type a rover's manifest"
)
mars_bronze_photos_job = dg.define_asset_job(
    "mars_bronze_photos_job",
    selection=[BRONZE_PHOTOS_KEY, PHOTO_ITEMS_KEY],
    description="Type a rover's sols' photos, fetch their images and catalogue them",
)
mars_bronze_waypoints_job = dg.define_asset_job(
    "mars_bronze_waypoints_job", selection=[BRONZE_WAYPOINTS_KEY], description="Type a rover's traverse"
)
MARS_JOBS = [
    mars_manifest_job,
    mars_photos_job,
    mars_traverse_job,
    mars_bronze_manifest_job,
    mars_bronze_photos_job,
    mars_bronze_waypoints_job,
]

INBOX: RequestInbox[MarsRequest] = RequestInbox(
    accepted=MARS_REQUESTS,
    accepted_schema=MARS_REQUESTS_SCHEMA,
    rejects=MARS_REQUEST_REJECTS,
    parse=parse_request,
    request_id=lambda request: request.request_id,
    columns=lambda r: {
        "request_id": r.request_id,
        "rover": r.rover,
        "first_sol": r.first_sol,
        "last_sol": r.last_sol,
        "request_json": r.to_json(),
    },
)


def add_sols(instance: dg.DagsterInstance, sols: Iterable[int]) -> list[str]:
    """Add the sols that are not partitions yet (in sol order); returns every sol key in partition order."""
    existing = list(instance.get_dynamic_partitions(SOL_PARTITIONS.name))
    known = set(existing)
    new = sorted({sol_key(sol) for sol in sols} - known)
    if new:
        instance.add_dynamic_partitions(SOL_PARTITIONS.name, new)
    return existing + new


def sol_range_requests(
    job: str, rover: str, sols: Iterable[int], order: Sequence[str], run_key: str, tags: dict[str, str]
) -> list[dg.RunRequest]:
    """One run request per stretch of ``sols`` that is contiguous in the sol dimension's partition order (sols
    added out of order, e.g. an earlier range requested later, sit elsewhere in that order)."""
    index = {key: number for number, key in enumerate(order)}
    positions = sorted(index[sol_key(sol)] for sol in set(sols))
    stretches: list[list[int]] = []
    for position in positions:
        if stretches and position == stretches[-1][-1] + 1:
            stretches[-1].append(position)
        else:
            stretches.append([position])
    requests = []
    for number, stretch in enumerate(stretches):
        first, last = (rover_sol_key(rover, int(order[stretch[i]])) for i in (0, -1))
        key = f"{run_key}:{number}" if len(stretches) > 1 else run_key
        if first == last:
            requests.append(dg.RunRequest(job_name=job, run_key=key, partition_key=first, tags=tags))
        else:
            requests.append(
                dg.RunRequest(
                    job_name=job, run_key=key, tags={**tags, RANGE_START_TAG: str(first), RANGE_END_TAG: str(last)}
                )
            )
    return requests


@dg.sensor(
    jobs=[mars_manifest_job, mars_photos_job, mars_traverse_job],
    minimum_interval_seconds=30,
    default_status=SENSOR_DEFAULT_STATUS,
    description="Reads Mars requests exactly once (refused ones with the reason in raw.mars_request_rejects), adds "
    "their sols as partitions and asks for the rover's manifest, then its photos over the sols, then its traverse.",
)
def mars_requests_sensor(
    context: dg.SensorEvaluationContext,
    settings: dg.ResourceParam[Settings],
    event_log: dg.ResourceParam[EventLog],
    lakehouse: dg.ResourceParam[Lakehouse],
) -> dg.SensorResult | dg.SkipReason:
    topic = settings.mars_topic
    if not event_log.partitions(topic):
        return dg.SkipReason(f"{topic}: the topic does not exist yet (no request was published)")
    batch = INBOX.read(event_log, lakehouse, topic)
    if not batch.accepted and not batch.refused:
        return dg.SkipReason(f"{topic}: no new requests")
    new = INBOX.commit(lakehouse, topic, batch, datetime.now(UTC))
    order = add_sols(context.instance, (sol for request in new for sol in request.sols))
    runs: list[dg.RunRequest] = []
    for request in new:
        tags = {REQUEST_TAG: request.request_id}
        rid = request.request_id
        runs.append(
            dg.RunRequest(
                job_name=mars_manifest_job.name, run_key=f"{rid}:manifest", partition_key=request.rover, tags=tags
            )
        )
        runs += sol_range_requests(mars_photos_job.name, request.rover, request.sols, order, f"{rid}:photos", tags)
        if request.traverse:
            runs.append(
                dg.RunRequest(
                    job_name=mars_traverse_job.name, run_key=f"{rid}:traverse", partition_key=request.rover, tags=tags
                )
            )
    refused = len(batch.accepted) + len(batch.refused) - len(new)
    context.log.info(f"{topic}: {len(new)} requests accepted, {refused} refused")
    return dg.SensorResult(run_requests=runs)


@dataclass
class Landed:
    """What one tick saw land, by kind."""

    manifests: set[str] = field(default_factory=set)
    waypoints: set[str] = field(default_factory=set)
    photos: dict[str, set[int]] = field(default_factory=dict)
    last_offset: int = -1


def landed_responses(records: Iterable[object], bucket: str) -> Landed:
    landed = Landed()
    for record in records:
        landed.last_offset = max(landed.last_offset, record.offset)  # type: ignore[attr-defined]
        try:
            events = parse_object_events(record.value)  # type: ignore[attr-defined]
        except ObjectEventError:
            continue  # the scene sensor records events it cannot read; they are none of this sensor's business
        for event in events:
            what = parse_landing_key(event.key) if event.bucket == bucket else None
            if what is None:
                continue
            if what.kind == MANIFEST:
                landed.manifests.add(what.rover)
            elif what.kind == WAYPOINTS:
                landed.waypoints.add(what.rover)
            elif what.kind == PHOTOS and what.sol is not None:
                landed.photos.setdefault(what.rover, set()).add(what.sol)
    return landed


@dg.sensor(
    jobs=[mars_bronze_manifest_job, mars_bronze_photos_job, mars_bronze_waypoints_job],
    minimum_interval_seconds=30,
    default_status=SENSOR_DEFAULT_STATUS,
    description="Follows the object-events topic for responses landed under mars-api/ and asks for the bronze "
    "partitions of what landed: a rover's manifest first, then its sols' photos (with their images and STAC "
    "items), then its traverse.",
)
def mars_landing_sensor(
    context: dg.SensorEvaluationContext,
    settings: dg.ResourceParam[Settings],
    event_log: dg.ResourceParam[EventLog],
    landing_store: dg.ResourceParam[ObjectStore],
) -> dg.SensorResult | dg.SkipReason:
    topic = settings.object_events_topic
    partitions = event_log.partitions(topic)
    if not partitions:
        return dg.SkipReason(f"{topic}: the topic does not exist yet (nothing landed)")
    offsets = {int(p): int(o) for p, o in json.loads(context.cursor or "{}").items()}
    start = {p: offsets.get(p, 0) for p in partitions}
    records = event_log.read(topic, start, MAX_EVENTS_PER_TICK, timeout_s=event_log.poll_wait(READ_WAIT_S))
    if not records:
        return dg.SkipReason(f"{topic}: nothing new")
    for record in records:
        start[record.partition] = max(start[record.partition], record.offset + 1)
    cursor = json.dumps({str(p): o for p, o in sorted(start.items())})
    landed = landed_responses(records, landing_store.bucket)
    order = add_sols(context.instance, (sol for sols in landed.photos.values() for sol in sols))
    mark = "-".join(f"{p}.{o}" for p, o in sorted(start.items()))
    runs = [
        dg.RunRequest(job_name=mars_bronze_manifest_job.name, run_key=f"manifest:{rover}:{mark}", partition_key=rover)
        for rover in sorted(landed.manifests)
    ]
    for rover, sols in sorted(landed.photos.items()):
        runs += sol_range_requests(mars_bronze_photos_job.name, rover, sols, order, f"photos:{rover}:{mark}", {})
    runs += [
        dg.RunRequest(job_name=mars_bronze_waypoints_job.name, run_key=f"waypoints:{rover}:{mark}", partition_key=rover)
        for rover in sorted(landed.waypoints)
    ]
    if not runs:
        return dg.SensorResult(cursor=cursor, skip_reason=f"{topic}: {len(records)} events, none under mars-api/")
    return dg.SensorResult(run_requests=runs, cursor=cursor)
