"""Bands of a scene: Landsat band files and their tables of common names and wavelengths, common names
from GeoTIFF tags, and the BandInfo list of a scene's rasters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rasterio.enums import ColorInterp

from satlake.scenes.geotiff import RasterFile
from satlake.scenes.metadata import BandInfo

__all__ = ["SYNTHETIC_PLATFORM", "bands_for", "raster_names_in_order", "reference_raster"]

_RASTER_NAME = re.compile(r"\.tiff?$", re.IGNORECASE)
_LANDSAT_BAND_NAME = re.compile(r"_(?:(?:SR|ST)_)?B(\d{1,2})\.TIFF?$", re.IGNORECASE)

# STAC eo common names and centre wavelengths (micrometres) of Landsat bands, by sensor family.
_LANDSAT_OLI_BANDS = {
    "B1": ("coastal", 0.443),
    "B2": ("blue", 0.482),
    "B3": ("green", 0.561),
    "B4": ("red", 0.655),
    "B5": ("nir", 0.865),
    "B6": ("swir16", 1.609),
    "B7": ("swir22", 2.201),
    "B8": ("pan", 0.590),
    "B9": ("cirrus", 1.373),
    "B10": ("lwir11", 10.895),
    "B11": ("lwir12", 12.005),
}
_LANDSAT_TM_ETM_BANDS = {
    "B1": ("blue", 0.485),
    "B2": ("green", 0.560),
    "B3": ("red", 0.660),
    "B4": ("nir", 0.835),
    "B5": ("swir16", 1.650),
    "B6": ("lwir", 11.450),
    "B7": ("swir22", 2.220),
    "B8": ("pan", 0.710),
}
_COMMON_NAME_ALIASES = {
    "coastal": "coastal",
    "blue": "blue",
    "green": "green",
    "red": "red",
    "yellow": "yellow",
    "rededge": "rededge",
    "pan": "pan",
    "nir": "nir",
    "nir08": "nir08",
    "nir09": "nir09",
    "near-infrared": "nir",
    "near_infrared": "nir",
    "near infrared": "nir",
    "cirrus": "cirrus",
    "swir16": "swir16",
    "swir1": "swir16",
    "swir22": "swir22",
    "swir2": "swir22",
    "lwir": "lwir",
    "lwir11": "lwir11",
    "lwir12": "lwir12",
}
_COLORINTERP_NAMES = {ColorInterp.red: "red", ColorInterp.green: "green", ColorInterp.blue: "blue"}
SYNTHETIC_PLATFORM = "satlake-sim"
_SYNTHETIC_BAND_ORDER = ("blue", "green", "red", "nir")


def _common_name(raster: RasterFile, band: int) -> str | None:
    tags = raster.band_tags[band - 1]
    candidates = [
        tags.get("common_name"),
        tags.get("COMMON_NAME"),
        tags.get("BAND_NAME"),
        raster.descriptions[band - 1],
    ]
    for candidate in candidates:
        if candidate and candidate.strip().lower() in _COMMON_NAME_ALIASES:
            return _COMMON_NAME_ALIASES[candidate.strip().lower()]
    if raster.colorinterp[band - 1] in _COLORINTERP_NAMES:
        return _COLORINTERP_NAMES[raster.colorinterp[band - 1]]
    if raster.tags.get("PLATFORM") == SYNTHETIC_PLATFORM and len(raster.dtypes) == len(_SYNTHETIC_BAND_ORDER):
        return _SYNTHETIC_BAND_ORDER[band - 1]
    return None


def _landsat_table(scene_id: str, platform: str | None) -> dict[str, tuple[str, float]]:
    if (platform or "").lower() in ("landsat-4", "landsat-5", "landsat-7") or scene_id.upper()[:4] in (
        "LT04",
        "LT05",
        "LE07",
    ):
        return _LANDSAT_TM_ETM_BANDS
    return _LANDSAT_OLI_BANDS


def _landsat_band_id(name: str) -> str | None:
    match = _LANDSAT_BAND_NAME.search(name)
    return f"B{int(match.group(1))}" if match else None


def reference_raster(rasters: list[RasterFile]) -> RasterFile:
    """The grid a scene is described on: its first non-panchromatic band file (Landsat B8 is finer)."""
    for raster in rasters:
        if _landsat_band_id(raster.name) != "B8":
            return raster
    return rasters[0]


def bands_for(
    rasters: list[RasterFile], scene_id: str, mtl_fields: dict[str, Any] | None, platform: str | None
) -> tuple[BandInfo, ...]:
    landsat_table = _landsat_table(scene_id, platform)
    reflectance = (mtl_fields or {}).get("reflectance", {})
    bands: list[BandInfo] = []
    for raster in rasters:
        landsat_id = _landsat_band_id(raster.name)
        for index in range(1, len(raster.dtypes) + 1):
            scale = raster.scales[index - 1]
            offset = raster.offsets[index - 1]
            info = {
                "index": index,
                "file": raster.name,
                "dtype": raster.dtypes[index - 1],
                "nodata": raster.nodatavals[index - 1],
                "scale": scale if scale != 1.0 else None,
                "offset": offset if offset != 0.0 else None,
            }
            if landsat_id is not None and len(raster.dtypes) == 1:
                common, wavelength = landsat_table.get(landsat_id, (None, None))
                mult_add = reflectance.get(landsat_id)
                if mult_add is not None:
                    info["scale"], info["offset"] = mult_add
                bands.append(BandInfo(name=landsat_id, common_name=common, center_wavelength_um=wavelength, **info))
            else:
                name = raster.descriptions[index - 1] or f"band_{index}"
                bands.append(BandInfo(name=name, common_name=_common_name(raster, index), **info))
    return tuple(bands)


def raster_names_in_order(files: Mapping[str, Path]) -> list[str]:
    names = [name for name in files if _RASTER_NAME.search(name)]

    def order(name: str) -> tuple[int, str]:
        band = _landsat_band_id(name)
        return (int(band[1:]) if band else 0, name)

    return sorted(names, key=order)
