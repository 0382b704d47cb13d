"""The downloader end to end against the local STAC replay of Earth Search and the Planetary Computer: paging to
the end, the landing layout, range reads far smaller than the files, pixels equal to the source, the skip of
items landed before, and resumption after the process is killed half way."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import from_bounds

from satlake.acquisition.download import LANDED, REJECTED, SKIPPED, landed_items
from satlake.acquisition.landing import MANIFEST_NAME
from satlake.acquisition.schedules import SEARCHED
from satlake.acquisition.stac_replay import Faults, ReplayItem, StacReplayServer
from satlake.acquisition.stac_replay_items import asset_keys
from tests.unit.acquisition.replay_helpers import (
    COLLECTION,
    ROLE_FILES,
    SIX_DATES,
    Lake,
    SlowReplayServer,
    add_test_aoi,
    landing_files,
    lonlat_box,
    make_scenes,
    replay_items,
    request_for,
    scenes_in_two_utm_zones,
    sha256_of,
)

FLAVOURS = ("earth-search", "planetary-computer")
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_scenes(tmp_path_factory.mktemp("scenes"))


@pytest.fixture(scope="module")
def items(scenes: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[ReplayItem]]:
    work = tmp_path_factory.mktemp("replay")
    return {flavour: replay_items(scenes, work, flavour) for flavour in FLAVOURS}


def source_env(server: StacReplayServer) -> dict[str, str]:
    """Settings naming the replay server as the source of its flavour (and its token service for signing)."""
    return {"SATLAKE_STAC_SOURCES": f"{server.flavour}={server.url}", "SATLAKE_PC_SAS_URL": server.sas_url}


def start_lake(tmp_path: Path, server: StacReplayServer, scene: Path, **environ: str) -> Lake:
    lake = Lake.at(tmp_path / "root", **source_env(server), **environ)
    # 60 x 60 px of a 512 x 512 scene, inside one of its four 256-px tiles.
    add_test_aoi(lake.resources, "forest", lonlat_box(scene, 20, 20, 60, 60), server.flavour)
    return lake


def item_rows(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row["item_id"] is not None]


def search_row(rows: list[dict]) -> dict:
    (row,) = [row for row in rows if row["item_id"] is None]
    return row


def assert_only_whole_scenes(landing_root: Path) -> None:
    """Every file in the landing area is a finished object, and every folder with a manifest has all it lists."""
    for path in landing_files(landing_root):
        assert not path.name.startswith("."), f"a temporary file was left in the landing area: {path}"
        assert path.name in (*ROLE_FILES, MANIFEST_NAME), path
    for manifest_path in landing_root.rglob(MANIFEST_NAME):
        manifest = json.loads(manifest_path.read_text())
        for entry in manifest["files"].values():
            assert sha256_of(manifest_path.parent / entry["file"]) == entry["sha256"]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_page_lands_as_range_reads_of_the_aoi_window(
    items: dict[str, list[ReplayItem]], scenes: list[Path], tmp_path: Path, flavour: str
) -> None:
    replayed = items[flavour]
    with StacReplayServer(replayed, flavour=flavour, page_size=2) as server:
        lake = start_lake(tmp_path, server, scenes[0])
        request = request_for("forest")
        report = lake.download(request, "forest", flavour)
        searches = [r for r in server.requests if r.path.endswith("/search")]
        asset_bytes = server.bytes_sent("/assets/")
        tokens = [r for r in server.requests if "/token/" in r.path]
    rows = item_rows(report.rows)
    assert len(searches) == 3 and all(r.status == 200 for r in searches)  # 6 items, 2 per page, to the end
    assert sorted(row["item_id"] for row in rows) == sorted(r.item["id"] for r in replayed)
    assert [row["status"] for row in rows] == [LANDED] * 6, [row["reason"] for row in rows]
    assert search_row(report.rows)["status"] == SEARCHED
    if flavour == "planetary-computer":
        assert len(tokens) == 1 and tokens[0].path.endswith(f"/token/{COLLECTION}")  # one token, cached
    fetched, source = sum(r["bytes_fetched"] for r in rows), sum(r["source_bytes"] for r in rows)
    print(f"{flavour}: {fetched:,} bytes fetched of {source:,} source bytes ({fetched / source:.1%})")
    assert fetched == asset_bytes  # every byte the server sent is counted, and nothing else
    assert all(row["bytes_fetched"] < 0.4 * row["source_bytes"] for row in rows)

    landing = lake.stores.landing
    keys_by_role = asset_keys(flavour, COLLECTION)
    by_id = {r.item["id"]: r for r in replayed}
    for row in rows:
        day = by_id[row["item_id"]].item["properties"]["datetime"][:10]
        pattern = rf"{flavour}/{COLLECTION}/[0-9b-hjkmnp-z]{{5}}/{day}/bbox_[-0-9.]+_[-0-9.]+_[-0-9.]+_[-0-9.]+/"
        assert re.fullmatch(pattern + re.escape(row["item_id"]), row["landing_prefix"])
        assert landing.list(row["landing_prefix"] + "/") == sorted(
            f"{row['landing_prefix']}/{name}" for name in (*ROLE_FILES, MANIFEST_NAME)
        )
        manifest = json.loads(Path(landing.uri(f"{row['landing_prefix']}/{MANIFEST_NAME}")).read_text())
        assert manifest["scene_id"] == row["scene_id"] and manifest["request_id"] == request.request_id
        for role, key in keys_by_role.items():
            landed = Path(landing.uri(f"{row['landing_prefix']}/{role}.tif"))
            assert sha256_of(landed) == manifest["files"][role]["sha256"]
            with rasterio.open(landed) as out, rasterio.open(by_id[row["item_id"]].files[key]) as src:
                window = from_bounds(*out.bounds, transform=src.transform).round_offsets().round_lengths()
                np.testing.assert_array_equal(out.read(1), src.read(1, window=window))
                assert out.crs == src.crs and out.width * out.height <= 70 * 70
    assert_only_whole_scenes(lake.landing_root)


def test_a_second_request_skips_what_landed_and_reads_no_band(
    items: dict[str, list[ReplayItem]], scenes: list[Path], tmp_path: Path
) -> None:
    with StacReplayServer(items["earth-search"], page_size=2) as server:
        lake = start_lake(tmp_path, server, scenes[0])
        first_request = request_for("forest")
        first = lake.download(first_request, "forest", "earth-search")
        landed_keys = lake.stores.landing.list()
        server.clear_requests()
        second = lake.download(request_for("forest"), "forest", "earth-search", landed_items(first.rows))
        band_reads = [r for r in server.requests if r.path.startswith("/assets/") and r.method == "GET"]
    rows = item_rows(second.rows)
    assert len(rows) == 6 and all(row["status"] == SKIPPED for row in rows)
    assert all(first_request.request_id in row["reason"] for row in rows)
    assert band_reads == [] and all(row["bytes_fetched"] == 0 for row in rows)
    assert lake.stores.landing.list() == landed_keys


def test_a_killed_download_resumes_without_half_files_or_rereading_landed_bands(
    items: dict[str, list[ReplayItem]], scenes: list[Path], tmp_path: Path
) -> None:
    two = items["earth-search"][:2]
    with SlowReplayServer(two, page_size=2, delay_s=0.2) as server:
        lake = start_lake(tmp_path, server, scenes[0])
        request = request_for("forest")
        landing_root = lake.landing_root
        arguments = json.dumps(
            {"root": str(tmp_path / "root"), "environ": source_env(server), "request": request.to_json(),
             "source": "earth-search"}
        )  # fmt: skip
        code = "import sys; from tests.unit.acquisition.replay_helpers import download_main; download_main(sys.argv[1])"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        child = subprocess.Popen([sys.executable, "-c", code, arguments], cwd=REPO, env=env)
        try:
            deadline = time.monotonic() + 60
            while len([p for p in landing_files(landing_root) if p.suffix == ".tif"]) < 2:
                assert child.poll() is None, "the download ended before it could be killed"
                assert time.monotonic() < deadline, "no band file landed within a minute"
                time.sleep(0.01)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
        after_kill = {path: sha256_of(path) for path in landing_files(landing_root)}
        assert not any(path.name == MANIFEST_NAME for path in after_kill)
        assert_only_whole_scenes(landing_root)
        for path in after_kill:
            with rasterio.open(path) as landed:
                assert landed.read(1).size > 0  # a whole GeoTIFF, readable to the last tile
        landed_before_kill = sorted(after_kill)
        killed_folder = landed_before_kill[0].parent
        server.delay_s = 0.0
        server.clear_requests()
        report = lake.download(request, "forest", "earth-search")
        band_gets = {r.path for r in server.requests if r.method == "GET" and r.path.startswith("/assets/")}
        keys = asset_keys("earth-search", COLLECTION)
        read_again = {
            path.name: server.asset_href(killed_folder.name, keys[path.stem]).removeprefix(server.base_url) in band_gets
            for path in after_kill
        }
    rows = item_rows(report.rows)
    assert [row["status"] for row in rows] == [LANDED, LANDED], [row["reason"] for row in rows]
    assert_only_whole_scenes(landing_root)
    killed_row = next(row for row in rows if row["item_id"] == killed_folder.name)
    assert Path(lake.stores.landing.uri(killed_row["landing_prefix"])) == killed_folder
    # Files landed before the kill are kept as they were; only the first band (its window names the folder)
    # is read again, the others are not requested at all.
    for path, digest in after_kill.items():
        assert sha256_of(path) == digest
    assert len(after_kill) >= 2 and read_again == {path.name: path.name == "blue.tif" for path in after_kill}


# -- bad inputs: each ends as a row with its reason, and the items around it still land -------------------------


def run_with_faults(
    tmp_path: Path, replayed: list[ReplayItem], scene: Path, faults: Faults | None = None, **environ: str
) -> tuple[list[dict], StacReplayServer, Lake]:
    with StacReplayServer(replayed, page_size=2, faults=faults) as server:
        lake = start_lake(tmp_path, server, scene, **environ)
        report = lake.download(request_for("forest"), "forest", "earth-search")
    assert_only_whole_scenes(lake.landing_root)
    return report.rows, server, lake


def statuses(rows: list[dict]) -> dict[str, str]:
    return {row["item_id"]: row["status"] for row in item_rows(rows)}


def test_search_failing_after_retries_is_a_rejected_search_row(
    items: dict[str, list[ReplayItem]], scenes: list[Path], tmp_path: Path
) -> None:
    faults = Faults(status_sequence={"/search": [503, 503, 503]}, retry_after=None)
    rows, server, _ = run_with_faults(tmp_path, items["earth-search"][:3], scenes[0], faults)
    assert item_rows(rows) == []
    row = search_row(rows)
    assert row["status"] == REJECTED and "503" in row["reason"] and "/search" in row["reason"]
    assert [r.status for r in server.requests if r.path == "/search"] == [503, 503, 503]  # 1 try + 2 retries


def test_rate_limit_is_waited_out_then_everything_lands(
    items: dict[str, list[ReplayItem]], scenes: list[Path], tmp_path: Path
) -> None:
    started = time.monotonic()
    faults = Faults(status_sequence={"/search": [429]}, retry_after="1")
    rows, server, _ = run_with_faults(tmp_path, items["earth-search"][:3], scenes[0], faults)
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 honoured
    assert [r.status for r in server.requests if r.path == "/search"] == [429, 200, 200]
    assert set(statuses(rows).values()) == {LANDED} and len(statuses(rows)) == 3
    assert search_row(rows)["status"] == SEARCHED


def test_malformed_search_json_is_a_rejected_search_row(
    items: dict[str, list[ReplayItem]], scenes: list[Path], tmp_path: Path
) -> None:
    rows, _, _ = run_with_faults(tmp_path, items["earth-search"][:3], scenes[0], Faults(malformed_json_on={"/search"}))
    assert item_rows(rows) == []
    assert search_row(rows)["status"] == REJECTED and "malformed JSON" in search_row(rows)["reason"]


def test_an_item_without_a_band_is_rejected_naming_it(
    items: dict[str, list[ReplayItem]], scenes: list[Path], tmp_path: Path
) -> None:
    replayed = items["earth-search"][:3]
    dropped = replayed[1].item["id"]
    rows, _, _ = run_with_faults(tmp_path, replayed, scenes[0], Faults(drop_bands={dropped: {"nir", "scl"}}))
    assert statuses(rows) == {r.item["id"]: REJECTED if r.item["id"] == dropped else LANDED for r in replayed}
    reason = next(row["reason"] for row in item_rows(rows) if row["item_id"] == dropped)
    assert "band role(s) nir, cloud" in reason


def test_a_looping_next_link_stops_the_search_keeping_the_items_before(
    items: dict[str, list[ReplayItem]], scenes: list[Path], tmp_path: Path
) -> None:
    rows, server, _ = run_with_faults(tmp_path, items["earth-search"], scenes[0], Faults(loop_next=True))
    assert list(statuses(rows).values()) == [LANDED] * 4  # pages 1 and 2
    assert search_row(rows)["status"] == REJECTED and "next link loops" in search_row(rows)["reason"]
    assert len([r for r in server.requests if r.path == "/search"]) == 2


def test_a_missing_asset_rejects_its_item_only(
    items: dict[str, list[ReplayItem]], scenes: list[Path], tmp_path: Path
) -> None:
    replayed = list(items["earth-search"][:3])
    broken = replayed[0]
    replayed[0] = ReplayItem(broken.item, {**broken.files, "red": tmp_path / "deleted-at-the-source.tif"})
    rows, _, _ = run_with_faults(tmp_path, replayed, scenes[0])
    assert statuses(rows) == {r.item["id"]: REJECTED if r is replayed[0] else LANDED for r in replayed}
    reason = next(row["reason"] for row in item_rows(rows) if row["item_id"] == broken.item["id"])
    assert "red.tif was not found (HTTP 404)" in reason


def test_an_asset_redirecting_to_another_host_is_refused(
    items: dict[str, list[ReplayItem]], scenes: list[Path], tmp_path: Path
) -> None:
    faults = Faults(redirect_assets_to="http://localhost:9")
    rows, server, lake = run_with_faults(tmp_path, items["earth-search"][:2], scenes[0], faults)
    assert list(statuses(rows).values()) == [REJECTED, REJECTED]
    assert all("another host http://localhost:9" in row["reason"] for row in item_rows(rows))
    assert {r.status for r in server.requests if r.path.startswith("/assets/")} == {302}  # never followed
    assert lake.stores.landing.list() == []


def test_a_truncated_asset_is_rejected_and_lands_nothing_of_its_item(
    items: dict[str, list[ReplayItem]], scenes: list[Path], tmp_path: Path
) -> None:
    rows, _, lake = run_with_faults(tmp_path, items["earth-search"][:1], scenes[0], Faults(truncate_assets={"red"}))
    (row,) = item_rows(rows)
    assert row["status"] == REJECTED and "red" in row["reason"]
    assert re.search(r"cut short|ended before|truncat", row["reason"]), row["reason"]
    assert not any(key.endswith(MANIFEST_NAME) or key.endswith("red.tif") for key in lake.stores.landing.list())


def test_an_item_whose_raster_misses_the_aoi_is_skipped(
    items: dict[str, list[ReplayItem]], tmp_path: Path, scenes: list[Path]
) -> None:
    elsewhere = replay_items(
        make_scenes(tmp_path / "other", dates=SIX_DATES[:1], tiles=2)[1:], tmp_path, "earth-search"
    )
    outside = copy.deepcopy(elsewhere[0].item)  # tile 1 is in UTM zone 34; its footprint claims the AOI's tile
    outside["id"] = "footprint-lies"
    outside["geometry"], outside["bbox"] = (
        items["earth-search"][0].item["geometry"],
        items["earth-search"][0].item["bbox"],
    )
    replayed = [*items["earth-search"][:2], ReplayItem(outside, elsewhere[0].files)]
    rows, _, _ = run_with_faults(tmp_path, replayed, scenes[0])
    assert statuses(rows) == {replayed[0].item["id"]: LANDED, replayed[1].item["id"]: LANDED, "footprint-lies": SKIPPED}
    reason = next(row["reason"] for row in item_rows(rows) if row["item_id"] == "footprint-lies")
    assert reason.startswith("outside the AOI") and "does not intersect the raster" in reason


def test_items_of_one_aoi_in_two_utm_zones_land_in_their_own_crs(tmp_path: Path) -> None:
    zone_scenes, aoi = scenes_in_two_utm_zones(tmp_path / "zones")
    replayed = replay_items(zone_scenes, tmp_path, "earth-search")
    with StacReplayServer(replayed, page_size=2) as server:
        lake = Lake.at(tmp_path / "root", **source_env(server))
        add_test_aoi(lake.resources, "border", aoi, "earth-search")
        report = lake.download(request_for("border"), "border", "earth-search")
    rows = item_rows(report.rows)
    assert [row["status"] for row in rows] == [LANDED, LANDED], [row["reason"] for row in rows]
    assert len({row["scene_id"] for row in rows}) == 2
    crs = {}
    for row in rows:
        manifest = json.loads(Path(lake.stores.landing.uri(f"{row['landing_prefix']}/{MANIFEST_NAME}")).read_text())
        with rasterio.open(lake.stores.landing.uri(f"{row['landing_prefix']}/red.tif")) as red:
            assert red.crs.to_string() == manifest["crs"]
        crs[row["item_id"]] = manifest["crs"]
    assert crs == {"zone32_20240502": "EPSG:32632", "zone33_20240502": "EPSG:32633"}


def test_a_byte_budget_smaller_than_one_band_stops_the_run_cleanly(
    items: dict[str, list[ReplayItem]], scenes: list[Path], tmp_path: Path
) -> None:
    environ = {"SATLAKE_ACQUISITION_BYTE_BUDGET": "20000"}
    rows, server, lake = run_with_faults(tmp_path, items["earth-search"][:3], scenes[0], **environ)
    (row,) = item_rows(rows)  # the run stopped at the first item
    assert row["status"] == REJECTED and "budget ran out" in row["reason"]
    assert search_row(rows)["status"] == REJECTED and "byte budget of 20000 bytes" in search_row(rows)["reason"]
    assert server.bytes_sent("/assets/") <= 20000 and lake.stores.landing.list() == []


def test_a_spent_request_budget_stops_the_run_keeping_what_landed(
    items: dict[str, list[ReplayItem]], scenes: list[Path], tmp_path: Path
) -> None:
    # The landing page and a search page cost 2 requests, an item 14 (5 HEAD, 9 range GETs): 20 ends in item 2.
    environ = {"SATLAKE_ACQUISITION_REQUEST_BUDGET": "20"}
    rows, server, lake = run_with_faults(tmp_path, items["earth-search"][:3], scenes[0], **environ)
    assert list(statuses(rows).values())[:1] == [LANDED] and LANDED not in list(statuses(rows).values())[1:]
    assert search_row(rows)["status"] == REJECTED and "request budget of 20 HTTP requests" in search_row(rows)["reason"]
    assert len(server.requests) == 20
    assert len([key for key in lake.stores.landing.list() if key.endswith(MANIFEST_NAME)]) == 1
