"""The downloader asset: ``raw/acquisitions``, one dynamic partition per acquisition request.

A run reads its request (written by the request sensor to ``raw.acquisition_requests``), resolves the AOI and
the source, and lets ``download.Downloader`` search, skip, read windows and land files. Its rows replace the
partition's rows of ``raw.acquisitions``; the landed objects are announced on the object-events topic when the
landing store does not announce uploads itself (embedded mode), so the scene path starts as for any upload.
"""

import dagster as dg
import pyarrow as pa

from satlake.acquisition.aoi import AoiError
from satlake.acquisition.aoi_table import get_aoi
from satlake.acquisition.download import LANDED, REJECTED, SKIPPED, AcquisitionPlan, Downloader, landed_items
from satlake.acquisition.request import checked_request_id, parse_request
from satlake.acquisition.schedules import SEARCHED
from satlake.acquisition.sources import SourceError, resolve_source
from satlake.acquisition.tables import ACQUISITION_REQUESTS, ACQUISITIONS, ACQUISITIONS_SCHEMA
from satlake.resources.event_log import EventLog
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.object_events import ANNOUNCEMENT_WAIT_S, announce_objects, wait_for_announcements
from satlake.resources.object_store import ObjectStore
from satlake.settings import Settings

ACQUISITION_PARTITIONS = dg.DynamicPartitionsDefinition(name="acquisition_requests")
ACQUISITIONS_KEY = dg.AssetKey(["raw", "acquisitions"])
REQUEST_TAG = "satlake/acquisition_request"


def _replace_request_rows(lakehouse: Lakehouse, request_id: str, rows: list[dict[str, object]]) -> int:
    # Request ids match the request schema's pattern (letters, digits, '.', '_', '-'): safe inside quotes.
    table = pa.Table.from_pylist(rows, schema=ACQUISITIONS_SCHEMA)
    predicate = f"request_id = '{checked_request_id(request_id)}'"
    return lakehouse.replace_where(ACQUISITIONS, table, predicate, partition_by=[], retries=8)


@dg.asset(
    key=ACQUISITIONS_KEY,
    group_name="acquisition",
    kinds={"delta", "stac"},
    partitions_def=ACQUISITION_PARTITIONS,
    pool="acquisition",
    description="One row per source item of a request (landed, skipped or rejected, with the reason, bytes fetched "
    "and where it landed) plus one for the search; the items are kept as received under raw/acquisitions/items/ "
    "and the bands' AOI windows land in the landing area as <source>/<collection>/<geohash>/<date>/bbox_.../"
    "<item>/<band>.tif with scene.json last.",
    check_specs=[
        dg.AssetCheckSpec("searched_to_the_end", asset=ACQUISITIONS_KEY, description="the search was not cut off"),
    ],
)
def raw_acquisitions(
    context: dg.AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    lakehouse: dg.ResourceParam[Lakehouse],
    event_log: dg.ResourceParam[EventLog],
    object_store: dg.ResourceParam[ObjectStore],
    landing_store: dg.ResourceParam[ObjectStore],
) -> dg.MaterializeResult:
    request_id = context.partition_key
    requests = lakehouse.read(ACQUISITION_REQUESTS, filters=[("request_id", "=", request_id)])
    if requests is None or not requests.num_rows:
        raise dg.Failure(f"request {request_id!r} is not in raw.acquisition_requests; the request sensor adds it")
    request = parse_request(requests.column("request_json")[0].as_py())
    earlier = lakehouse.read(ACQUISITIONS, filters=[("aoi", "=", request.aoi)])
    landed_before = landed_items([r for r in (earlier.to_pylist() if earlier is not None else [])
                                  if r["request_id"] != request_id])  # fmt: skip
    try:
        aoi = get_aoi(lakehouse, request.aoi)
        source = resolve_source(settings, request.source or aoi.source)
    except (AoiError, SourceError) as error:
        rows = [_refused_row(request_id, request.aoi, request.source or "-", str(error))]
        _replace_request_rows(lakehouse, request_id, rows)
        context.log.error(f"request {request_id}: {error}")
        return _result(rows, request_id, searched=False, requests_made=0)
    downloader = Downloader(
        AcquisitionPlan.of(request, aoi, source), settings, object_store, landing_store, landed_before, context.log.info
    )
    topic = settings.object_events_topic
    before = event_log.end_offsets(topic) if event_log.partitions(topic) else {}
    report = downloader.run()
    _replace_request_rows(lakehouse, request_id, report.rows)
    if report.landed and not landing_store.announces_uploads:
        announce_objects(event_log, topic, landing_store.bucket, report.landed)
    elif report.landed:
        # MinIO announces each upload a moment after it: the run ends once they are on the topic, so the next
        # pass of the scene sensor sees the scenes this request landed.
        arrived = wait_for_announcements(event_log, topic, before, len(report.landed), ANNOUNCEMENT_WAIT_S)
        if arrived < len(report.landed):
            context.log.warning(f"only {arrived} of {len(report.landed)} landed objects announced on {topic} so far")
    searched = any(row["status"] == SEARCHED for row in report.rows)
    for row in report.rows:
        if row["status"] == REJECTED:
            context.log.warning(f"request {request_id}: {row['item_id'] or 'search'}: {row['reason']}")
    return _result(report.rows, request_id, searched, report.requests_made)


def _refused_row(request_id: str, aoi: str, source: str, reason: str) -> dict[str, object]:
    from datetime import UTC, datetime

    return {"request_id": request_id, "aoi": aoi, "source": source, "item_id": None, "status": REJECTED,
            "reason": reason, "bytes_fetched": 0, "acquired_at": datetime.now(UTC)}  # fmt: skip


def _result(rows: list[dict[str, object]], request_id: str, searched: bool, requests_made: int) -> dg.MaterializeResult:
    counts = {status: sum(1 for r in rows if r.get("item_id") is not None and r["status"] == status)
              for status in (LANDED, SKIPPED, REJECTED)}  # fmt: skip
    fetched = sum(int(r.get("bytes_fetched") or 0) for r in rows)  # type: ignore[call-overload]
    source_bytes = sum(int(r.get("source_bytes") or 0) for r in rows)  # type: ignore[call-overload]
    search_row = next((r for r in rows if r.get("item_id") is None), None)
    reason = str(search_row["reason"]) if search_row and search_row.get("reason") else ""
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            **{f"items_{status}": count for status, count in counts.items()},
            "bytes_fetched": fetched,
            "source_bytes": source_bytes,
            "http_requests": requests_made,
            "scenes": dg.MetadataValue.json(sorted(str(r["scene_id"]) for r in rows if r.get("scene_id"))),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="searched_to_the_end",
                passed=searched,
                severity=dg.AssetCheckSeverity.WARN,
                description=reason or f"request {request_id}",
            )
        ],
    )
