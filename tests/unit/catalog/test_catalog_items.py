"""STAC items from scene metadata: fields, extensions, odd geometries, and offline schema validation."""

from __future__ import annotations

import copy
import urllib.request
from typing import Any

import pytest

from satlake.catalog.items import (
    MEDIA_TYPE_COG,
    AssetRef,
    build_collection,
    build_stac_item,
    sha256_multihash,
    union_bboxes,
    union_longitudes,
    update_collection_extent,
)
from satlake.catalog.validation import (
    EO_EXTENSION,
    FILE_EXTENSION,
    PROJECTION_EXTENSION,
    RASTER_EXTENSION,
    SSYS_EXTENSION,
    VIEW_EXTENSION,
    validate_stac_object,
)
from tests.unit.catalog.catalog_scenes import (
    antimeridian_scene,
    earth_utm_scene,
    mars_scene,
    polar_scene,
    scene_assets,
    sha,
)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation must resolve every schema from the package: any network access fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"validation tried to reach the network: {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_earth_item_carries_scene_metadata_in_stac_fields(make_item) -> None:
    item = make_item(earth_utm_scene())
    properties = item["properties"]

    assert item["id"] == "LC08_T33_20240501"
    assert item["collection"] == "landsat-c2-l2"
    assert item["bbox"] == [15.0, 45.126466, 15.038166, 45.153477]
    assert item["geometry"]["type"] == "Polygon"
    assert item["geometry"]["coordinates"][0][0] == [15.0, 45.126466]
    assert properties["datetime"] == "2024-05-01T10:00:00Z"
    assert properties["platform"] == "landsat-8"
    assert properties["instruments"] == ["oli"]
    assert properties["eo:cloud_cover"] == 12.5
    assert properties["view:sun_azimuth"] == 330.0  # -30 in MTL convention
    assert properties["view:sun_elevation"] == 55.2
    assert properties["proj:code"] == "EPSG:32633"
    assert "proj:wkt2" not in properties
    assert properties["proj:bbox"] == [500000.0, 4997000.0, 503000.0, 5000000.0]
    assert properties["proj:shape"] == [100, 100]
    assert properties["proj:transform"] == [30.0, 0.0, 500000.0, 0.0, -30.0, 5000000.0]
    assert properties["gsd"] == 30.0
    assert item["stac_extensions"] == sorted(
        [EO_EXTENSION, FILE_EXTENSION, PROJECTION_EXTENSION, RASTER_EXTENSION, VIEW_EXTENSION]
    )


def test_assets_have_bands_checksums_and_roles(make_item) -> None:
    item = make_item(earth_utm_scene())
    cog = item["assets"]["cog"]

    assert cog["type"] == MEDIA_TYPE_COG
    assert cog["roles"] == ["data"]
    assert cog["file:size"] == 80_000
    assert cog["file:checksum"] == "1220" + sha("scene")
    assert [band["eo:common_name"] for band in cog["bands"]] == ["blue", "green", "red", "nir"]
    red = cog["bands"][2]
    assert red == {
        "name": "B4",
        "data_type": "uint16",
        "eo:common_name": "red",
        "eo:center_wavelength": 0.655,
        "nodata": 0,
        "raster:scale": 2.75e-05,
        "raster:offset": -0.2,
    }
    thumbnail = item["assets"]["thumbnail"]
    assert thumbnail["roles"] == ["thumbnail", "overview"]
    assert thumbnail["proj:code"] is None  # the PNG is not georeferenced
    assert item["assets"]["mtl"]["href"].startswith("s3://")


def test_item_links_point_at_collection_and_root(make_item) -> None:
    item = build_stac_item(earth_utm_scene(), scene_assets(earth_utm_scene(), "/d"), self_href="/d/item.json")
    rels = {link["rel"]: link["href"] for link in item["links"]}
    assert rels == {
        "self": "/d/item.json",
        "root": "../../catalog.json",
        "parent": "../collection.json",
        "collection": "../collection.json",
    }


