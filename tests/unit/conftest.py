"""Fixtures shared by the unit tests: the real Landsat 8 scene shipped beside the repository (scenes, products)."""

from __future__ import annotations

from pathlib import Path

import pytest

LANDSAT_PRODUCT_ID = "LC08_L1TP_016037_20170813_20170814_01_RT"
LANDSAT_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "landsat8" / LANDSAT_PRODUCT_ID


@pytest.fixture
def landsat_dir() -> Path:
    """The downsampled real Landsat 8 scene (bands 2-5 + MTL); skipped when ../shared/data is not there."""
    if not LANDSAT_DIR.is_dir():
        pytest.skip(f"real Landsat fixture not found at {LANDSAT_DIR} (clone shared/ beside the repository)")
    return LANDSAT_DIR


@pytest.fixture
def landsat_files(landsat_dir: Path) -> dict[str, Path]:
    return {path.name: path for path in sorted(landsat_dir.iterdir())}
