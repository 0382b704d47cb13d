"""Landing keys, checksummed puts, band tags and the scene.json manifest, against a local object store and the
scene sensor's own grouping of the landed keys."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from satlake.acquisition.landing import (
    LandingError,
    ManifestFile,
    acquisition_prefix,
    band_file_name,
    band_tags,
    bbox_segment,
    build_manifest,
    geohash5,
    key_safe,
    land_file,
    scene_id_for,
    write_manifest,
)
from satlake.resources.object_store import LocalObjectStore
from satlake.scenes.grouping import scene_id_for_key

BBOX = (13.30001, 52.49996, -0.000001, 52.6)
ITEM = {
    "id": "S2B_33UUU_20240502_0_L2A",
    "collection": "sentinel-2-l2a",
    "properties": {"datetime": "2024-05-02T10:06:29.024000+00:00", "platform": "sentinel-2b", "eo:cloud_cover": 12.3},
    "links": [{"rel": "self", "href": "https://earth-search.aws.element84.com/v1/collections/x/items/S2B"}],
    "assets": {},
}


def test_prefix_layout_rounds_bbox_and_makes_item_id_key_safe() -> None:
    prefix = acquisition_prefix(
        "earth-search", "sentinel-2-l2a", "u33dc", datetime(2024, 5, 2, 23, 30, tzinfo=UTC), BBOX, "S2B 33/UUU:x"
    )
    assert prefix == "earth-search/sentinel-2-l2a/u33dc/2024-05-02/bbox_13.3000_52.5000_0.0000_52.6000/S2B_33_UUU_x"
    assert (
        acquisition_prefix("cdse", "c", "u33dc", "2024-05-02T23:30:00-02:00", BBOX, "i").split("/")[3] == "2024-05-03"
    )
    assert acquisition_prefix("cdse", "c", "u33dc", date(2024, 1, 9), (-1.5, -2, -1, -1.25), "i").endswith(
        "/2024-01-09/bbox_-1.5000_-2.0000_-1.0000_-1.2500/i"
    )
    assert band_file_name("nir") == "nir.tif"
    assert key_safe("..").startswith("id-")


def test_bbox_segment_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match=r"must be \(minx, miny, maxx, maxy\)"):
        bbox_segment((1, 2, 3))
    with pytest.raises(ValueError, match="not finite"):
        bbox_segment((1, 2, float("nan"), 4))


def test_geohash5_of_bbox_centre() -> None:
    # Wikipedia's geohash example: 57.64911 N, 10.40744 E is u4pruydqqvj.
    assert geohash5((10.40644, 57.64811, 10.40844, 57.65011)) == "u4pru"


def test_scene_id_matches_the_sensor_grouping_of_landed_keys() -> None:
    prefix = acquisition_prefix("earth-search", "sentinel-2-l2a", "u33dc", "2024-05-02", BBOX, ITEM["id"])
    expected = f"S2B_33UUU_20240502_0_L2A-{hashlib.sha256(b'13.3000_52.5000_0.0000_52.6000').hexdigest()[:8]}"
    assert scene_id_for(ITEM["id"], BBOX) == expected
    assert scene_id_for_key(f"{prefix}/red.tif") == expected
    assert scene_id_for(ITEM["id"], (13.3, 52.5, 13.4, 52.6)) != expected  # another window, another scene


def test_land_file_puts_once_with_checksum(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "landing")
    local = tmp_path / "red.tif"
    local.write_bytes(b"pixels" * 1000)
    landed = land_file(store, local, "a/b/red.tif")
    assert landed.sha256 == hashlib.sha256(b"pixels" * 1000).hexdigest()
    assert landed.size == 6000 and store.sha256("a/b/red.tif") == landed.sha256
    assert store.list("a/") == ["a/b/red.tif"]  # no temporary object left beside it


def test_land_file_refuses_missing_or_empty_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "landing")
    with pytest.raises(LandingError, match=r"cannot land .*nope.tif at 'k/x.tif': the local file does not exist"):
        land_file(store, tmp_path / "nope.tif", "k/x.tif")
    empty = tmp_path / "empty.tif"
    empty.touch()
    with pytest.raises(LandingError, match="the file is empty"):
        land_file(store, empty, "k/x.tif")
    assert store.list() == []


def test_band_tags_carry_what_the_scene_path_reads() -> None:
    tags = band_tags(ITEM, "earth-search", "https://earth-search.aws.element84.com/v1", "sentinel-2-l2a")
    assert tags == {
        "ACQUISITION_TIME": "2024-05-02T10:06:29.024000Z",
        "PLATFORM": "sentinel-2b",
        "CLOUD_COVER": "12.3",
        "SATLAKE_COLLECTION": "sentinel-2-l2a",
        "SATLAKE_DERIVED_FROM": "https://earth-search.aws.element84.com/v1/collections/x/items/S2B",
        "SATLAKE_SOURCE": "earth-search",
    }
    no_self = {**ITEM, "links": []}
    assert band_tags(no_self, "replay", "http://127.0.0.1:9/", "c")["SATLAKE_DERIVED_FROM"] == (
        "http://127.0.0.1:9/collections/c/items/S2B_33UUU_20240502_0_L2A"
    )


def test_manifest_lands_last_and_lists_the_landed_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "landing")
    prefix = acquisition_prefix("earth-search", "sentinel-2-l2a", "u33dc", "2024-05-02", BBOX, ITEM["id"])
    files = {}
    for role in ("blue", "red"):
        local = tmp_path / f"{role}.tif"
        local.write_bytes(role.encode() * 10)
        landed = land_file(store, local, f"{prefix}/{band_file_name(role)}")
        files[role] = ManifestFile(band_file_name(role), landed.sha256, landed.size, f"https://x/{role}.tif", '"e"')
    manifest = build_manifest(
        item=ITEM,
        source="earth-search",
        source_url="https://earth-search.aws.element84.com/v1",
        collection="sentinel-2-l2a",
        aoi="spreewald",
        request_id="req-1",
        window_bbox=BBOX,
        crs="EPSG:32633",
        files=files,
    )
    landed = write_manifest(store, prefix, manifest)
    document = json.loads((tmp_path / "landing" / landed.key).read_text())
    assert landed.key == f"{prefix}/scene.json"
    assert document["type"] == "satlake.acquired-scene" and document["version"] == 1
    assert document["scene_id"] == scene_id_for(ITEM["id"], BBOX) == scene_id_for_key(landed.key)
    assert document["window_bbox"] == [13.3, 52.5, 0.0, 52.6]
    assert document["files"]["red"] == {
        "file": "red.tif",
        "sha256": hashlib.sha256(b"red" * 10).hexdigest(),
        "size": 30,
        "asset_href": "https://x/red.tif",
        "etag": '"e"',
    }
    assert (document["datetime"], document["platform"], document["cloud_cover"]) == (
        "2024-05-02T10:06:29.024000Z",
        "sentinel-2b",
        12.3,
    )
    assert document["item_href"] == ITEM["links"][0]["href"]


def test_manifest_refused_while_a_listed_file_has_not_landed(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "landing")
    files = {"nir": ManifestFile("nir.tif", "0" * 64, 1, "https://x/nir.tif", None)}
    manifest = build_manifest(
        item=ITEM, source="s", source_url="u", collection="c", aoi="a", request_id="r", window_bbox=BBOX,
        crs="EPSG:32633", files=files,
    )  # fmt: skip
    with pytest.raises(LandingError, match=r"its files \['nir.tif'\] have not landed; land them first"):
        write_manifest(store, "p/q", manifest)
    assert store.list() == []
