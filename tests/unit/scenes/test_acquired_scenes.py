"""Acquired scenes: band files landed by the acquisition downloader under
``<source>/<collection>/<geohash5>/<YYYY-MM-DD>/bbox_<bbox>/<item_id>/`` with their ``scene.json`` become one
scene, in the source's collection, whose catalog item links the source item it was cut from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest
import rasterio
from dagster._core.definitions.partitions.context import partition_loading_context
from rasterio.warp import transform_bounds

from satlake.catalog.items import AssetRef, build_stac_item
from satlake.catalog.table import catalog_rows
from satlake.catalog.validation import validate_stac_object
from satlake.products.forest_change import select_clear_pairs
from satlake.resources import build_resources
from satlake.resources.object_events import announce_objects
from satlake.resources.object_store import build_scene_stores
from satlake.runner import RunOutcome, run_pending_work
from satlake.scenes import checks
from satlake.scenes.assets import collection_for
from satlake.scenes.cells import geohash_encode
from satlake.scenes.definitions import scene_definitions
from satlake.scenes.grouping import acquired_scene_id, group_scene_files, scene_id_for_key
from satlake.scenes.raster import RasterReadError, read_scene_metadata
from satlake.scenes.sensors import SensorCursor, plan_scenes
from satlake.scenes.synthetic import clearing_plan, make_synthetic_scenes
from satlake.scenes.tables import CATALOG_ITEMS, GOLD_FOREST_CHANGE, GOLD_NDVI, RAW_SCENES, SCENE_REJECTS
from satlake.settings import Settings

ITEM = "S2B_33UUP_20240502_0_L2A"
BBOX = "13.3000_52.5000_13.4000_52.6000"
FOLDER = f"earth-search/sentinel-2-l2a/u33db/2024-05-02/bbox_{BBOX}/{ITEM}"
BANDS = ("blue.tif", "green.tif", "red.tif", "nir.tif", "cloud.tif")
SIZE = 128
DATES = (datetime(2024, 5, 2, 10, 0, tzinfo=UTC), datetime(2024, 7, 21, 10, 0, tzinfo=UTC))


def manifest(files: dict[str, str] | None = None, **fields: object) -> str:
    listed = {name.removesuffix(".tif"): name for name in BANDS} if files is None else files
    data = {"type": "satlake.acquired-scene", "version": 1, "scene_id": acquired_scene_id(ITEM, BBOX),
            "files": {role: {"file": name} for role, name in listed.items()}, **fields}  # fmt: skip
    return json.dumps(data)


def keys(folder: str = FOLDER, names: tuple[str, ...] = (*BANDS, "scene.json")) -> list[str]:
    return [f"{folder}/{name}" for name in names]


# --- grouping -----------------------------------------------------------------------------------------------


def test_scene_id_is_the_item_folder_and_a_hash_of_the_window() -> None:
    expected = f"{ITEM}-{hashlib.sha256(BBOX.encode()).hexdigest()[:8]}"
    assert acquired_scene_id(ITEM, BBOX) == expected
    assert {scene_id_for_key(key) for key in keys()} == {expected}
    assert acquired_scene_id("item:with spaces", BBOX).startswith("item_with_spaces-")
    with pytest.raises(ValueError, match="without its 'bbox_' prefix"):
        acquired_scene_id(ITEM, f"bbox_{BBOX}")


def test_band_files_wait_for_their_manifest() -> None:
    (group,) = group_scene_files(keys(names=BANDS), read_text=lambda key: manifest())
    assert group.kind == "acquired" and not group.complete and not group.problems
    assert group.missing == ("scene.json",) and len(group.files) == 5


def test_manifest_waits_for_every_file_it_lists() -> None:
    (group,) = group_scene_files(keys(names=("scene.json", "blue.tif", "red.tif")), read_text=lambda key: manifest())
    assert not group.complete and not group.problems
    assert group.missing == ("green.tif", "nir.tif", "cloud.tif")


def test_scene_is_complete_when_manifest_and_all_listed_files_landed() -> None:
    read: list[str] = []
    (group,) = group_scene_files(keys(), read_text=lambda key: read.append(key) or manifest())
    assert group.complete and group.missing == () and group.problems == ()
    assert group.scene_id == acquired_scene_id(ITEM, BBOX)
    assert group.files == tuple(sorted(keys())) and group.manifest_key == f"{FOLDER}/scene.json"
    assert read == [f"{FOLDER}/scene.json"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "is not valid JSON"),
        (json.dumps({"type": "something-else", "version": 1, "files": {}}), "expected 'satlake.acquired-scene'"),
        (json.dumps([1, 2]), "has type 'list'"),
        (manifest(version=2), "this satlake reads version 1"),
        (manifest(files={}), "lists no files"),
        (manifest(files={"blue": "../../other/blue.tif"}), "path traversal"),
        (manifest(files={"blue": "sub/blue.tif"}), "not a file of the item's folder"),
        (manifest(files={"blue": "scene.json"}), "not a file of the item's folder"),
        (manifest(files={"blue": "blue.tif", "red": "blue.tif"}), "listed for two roles"),
        ("[" * 100_000, "is not valid JSON"),
    ],
)
def test_a_bad_manifest_is_a_problem_naming_it_not_a_crash(text: str, reason: str) -> None:
    (group,) = group_scene_files(keys(), read_text=lambda key: text)
    assert not group.complete and len(group.problems) == 1
    assert reason in group.problems[0] and f"{FOLDER}/scene.json" in group.problems[0]


def test_a_listed_file_that_never_lands_is_quarantined_after_the_timeout() -> None:
    landed = keys(names=("scene.json", "blue.tif", "green.tif", "red.tif", "cloud.tif"))
    now = datetime(2024, 5, 3, tzinfo=UTC)
    seen = {"etag": "e", "first_seen": (now - timedelta(hours=2)).isoformat(), "event_time": now.isoformat()}
    cursor = SensorCursor({0: 5}, {key: dict(seen) for key in landed})
    waiting = plan_scenes([], cursor, "landing", lambda key: manifest(), now, timeout=timedelta(hours=3))
    assert waiting.ready == [] and waiting.rejects == [] and set(waiting.cursor.pending) == set(landed)
    late = plan_scenes([], cursor, "landing", lambda key: manifest(), now, timeout=timedelta(hours=1))
    ((group, reason, _),) = late.rejects
    assert group.scene_id == acquired_scene_id(ITEM, BBOX) and "never received nir.tif" in reason
    assert late.cursor.pending == {}


def test_a_file_the_manifest_does_not_list_is_refused_alone() -> None:
    groups = group_scene_files([*keys(), f"{FOLDER}/leftover.tif"], read_text=lambda key: manifest())
    scene = next(g for g in groups if g.kind == "acquired")
    stray = next(g for g in groups if g.kind == "unrecognised")
    assert scene.complete and f"{FOLDER}/leftover.tif" not in scene.files
    assert stray.files == (f"{FOLDER}/leftover.tif",) and "does not list it" in stray.problems[0]


def test_two_items_of_one_day_and_window_are_two_scenes() -> None:
    other = FOLDER.replace(ITEM, "S2A_33UUP_20240502_0_L2A")
    groups = group_scene_files([*keys(), *keys(other)], read_text=lambda key: manifest())
    assert [g.scene_id for g in groups] == sorted([acquired_scene_id(ITEM, BBOX),
                                                   acquired_scene_id("S2A_33UUP_20240502_0_L2A", BBOX)])  # fmt: skip
    assert all(g.complete and len(g.files) == 6 for g in groups)


def test_one_item_cut_to_two_areas_is_two_scenes_with_different_ids() -> None:
    second = FOLDER.replace(BBOX, "13.3500_52.5500_13.4500_52.6500")
    groups = group_scene_files([*keys(), *keys(second)], read_text=lambda key: manifest())
    assert len({g.scene_id for g in groups}) == 2 and all(g.complete for g in groups)
    assert all(g.scene_id.startswith(f"{ITEM}-") for g in groups)


def test_one_item_and_window_under_two_sources_is_flagged() -> None:
    mirror = FOLDER.replace("earth-search", "mirror")
    groups = group_scene_files([*keys(), *keys(mirror)], read_text=lambda key: manifest())
    assert len(groups) == 2 and all(not g.complete and "same scene id" in g.problems[0] for g in groups)


# --- landing a band set like the downloader -----------------------------------------------------------------


@dataclass
class Acquisition:
    scene_id: str
    folder: str
    files: dict[str, Path]  # file name -> local path, scene.json included
    cloud_cover: float


def write_acquisition(scene: Path, out_dir: Path, item_id: str, source: str = "earth-search") -> Acquisition:
    """Split a synthetic 4-band scene into the downloader's single-band files, tags and manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with rasterio.open(scene) as src:
        data, profile, tags = src.read(), src.profile, src.tags()
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
    acquired_at = tags["ACQUISITION_TIME"]
    bbox = "_".join(f"{v:.4f}" for v in (west, south, east, north))
    geohash = geohash_encode((south + north) / 2, (west + east) / 2)
    folder = f"{source}/sentinel-2-l2a/{geohash}/{acquired_at[:10]}/bbox_{bbox}/{item_id}"
    common = {
        "ACQUISITION_TIME": acquired_at, "PLATFORM": "sentinel-2b", "CLOUD_COVER": tags["CLOUD_COVER"],
        "SATLAKE_COLLECTION": "sentinel-2-l2a", "SATLAKE_SOURCE": source,
        "SATLAKE_DERIVED_FROM": f"http://127.0.0.1:9/collections/sentinel-2-l2a/items/{item_id}",
    }  # fmt: skip
    # SCL-like cloud band: 9 (cloud, high probability) where the blue reflectance is bright, else 4 (vegetation).
    scl = np.where(data[0] > 3000, 9, 4).astype("uint8")
    layers = {"blue": data[0], "green": data[1], "red": data[2], "nir": data[3], "cloud": scl}
    entries = {}
    for role, layer in layers.items():
        path = out_dir / f"{role}.tif"
        band_profile = {**profile, "count": 1, "dtype": layer.dtype.name, "nodata": 0, "tiled": False}
        band_profile.pop("blockxsize", None), band_profile.pop("blockysize", None)
        with rasterio.open(path, "w", **band_profile) as dst:
            dst.write(layer, 1)
            dst.set_band_description(1, "scl" if role == "cloud" else role)
            dst.update_tags(**common)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        entries[role] = {"file": path.name, "sha256": digest, "size": path.stat().st_size, "asset_href": "x"}
    scene_id = acquired_scene_id(item_id, bbox)
    document = {"type": "satlake.acquired-scene", "version": 1, "scene_id": scene_id, "source": source,
                "collection": "sentinel-2-l2a", "item_id": item_id, "datetime": acquired_at,
                "files": entries}  # fmt: skip
    (out_dir / "scene.json").write_text(json.dumps(document))
    files = {name: out_dir / name for name in [*(f"{role}.tif" for role in layers), "scene.json"]}
    return Acquisition(scene_id, folder, files, float(tags["CLOUD_COVER"]))


