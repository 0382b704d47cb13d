"""The static STAC catalog: written once, crawled back from catalog.json by following relative links."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from satlake.catalog.items import build_collection
from satlake.catalog.static import write_static_catalog
from satlake.catalog.validation import validate_stac_object
from tests.unit.catalog.catalog_scenes import antimeridian_scene, earth_utm_scene, mars_scene, polar_scene


def crawl(catalog_path: Path) -> dict[str, dict[str, Any]]:
    """Follow child and item links from the root as a STAC browser would; objects by resolved path."""
    found: dict[str, dict[str, Any]] = {}
    pending = [catalog_path.resolve()]
    while pending:
        path = pending.pop()
        obj = json.loads(path.read_text(encoding="utf-8"))
        found[str(path)] = obj
        for link in obj["links"]:
            assert not link["href"].startswith("/"), f"{path}: link {link} is absolute"
            target = (path.parent / link["href"]).resolve()
            assert target.exists(), f"{path}: link {link} points nowhere"
            if link["rel"] in ("child", "item"):
                pending.append(target)
            if link["rel"] == "root":
                assert target == catalog_path.resolve()
    return found


@pytest.fixture
def catalog(tmp_path: Path, make_item) -> tuple[Path, list[dict[str, Any]]]:
    base = str(tmp_path)
    items = [make_item(scene, base) for scene in (earth_utm_scene(), antimeridian_scene(), polar_scene(), mars_scene())]
    collections = {}
    for collection_id in sorted({item["collection"] for item in items}):
        members = [item for item in items if item["collection"] == collection_id]
        collections[collection_id] = build_collection(collection_id, members, f"{collection_id} scenes", "other")
    return write_static_catalog(tmp_path, collections, items), items


def test_crawling_from_catalog_json_finds_every_collection_and_item(catalog) -> None:
    catalog_path, items = catalog
    assert catalog_path.name == "catalog.json" and catalog_path.parent.name == "stac"

    found = crawl(catalog_path)

    by_type: dict[str, list[str]] = {}
    for obj in found.values():
        by_type.setdefault(obj["type"], []).append(obj["id"])
    assert sorted(by_type["Catalog"]) == ["satlake"]
    assert sorted(by_type["Collection"]) == ["landsat-c2-l2", "mars-ctx", "polar-mosaics"]
    assert sorted(by_type["Feature"]) == sorted(item["id"] for item in items)
    for path, obj in found.items():
        assert validate_stac_object(obj) == [], path


def test_layout_and_asset_hrefs(catalog, tmp_path: Path) -> None:
    item_path = tmp_path / "stac" / "landsat-c2-l2" / "LC08_T33_20240501" / "LC08_T33_20240501.json"
    item = json.loads(item_path.read_text())

    cog_href = item["assets"]["cog"]["href"]
    assert cog_href == "../../../cogs/landsat-c2-l2/LC08_T33_20240501/scene.tif"
    assert (item_path.parent / cog_href).resolve() == tmp_path / "cogs/landsat-c2-l2/LC08_T33_20240501/scene.tif"
    assert item["assets"]["mtl"]["href"].startswith("s3://satlake-raw/")  # remote stays absolute
    assert {link["rel"] for link in item["links"]} == {"root", "parent", "collection"}


def test_asset_outside_the_root_becomes_an_absolute_file_uri(tmp_path: Path, make_item) -> None:
    item = make_item(earth_utm_scene(), "/elsewhere/data")
    collection = build_collection("landsat-c2-l2", [item], "d", "other")
    write_static_catalog(tmp_path / "root", {"landsat-c2-l2": collection}, [item])

    written = json.loads((tmp_path / "root/stac/landsat-c2-l2/LC08_T33_20240501/LC08_T33_20240501.json").read_text())
    assert written["assets"]["cog"]["href"] == "file:///elsewhere/data/cogs/landsat-c2-l2/LC08_T33_20240501/scene.tif"


def test_rewriting_the_same_catalog_gives_identical_files(catalog, tmp_path: Path, make_item) -> None:
    def snapshot() -> dict[str, str]:
        return {
            str(path.relative_to(tmp_path)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted((tmp_path / "stac").rglob("*.json"))
        }

    before = snapshot()
    _, items = catalog
    collections = {
        cid: build_collection(cid, [i for i in items if i["collection"] == cid], f"{cid} scenes", "other")
        for cid in {item["collection"] for item in items}
    }
    write_static_catalog(tmp_path, collections, list(reversed(items)))

    assert snapshot() == before
    assert len(before) == 1 + 3 + 4


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", "", ".hidden", "x..y"])
def test_ids_that_would_escape_the_folder_are_refused(tmp_path: Path, make_item, bad_id: str) -> None:
    item = make_item(earth_utm_scene())
    item["id"] = bad_id
    collection = build_collection("landsat-c2-l2", [make_item(earth_utm_scene())], "d", "other")
    with pytest.raises(ValueError, match="cannot be used as a folder name"):
        write_static_catalog(tmp_path, {"landsat-c2-l2": collection}, [item])


def test_item_of_an_unknown_collection_is_refused(tmp_path: Path, make_item) -> None:
    with pytest.raises(ValueError, match="not among the collections"):
        write_static_catalog(tmp_path, {}, [make_item(earth_utm_scene())])
