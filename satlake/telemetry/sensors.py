"""Sensors that start telemetry work: new events in the log, and the bronze days a new batch touched."""

import dagster as dg

from satlake.automation import SENSOR_DEFAULT_STATUS
from satlake.partitions import DAILY_PARTITIONS
from satlake.resources.event_log import EventLog
from satlake.resources.lakehouse import Lakehouse
from satlake.settings import Settings
from satlake.telemetry.assets import BRONZE_KEY, RAW_EVENTS_KEY, REJECTS_KEY
from satlake.telemetry.ingest import pending_event_counts

ingest_telemetry_job = dg.define_asset_job(
    "ingest_telemetry_job",
    selection=dg.AssetSelection.assets(RAW_EVENTS_KEY),
    description="Consume new events",
)
bronze_telemetry_job = dg.define_asset_job(
    "bronze_telemetry_job",
    selection=dg.AssetSelection.assets(BRONZE_KEY, REJECTS_KEY),
    description="Decode and validate daily partitions of telemetry",
)


UNFINISHED_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dg.sensor(
    job=ingest_telemetry_job,
    minimum_interval_seconds=30,
    default_status=SENSOR_DEFAULT_STATUS,
    description="Starts ingestion when the log holds events the lakehouse has not committed and no ingestion "
    "run is queued or running. Each tick reads only end offsets and the raw table's committed offsets, never "
    "the events.",
)
def telemetry_events_sensor(
    context: dg.SensorEvaluationContext,
    settings: dg.ResourceParam[Settings],
    event_log: dg.ResourceParam[EventLog],
    lakehouse: dg.ResourceParam[Lakehouse],
) -> dg.SensorResult | dg.SkipReason:
    pending = pending_event_counts(event_log, lakehouse, settings.telemetry_topic)
    waiting = sum(pending.values())
    if waiting == 0:
        return dg.SkipReason(f"{settings.telemetry_topic}: no events waiting")
    # What is waiting is measured against the raw table, not remembered, so no run key: a key made of log
    # positions would never start a run again for events the table lost (a restored or recreated lake). A
    # backlog still starts one run at a time.
    unfinished = context.instance.get_run_records(
        dg.RunsFilter(job_name=ingest_telemetry_job.name, statuses=UNFINISHED_RUN_STATUSES), limit=1
    )
    if unfinished:
        run = unfinished[0].dagster_run
        return dg.SkipReason(
            f"{settings.telemetry_topic}: {waiting} events waiting for ingestion run {run.run_id[:8]} "
            f"({run.status.value.lower()})"
        )
    return dg.SensorResult(run_requests=[dg.RunRequest(tags={"satlake/pending_events": str(waiting)})])


@dg.sensor(
    job=bronze_telemetry_job,
    minimum_interval_seconds=30,
    default_status=SENSOR_DEFAULT_STATUS,
    description="After each ingestion, brings the bronze days its events belong to up to date (late events "
    "included): each run adds only the rows of the new batches.",
)
def bronze_days_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW_EVENTS_KEY, after_storage_id=after), limit=1000, ascending=True
    ).records
    if not records:
        return dg.SkipReason("no ingestion since the last tick")
    days: set[str] = set()
    for record in records:
        materialization = record.asset_materialization
        value = materialization.metadata.get("event_dates") if materialization else None
        days.update(value.value if value is not None else [])  # type: ignore[arg-type]
    cursor = str(records[-1].storage_id)
    partitions = set(DAILY_PARTITIONS.get_partition_keys())
    outside = sorted(days - partitions)
    if outside:
        context.log.warning(
            f"telemetry of {', '.join(outside)} lies outside the daily partitions ({DAILY_PARTITIONS.start:%Y-%m-%d} "
            "to today): its raw rows are kept; set SATLAKE_PARTITIONS_START to an earlier day to build those days"
        )
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"{cursor}:{day}", partition_key=day) for day in sorted(days & partitions)],
        cursor=cursor,
    )