@pytest.fixture(scope="module")
def acquisitions(tmp_path_factory: pytest.TempPathFactory) -> list[Acquisition]:
    """Two clear acquisitions of one window, the forest plot of ``clearing_plan`` cut between them."""
    base = tmp_path_factory.mktemp("acquired")
    scenes = make_synthetic_scenes(base / "sim", tiles=1, dates=DATES, size=SIZE, seed=3)
    items = ("S2B_33UUP_20240502_0_L2A", "S2A_33UUP_20240721_0_L2A")
    return [write_acquisition(scene, base / item, item) for scene, item in zip(scenes, items, strict=True)]


def test_metadata_comes_from_band_descriptions_and_tags(acquisitions: list[Acquisition]) -> None:
    first = acquisitions[0]
    meta = read_scene_metadata(first.scene_id, "unsorted", first.files)
    assert [(b.name, b.common_name, b.file) for b in meta.bands] == [
        ("blue", "blue", "blue.tif"), ("scl", None, "cloud.tif"), ("green", "green", "green.tif"),
        ("nir", "nir", "nir.tif"), ("red", "red", "red.tif"),
    ]  # fmt: skip
    assert meta.acquired_at == DATES[0] and meta.platform == "sentinel-2b"
    assert meta.cloud_cover == pytest.approx(first.cloud_cover) and meta.cloud_cover <= 20
    assert "scene.json" in {f.name for f in meta.files}
    assert collection_for(first.scene_id, meta) == "sentinel-2-l2a"
    assert collection_for("field", replace(meta, extra={})) == "sentinel-2b"  # without the tag: the platform