@pytest.mark.parametrize(
    "scene",
    [earth_utm_scene(), antimeridian_scene(), polar_scene(), mars_scene()],
    ids=["utm", "antimeridian", "polar", "mars"],
)
def test_every_kind_of_scene_validates_offline(make_item, scene) -> None:
    assert validate_stac_object(make_item(scene)) == []


def test_antimeridian_item_keeps_west_greater_than_east(make_item) -> None:
    item = make_item(antimeridian_scene())
    assert item["bbox"] == [179.5, -17.5, -179.5, -16.5]
    assert item["geometry"]["type"] == "MultiPolygon"
    assert len(item["geometry"]["coordinates"]) == 2


def test_antimeridian_bbox_is_derived_from_split_footprint_when_bounds_are_missing(make_item) -> None:
    item = make_item(antimeridian_scene(bounds_geographic=None))
    assert item["bbox"] == [179.5, -17.5, -179.5, -16.5]


def test_polar_item_spans_all_longitudes(make_item) -> None:
    item = make_item(polar_scene())
    assert item["bbox"] == [-180.0, 85.0, 180.0, 90.0]
    assert item["properties"]["proj:code"] == "EPSG:3413"


def test_mars_item_is_never_placed_on_earth(make_item) -> None:
    item = make_item(mars_scene())
    properties = item["properties"]

    assert item["geometry"] is None
    assert "bbox" not in item
    assert properties["ssys:targets"] == ["mars"]
    assert properties["ssys:target_class"] == "planet"
    assert properties["proj:code"] == "IAU_2015:49910"
    assert "Mars" in properties["proj:wkt2"]
    assert properties["proj:geometry"]["type"] == "Polygon"
    assert properties["satlake:body_bbox"] == [137.0, -5.0, 138.0, -4.0]
    assert item["assets"]["cog"]["bands"][0]["nodata"] == "nan"
    assert SSYS_EXTENSION in item["stac_extensions"]


def test_unknown_landsat_cloud_cover_is_left_out(make_item) -> None:
    item = make_item(earth_utm_scene(cloud_cover=-1.0))
    assert "eo:cloud_cover" not in item["properties"]
    assert validate_stac_object(item) == []


def test_scene_without_acquisition_time_is_refused_with_reason() -> None:
    with pytest.raises(ValueError, match="no acquisition time"):
        build_stac_item(earth_utm_scene(acquired_at=None), scene_assets(earth_utm_scene(), "/d"))


