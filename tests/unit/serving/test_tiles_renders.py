"""Which renderings an item offers, from its assets alone (no server): band names found by key or common name,
catalogued statistics preferred to reading the data."""

from __future__ import annotations

from typing import Any

from satlake.serving.tiles_renders import RenderPreset, item_renders
from tests.unit.serving.tile_fixtures import COG_TYPE

MISSING = "/nonexistent/never-read.tif"  # a statistics-carrying asset is never opened


def band_asset(common_name: str, statistics: dict[str, float] | None = None, href: str = MISSING) -> dict[str, Any]:
    band: dict[str, Any] = {"name": common_name.upper(), "eo:common_name": common_name}
    if statistics is not None:
        band["statistics"] = statistics
    return {"href": href, "type": COG_TYPE, "roles": ["data"], "bands": [band]}


def item_with(assets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"type": "Feature", "id": "renders-test", "properties": {}, "assets": assets}


def test_catalogued_statistics_give_the_stretch_without_reading() -> None:
    item = item_with(
        {
            "B4": band_asset("red", {"minimum": 10, "maximum": 900}),
            "B3": band_asset("green", {"minimum": 5, "maximum": 1000}),
            "B2": band_asset("blue", {"minimum": 20, "maximum": 800}),
            "B5": band_asset("nir", {"minimum": 30, "maximum": 4000}),
        }
    )
    renders = item_renders(item)
    assert list(renders) == ["truecolor", "ndvi"]
    assert renders["truecolor"] == RenderPreset(
        name="truecolor", title="True colour (red, green, blue)", assets=("B4", "B3", "B2"), rescale=((5, 1000),) * 3
    )
    # NDVI from the bands named by their common names, not their keys.
    assert renders["ndvi"].assets == ("B5", "B4")
    assert renders["ndvi"].expression == "(b1-b2)/(b1+b2)"
    assert renders["ndvi"].query() == {
        "assets": ["B5", "B4"],
        "expression": "(b1-b2)/(b1+b2)",
        "rescale": ["-1,1"],
        "colormap_name": "rdylgn",
    }


def test_an_ndvi_product_is_preferred_to_computing_it() -> None:
    item = item_with(
        {
            "red": band_asset("red", {"minimum": 0, "maximum": 1}),
            "nir": band_asset("nir", {"minimum": 0, "maximum": 1}),
            "vegetation": {"href": MISSING, "type": COG_TYPE, "roles": ["data", "ndvi"]},
        }
    )
    renders = item_renders(item)
    assert renders["ndvi"].assets == ("vegetation",)
    assert renders["ndvi"].expression is None
    # No blue band: the first raster other than the NDVI product is the default, in grayscale.
    assert list(renders) == ["grayscale", "ndvi"]
    assert renders["grayscale"].assets == ("red",)


def test_an_item_without_rasters_offers_no_rendering() -> None:
    thumbnail = {"href": "/nonexistent/quicklook.png", "type": "image/png", "roles": ["thumbnail"]}
    metadata = {"href": "/nonexistent/MTL.txt", "type": "text/plain", "roles": ["metadata"]}
    assert item_renders(item_with({"thumbnail": thumbnail, "mtl": metadata})) == {}