def test_a_band_file_changed_after_acquisition_is_refused(acquisitions: list[Acquisition], tmp_path: Path) -> None:
    files = dict(acquisitions[0].files)
    files["red.tif"] = tmp_path / "red.tif"
    files["red.tif"].write_bytes(acquisitions[1].files["red.tif"].read_bytes())
    with pytest.raises(RasterReadError, match=r"'red.tif'.*differs from .* recorded in scene.json"):
        read_scene_metadata(acquisitions[0].scene_id, "unsorted", files)


def _item(acquisition: Acquisition) -> dict:
    meta = read_scene_metadata(acquisition.scene_id, "unsorted", acquisition.files)
    meta = replace(meta, collection=collection_for(acquisition.scene_id, meta))
    red = acquisition.files["red.tif"]
    return build_stac_item(meta, {"red": AssetRef(str(red), "image/tiff", ("data",), band_names=("red",))})


def test_catalog_item_links_the_source_item_and_validates(acquisitions: list[Acquisition]) -> None:
    item = _item(acquisitions[0])
    assert validate_stac_object(item) == []
    assert item["collection"] == "sentinel-2-l2a" and item["properties"]["satlake:source"] == "earth-search"
    derived = [link for link in item["links"] if link["rel"] == "derived_from"]
    href = "http://127.0.0.1:9/collections/sentinel-2-l2a/items/S2B_33UUP_20240502_0_L2A"
    assert derived == [{"rel": "derived_from", "href": href, "type": "application/geo+json"}]


