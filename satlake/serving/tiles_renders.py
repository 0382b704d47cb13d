"""Named renderings of a catalogued item (true colour, NDVI) and the request dependencies that apply them.

A rendering is a preset of titiler's own query parameters (assets, expression, rescale, colormap), derived from
the item's assets, so ``?render=truecolor`` and the explicit parameters it stands for give the same image.

Dependencies are built in a closure over the item dependency, so this module keeps its annotations evaluated
(no ``from __future__ import annotations``): FastAPI resolves them at route creation.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Annotated, Any

import numpy as np
import rasterio
from fastapi import Depends, Query
from pydantic import AfterValidator
from rio_tiler.colormap import cmap as colormaps
from rio_tiler.io import Reader
from rio_tiler.types import ColorMapType
from titiler.core.dependencies import (
    AssetsExprParams,
    AssetsParams,
    ColorMapParams,
    DatasetParams,
    ImageRenderingParams,
    _parse_asset,
)

# Percentiles of the data that a true-colour stretch spans: drops the darkest and brightest 2 % (haze, glint).
STRETCH_PERCENTILES = (2.0, 98.0)
# Side of the decimated read the percentiles come from (served from the COG's overviews).
STRETCH_SAMPLE_SIZE = 256
NDVI_RANGE = (-1.0, 1.0)
NDVI_COLORMAP = "rdylgn"
TRUE_COLOR_BANDS = ("red", "green", "blue")


class RenderError(ValueError):
    """An item has no asset a rendering needs, or an asset cannot be read to scale it."""


class TileRequestError(ValueError):
    """A tile request's parameter is wrong; answered as a 400 whose JSON body names ``parameter``."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


@dataclass(frozen=True)
class RenderPreset:
    """One rendering of an item, as the titiler query parameters it stands for."""

    name: str
    title: str
    assets: tuple[str, ...]
    expression: str | None = None
    rescale: tuple[tuple[float, float], ...] = ()
    colormap_name: str | None = None
    nodata: float | None = None

    def query(self) -> dict[str, Any]:
        """The preset as titiler query parameters (what a TileJSON's ``raster_layers`` and WMTS layers carry)."""
        params: dict[str, Any] = {"assets": list(self.assets)}
        if self.expression:
            params["expression"] = self.expression
        if self.rescale:
            params["rescale"] = [f"{low:g},{high:g}" for low, high in self.rescale]
        if self.colormap_name:
            params["colormap_name"] = self.colormap_name
        if self.nodata is not None:
            params["nodata"] = f"{self.nodata:g}"
        return params


@dataclass(frozen=True)
class AssetStretch:
    """How one single-band asset is drawn: the range its values are stretched over, and the value that is fill
    when the file declares no nodata (0 in unsigned data, as Landsat Level-1 writes it), else None."""

    low: float
    high: float
    fill: float | None


def _is_raster(asset: Mapping[str, Any]) -> bool:
    return str(asset.get("type", "")).startswith("image/tiff") and "data" in asset.get("roles", ["data"])


def _asset_by_common_name(item: Mapping[str, Any], name: str) -> str | None:
    """The key of the item's raster asset holding band ``name`` (its key, or its band's ``eo:common_name``)."""
    assets: Mapping[str, Any] = item.get("assets", {})
    if name in assets and _is_raster(assets[name]):
        return name
    for key, asset in assets.items():
        bands = asset.get("bands") or asset.get("eo:bands") or []
        if _is_raster(asset) and len(bands) == 1 and (bands[0].get("eo:common_name") or bands[0].get("name")) == name:
            return key
    return None


def _ndvi_asset(item: Mapping[str, Any]) -> str | None:
    for key, asset in item.get("assets", {}).items():
        if _is_raster(asset) and (key == "ndvi" or "ndvi" in asset.get("roles", [])):
            return key
    return None


@lru_cache(maxsize=4096)
def _data_stretch(href: str, checksum: str | None) -> AssetStretch:
    """Stretch percentiles of a one-band raster, read decimated (from its overviews). The checksum only keys the
    cache, so a rewritten object is read again."""
    del checksum
    with Reader(href) as source:
        dataset = source.dataset
        unsigned = np.dtype(dataset.dtypes[0]).kind == "u"
        fill = 0.0 if dataset.nodata is None and unsigned else None
        image = source.preview(max_size=STRETCH_SAMPLE_SIZE, indexes=1, nodata=fill)
    valid = image.array.compressed()
    if valid.size == 0:
        raise RenderError(f"asset {href} has no valid pixel to scale a rendering on")
    low, high = np.percentile(valid, STRETCH_PERCENTILES)
    return AssetStretch(low=float(low), high=float(high), fill=fill)


