"""A raster without an acquisition time, as a new user lands a public HiRISE COG: `satlake put` it, and its scene
run succeeds with the scene quarantined (reason: no acquisition time, and how to supply it) and nothing
catalogued; `satlake put --datetime` it again, or land its sidecar afterwards, and it is catalogued with that
time. In process on the embedded default, through the CLI and the sensor as `satlake run` drives them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest
import rasterio
from dagster._core.definitions.partitions.context import partition_loading_context
from pyproj import CRS
from rasterio.transform import from_origin

from satlake.cli import main
from satlake.resources import SatlakeResources, build_resources
from satlake.resources.object_store import build_scene_stores
from satlake.runner import RunOutcome, run_pending_work
from satlake.scenes.definitions import scene_definitions
from satlake.scenes.synthetic import MARS_CRS, MARS_RADIUS_M
from satlake.scenes.tables import CATALOG_ITEMS, RAW_SCENES, SCENE_REJECTS
from satlake.settings import Settings

TIME = "2024-05-01T10:30:00Z"


@dataclass
class Lake:
    settings: Settings
    resources: SatlakeResources
    defs: dg.Definitions
    instance: dg.DagsterInstance
    source: Path
    capsys: pytest.CaptureFixture[str]

    def put(self, *args: str) -> tuple[int, str]:
        """`satlake put ARGS` in process: (exit code, what it printed)."""
        code = main(["put", *args])
        captured = self.capsys.readouterr()
        return code, captured.out + captured.err

    def run(self) -> list[RunOutcome]:
        with partition_loading_context(dynamic_partitions_store=self.instance):
            outcomes = run_pending_work(self.defs, self.instance)
        assert outcomes, "the sensor requested no runs"
        assert [o.description for o in outcomes if not o.success] == []
        return outcomes

    def rows(self, ref, scene_id: str, column: str = "scene_id") -> list[dict]:
        table = self.resources.lakehouse.read(ref)
        return [] if table is None else table.filter(pa.compute.equal(table[column], scene_id)).to_pylist()

    def failed_checks(self, outcomes: list[RunOutcome]) -> list[str]:
        failed = []
        for outcome in outcomes:
            for entry in self.instance.all_logs(outcome.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
                evaluation = entry.dagster_event.event_specific_data
                if not evaluation.passed:
                    failed.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
        return failed


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Lake]:
    for name in ("SATLAKE_SECRETS_FILE", "SATLAKE_TRINO_USER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SATLAKE_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("SATLAKE_MODE", "embedded")
    settings = Settings.from_env()
    resources = build_resources(settings)
    defs = dg.Definitions.merge(scene_definitions(settings), dg.Definitions(resources=resources.as_dagster_resources()))
    with dg.instance_for_test() as instance:
        yield Lake(settings, resources, defs, instance, tmp_path / "source", capsys)


def untimed_mars_raster(path: Path, size: int = 48) -> Path:
    """Like a HiRISE COG: one band in Mars equirectangular (IAU_2015:49910) with no time tag at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    metres_per_degree = np.pi * MARS_RADIUS_M / 180.0
    profile = {"driver": "GTiff", "dtype": "uint16", "count": 1, "width": size, "height": size,
               "crs": CRS.from_user_input(MARS_CRS), "nodata": 0, "tiled": True, "blockxsize": 16, "blockysize": 16,
               "transform": from_origin(77.4 * metres_per_degree, 18.4 * metres_per_degree, 25.0, 25.0)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.arange(1, size * size + 1, dtype="uint16").reshape(1, size, size))
    with rasterio.open(path) as src:
        assert not {"ACQUISITION_TIME", "TIFFTAG_DATETIME"} & set(src.tags())
    return path


def test_a_raster_without_a_time_is_quarantined_then_catalogued_with_put_datetime(lake: Lake) -> None:
    raster = untimed_mars_raster(lake.source / "hirise_mars.tif")
    jpeg = lake.source / "hirise_mars.jpg"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0 a browse image")
    assert lake.put(str(raster), str(jpeg))[0] == 0
    outcomes = lake.run()
    assert lake.failed_checks(outcomes) == []

    (reject,) = lake.rows(SCENE_REJECTS, "hirise_mars")
    assert reject["stage"] == "raw/scenes" and reject["object_keys"] == ["hirise_mars.tif"]
    assert reject["reason"].startswith("no acquisition time: hirise_mars.tif has no ACQUISITION_TIME or TIFFTAG")
    assert f"`satlake put --datetime {TIME} hirise_mars.tif`" in reject["reason"]
    assert "hirise_mars.tif.datetime.json" in reject["reason"]
    assert Path(reject["kept_at"], "hirise_mars.tif").is_file()  # the original is kept in quarantine
    assert any("is not a scene file" in r["reason"] for r in lake.rows(SCENE_REJECTS, "hirise_mars.jpg"))
    assert lake.rows(RAW_SCENES, "hirise_mars") == [] and lake.rows(CATALOG_ITEMS, "hirise_mars", "id") == []

    code, said = lake.put("--datetime", "1 May 2024", str(raster))
    assert code == 2 and "ISO 8601" in said and "2024-05-01T10:30:00Z" in said
    assert lake.put("--datetime", TIME, str(jpeg))[0] == 2  # only GeoTIFFs take a time
    assert not build_scene_stores(lake.settings).landing.exists("hirise_mars.tif.datetime.json")

    code, said = lake.put("--datetime", TIME, str(raster))
    assert code == 0 and "hirise_mars.tif.datetime.json" in said and "landed 2 files" in said
    outcomes = lake.run()
    assert lake.failed_checks(outcomes) == []
    (row,) = lake.rows(CATALOG_ITEMS, "hirise_mars", "id")
    item = json.loads(row["item_json"])
    assert item["properties"]["datetime"] == TIME and row["body"] == "mars"
    assert row["datetime"] == datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    (raw,) = lake.rows(RAW_SCENES, "hirise_mars")
    assert sorted(raw["landing_keys"]) == ["hirise_mars.tif", "hirise_mars.tif.datetime.json"]
    assert json.loads(raw["metadata_json"])["extra"]["satlake:acquired_at_from"] == "hirise_mars.tif.datetime.json"
    assert len(lake.rows(SCENE_REJECTS, "hirise_mars")) == 1  # quarantined once, not again


def test_a_bad_sidecar_is_quarantined_and_a_good_one_landed_afterwards_catalogues_the_scene(lake: Lake) -> None:
    raster = untimed_mars_raster(lake.source / "ctx_gale.tif")
    sidecar = lake.source / "ctx_gale.tif.datetime.json"
    sidecar.write_text('{"datetime": "sometime in May"}')
    assert lake.put(str(sidecar), str(raster))[0] == 0
    assert lake.failed_checks(lake.run()) == []
    (reject,) = lake.rows(SCENE_REJECTS, "ctx_gale")
    assert reject["reason"].startswith("sidecar 'ctx_gale.tif.datetime.json' holds no usable acquisition time")
    assert "'sometime in May' is not an acquisition time" in reject["reason"]
    assert lake.rows(CATALOG_ITEMS, "ctx_gale", "id") == []

    sidecar.write_text(json.dumps({"datetime": "2024-05-01T12:30:00+02:00"}))
    assert lake.put(str(sidecar))[0] == 0  # the sidecar alone: the raster is already in the landing area
    assert lake.failed_checks(lake.run()) == []
    (row,) = lake.rows(CATALOG_ITEMS, "ctx_gale", "id")
    assert json.loads(row["item_json"])["properties"]["datetime"] == TIME