def test_two_dates_of_one_window_are_one_tile_and_a_change_pair(acquisitions: list[Acquisition]) -> None:
    items = [_item(a) for a in acquisitions]
    metas = [read_scene_metadata(a.scene_id, "unsorted", a.files) for a in acquisitions]
    assert checks.tile_key(metas[0]) == checks.tile_key(metas[1])
    found = checks.tile_acquisitions(catalog_rows(items), checks.tile_key(metas[1]))
    ((before, after),) = select_clear_pairs(found)
    assert (before[2], after[2]) == (acquisitions[0].scene_id, acquisitions[1].scene_id)


# --- the scene pipeline, in process -------------------------------------------------------------------------


@dataclass
class Landed:
    runs: list[list[tuple[str | None, bool, str]]]  # per pass: (partition, success, description) of each run
    tables: dict[str, pa.Table]
    root: Path


@pytest.fixture(scope="module")
def landed(acquisitions: list[Acquisition], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Landed]:
    """Both band sets landed first, then each manifest in its own pass, as two acquisition runs would."""
    base = tmp_path_factory.mktemp("pipeline")
    settings = Settings.from_env({"SATLAKE_ROOT": str(base / "root"), "SATLAKE_MODE": "embedded"})
    resources = build_resources(settings)
    defs = dg.Definitions.merge(scene_definitions(settings), dg.Definitions(resources=resources.as_dagster_resources()))
    landing = build_scene_stores(settings).landing
    topic = settings.object_events_topic

    def land(acquisition: Acquisition, names: list[str]) -> None:
        stored = [landing.put_file(acquisition.files[n], f"{acquisition.folder}/{n}") for n in names]
        announce_objects(resources.event_log, topic, landing.bucket, stored)

    passes: list[list[tuple[str | None, bool, str]]] = []
    with dg.instance_for_test() as instance:

        def run() -> list[tuple[str | None, bool, str]]:
            with partition_loading_context(dynamic_partitions_store=instance):
                outcomes: list[RunOutcome] = run_pending_work(defs, instance)
            runs = [(instance.get_run_by_id(o.run_id), o) for o in outcomes]
            return [(r.tags.get("dagster/partition") if r else None, o.success, o.description) for r, o in runs]

        for acquisition in acquisitions:
            land(acquisition, [n for n in acquisition.files if n != "scene.json"])
        passes.append(run())
        for acquisition in acquisitions:
            land(acquisition, ["scene.json"])
            passes.append(run())
        tables = {
            name: resources.lakehouse.read(ref)
            for name, ref in {"catalog": CATALOG_ITEMS, "ndvi": GOLD_NDVI, "change": GOLD_FOREST_CHANGE,
                              "raw": RAW_SCENES, "rejects": SCENE_REJECTS}.items()
        }  # fmt: skip
        yield Landed(passes, tables, settings.root)