def _asset_stretch(asset: Mapping[str, Any]) -> AssetStretch:
    """The stretch of one asset: its catalogued band statistics when it has them, else its data's percentiles."""
    bands = asset.get("bands") or asset.get("raster:bands") or []
    statistics = bands[0].get("statistics", {}) if len(bands) == 1 else {}
    if {"minimum", "maximum"} <= statistics.keys():
        return AssetStretch(float(statistics["minimum"]), float(statistics["maximum"]), fill=None)
    return _data_stretch(asset["href"], asset.get("file:checksum"))


def _shared_fill(stretches: list[AssetStretch]) -> float | None:
    fills = {stretch.fill for stretch in stretches}
    return fills.pop() if len(fills) == 1 else None


def item_renders(item: Mapping[str, Any]) -> dict[str, RenderPreset]:
    """The renderings an item offers, the default first: ``truecolor`` (red, green, blue under one shared stretch,
    so the colour balance holds) or, lacking those bands, ``grayscale`` (its first raster, stretched); and
    ``ndvi`` (its NDVI product, else (nir - red) / (nir + red)) over -1..1 on a red-yellow-green colormap.
    Reads asset data (decimated) when the item carries no band statistics: call inside the assets' GDAL
    environment."""
    assets: Mapping[str, Any] = item.get("assets", {})
    renders: dict[str, RenderPreset] = {}
    ndvi = _ndvi_asset(item)
    rgb = [key for key in (_asset_by_common_name(item, band) for band in TRUE_COLOR_BANDS) if key]
    if len(rgb) == len(TRUE_COLOR_BANDS):
        stretches = [_asset_stretch(assets[key]) for key in rgb]
        shared = (min(s.low for s in stretches), max(s.high for s in stretches))
        renders["truecolor"] = RenderPreset(
            name="truecolor",
            title="True colour (red, green, blue)",
            assets=tuple(rgb),
            rescale=(shared,) * len(rgb),
            nodata=_shared_fill(stretches),
        )
    elif first := next((key for key, asset in assets.items() if _is_raster(asset) and key != ndvi), None):
        stretch = _asset_stretch(assets[first])
        renders["grayscale"] = RenderPreset(
            name="grayscale",
            title=f"{first} (grayscale)",
            assets=(first,),
            rescale=((stretch.low, stretch.high),),
            nodata=stretch.fill,
        )
    nir, red = _asset_by_common_name(item, "nir"), _asset_by_common_name(item, "red")
    if ndvi:
        renders["ndvi"] = RenderPreset(
            name="ndvi", title="NDVI", assets=(ndvi,), rescale=(NDVI_RANGE,), colormap_name=NDVI_COLORMAP
        )
    elif nir and red:
        renders["ndvi"] = RenderPreset(
            name="ndvi",
            title="NDVI from (nir - red) / (nir + red)",
            assets=(nir, red),
            expression="(b1-b2)/(b1+b2)",
            rescale=(NDVI_RANGE,),
            colormap_name=NDVI_COLORMAP,
            nodata=_shared_fill([_asset_stretch(assets[nir]), _asset_stretch(assets[red])]),
        )
    return renders


def _optional_assets(values: list[str] | None) -> list[Any] | None:
    if values and not all(value.split("|", 1)[0] for value in values):
        raise ValueError("an asset name is empty; name assets as `red` or `red|bidx=1`")
    return _parse_asset(values) if values else None


@wraps(ColorMapParams)
def checked_colormap(*args: Any, **kwargs: Any) -> ColorMapType | None:
    """titiler's colormap parameters (same signature), a malformed custom ``colormap`` answered as a 400."""
    try:
        return ColorMapParams(*args, **kwargs)
    except (ValueError, TypeError, AttributeError) as error:
        raise TileRequestError(
            "colormap", f'not a colormap ({error}); give JSON such as {{"0": "#000000", "255": "#ffffff"}}'
        ) from error


def check_asset_options(item: Mapping[str, Any], assets: list[Any]) -> None:
    """Refuse ``bands=`` options naming bands that the asset's metadata does not list (rio-tiler raises a bare
    ValueError there)."""
    for asset in assets:
        if not isinstance(asset, dict) or not asset.get("bands"):
            continue
        metadata = item.get("assets", {}).get(asset["name"], {})
        known = {
            band.get(field)
            for band in metadata.get("bands") or metadata.get("eo:bands") or []
            for field in ("name", "eo:common_name", "common_name")
        }
        unknown = [band for band in asset["bands"] if band not in known]
        if unknown:
            raise TileRequestError(
                "assets", f"asset {asset['name']!r} has no band {unknown}; its bands: {sorted(filter(None, known))}"
            )


