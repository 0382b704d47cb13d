"""titiler's item endpoints as satlake mounts them: exact pixels of a tile, renderings, TileJSON, WMTS, previews,
the refusal to put Mars on Earth, 400s for bad input, and get_item's own 401/403/404 passed through."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.unit.serving.tile_fixtures import (
    API_KEY,
    COLLECTION,
    SECRET_COLLECTION,
    SIZE,
    TILE,
    build_tile_items,
    known_pattern,
    tiles_app,
    write_tile_cog,
)

TILE_PATH = f"tiles/WebMercatorQuad/{TILE.z}/{TILE.x}/{TILE.y}"


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, Any]]:
    return build_tile_items(tmp_path_factory.mktemp("tiles"))


@pytest.fixture(scope="module")
def client(items: dict[tuple[str, str], dict[str, Any]]) -> Iterator[TestClient]:
    with warnings.catch_warnings():
        # rio-tiler warns about every asset without catalogued band statistics, and about default assets.
        warnings.simplefilter("ignore", UserWarning)
        with TestClient(tiles_app(items), raise_server_exceptions=False) as test_client:
            yield test_client


def item_url(item_id: str, path: str, collection: str = COLLECTION) -> str:
    return f"/collections/{collection}/items/{item_id}/{path}"


def decode_npy(content: bytes) -> np.ndarray:
    return np.load(io.BytesIO(content))


def decode_png(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)).convert("RGBA"))


def test_tile_pixels_equal_the_cog(client: TestClient) -> None:
    response = client.get(item_url("pattern", f"{TILE_PATH}.npy"), params={"assets": "red", "tilesize": SIZE})
    assert response.status_code == 200, response.text
    data = decode_npy(response.content)
    assert data.shape == (2, SIZE, SIZE)  # the band, then the mask
    np.testing.assert_array_equal(data[0], known_pattern(0))
    assert data[1].all()  # every pixel valid


def test_tile_of_several_assets_stacks_them_in_order(client: TestClient) -> None:
    params = {"assets": ["blue", "red", "nir"], "tilesize": SIZE}
    data = decode_npy(client.get(item_url("pattern", f"{TILE_PATH}.npy"), params=params).content)
    for band, offset in enumerate((2, 0, 3)):
        np.testing.assert_array_equal(data[band], known_pattern(offset))


def test_expression_computes_ndvi_per_pixel(client: TestClient) -> None:
    params = {"assets": ["nir", "red"], "expression": "(b1-b2)/(b1+b2)", "tilesize": SIZE}
    data = decode_npy(client.get(item_url("bands-only", f"{TILE_PATH}.npy"), params=params).content)
    assert data[0, :, : SIZE // 2] == pytest.approx((3600 - 400) / (3600 + 400))
    assert data[0, :, SIZE // 2 :] == pytest.approx((1300 - 1200) / (1300 + 1200))


@pytest.mark.parametrize("item_id", ["vegetation", "bands-only"])
def test_ndvi_rendering_is_green_on_vegetation(client: TestClient, item_id: str) -> None:
    response = client.get(item_url(item_id, f"{TILE_PATH}.png"), params={"render": "ndvi", "tilesize": SIZE})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    pixels = decode_png(response.content).astype(int)
    vegetated, bare = pixels[10, 10], pixels[10, SIZE - 10]
    assert vegetated[1] > vegetated[0] + 60 and vegetated[1] > vegetated[2]  # green on RdYlGn at 0.8
    assert bare[0] > 200 and bare[1] > 200  # pale yellow near 0
    assert (pixels[..., 3] == 255).all()


def test_ndvi_product_and_band_expression_draw_the_same(client: TestClient) -> None:
    product, computed = (
        decode_png(client.get(item_url(item_id, f"{TILE_PATH}.png"), params={"render": "ndvi"}).content)
        for item_id in ("vegetation", "bands-only")
    )
    assert np.abs(product.astype(int) - computed.astype(int)).max() <= 2


def test_truecolor_stretches_over_the_data_percentiles(client: TestClient) -> None:
    renders = client.get(item_url("vegetation", "renders")).json()["renders"]
    # Red spans 400..1200, green 700..900, blue 600: one shared stretch from the lowest to the highest.
    assert renders["truecolor"]["params"] == {"assets": ["red", "green", "blue"], "rescale": ["400,1200"] * 3}
    assert renders["ndvi"]["params"] == {"assets": ["ndvi"], "rescale": ["-1,1"], "colormap_name": "rdylgn"}
    pixels = decode_png(
        client.get(item_url("vegetation", f"{TILE_PATH}.png"), params={"render": "truecolor"}).content
    ).astype(int)
    vegetated, bare = pixels[10, 10], pixels[10, SIZE - 10]
    assert list(vegetated[:3]) == [0, int(300 / 800 * 255), int(200 / 800 * 255)]
    assert bare[0] == 255 and bare[0] > bare[1] > bare[2]


def test_render_equals_the_parameters_it_stands_for(client: TestClient) -> None:
    presets = client.get(item_url("bands-only", "renders")).json()["renders"]
    for name, preset in presets.items():
        by_name = client.get(item_url("bands-only", f"{TILE_PATH}.png"), params={"render": name})
        explicit = client.get(item_url("bands-only", f"{TILE_PATH}.png"), params=preset["params"])
        assert by_name.status_code == explicit.status_code == 200
        assert by_name.content == explicit.content


def test_without_parameters_the_first_rendering_is_drawn(client: TestClient) -> None:
    default = client.get(item_url("vegetation", f"{TILE_PATH}.png"))
    truecolor = client.get(item_url("vegetation", f"{TILE_PATH}.png"), params={"render": "truecolor"})
    assert default.status_code == 200
    assert default.content == truecolor.content


def test_explicit_rescale_overrides_the_rendering(client: TestClient) -> None:
    params = {"render": "truecolor", "rescale": "0,1200", "tilesize": SIZE}
    pixels = decode_png(client.get(item_url("vegetation", f"{TILE_PATH}.png"), params=params).content)
    assert pixels[10, 10, 0] == int(400 / 1200 * 255)


def test_tilejson_points_at_the_items_tiles(client: TestClient, items: dict[tuple[str, str], dict[str, Any]]) -> None:
    response = client.get(item_url("vegetation", "WebMercatorQuad/tilejson.json"), params={"render": "ndvi"})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = f"http://testserver/collections/{COLLECTION}/items/vegetation/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}"
    assert body["tiles"] == [f"{expected}?render=ndvi&tilesize=512"]
    assert body["bounds"] == pytest.approx(items[(COLLECTION, "vegetation")]["bbox"], abs=1e-9)
    assert body["minzoom"] <= TILE.z <= body["maxzoom"]
    assert set(body["raster_layers"]) == {"truecolor", "ndvi"}


def test_wmts_capabilities_has_a_layer_per_rendering(client: TestClient) -> None:
    response = client.get(item_url("vegetation", "WMTSCapabilities.xml"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    text = response.text
    assert f"<ows:Identifier>{COLLECTION}_vegetation_WebMercatorQuad_truecolor</ows:Identifier>" in text
    assert f"<ows:Identifier>{COLLECTION}_vegetation_WebMercatorQuad_ndvi</ows:Identifier>" in text
    template = (
        f"/collections/{COLLECTION}/items/vegetation/tiles/WebMercatorQuad/{{TileMatrix}}/{{TileCol}}/{{TileRow}}"
    )
    assert template in text


def test_preview_and_info_and_statistics(client: TestClient) -> None:
    preview = client.get(item_url("vegetation", "preview.png"), params={"render": "ndvi", "max_size": 64})
    assert preview.status_code == 200
    assert decode_png(preview.content).shape == (64, 64, 4)
    info = client.get(item_url("vegetation", "info")).json()
    assert set(info) == {"red", "green", "blue", "nir", "ndvi"}
    assert info["ndvi"]["dtype"] == "float32"
    stats = client.get(item_url("pattern", "statistics"), params={"assets": "red"}).json()
    assert stats["b1"]["min"] == known_pattern(0).min()
    assert stats["b1"]["max"] == known_pattern(0).max()


@pytest.mark.parametrize("path", ["tiles/WebMercatorQuad/1/0/0.png", "point/10,10"])
def test_a_place_outside_the_item_is_a_404(client: TestClient, path: str) -> None:
    response = client.get(item_url("pattern", path), params={"assets": "red"})
    assert response.status_code == 404
    assert "outside" in response.json()["detail"]


def test_a_point_inside_the_item_reads_its_value(client: TestClient, items: dict[tuple[str, str], Any]) -> None:
    west, south, _, north = items[(COLLECTION, "vegetation")]["bbox"]
    lon, lat = west + 1e-4, (south + north) / 2
    response = client.get(item_url("vegetation", f"point/{lon},{lat}"), params={"assets": ["red", "nir"]})
    assert response.status_code == 200, response.text
    assert response.json()["values"] == [400, 3600]  # the vegetated half


@pytest.mark.parametrize(
    "path",
    [
        TILE_PATH,
        f"{TILE_PATH}.png",
        "WebMercatorQuad/tilejson.json",
        "WMTSCapabilities.xml",
        "tiles",
        "tiles/WebMercatorQuad",
        "info.geojson",
        "point/13.4,52.5",
        "bbox/13.36,52.48,13.53,52.58.png",
        "bbox/13.36,52.48,13.53,52.58/64x64.png",
    ],
)
def test_mars_is_never_placed_on_earth(client: TestClient, path: str) -> None:
    response = client.get(item_url("mars-scene", path), params={"assets": "albedo"})
    assert response.status_code == 400
    body = response.json()
    assert body["parameter"] == "tileMatrixSetId"
    assert "mars" in body["detail"] and "IAU_2015:49910" in body["detail"]


def test_mars_is_not_cut_by_an_earth_feature(client: TestClient, items: dict[tuple[str, str], Any]) -> None:
    feature = {"type": "Feature", "properties": {}, "geometry": items[(COLLECTION, "pattern")]["geometry"]}
    response = client.post(item_url("mars-scene", "feature"), params={"assets": "albedo"}, json=feature)
    assert response.status_code == 400
    assert response.json()["parameter"] == "tileMatrixSetId"


def test_mars_preview_is_drawn_in_its_own_crs(client: TestClient) -> None:
    response = client.get(item_url("mars-scene", "preview.npy"), params={"assets": "albedo", "max_size": SIZE})
    assert response.status_code == 200
    np.testing.assert_array_equal(decode_npy(response.content)[0], known_pattern(0))


def test_a_single_band_item_is_drawn_in_grayscale(client: TestClient) -> None:
    renders = client.get(item_url("mars-scene", "renders")).json()["renders"]
    assert list(renders) == ["grayscale"]
    low, high = np.percentile(known_pattern(0), [2, 98])
    assert renders["grayscale"]["params"] == {"assets": ["albedo"], "rescale": [f"{low:g},{high:g}"]}
    preview = decode_png(client.get(item_url("mars-scene", "preview.png"), params={"max_size": SIZE}).content)
    assert (preview[..., 0] == preview[..., 1]).all()
    assert preview[0, 0, 0] == 0 and preview[-1, -1, 0] == 255  # the ramp, stretched end to end


def test_fill_of_undeclared_nodata_is_transparent_and_out_of_the_stretch(client: TestClient) -> None:
    renders = client.get(item_url("unfilled", "renders")).json()["renders"]
    assert renders["truecolor"]["params"]["rescale"] == ["400,1200"] * 3  # the zeros are not data
    assert renders["truecolor"]["params"]["nodata"] == "0"
    assert renders["ndvi"]["params"]["nodata"] == "0"
    pixels = decode_png(
        client.get(item_url("unfilled", f"{TILE_PATH}.png"), params={"render": "truecolor", "tilesize": SIZE}).content
    )
    assert (pixels[:32, :, 3] == 0).all() and (pixels[:, -32:, 3] == 0).all()
    assert (pixels[32:-32, 32:-32, 3] == 255).all()


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        (f"{TILE_PATH}.png", {"assets": "bogus"}, "assets"),
        (f"{TILE_PATH}.png", {"assets": "red';DROP TABLE catalog.items;--"}, "assets"),
        (f"{TILE_PATH}.png", {"assets": "red|bidx=x"}, "assets"),
        (f"{TILE_PATH}.png", {"assets": "red", "expression": "b9*2"}, "expression"),
        (f"{TILE_PATH}.png", {"assets": "red", "expression": "__import__('os')"}, "expression"),
        (f"{TILE_PATH}.png", {"render": "infrared"}, "render"),
        (f"{TILE_PATH}.png", {"render": "ndvi", "assets": "red"}, "render"),
        (f"{TILE_PATH}.png", {"render": "ndvi", "rescale": "low,high"}, "rescale"),
        (f"{TILE_PATH}.png", {"colormap_name": "no-such-map"}, "colormap_name"),
        (f"{TILE_PATH}.png", {"tilesize": "-5"}, "tilesize"),
        (f"{TILE_PATH}.exe", {}, "format"),
        ("tiles/NoSuchGrid/1/0/0.png", {}, "tileMatrixSetId"),
        ("tiles/WebMercatorQuad/one/0/0.png", {}, "z"),
        ("preview.png", {"assets": "red", "max_size": "big"}, "max_size"),
        (f"{TILE_PATH}.png", {"tilesize": "20000"}, "tilesize"),
        (f"{TILE_PATH}.png", {"buffer": "100000"}, "buffer"),
        (f"{TILE_PATH}.png", {"buffer": "1.3"}, "buffer"),
        ("preview.png", {"width": "30000", "height": "30000"}, "width"),
        ("preview.png", {"max_size": "50000"}, "max_size"),
        ("bbox/13.36,52.48,13.53,52.58/20000x20000.png", {}, "width"),
        (f"{TILE_PATH}.png", {"colormap": '{"low": "#000000"}'}, "colormap"),
        (f"{TILE_PATH}.png", {"colormap": "[[1, 2]]"}, "colormap"),
        (f"{TILE_PATH}.png", {"colormap": '{"1": [1, 2]}'}, "colormap"),
        (f"{TILE_PATH}.png", {"assets": "red|bands=swir"}, "assets"),
        (f"{TILE_PATH}.png", {"assets": ""}, "assets"),
        ("info", {"assets": "|bidx=1"}, "assets"),
        ("statistics", {"assets": "red", "p": "200"}, "p"),
        ("tiles/WebMercatorQuad/-1/0/0.png", {"assets": "red"}, "z"),
        ("point/999,52.5", {"assets": "red"}, "lon"),
        ("point/13.4,-91", {"assets": "red"}, "lat"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(
    client: TestClient, path: str, params: dict[str, str], parameter: str
) -> None:
    response = client.get(item_url("pattern", path), params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["parameter"] == parameter
    assert body["detail"].startswith(f"{parameter}: ")


@pytest.mark.parametrize(
    ("collection", "item_id", "headers", "status"),
    [
        (COLLECTION, "no-such-item", {}, 404),
        (SECRET_COLLECTION, "hidden", {}, 401),
        (SECRET_COLLECTION, "hidden", {"X-API-Key": "wrong"}, 403),
        (SECRET_COLLECTION, "hidden", {"X-API-Key": API_KEY}, 200),
    ],
)
@pytest.mark.parametrize("path", [f"{TILE_PATH}.png", "WebMercatorQuad/tilejson.json", "preview.png", "renders"])
def test_get_item_answers_pass_through(
    client: TestClient, collection: str, item_id: str, headers: dict[str, str], status: int, path: str
) -> None:
    response = client.get(item_url(item_id, path, collection), headers=headers)
    assert response.status_code == status, response.text
    if status != 200:
        assert response.headers["content-type"] == "application/json"
        assert "detail" in response.json()


def test_routes_sit_under_the_item(client: TestClient) -> None:
    paths = set(client.get("/openapi.json").json()["paths"])
    prefix = "/collections/{collection_id}/items/{item_id}"
    for path in ("/tiles/{tileMatrixSetId}/{z}/{x}/{y}", "/{tileMatrixSetId}/tilejson.json", "/WMTSCapabilities.xml"):
        assert prefix + path in paths
    assert all(path.startswith(prefix) for path in paths if "tile" in path.lower())
    assert not any(path.endswith("map.html") for path in paths)  # titiler's viewer needs a CDN


def test_items_are_read_from_their_files(tmp_path: Path) -> None:
    # A scene rewritten in place is read anew: the percentile cache is keyed by the asset's checksum.
    catalogue = build_tile_items(tmp_path)
    item = catalogue[(COLLECTION, "vegetation")]
    with TestClient(tiles_app(catalogue), raise_server_exceptions=False) as client:
        before = client.get(item_url("vegetation", "renders")).json()["renders"]["truecolor"]["params"]["rescale"]
        write_tile_cog(Path(item["assets"]["red"]["href"]), np.full((SIZE, SIZE), 2400, np.uint16))
        item["assets"]["red"]["file:checksum"] = "rewritten"
        after = client.get(item_url("vegetation", "renders")).json()["renders"]["truecolor"]["params"]["rescale"]
    assert before == ["400,1200"] * 3
    assert after == ["600,2400"] * 3
