"""satlake's dbt project (``dbt/``) as the domains' dbt assets use it: where it is, its parsed manifest, the
environment and target its profile reads, the ``dbt`` resource, and how dbt nodes become Dagster assets.

The project holds every domain's models (telemetry's daily-windowed ones, the Mars rovers' whole tables); each
domain's ``@dbt_assets`` selects its own by tag. This module lives below the domains because both use it and a
domain never imports another.
"""

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource

from satlake.resources.dbt_launcher import dbt_executable
from satlake.resources.lakehouse import TableRef
from satlake.settings import Settings

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt"
DBT_TARGET_DIR = DBT_PROJECT_DIR / "target"
MANIFEST_PATH = DBT_TARGET_DIR / "manifest.json"


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


def build_dbt_resource(settings: Settings) -> DbtCliResource:
    return DbtCliResource(
        project_dir=str(DBT_PROJECT_DIR),
        profiles_dir=str(DBT_PROJECT_DIR),
        target=dbt_target(settings),
        dbt_executable=dbt_executable(),
    )


def published_models(manifest: Mapping[str, Any], tag: str | None = None) -> dict[str, TableRef]:
    """dbt model name -> the Delta table it is published to; with ``tag``, only the models carrying it."""
    return {
        node["name"]: TableRef(node["schema"], node["name"])
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and (tag is None or tag in node["tags"])
    }


class SatlakeDbtTranslator(DagsterDbtTranslator):
    """Asset keys ``<schema>/<model>`` (``silver/telemetry_clean``) and sources ``<source>/<table>``
    (``bronze/telemetry``, the bronze assets' own keys); the group is the model's ``meta.dagster.group``, else its
    first tag (the domain: ``telemetry``, ``mars``); every model gets ``automation_condition``."""

    def __init__(
        self, automation_condition: dg.AutomationCondition, settings: DagsterDbtTranslatorSettings | None = None
    ) -> None:
        super().__init__(settings=settings)
        self.automation_condition = automation_condition

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        group = super().get_group_name(dbt_resource_props)  # meta.dagster.group
        tags = dbt_resource_props.get("tags") or []
        return group or (tags[0] if tags else None)

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition:
        return self.automation_condition
