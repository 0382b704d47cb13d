"""The sensor that turns acquisition requests on the requests topic into request partitions and runs.

Each tick reads the records after the offsets the requests tables have committed, validates each against the
request schema, and writes the accepted ones to ``raw.acquisition_requests`` and the refused ones (with the
reason) to ``raw.acquisition_request_rejects``. Each table records the next offset per topic partition as a
Delta application transaction in the same commit as its rows, so a tick that dies half way and is run again
writes nothing twice and skips nothing. Every accepted request becomes one dynamic partition of
``raw/acquisitions`` and one run, keyed by the request id (a request id published twice is acquired once).
"""

from datetime import UTC, datetime

import dagster as dg

from satlake.acquisition.assets import ACQUISITION_PARTITIONS, ACQUISITIONS_KEY, REQUEST_TAG
from satlake.acquisition.request import AcquisitionRequest, parse_request
from satlake.acquisition.tables import ACQUISITION_REJECTS, ACQUISITION_REQUESTS, ACQUISITION_REQUESTS_SCHEMA
from satlake.automation import SENSOR_DEFAULT_STATUS
from satlake.resources.event_log import EventLog
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.request_inbox import RequestBatch, RequestInbox, offsets_app_id  # noqa: F401 (tests)
from satlake.settings import Settings

acquisition_job = dg.define_asset_job(
    "acquisition_job",
    selection=dg.AssetSelection.assets(ACQUISITIONS_KEY),
    description="Search a STAC API for one request's scenes and land the windows of their bands",
)

INBOX: RequestInbox[AcquisitionRequest] = RequestInbox(
    accepted=ACQUISITION_REQUESTS,
    accepted_schema=ACQUISITION_REQUESTS_SCHEMA,
    rejects=ACQUISITION_REJECTS,
    parse=parse_request,
    request_id=lambda request: request.request_id,
    columns=lambda request: {"request_id": request.request_id, "aoi": request.aoi, "request_json": request.to_json()},
)


def read_requests(event_log: EventLog, lakehouse: Lakehouse, topic: str) -> RequestBatch[AcquisitionRequest]:
    """Read and validate the records after the offsets both requests tables committed."""
    return INBOX.read(event_log, lakehouse, topic)


def commit_requests(
    lakehouse: Lakehouse, topic: str, batch: RequestBatch[AcquisitionRequest], now: datetime
) -> list[str]:
    """Write the batch to both tables; returns the ids new to ``raw.acquisition_requests`` (a request id received
    before is refused as a duplicate, so it is acquired once)."""
    return [request.request_id for request in INBOX.commit(lakehouse, topic, batch, now)]


@dg.sensor(
    job=acquisition_job,
    minimum_interval_seconds=30,
    default_status=SENSOR_DEFAULT_STATUS,
    description="Reads acquisition requests from the requests topic exactly once, refuses invalid ones with the "
    "reason (raw.acquisition_request_rejects), and adds a partition and requests a run per accepted request.",
)
def acquisition_requests_sensor(
    context: dg.SensorEvaluationContext,
    settings: dg.ResourceParam[Settings],
    event_log: dg.ResourceParam[EventLog],
    lakehouse: dg.ResourceParam[Lakehouse],
) -> dg.SensorResult | dg.SkipReason:
    topic = settings.acquisition_topic
    if not event_log.partitions(topic):
        return dg.SkipReason(f"{topic}: the topic does not exist yet (no request was published)")
    batch = read_requests(event_log, lakehouse, topic)
    if not batch.accepted and not batch.refused:
        return dg.SkipReason(f"{topic}: no new requests")
    new_ids = commit_requests(lakehouse, topic, batch, datetime.now(UTC))
    existing = set(context.instance.get_dynamic_partitions(ACQUISITION_PARTITIONS.name))
    to_add = sorted(set(new_ids) - existing)
    if to_add:  # as in the scene sensor: `satlake run` launches without the daemon applying the request below
        context.instance.add_dynamic_partitions(ACQUISITION_PARTITIONS.name, to_add)
    context.log.info(
        f"{topic}: offsets now {batch.next_offsets}; {len(new_ids)} requests accepted, "
        f"{len(batch.accepted) + len(batch.refused) - len(new_ids)} refused"
    )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=request_id, partition_key=request_id, tags={REQUEST_TAG: request_id})
            for request_id in new_ids
        ],
        dynamic_partitions_requests=[ACQUISITION_PARTITIONS.build_add_request(to_add)] if to_add else [],
    )
