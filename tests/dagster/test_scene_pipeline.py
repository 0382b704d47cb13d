"""The scene pipeline materialized in process on the embedded default: files put into the landing area become
raw copies, COGs, STAC items, NDVI, quicklooks and forest change through the sensor, and bad inputs are
quarantined without affecting the others."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest
import rasterio
from dagster._core.definitions.partitions.context import partition_loading_context

from satlake.catalog.validation import validate_stac_object
from satlake.resources import SatlakeResources, build_resources
from satlake.resources.object_store import SceneStores, build_scene_stores
from satlake.runner import RunOutcome, run_pending_work
from satlake.scenes.cog import validate_cog
from satlake.scenes.definitions import scene_definitions
from satlake.scenes.landing import announce_existing_key, put_scene_files
from satlake.scenes.synthetic import clearing_plan, make_mars_scene, make_synthetic_scenes
from satlake.scenes.tables import (
    CATALOG_ITEMS,
    GOLD_FOREST_CHANGE,
    GOLD_NDVI,
    RAW_SCENES,
    SCENE_REJECTS,
    SILVER_COGS,
)
from satlake.settings import Settings

LANDSAT_ID = "LC08_L1TP_016037_20170813_20170814_01_RT"
LANDSAT_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "landsat8" / LANDSAT_ID
SIZE = 256
DATES = 4


@dataclass
class ScenePipeline:
    settings: Settings
    resources: SatlakeResources
    stores: SceneStores
    defs: dg.Definitions
    instance: dg.DagsterInstance
    outcomes: list[RunOutcome]
    state: Path

    def table(self, ref) -> pa.Table:
        rows = self.resources.lakehouse.read(ref)
        assert rows is not None, f"{ref} was not written"
        return rows

    def run(self) -> list[RunOutcome]:
        with partition_loading_context(dynamic_partitions_store=self.instance):
            return run_pending_work(self.defs, self.instance, self.state)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScenePipeline]:
    """One synthetic tile over four dates, a Mars raster, the Landsat fixture and four bad inputs, landed
    and processed through the sensor."""
    base = tmp_path_factory.mktemp("scenes")
    settings = Settings.from_env({"SATLAKE_ROOT": str(base / "root"), "SATLAKE_MODE": "embedded"})
    resources = build_resources(settings)
    defs = dg.Definitions.merge(scene_definitions(settings), dg.Definitions(resources=resources.as_dagster_resources()))
    stores = build_scene_stores(settings)
    source = base / "source"
    files = make_synthetic_scenes(source, tiles=1, size=SIZE, seed=5)
    files.append(make_mars_scene(source / "mars_gale.tif"))
    (source / "corrupt.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 8)
    (source / "empty.tif").write_bytes(b"")
    (source / "notes.txt").write_text("not a raster")
    with rasterio.open(
        source / "nocrs.tif", "w", driver="GTiff", width=16, height=16, count=1, dtype="uint8"
    ) as no_crs:
        no_crs.write(np.ones((1, 16, 16), dtype="uint8"))
    files += [source / n for n in ("corrupt.tif", "empty.tif", "notes.txt", "nocrs.tif")]
    if LANDSAT_DIR.is_dir():
        files += sorted(LANDSAT_DIR.iterdir())
    put_scene_files(files, stores.landing, resources.event_log, settings.object_events_topic)
    # MinIO announces any key a client manages to upload; satlake must refuse to turn this one into a path.
    announce_existing_key(resources.event_log, settings.object_events_topic, settings.landing_bucket, "../evil.tif", 9)
    with dg.instance_for_test() as instance:
        pipeline = ScenePipeline(settings, resources, stores, defs, instance, [], base / "state.json")
        pipeline.outcomes = pipeline.run()
        yield pipeline


def test_every_run_succeeds_and_a_second_pass_has_nothing_to_do(scenes: ScenePipeline) -> None:
    assert scenes.outcomes, "the sensor requested no runs"
    assert [o.description for o in scenes.outcomes if not o.success] == []
    # 4 synthetic + Mars + corrupt + empty + nocrs (+ Landsat): one run per complete scene.
    assert len(scenes.outcomes) == 8 + LANDSAT_DIR.is_dir()
    assert scenes.run() == []


def test_catalog_rows_cogs_and_items(scenes: ScenePipeline) -> None:
    catalog = scenes.table(CATALOG_ITEMS)
    ids = set(catalog.column("id").to_pylist())
    synthetic = {f"sim_t00_{d}" for d in ("20240502", "20240611", "20240721", "20240830")}
    assert synthetic | {"mars_gale"} <= ids
    assert not ids & {"corrupt", "empty", "nocrs"}

    cogs = scenes.table(SILVER_COGS)
    sim_cogs = [r for r in cogs.to_pylist() if r["scene_id"] == "sim_t00_20240502"]
    assert sorted(r["band"] for r in sim_cogs) == ["blue", "green", "nir", "red"]
    for row in sim_cogs:
        path = Path(row["uri"])
        assert (
            path.is_file() and "/cogs/satlake-sim/" in row["uri"] and "/2024/05/02/sim_t00_20240502/bbox_" in row["uri"]
        )
        assert [p for p in validate_cog(path) if p.startswith("error")] == []
        assert row["overviews"], "COG without overviews"

    for text in catalog.column("item_json").to_pylist():
        item = json.loads(text)
        assert validate_stac_object(item) == [], item["id"]
        for asset in item["assets"].values():
            assert Path(asset["href"]).is_file(), asset["href"]
    sim = json.loads(catalog.filter(pa.compute.equal(catalog["id"], "sim_t00_20240502"))["item_json"][0].as_py())
    assert {"thumbnail", "ndvi", "red", "nir"} <= set(sim["assets"])
    assert sim["properties"]["proj:code"] == "EPSG:32633"
    assert (scenes.settings.root / "objects" / "stac" / "catalog.json").is_file()
    collection = json.loads((scenes.settings.root / "objects/stac/satlake-sim/collection.json").read_text())
    assert collection["extent"]["temporal"]["interval"][0][0].startswith("2024-05-02")
    assert collection["extent"]["temporal"]["interval"][0][1].startswith("2024-08-30")


def test_raw_copies_are_kept_with_hashes(scenes: ScenePipeline) -> None:
    raw = scenes.table(RAW_SCENES).to_pylist()
    row = next(r for r in raw if r["scene_id"] == "sim_t00_20240611")
    files = json.loads(row["files_json"])
    assert row["raw_prefix"] == "raw/scenes/satlake-sim/sim_t00_20240611"
    kept = scenes.stores.lake.local_path(f"{row['raw_prefix']}/{files[0]['name']}")
    assert kept.is_file() and scenes.stores.lake.sha256(f"{row['raw_prefix']}/{files[0]['name']}") == files[0]["sha256"]
    assert row["crs_epsg"] == 32633 and row["band_count"] == 4 and row["cloud_cover"] > 30


def test_checks_pass_for_every_scene(scenes: ScenePipeline) -> None:
    evaluated: dict[str, list[bool]] = {}
    for outcome in scenes.outcomes:
        for entry in scenes.instance.all_logs(outcome.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            evaluated.setdefault(name, []).append(evaluation.passed)
    expected = {"silver/cogs:cog_valid", "silver/cogs:pixels_match_original", "gold/ndvi:ndvi_in_range",
                "catalog/items:item_valid_stac", "catalog/items:asset_hrefs_exist",
                "catalog/items:bbox_matches_raster", "raw/scenes:originals_kept"}  # fmt: skip
    assert expected <= set(evaluated)
    assert {name: results for name, results in evaluated.items() if not all(results)} == {}
    assert len(evaluated["silver/cogs:cog_valid"]) == 5 + LANDSAT_DIR.is_dir()


def test_ndvi_and_forest_change_find_the_planted_clearing(scenes: ScenePipeline) -> None:
    ndvi = {r["scene_id"]: r for r in scenes.table(GOLD_NDVI).to_pylist()}
    assert "mars_gale" not in ndvi
    for scene_id, row in ndvi.items():
        assert -1.0 <= row["ndvi_min"] <= row["ndvi_max"] <= 1.0, scene_id
        assert Path(row["uri"]).is_file()
    change = scenes.table(GOLD_FOREST_CHANGE).to_pylist()
    plan = clearing_plan(SIZE, DATES)
    cut = [r for r in change if r["scene_id"] == "sim_t00_20240721"]
    assert len(cut) == 1, change
    # The cloudy June scene is skipped: the clearing is found between the two clear acquisitions around it.
    assert cut[0]["before_scene_id"] == "sim_t00_20240502"
    assert str(cut[0]["before_date"]) == "2024-05-02" and str(cut[0]["after_date"]) == "2024-07-21"
    assert cut[0]["area_ha"] == pytest.approx(plan.area_ha(), rel=0.10)
    assert sum(r["area_ha"] for r in change if r["scene_id"] != "sim_t00_20240721") < 0.5 * plan.area_ha()


@pytest.mark.skipif(not LANDSAT_DIR.is_dir(), reason="Landsat fixture not present")
def test_landsat_fixture_is_one_scene_with_mtl_metadata_and_ndvi(scenes: ScenePipeline) -> None:
    catalog = scenes.table(CATALOG_ITEMS)
    row = catalog.filter(pa.compute.equal(catalog["id"], LANDSAT_ID)).to_pylist()
    assert len(row) == 1
    item = json.loads(row[0]["item_json"])
    properties = item["properties"]
    assert item["collection"] == "landsat-8" and properties["platform"] == "landsat-8"
    assert properties["datetime"].startswith("2017-08-13T15:54:15")
    assert properties["eo:cloud_cover"] == pytest.approx(26.7)
    assert properties["view:sun_elevation"] == pytest.approx(62.173, abs=1e-3)
    assert {"blue", "green", "red", "nir", "ndvi", "mtl", "thumbnail"} <= set(item["assets"])
    ndvi = {r["scene_id"]: r for r in scenes.table(GOLD_NDVI).to_pylist()}
    assert LANDSAT_ID in ndvi and ndvi[LANDSAT_ID]["valid_fraction"] > 0.5


def test_mars_scene_keeps_its_body_and_has_no_earth_bbox(scenes: ScenePipeline) -> None:
    catalog = scenes.table(CATALOG_ITEMS)
    mars = catalog.filter(pa.compute.equal(catalog["id"], "mars_gale")).to_pylist()[0]
    assert mars["body"] == "mars"
    assert mars["bbox_xmin"] is None and mars["geometry_wkb"] is None
    assert mars["cell_key"].startswith("mars-")
    item = json.loads(mars["item_json"])
    assert item["geometry"] is None and "bbox" not in item
    assert item["properties"]["ssys:targets"] == ["mars"]


def test_bad_inputs_are_quarantined_with_reasons(scenes: ScenePipeline) -> None:
    rejects = scenes.table(SCENE_REJECTS).to_pylist()
    by_scene = {r["scene_id"]: r for r in rejects}
    notes = [r for r in rejects if r["object_keys"] == ["notes.txt"]]
    assert len(notes) == 1 and "is not a scene file" in notes[0]["reason"] and notes[0]["stage"] == "sensor"
    assert "empty" in by_scene["empty"]["reason"]
    assert "no CRS" in by_scene["nocrs"]["reason"]
    assert "cannot read raster 'corrupt.tif'" in by_scene["corrupt"]["reason"]
    evil = [r for r in rejects if r["object_keys"] == ["../evil.tif"]]
    assert len(evil) == 1 and "path traversal" in evil[0]["reason"]
    # The originals of unreadable scenes are kept (quarantine folder), and reasons name what to do.
    for scene_id in ("corrupt", "empty", "nocrs"):
        kept = Path(by_scene[scene_id]["kept_at"])
        assert kept.is_dir() and any(kept.iterdir()), scene_id
        assert "upload it again" in by_scene[scene_id]["reason"]
