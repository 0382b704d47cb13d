"""Dagster wiring for the telemetry path: raw events from the log, daily bronze partitions and their checks.

The work itself lives in ``ingest``, ``bronze`` and ``checks``; these functions only call it and attach
metadata.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from satlake.partitions import DAILY_PARTITIONS, partition_dates
from satlake.reporting.plots import CHART_COLUMNS, telemetry_chart_markdown
from satlake.resources.event_log import EventLog
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.run_metrics import RunMetrics
from satlake.settings import Settings
from satlake.telemetry import checks
from satlake.telemetry.bronze_update import INCREMENTAL, REBUILD, BronzeUpdate, update_bronze
from satlake.telemetry.ingest import IngestBatch, ingest_until_caught_up
from satlake.telemetry.limits_file import load_limits
from satlake.telemetry.tables import (
    BRONZE_TELEMETRY,
    BRONZE_TELEMETRY_REJECTS,
    BRONZE_TELEMETRY_REJECTS_SCHEMA,
    BRONZE_TELEMETRY_SCHEMA,
    RAW_TELEMETRY_EVENTS,
    RAW_TELEMETRY_EVENTS_SCHEMA,
)

RAW_EVENTS_KEY = dg.AssetKey(["raw", "telemetry_events"])
BRONZE_KEY = dg.AssetKey(["bronze", "telemetry"])
REJECTS_KEY = dg.AssetKey(["bronze", "telemetry_rejects"])
INGEST_BATCH_SIZE = 50_000
# Run tag: rebuild bronze for the window from all its raw rows instead of adding only the new ones (backfills
# do this too).
REBUILD_TAG = "satlake/bronze_rebuild"


@dg.asset(
    key=RAW_EVENTS_KEY,
    group_name="telemetry",
    kinds={"delta", "kafka"},
    pool="telemetry_ingest",
    description="Telemetry events exactly as received from the log (payload bytes, topic, partition, offset, "
    "broker timestamp), appended exactly once: offsets are committed in the same Delta commit as the rows.",
    check_specs=[dg.AssetCheckSpec("schema_unchanged", asset=RAW_EVENTS_KEY)],
)
def raw_telemetry_events(
    context: dg.AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    event_log: dg.ResourceParam[EventLog],
    lakehouse: dg.ResourceParam[Lakehouse],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    metrics = RunMetrics.for_settings(settings, "raw_telemetry_events")  # served by `satlake metrics serve`

    def log_batch(batch: IngestBatch) -> None:
        metrics.batch_committed(batch)
        context.log.info(
            f"batch {batch.batch_id}: {batch.events} events, offsets {batch.start_offsets} -> "
            f"{batch.end_offsets}, days {[d.isoformat() for d in batch.event_dates]}, delta v{batch.delta_version}"
        )

    report = ingest_until_caught_up(
        event_log, lakehouse, settings.telemetry_topic, batch_size=INGEST_BATCH_SIZE, progress=log_batch
    )
    metrics.push()
    delta_table = lakehouse.open(RAW_TELEMETRY_EVENTS)
    yield dg.MaterializeResult(
        metadata={
            "events": report.events,
            "batches": len(report.batches),
            "event_dates": dg.MetadataValue.json([d.isoformat() for d in report.event_dates]),
            "end_offsets": dg.MetadataValue.json({str(p): o for b in report.batches for p, o in b.end_offsets.items()}),
            "events_per_second": round(report.events / report.seconds, 1) if report.seconds else 0.0,
            "delta_version": delta_table.version() if delta_table else -1,
            "uri": lakehouse.uri(RAW_TELEMETRY_EVENTS),
        }
    )
    yield _schema_check(RAW_EVENTS_KEY, delta_table, RAW_TELEMETRY_EVENTS_SCHEMA, nothing_written=report.events == 0)


def _schema_check(
    key: dg.AssetKey, delta_table: object | None, expected: pa.Schema, nothing_written: bool = False
) -> dg.AssetCheckResult:
    if delta_table is None and nothing_written:  # a run with nothing to write judges nothing: no false failure
        outcome = checks.CheckOutcome(True, "nothing written yet: the table is created with the first events")
    elif delta_table is None:
        outcome = checks.CheckOutcome(False, "the table has not been written yet")
    else:
        actual = delta_table.to_pyarrow_dataset().schema  # type: ignore[attr-defined]
        outcome = checks.check_schema_unchanged(actual, expected)
    return _result(key, "schema_unchanged", outcome, dg.AssetCheckSeverity.ERROR)


def _result(
    key: dg.AssetKey, name: str, outcome: checks.CheckOutcome, severity: dg.AssetCheckSeverity
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=outcome.passed,
        severity=severity,
        description=outcome.description,
        metadata={
            k: dg.MetadataValue.json(v) if isinstance(v, list | dict) else v for k, v in outcome.metadata.items()
        },
    )


BRONZE_CHECKS = [
    dg.AssetCheckSpec("keys_not_null_and_unique", asset=BRONZE_KEY, description="(satellite, timestamp) is a key"),
    dg.AssetCheckSpec("limit_alarms", asset=BRONZE_KEY,
                      description="limit alarms by severity and satellite; fails on a hard-limit breach or a "
                      "satellite over the limits file's max_critical_alarm_rate"),
    dg.AssetCheckSpec("row_count_reconciliation", asset=BRONZE_KEY,
                      description="per batch: events consumed = bronze rows + rejects"),
    dg.AssetCheckSpec("latest_partition_fresh", asset=BRONZE_KEY, description="newest reading under 6 h old"),
    dg.AssetCheckSpec("schema_unchanged", asset=BRONZE_KEY),
    dg.AssetCheckSpec("schema_unchanged", asset=REJECTS_KEY),
]  # fmt: skip


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            BRONZE_KEY,
            deps=[RAW_EVENTS_KEY],
            group_name="telemetry",
            kinds={"delta"},
            description="Every decoded reading, de-duplicated, one partition per UTC day of event time, with a limit "
            "alarm (severity, limit crossed) per measure from the mission's limits file. A run adds the rows of the "
            "raw batches committed since the day's last run (read from the raw table's change feed); backfills, "
            f"runs tagged {REBUILD_TAG}=true and days judged by other limits are rebuilt from all their raw rows.",
        ),
        dg.AssetSpec(
            REJECTS_KEY,
            deps=[RAW_EVENTS_KEY],
            group_name="telemetry",
            kinds={"delta"},
            description="Events that cannot be a reading (undecodable, no usable satellite name or time, a NaN or "
            "infinite value, a hard-limit breach, a duplicate): payload as received, log position, a reason.",
        ),
    ],
    partitions_def=DAILY_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=BRONZE_CHECKS,
    pool="bronze_telemetry",
    can_subset=False,
)
def bronze_telemetry(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings], lakehouse: dg.ResourceParam[Lakehouse]
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    first, last = partition_dates(context)
    tags = context.run.tags
    rebuild = tags.get(REBUILD_TAG) == "true" or "dagster/backfill" in tags
    limits = load_limits(settings.telemetry_limits_path)  # read each run: an edited file applies to the next
    update = update_bronze(lakehouse, first, last, limits=limits, rebuild=rebuild, say=context.log.info)
    partition = update.partition
    if update.mode != INCREMENTAL:
        context.log.info(
            f"{update.window} ({update.mode}{': ' + update.reason if update.reason else ''}): {update.raw.num_rows} "
            f"raw events -> {partition.rows.num_rows} bronze rows, {partition.rejects.num_rows} rejects "
            f"{partition.reject_counts}"
        )
    charts = _charts(lakehouse, update)
    common = {"window": update.window, "mode": update.mode, "raw_version": update.raw_version,
              "limits_version": limits.version, "limits_file": limits.source}  # fmt: skip
    yield dg.MaterializeResult(
        asset_key=BRONZE_KEY,
        metadata={"dagster/row_count": partition.rows.num_rows, "raw_events": update.raw.num_rows,
                  "alarms": dg.MetadataValue.json(alarm_counts(partition.rows)),
                  "delta_version": update.bronze_version if update.bronze_version is not None else -1, **common,
                  **{name: dg.MetadataValue.md(chart) for name, chart in charts.items()}},
    )  # fmt: skip
    yield dg.MaterializeResult(
        asset_key=REJECTS_KEY,
        metadata={"dagster/row_count": partition.rejects.num_rows,
                  "delta_version": update.rejects_version if update.rejects_version is not None else -1,
                  "reasons": dg.MetadataValue.json(partition.reject_counts), **common},
    )  # fmt: skip

    # Checks judge what is stored, read back from Delta, not the in-memory rows: the rows this update wrote
    # (the whole window after a rebuild) and, for uniqueness, every stored row in their span of event time.
    written, written_rejects, neighbourhood = _read_back(lakehouse, update)
    error, warn = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN
    yield _result(BRONZE_KEY, "keys_not_null_and_unique", checks.check_keys_not_null_and_unique(neighbourhood), error)
    alarms = checks.check_limit_alarms(written, limits, _window_alarms(lakehouse, update, written))
    yield _result(BRONZE_KEY, "limit_alarms", alarms, error)
    yield _result(
        BRONZE_KEY, "row_count_reconciliation",
        checks.check_row_count_reconciliation(update.raw, written, written_rejects), error,
    )  # fmt: skip
    yield _result(BRONZE_KEY, "latest_partition_fresh", _freshness(lakehouse), warn)
    yield _schema_check(BRONZE_KEY, lakehouse.open(BRONZE_TELEMETRY), BRONZE_TELEMETRY_SCHEMA)
    yield _schema_check(REJECTS_KEY, lakehouse.open(BRONZE_TELEMETRY_REJECTS), BRONZE_TELEMETRY_REJECTS_SCHEMA)


def alarm_counts(rows: pa.Table) -> dict[str, int]:
    """Readings by their worst alarm severity (readings within limits are not counted)."""
    counts = pc.value_counts(rows.column("alarm_severity").drop_null()).to_pylist() if rows.num_rows else []
    return dict(sorted((c["values"], c["counts"]) for c in counts))


def _charts(lakehouse: Lakehouse, update: BronzeUpdate) -> dict[str, str]:
    """Telemetry charts (temperature, battery, altitude, limit alarms marked) per satellite per day of the
    window, read back from the stored rows: what the asset page shows a person for the days this run judged."""
    window = [("event_date", ">=", update.first), ("event_date", "<=", update.last)]
    stored = lakehouse.read(BRONZE_TELEMETRY, filters=window, columns=CHART_COLUMNS)
    return telemetry_chart_markdown(stored) if stored is not None else {}


def _read_back(lakehouse: Lakehouse, update: BronzeUpdate) -> tuple[pa.Table, pa.Table, pa.Table]:
    """The stored bronze rows and rejects of the update's batches (the window's, after a rebuild), and the
    stored bronze rows in the span of event time the update wrote to."""
    window = [("event_date", ">=", update.first), ("event_date", "<=", update.last)]
    if update.mode == REBUILD:
        scope = window
    elif update.mode == INCREMENTAL and update.batch_ids:
        scope = [*window, ("batch_id", "in", update.batch_ids)]
    else:  # up to date: nothing was judged or written, so 0 consumed = 0 + 0
        return (BRONZE_TELEMETRY_SCHEMA.empty_table(), BRONZE_TELEMETRY_REJECTS_SCHEMA.empty_table(),
                BRONZE_TELEMETRY_SCHEMA.empty_table())  # fmt: skip
    written = lakehouse.read(BRONZE_TELEMETRY, filters=scope) or BRONZE_TELEMETRY_SCHEMA.empty_table()
    written_rejects = lakehouse.read(BRONZE_TELEMETRY_REJECTS, filters=scope)
    if written_rejects is None:
        written_rejects = BRONZE_TELEMETRY_REJECTS_SCHEMA.empty_table()
    if update.mode == REBUILD or written.num_rows == 0:
        return written, written_rejects, written
    span = pc.min_max(written.column("timestamp_ns"))
    neighbourhood = lakehouse.read(
        BRONZE_TELEMETRY,
        filters=[*window, ("timestamp_ns", ">=", span["min"].as_py()), ("timestamp_ns", "<=", span["max"].as_py())],
        columns=["satellite_name", "timestamp_ns"],
    )
    return written, written_rejects, neighbourhood if neighbourhood is not None else written


def _window_alarms(lakehouse: Lakehouse, update: BronzeUpdate, written: pa.Table) -> pa.Table:
    """Satellite and worst alarm of every stored reading of the update's days (the rows written, after a
    rebuild: they are the whole window). Two dictionary-encoded columns, whatever the size of the day."""
    if update.mode == REBUILD or written.num_rows == 0:
        return written.select(["satellite_name", "alarm_severity"])
    window = [("event_date", ">=", update.first), ("event_date", "<=", update.last)]
    stored = lakehouse.read(BRONZE_TELEMETRY, filters=window, columns=["satellite_name", "alarm_severity"])
    return stored if stored is not None else written.select(["satellite_name", "alarm_severity"])


def _freshness(lakehouse: Lakehouse) -> checks.CheckOutcome:
    """Judged on the newest event time in the table's file statistics: no data is read."""
    delta_table = lakehouse.open(BRONZE_TELEMETRY)
    latest = None
    if delta_table is not None:
        files = pa.table(delta_table.get_add_actions(flatten=True))
        if files.num_rows and "max.event_time" in files.column_names:
            latest = pc.max(files.column("max.event_time")).as_py()
    return checks.check_latest_partition_fresh(latest, datetime.now(UTC))
