"""Fixtures for the dbt model tests: warehouses built from the planted bronze table."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.dbt.dbt_warehouse import DbtWarehouse, new_warehouse
from tests.unit.dbt.planted_telemetry import DAY_1, DAY_2, planted_bronze_rows


@pytest.fixture(scope="module")
def two_day_warehouse(tmp_path_factory: pytest.TempPathFactory) -> DbtWarehouse:
    """The planted bronze table, built for both days in one invocation; read-only for the tests using it."""
    warehouse = new_warehouse(tmp_path_factory.mktemp("two_day"), planted_bronze_rows())
    warehouse.build(DAY_1, DAY_2)
    return warehouse


@pytest.fixture
def rebuildable_warehouse(two_day_warehouse: DbtWarehouse, tmp_path: Path) -> DbtWarehouse:
    """A private copy of two_day_warehouse (lake and DuckDB file) that a test may append to and rebuild."""
    return two_day_warehouse.copy_to(tmp_path)


@pytest.fixture
def fresh_warehouse(tmp_path: Path) -> DbtWarehouse:
    """The planted bronze table with nothing built yet."""
    return new_warehouse(tmp_path, planted_bronze_rows())
