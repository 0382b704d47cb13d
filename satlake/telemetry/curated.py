"""Curated telemetry: the dbt models (dbt-duckdb) run for a window of days, then published as Delta tables.

dbt computes in its DuckDB warehouse; after a successful build, each model's rows for the window replace the
same window in ``lake/<schema>/<model>``. The Delta tables are what Trino, DuckDB and users read.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from satlake.partitions import DAILY_PARTITIONS, partition_dates
from satlake.resources.lakehouse import Lakehouse, TableRef
from satlake.settings import Settings
from satlake.telemetry.dbt_launcher import dbt_executable

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt"
DBT_TARGET_DIR = DBT_PROJECT_DIR / "target"
MANIFEST_PATH = DBT_TARGET_DIR / "manifest.json"

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


def dbt_environment(settings: Settings, lake_uri: str) -> dict[str, str]:
    """Environment the dbt profile reads: where the lake and dbt's DuckDB warehouse are, and S3 access."""
    env = {
        "SATLAKE_LAKE_URI": lake_uri,
        "SATLAKE_DUCKDB_PATH": str(settings.root / "warehouse" / "dbt.duckdb"),
        "SATLAKE_S3_ENDPOINT": settings.s3_endpoint,
        "SATLAKE_S3_REGION": settings.s3_region,
    }
    if settings.s3_access_key and settings.s3_secret_key:
        # deltalake (dbt-duckdb's delta plugin) reads credentials from the environment; they never enter the
        # dbt manifest.
        env |= {"AWS_ACCESS_KEY_ID": settings.s3_access_key, "AWS_SECRET_ACCESS_KEY": settings.s3_secret_key}
    return env


def dbt_target(settings: Settings) -> str:
    return settings.mode.value


def _project_files_newer_than(path: Path) -> bool:
    stamp = path.stat().st_mtime
    watched = [
        DBT_PROJECT_DIR / "dbt_project.yml",
        *DBT_PROJECT_DIR.glob("models/**/*"),
        *DBT_PROJECT_DIR.glob("macros/**/*"),
    ]
    return any(p.is_file() and p.stat().st_mtime > stamp for p in watched)


def ensure_dbt_manifest() -> Path:
    """Parse the dbt project when its manifest is missing or older than the models (a few seconds)."""
    if MANIFEST_PATH.exists() and not _project_files_newer_than(MANIFEST_PATH):
        return MANIFEST_PATH
    env = {**os.environ, "SATLAKE_LAKE_URI": "/nonexistent", "SATLAKE_DUCKDB_PATH": ":memory:"}
    result = subprocess.run(
        [sys.executable, "-c", "from dbt.cli.main import cli; cli()", "parse", "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR), "--target", "embedded", "--quiet"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0 or not MANIFEST_PATH.exists():
        raise RuntimeError(f"dbt parse of {DBT_PROJECT_DIR} failed:\n{result.stdout}\n{result.stderr}")
    return MANIFEST_PATH


class SatlakeDbtTranslator(DagsterDbtTranslator):
    """Asset keys ``<schema>/<model>`` (``silver/telemetry_clean``) and sources ``<source>/<table>``."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str:
        return "telemetry"

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition:
        return FOLLOW_UPSTREAM_DAYS


def published_models(manifest: Mapping[str, Any]) -> dict[str, TableRef]:
    """dbt model name -> the Delta table it is published to."""
    return {
        node["name"]: TableRef(node["schema"], node["name"])
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
    }


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
    models = published_models(manifest)

    @dbt_assets(
        manifest=manifest_path,
        partitions_def=DAILY_PARTITIONS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=SatlakeDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
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


def build_dbt_resource(settings: Settings) -> DbtCliResource:
    return DbtCliResource(
        project_dir=str(DBT_PROJECT_DIR),
        profiles_dir=str(DBT_PROJECT_DIR),
        target=dbt_target(settings),
        dbt_executable=dbt_executable(),
    )
