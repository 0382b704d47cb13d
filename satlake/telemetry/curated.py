"""Curated telemetry: the dbt models (dbt-duckdb) run for a window of days, then published as Delta tables.

dbt computes in its DuckDB warehouse; after a successful build, each model's rows for the window replace the
same window in ``lake/<schema>/<model>``. The Delta tables are what Trino, DuckDB and users read.
"""

import json
import os
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from satlake.partitions import DAILY_PARTITIONS, partition_dates
from satlake.resources.dbt_project import (
    SatlakeDbtTranslator,
    dbt_environment,
    ensure_dbt_manifest,
    published_models,
)
from satlake.resources.lakehouse import Lakehouse, TableRef
from satlake.settings import Settings

# The telemetry models of the shared dbt project carry this tag (dbt_project.yml); the Mars models are another
# definition's (satlake/mars/dbt.py).
TELEMETRY_TAG = "telemetry"

# Daily partitions follow their upstream days whenever those are re-built, not only the latest day (as
# `eager()` would), so a late event re-run in bronze flows through to the curated tables; a day whose upstream
# exists but which was never built is built too. The open day (today, still receiving telemetry) is the
# exception: its models are day-wide statistics (medians, coverage, the day's anomaly scale), so rebuilding
# them after every micro-batch would redo the whole day's work each time. It is built as soon as its first
# bronze rows exist, then refreshed once per OPEN_DAY_REFRESH_CRON tick; once the day closes, its final
# build follows at the next evaluation.
OPEN_DAY_REFRESH_CRON = "0 * * * *"
_UPSTREAM_CHANGED = (dg.AutomationCondition.missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
_OPEN_DAY = dg.AutomationCondition.in_latest_time_window()
FOLLOW_UPSTREAM_DAYS = (
    (
        (~_OPEN_DAY & _UPSTREAM_CHANGED)
        | (
            _OPEN_DAY
            & (
                dg.AutomationCondition.missing()
                | (
                    _UPSTREAM_CHANGED
                    & dg.AutomationCondition.cron_tick_passed(OPEN_DAY_REFRESH_CRON).since_last_handled()
                )
            )
        )
    )
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("follow upstream days (the open day hourly)")


def publish_models_to_delta(
    duckdb_path: Path, models: Mapping[str, TableRef], lakehouse: Lakehouse, first: date, last: date
) -> dict[str, int]:
    """Copy each model's rows for [first, last] from dbt's DuckDB warehouse into its Delta table, replacing
    that window only. Returns the rows written per model."""
    written: dict[str, int] = {}
    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")  # timestamptz columns come out labelled UTC, like bronze
        for model, table in models.items():
            rows = con.execute(
                f'SELECT * FROM "{table.zone}"."{model}" WHERE event_date BETWEEN ? AND ? ORDER BY ALL',
                [first, last],
            ).to_arrow_table()
            lakehouse.replace_date_partitions(
                table, rows, partition_column="event_date", first=first, last=last,
                commit_metadata={"satlake.window": f"{first}..{last}", "satlake.dbt_model": model},
            )  # fmt: skip
            written[model] = rows.num_rows
    finally:
        con.close()
    return written


def build_curated_assets(settings: Settings) -> dg.AssetsDefinition:
    manifest_path = ensure_dbt_manifest()
    manifest = json.loads(manifest_path.read_text())
    models = published_models(manifest, tag=TELEMETRY_TAG)

    @dbt_assets(
        manifest=manifest_path,
        partitions_def=DAILY_PARTITIONS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        select=f"tag:{TELEMETRY_TAG}",
        dagster_dbt_translator=SatlakeDbtTranslator(
            FOLLOW_UPSTREAM_DAYS, settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
        ),
        name="curated_telemetry",
        pool="dbt_warehouse",
    )
    def curated_telemetry(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, lakehouse: dg.ResourceParam[Lakehouse]
    ) -> Iterator[Any]:
        first, last = partition_dates(context)
        environment = dbt_environment(settings, lakehouse.root_uri)
        Path(environment["SATLAKE_DUCKDB_PATH"]).parent.mkdir(parents=True, exist_ok=True)
        os.environ.update(environment)
        dbt_vars = json.dumps({"min_date": first.isoformat(), "max_date": last.isoformat()})
        events = list(dbt.cli(["build", "--vars", dbt_vars], context=context).stream())
        selected = {
            name: table for name, table in models.items()
            if dg.AssetKey([table.zone, name]) in context.selected_asset_keys
        }  # fmt: skip
        written = publish_models_to_delta(Path(environment["SATLAKE_DUCKDB_PATH"]), selected, lakehouse, first, last)
        context.log.info(f"published {first}..{last} to Delta: {written}")
        for event in events:
            if isinstance(event, dg.Output):
                name = context.asset_key_for_output(event.output_name).path[-1]
                if name in written:
                    event = event.with_metadata({**event.metadata, "dagster/row_count": written[name],
                                                 "delta_uri": lakehouse.uri(models[name]),
                                                 "window": f"{first}..{last}"})  # fmt: skip
            yield event

    return curated_telemetry
