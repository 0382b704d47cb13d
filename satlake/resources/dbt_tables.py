"""dbt models rebuilt whole every run, as Dagster assets: the Mars rover models (tag ``mars``) and the ground
segment's (tag ``ground``). Unlike the telemetry models they are not partitioned: each run rebuilds them in
dbt's DuckDB warehouse from the bronze Delta tables, then overwrites their Delta tables
``lake/<schema>/<model>``, which are what Trino, DuckDB and users read.
"""

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets
from deltalake import CommitProperties, write_deltalake

from satlake.resources.dbt_project import (
    SatlakeDbtTranslator,
    dbt_environment,
    ensure_dbt_manifest,
    published_models,
)
from satlake.resources.lakehouse import DEFAULT_TABLE_CONFIGURATION, Lakehouse, TableRef
from satlake.settings import Settings

# Bronze is partitioned (by rover and sol); these models read all of it. They are built once every bronze table
# they read holds some rows, then again whenever any of them (or an upstream model in the same run) is updated,
# but never while a bronze run is still writing: a fetch of many sols is one rebuild once it ends, not one per
# sol. Unlike eager(), partitions of bronze that were never fetched (sols nobody asked for) do not hold them back.
FOLLOW_BRONZE = (
    (dg.AutomationCondition.missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
    & dg.AutomationCondition.all_deps_match(
        ~dg.AutomationCondition.missing() | dg.AutomationCondition.will_be_requested()
    )
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("follow bronze (whole tables, once its runs end)")


class BronzeMissing(RuntimeError):
    """A bronze table the models read does not exist yet."""


def bronze_sources(manifest: Mapping[str, Any], tag: str) -> list[TableRef]:
    """The bronze tables (dbt sources) the models carrying ``tag`` read, as lakehouse tables."""
    source_ids = {
        dep
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and tag in node["tags"]
        for dep in node["depends_on"]["nodes"]
        if dep.startswith("source.")
    }
    sources = (manifest["sources"][source_id] for source_id in source_ids)
    return sorted(TableRef(source["source_name"], source["name"]) for source in sources)


def require_bronze(lakehouse: Lakehouse, tables: list[TableRef], *, models: str, how: str) -> None:
    """Raise BronzeMissing naming every table of ``tables`` that is not in the lake yet; ``models`` names the
    models ("the Mars models"), ``how`` says how their bronze gets written."""
    missing = [table for table in tables if not lakehouse.exists(table)]
    if missing:
        raise BronzeMissing(
            f"{models} read {', '.join(map(str, missing))}, which {'does' if len(missing) == 1 else 'do'} "
            f"not exist in {lakehouse.root_uri} yet: materialize {', '.join(map(str, missing))} first ({how}), "
            "then rerun"
        )


def publish_tables_to_delta(duckdb_path: Path, models: Mapping[str, TableRef], lakehouse: Lakehouse) -> dict[str, int]:
    """Replace each model's Delta table with the model's whole table from dbt's DuckDB warehouse, in one commit
    per table (readers see the old table or the new one, never a mix); the table takes the model's schema, so a
    column dropped or retyped in the model goes from Delta too. Returns the rows written per model."""
    written: dict[str, int] = {}
    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")  # timestamptz columns come out labelled UTC, like bronze
        for model, table in models.items():
            rows = con.execute(f'SELECT * FROM "{table.zone}"."{model}" ORDER BY ALL').to_arrow_table()
            existing = lakehouse.open(table)
            write_deltalake(
                existing if existing is not None else lakehouse.uri(table),
                rows,
                mode="overwrite",
                schema_mode="overwrite",
                storage_options=None if existing is not None else lakehouse.storage_options or None,
                configuration=None if existing is not None else DEFAULT_TABLE_CONFIGURATION,
                commit_properties=CommitProperties(custom_metadata={"satlake.dbt_model": model}),
            )
            lakehouse.committed(table, existing)
            written[model] = rows.num_rows
    finally:
        con.close()
    return written


def build_whole_table_dbt_assets(
    settings: Settings, *, tag: str, name: str, models_label: str, how: str
) -> dg.AssetsDefinition:
    """The dbt models tagged ``tag`` as one subsettable multi-asset named ``name``: keys ``<schema>/<model>``,
    deps on the bronze tables they read, the dbt tests as checks, automation FOLLOW_BRONZE. Needs the resources
    ``dbt`` (satlake.resources.dbt_project.build_dbt_resource) and ``lakehouse``."""
    manifest_path = ensure_dbt_manifest()
    manifest = json.loads(manifest_path.read_text())
    models = published_models(manifest, tag=tag)
    bronze = bronze_sources(manifest, tag)

    @dbt_assets(
        manifest=manifest_path,
        select=f"tag:{tag}",
        dagster_dbt_translator=SatlakeDbtTranslator(
            FOLLOW_BRONZE, settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
        ),
        name=name,
        pool="dbt_warehouse",
    )
    def whole_tables(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, lakehouse: dg.ResourceParam[Lakehouse]
    ) -> Iterator[Any]:
        require_bronze(lakehouse, bronze, models=models_label, how=how)
        environment = dbt_environment(settings, lakehouse.root_uri)
        Path(environment["SATLAKE_DUCKDB_PATH"]).parent.mkdir(parents=True, exist_ok=True)
        os.environ.update(environment)
        events = list(dbt.cli(["build"], context=context).stream())
        selected = {
            name: table for name, table in models.items()
            if dg.AssetKey([table.zone, name]) in context.selected_asset_keys
        }  # fmt: skip
        written = publish_tables_to_delta(Path(environment["SATLAKE_DUCKDB_PATH"]), selected, lakehouse)
        context.log.info(f"published {models_label} to Delta: {written}")
        for event in events:
            if isinstance(event, dg.Output):
                model = context.asset_key_for_output(event.output_name).path[-1]
                if model in written:
                    event = event.with_metadata({**event.metadata, "dagster/row_count": written[model],
                                                 "delta_uri": lakehouse.uri(models[model])})  # fmt: skip
            yield event

    return whole_tables
