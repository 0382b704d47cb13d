"""SQL metacharacters and junk in every CLI parameter that reaches a query, run through the real ``satlake``
command in a subprocess: each is refused with exit code 2 and a one-line error (no traceback), or gives the
correct (empty) result, and the catalog is untouched afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from satlake.catalog.items import MEDIA_TYPE_COG, AssetRef, build_stac_item
from satlake.catalog.table import catalog_rows
from satlake.resources.lakehouse import Lakehouse
from satlake.scenes.raster import read_scene_metadata
from satlake.scenes.tables import CATALOG_ITEMS

SCENE_ID = "rel_scene_20240501"


@pytest.fixture(scope="module")
def satlake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded root whose catalog holds one item over 14.9..15.1°E, 50.4..50.6°N, acquired 2024-05-01."""
    root = tmp_path_factory.mktemp("cli-root")
    raster = root / f"{SCENE_ID}.tif"
    profile = {"driver": "GTiff", "dtype": "uint8", "count": 1, "width": 32, "height": 32, "crs": "EPSG:4326",
               "transform": from_origin(14.9, 50.6, 0.2 / 32, 0.2 / 32)}  # fmt: skip
    with rasterio.open(raster, "w", **profile) as dst:
        dst.write(np.ones((1, 32, 32), dtype="uint8"))
        dst.update_tags(ACQUISITION_TIME="2024-05-01T10:00:00Z", PLATFORM="landsat-8")
    meta = read_scene_metadata(SCENE_ID, "landsat-8", {raster.name: raster})
    item = build_stac_item(meta, {"cog": AssetRef(str(raster), MEDIA_TYPE_COG, ("data",))})
    lakehouse = Lakehouse(root_uri=str(root / "lake"))
    from deltalake import write_deltalake

    write_deltalake(lakehouse.uri(CATALOG_ITEMS), catalog_rows([item]), mode="overwrite")
    return root


def satlake(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SATLAKE_")}
    environment.update({"SATLAKE_ROOT": str(root), "SATLAKE_MODE": "embedded"})
    return subprocess.run(
        [sys.executable, "-m", "satlake", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
        cwd=root,
    )


def assert_refused(done: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert fragment in done.stderr, done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--bbox", "1,2,3,4; DROP TABLE x"], "bbox '1,2,3,4; DROP TABLE x': north"),
        (["--bbox", "1,2,3,4') OR 1=1 --"], "is not a number"),
        (["--bbox", "nan,nan,nan,nan"], "is not a number"),
        (["--collection", "x' OR 1=1 --"], "is not a valid collection id"),
        (["--collection", 'landsat-8"; DROP TABLE catalog_items; --'], "is not a valid collection id"),
        (["--datetime", "2024-05-01' OR '1'='1"], "not an RFC 3339 date"),
        (["--datetime", "junk/../..//"], "at most one '/'"),
        (["--datetime", "0001-01-01T00:00:00+01:00"], "not an RFC 3339 date"),  # overflowed before the fix
        (["--datetime", "x" * 5000], "at most 200 are accepted"),
        (["--limit", "0"], "limit 0 must be a whole number"),
        (["--limit", "1; DROP TABLE x"], "invalid int value"),
        (["--cloud-cover-max", "1 OR 1=1"], "invalid float value"),
        (["--cloud-cover-max", "nan"], "must be a number from 0 to 100"),
    ],
)
def test_hostile_search_parameters_are_refused_cleanly(satlake_root: Path, args: list[str], fragment: str) -> None:
    assert_refused(satlake(satlake_root, "search", *args), fragment)


@pytest.mark.parametrize(
    ("args", "expected_ids"),
    [
        ([], [SCENE_ID]),
        (["--collection", "landsat-8"], [SCENE_ID]),
        (["--collection", "landsat-9"], []),
        (["--bbox", "14,50,16,51", "--datetime", "2024-05-01"], [SCENE_ID]),
        (["--bbox=-1,-1,1,1"], []),  # "=": argparse reads a bare "-1,..." as an option
        (["--datetime", "../2024-04-30T23:59:59Z"], []),
    ],
)
def test_well_formed_searches_give_the_right_rows_and_leave_the_catalog_intact(
    satlake_root: Path, args: list[str], expected_ids: list[str]
) -> None:
    done = satlake(satlake_root, "search", *args)
    assert done.returncode == 0, done.stderr
    assert f"({len(expected_ids)} row{'s' if len(expected_ids) != 1 else ''})" in done.stdout
    assert all(scene in done.stdout for scene in expected_ids)
    table = Lakehouse(root_uri=str(satlake_root / "lake")).read(CATALOG_ITEMS)
    assert table is not None and table.column("id").to_pylist() == [SCENE_ID]


def test_satlake_query_is_a_sql_console_over_the_users_own_lakehouse(satlake_root: Path) -> None:
    """By design `satlake query` runs the user's SQL (read access to their own lake); errors are one line."""
    done = satlake(satlake_root, "query", "SELECT count(*) AS n FROM catalog.items")
    assert done.returncode == 0 and "(1 row)" in done.stdout, done.stderr
    broken = satlake(satlake_root, "query", "SELECT * FROM catalog.items WHERE id = 'x' OR 1=1 --'")
    assert broken.returncode == 0 and "(1 row)" in broken.stdout  # the user's own predicate, run as written
    assert_refused(satlake(satlake_root, "query", "SELEC nonsense;;"), "duckdb refused the query")
    assert "query               run SQL over the lakehouse tables" in satlake(satlake_root, "--help").stdout