def test_asset_naming_an_unknown_band_is_refused() -> None:
    asset = AssetRef("/d/x.tif", MEDIA_TYPE_COG, ("data",), band_names=("B9",))
    with pytest.raises(ValueError, match=r"B9"):
        build_stac_item(earth_utm_scene(), {"cog": asset})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"footprint_geographic_wkt": "POLYGON ((0 0, 1"}, "not valid WKT"),
        ({"footprint_geographic_wkt": "POINT (15 45)"}, "got Point"),
        ({"crs_epsg": None, "crs_wkt": "not a crs"}, "crs_wkt cannot be parsed"),
    ],
)
def test_malformed_scene_metadata_is_refused_with_reason(changes, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_stac_item(earth_utm_scene(**changes), scene_assets(earth_utm_scene(), "/d"))


def test_multihash_rejects_non_sha256() -> None:
    assert sha256_multihash("AB" * 32) == "1220" + "ab" * 32
    with pytest.raises(ValueError, match="64-character"):
        sha256_multihash("abc")


# --- validation catches broken items ---------------------------------------------------------------------


def test_broken_item_reports_the_fields_at_fault(make_item) -> None:
    item = copy.deepcopy(make_item(earth_utm_scene()))
    del item["properties"]["datetime"]
    item["properties"]["eo:cloud_cover"] = 150
    item["assets"]["cog"]["file:checksum"] = "NOT-HEX"

    problems = validate_stac_object(item)

    assert any("core" in p and "'datetime' is a required property" in p for p in problems), problems
    assert any(p.startswith("eo: properties/eo:cloud_cover:") and "150" in p for p in problems), problems
    assert any(p.startswith("file: assets/cog/file:checksum:") for p in problems), problems


def test_item_with_geometry_but_no_bbox_is_invalid(make_item) -> None:
    item = copy.deepcopy(make_item(earth_utm_scene()))
    del item["bbox"]
    assert validate_stac_object(item) == ["core: (document root): 'bbox' is a required property"]


def test_unknown_extension_is_reported_by_url(make_item) -> None:
    item = copy.deepcopy(make_item(earth_utm_scene()))
    unknown = "https://stac-extensions.github.io/made-up/v9.9.9/schema.json"
    item["stac_extensions"].append(unknown)
    problems = validate_stac_object(item)
    assert len(problems) == 1
    assert unknown in problems[0] and "no schema shipped" in problems[0]


def test_non_stac_documents_are_rejected_clearly() -> None:
    assert validate_stac_object({"type": "FeatureCollection"})[0].startswith("type: 'FeatureCollection'")
    assert "1.0.0" in validate_stac_object({"type": "Feature", "stac_version": "1.0.0"})[0]


# --- collections -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intervals", "expected"),
    [
        ([(10.0, 20.0), (30.0, 40.0)], (10.0, 40.0)),
        ([(170.0, -170.0)], (170.0, -170.0)),
        ([(170.0, -170.0), (-175.0, -160.0)], (170.0, -160.0)),
        ([(0.0, 10.0), (100.0, 110.0), (-120.0, -110.0)], (-120.0, 110.0)),
        ([(-180.0, 180.0), (5.0, 6.0)], (-180.0, 180.0)),
        ([(150.0, -100.0), (-120.0, 160.0)], (-180.0, 180.0)),
    ],
)
def test_union_of_longitude_intervals_is_the_smallest_covering_arc(intervals, expected) -> None:
    assert union_longitudes(intervals) == expected


def test_collection_extent_covers_items_across_the_antimeridian(make_item) -> None:
    items = [make_item(earth_utm_scene()), make_item(antimeridian_scene())]
    collection = build_collection("landsat-c2-l2", items, "Landsat scenes", "proprietary")

    bbox = collection["extent"]["spatial"]["bbox"]
    assert bbox == [[15.0, -17.5, -179.5, 45.153477]]  # 15°E eastwards over 180° to 179.5°W
    assert collection["extent"]["temporal"]["interval"] == [["2024-05-01T10:00:00Z", "2024-05-03T22:15:00Z"]]
    assert validate_stac_object(collection) == []


def test_collection_extent_grows_as_items_are_added(make_item) -> None:
    collection = build_collection("c", [make_item(earth_utm_scene(collection="c"))], "d", "CC-BY-4.0")
    later = make_item(polar_scene(collection="c", acquired_at=earth_utm_scene().acquired_at.replace(year=2025)))

    updated = update_collection_extent(collection, later)

    assert updated["extent"]["spatial"]["bbox"] == [[-180.0, 45.126466, 180.0, 90.0]]
    assert updated["extent"]["temporal"]["interval"] == [["2024-05-01T10:00:00Z", "2025-05-01T10:00:00Z"]]
    assert collection["extent"]["temporal"]["interval"][0][1] == "2024-05-01T10:00:00Z"  # input untouched
    with pytest.raises(ValueError, match="belongs to collection"):
        update_collection_extent(collection, make_item(mars_scene()))


def test_mars_collection_names_its_body_and_claims_no_earth_footprint(make_item) -> None:
    collection = build_collection("mars-ctx", [make_item(mars_scene())], "CTX tiles", "CC0-1.0")

    assert collection["ssys:targets"] == ["mars"]
    assert collection["extent"]["spatial"]["bbox"] == [[-180.0, -90.0, 180.0, 90.0]]
    assert collection["extent"]["spatial"]["satlake:placeholder"] is True
    assert validate_stac_object(collection) == []


def test_union_bboxes_keeps_latitude_extremes() -> None:
    assert union_bboxes([[0, -10, 1, 0], [2, 5, 3, 20]]) == [0.0, -10.0, 3.0, 20.0]
