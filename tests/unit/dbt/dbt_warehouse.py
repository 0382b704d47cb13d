"""The satlake dbt project run in process against a throwaway lake and DuckDB warehouse."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dbt.adapters.duckdb.connections import DuckDBConnectionManager
from dbt.cli.main import dbtRunner, dbtRunnerResult

from tests.unit.dbt.planted_telemetry import write_bronze

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt"
MODEL_TABLES = (
    "silver.telemetry_clean",
    "gold.telemetry_hourly",
    "gold.telemetry_anomalies",
    "gold.telemetry_daily_health",
)


class DbtRunFailed(AssertionError):
    """dbt did not finish cleanly; the message carries what dbt said about each failed node."""


@dataclass
class DbtWarehouse:
    """One DuckDB warehouse built by the satlake dbt project from one lake; dbt runs the models ``select``
    picks (each domain's Dagster definition selects its own tag, and the lake holds only that domain's bronze)."""

    lake_uri: Path
    duckdb_path: Path
    work_dir: Path
    select: str = "tag:telemetry"

    def env(self) -> dict[str, str]:
        return {
            "SATLAKE_MODE": "embedded",
            "SATLAKE_LAKE_URI": str(self.lake_uri),
            "SATLAKE_DUCKDB_PATH": str(self.duckdb_path),
            "DBT_TARGET_PATH": str(self.work_dir / "target"),
            "DBT_LOG_PATH": str(self.work_dir / "logs"),
        }

    def build(
        self, min_date: date | None, max_date: date | None, extra_vars: dict[str, Any] | None = None
    ) -> dbtRunnerResult:
        """`dbt build` for the window, the invocation Dagster makes."""
        return self.run_dbt("build", min_date, max_date, extra_vars)

    def run_dbt(
        self,
        command: str,
        min_date: date | None,
        max_date: date | None,
        extra_vars: dict[str, Any] | None = None,
    ) -> dbtRunnerResult:
        """`dbt <command>` for the window; raises DbtRunFailed with dbt's messages when anything fails."""
        window: dict[str, Any] = {}
        if min_date is not None:
            window["min_date"] = min_date.isoformat()
        if max_date is not None:
            window["max_date"] = max_date.isoformat()
        args = [
            command,
            "--project-dir", str(DBT_PROJECT_DIR),
            "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target", "embedded",
            "--select", self.select,
            "--vars", json.dumps({**window, **(extra_vars or {})}),
        ]  # fmt: skip
        # Start as a fresh dbt process does (Dagster runs dbt in a subprocess): dbt-duckdb keeps its environment
        # in a class attribute, and while one is left from an earlier invocation, parsing opens every source of
        # the project, other domains' bronze tables too, which this lake does not have.
        DuckDBConnectionManager.close_all_connections()
        with pytest.MonkeyPatch.context() as patch:
            for name, value in self.env().items():
                patch.setenv(name, value)
            outcome = dbtRunner().invoke(args)
        if not outcome.success:
            messages = [
                f"{result.node.name}: {result.status}: {result.message}"
                for result in (outcome.result or [])
                if str(result.status) not in ("success", "pass", "skipped")
            ]
            raise DbtRunFailed(f"dbt {command} {window} failed: {outcome.exception or ''} {messages}")
        return outcome

    def rows(self, table: str, where: str = "true") -> list[dict[str, Any]]:
        """Every row of a model table, in a stable order, as dicts."""
        with duckdb.connect(str(self.duckdb_path), read_only=True) as con:
            con.execute("set TimeZone = 'UTC'")
            relation = con.sql(f"select * from {table} where {where} order by all")
            return [dict(zip(relation.columns, values, strict=True)) for values in relation.fetchall()]

    def copy_to(self, root: Path) -> DbtWarehouse:
        """The same lake and warehouse under root, with its own dbt target and log directories."""
        shutil.copytree(self.lake_uri, root / "lake")
        shutil.copy2(self.duckdb_path, root / "warehouse.duckdb")
        return DbtWarehouse(
            lake_uri=root / "lake", duckdb_path=root / "warehouse.duckdb", work_dir=root / "dbt", select=self.select
        )

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return {table: self.rows(table) for table in MODEL_TABLES}


def new_warehouse(root: Path, rows: list[dict[str, Any]]) -> DbtWarehouse:
    root.mkdir(parents=True, exist_ok=True)
    lake_uri = root / "lake"
    write_bronze(lake_uri, rows, mode="overwrite")
    return DbtWarehouse(lake_uri=lake_uri, duckdb_path=root / "warehouse.duckdb", work_dir=root / "dbt")