OptionalAssets = Annotated[
    list[str] | None,
    AfterValidator(_optional_assets),
    Query(title="Asset names", description="Assets to read (e.g. `red`, or `red|bidx=1`); see also `render`."),
]


@dataclass
class OptionalAssetsExprParams(AssetsExprParams):
    """titiler's assets/expression parameters, with ``assets`` optional (a rendering may name them instead)."""

    assets: OptionalAssets = None


@dataclass
class AllAssetsParams(AssetsParams):
    """titiler's ``assets`` parameter for ``/info`` and ``/asset_statistics``: every asset when none is named."""

    assets: OptionalAssets = None

    def __post_init__(self) -> None:
        if not self.assets:
            self.assets = [":all:"]


@dataclass(frozen=True)
class ResolvedLayers:
    """What a request reads: titiler's layer parameters, and the rendering they came from (if any)."""

    layers: AssetsExprParams
    preset: RenderPreset | None


@dataclass(frozen=True)
class RenderDependencies:
    """The dependencies a titiler factory takes so that ``render=`` selects a preset."""

    layers: Callable[..., AssetsExprParams]
    dataset: Callable[..., DatasetParams]
    rendering: Callable[..., ImageRenderingParams]
    colormap: Callable[..., ColorMapType | None]


def render_dependencies(
    item_dependency: Callable[..., dict[str, Any]], gdal_env: Mapping[str, Any]
) -> RenderDependencies:
    """Dependencies resolving ``render`` against the requested item: explicit ``assets``/``expression`` win
    (then no preset applies); ``render`` names a preset; with neither, the item's first rendering is used.
    Explicit ``rescale``, ``colormap_name`` and ``nodata`` always override a preset's."""

    def resolve(
        item: Annotated[dict[str, Any], Depends(item_dependency)],
        given: Annotated[OptionalAssetsExprParams, Depends()],
        render: Annotated[
            str | None,
            Query(description="A named rendering of the item: `truecolor`, `grayscale` or `ndvi` (see `/renders`)."),
        ] = None,
    ) -> ResolvedLayers:
        explicit = bool(given.assets or given.expression)
        if render is not None and explicit:
            raise TileRequestError("render", "give either render or assets/expression, not both")
        if explicit and not given.assets:
            raise TileRequestError("assets", "an expression needs the assets it reads (assets=nir&assets=red)")
        if explicit:
            check_asset_options(item, given.assets)
            return ResolvedLayers(layers=given, preset=None)
        try:
            with rasterio.Env(**gdal_env):
                presets = item_renders(item)
        except RenderError as error:
            raise TileRequestError("render", str(error)) from error
        if render is None and not presets:
            raise TileRequestError("assets", f"item {item.get('id')!r} has no default rendering: name its assets")
        name = render if render is not None else next(iter(presets))
        if name not in presets:
            raise TileRequestError(
                "render", f"{name!r} is not a rendering of item {item.get('id')!r}; use one of {sorted(presets)}"
            )
        preset = presets[name]
        layers = AssetsExprParams(assets=list(preset.assets), expression=preset.expression)
        return ResolvedLayers(layers=layers, preset=preset)

    def layers(resolved: Annotated[ResolvedLayers, Depends(resolve)]) -> AssetsExprParams:
        return resolved.layers

    def dataset(
        resolved: Annotated[ResolvedLayers, Depends(resolve)],
        given: Annotated[DatasetParams, Depends()],
    ) -> DatasetParams:
        if resolved.preset is not None and given.nodata is None and resolved.preset.nodata is not None:
            given.nodata = resolved.preset.nodata
        return given

    def rendering(
        resolved: Annotated[ResolvedLayers, Depends(resolve)],
        given: Annotated[ImageRenderingParams, Depends()],
    ) -> ImageRenderingParams:
        if resolved.preset is not None and given.rescale is None and resolved.preset.rescale:
            given.rescale = [tuple(pair) for pair in resolved.preset.rescale]  # type: ignore[assignment]
        return given

    def colormap(
        resolved: Annotated[ResolvedLayers, Depends(resolve)],
        given: Annotated[ColorMapType | None, Depends(checked_colormap)],
    ) -> ColorMapType | None:
        if given is None and resolved.preset is not None and resolved.preset.colormap_name:
            return colormaps.get(resolved.preset.colormap_name)
        return given

    return RenderDependencies(layers=layers, dataset=dataset, rendering=rendering, colormap=colormap)


# What a WMTS layer's query string is checked against: titiler's own parameters, which every preset's query() uses.
PRESET_QUERY_DEPENDENCIES: list[Callable[..., Any]] = [
    AssetsExprParams,
    DatasetParams,
    ImageRenderingParams,
    ColorMapParams,
]