def test_the_sensor_waits_for_the_manifest_then_runs_one_scene_each(
    landed: Landed, acquisitions: list[Acquisition]
) -> None:
    assert landed.runs[0] == []
    for runs, acquisition in zip(landed.runs[1:], acquisitions, strict=True):
        assert [(partition, success) for partition, success, _ in runs] == [(acquisition.scene_id, True)], runs
    assert landed.tables["rejects"] is None or landed.tables["rejects"].num_rows == 0


def test_pipeline_catalogues_the_acquisition_with_ndvi_and_source_link(
    landed: Landed, acquisitions: list[Acquisition]
) -> None:
    catalog = {row["id"]: row for row in landed.tables["catalog"].to_pylist()}
    assert set(catalog) == {a.scene_id for a in acquisitions}
    for acquisition in acquisitions:
        item = json.loads(catalog[acquisition.scene_id]["item_json"])
        assert validate_stac_object(item) == []
        assert item["collection"] == "sentinel-2-l2a" and item["properties"]["platform"] == "sentinel-2b"
        assert {"blue", "green", "red", "nir", "scl", "ndvi", "thumbnail"} <= set(item["assets"])
        item_id = acquisition.folder.rsplit("/", 1)[1]
        href = f"http://127.0.0.1:9/collections/sentinel-2-l2a/items/{item_id}"
        assert {"rel": "derived_from", "href": href, "type": "application/geo+json"} in item["links"]
        static = landed.root / "objects/stac/sentinel-2-l2a" / acquisition.scene_id / f"{acquisition.scene_id}.json"
        assert any(link["rel"] == "derived_from" for link in json.loads(static.read_text())["links"])
    ndvi = {row["scene_id"]: row for row in landed.tables["ndvi"].to_pylist()}
    for acquisition in acquisitions:
        row = ndvi[acquisition.scene_id]
        assert -1.0 <= row["ndvi_min"] < row["ndvi_mean"] < row["ndvi_max"] <= 1.0 and row["valid_fraction"] > 0.99
    raw = {row["scene_id"]: row for row in landed.tables["raw"].to_pylist()}
    kept = {f["name"] for f in json.loads(raw[acquisitions[0].scene_id]["files_json"])}
    assert kept == set(acquisitions[0].files)
    assert raw[acquisitions[0].scene_id]["raw_prefix"] == f"raw/scenes/sentinel-2-l2a/{acquisitions[0].scene_id}"


def test_pipeline_finds_the_clearing_between_the_two_acquisitions(
    landed: Landed, acquisitions: list[Acquisition]
) -> None:
    change = [row for row in landed.tables["change"].to_pylist() if row["scene_id"] == acquisitions[1].scene_id]
    assert len(change) == 1, change
    assert change[0]["before_scene_id"] == acquisitions[0].scene_id and change[0]["collection"] == "sentinel-2-l2a"
    assert change[0]["area_ha"] == pytest.approx(clearing_plan(SIZE, len(DATES)).area_ha(), rel=0.15)
