"""Small GeoTIFFs written for the raster tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

ACQUISITION_TIME = "2024-05-02T10:00:00Z"


def write_band(path: Path, values: np.ndarray, nodata: float | None = None, origin_x: float = 500_000) -> Path:
    """A one-band, untiled GeoTIFF of ``values`` on a 10 m UTM grid, tagged with an acquisition time."""
    profile = {
        "driver": "GTiff",
        "dtype": str(values.dtype),
        "count": 1,
        "width": values.shape[1],
        "height": values.shape[0],
        "crs": "EPSG:32633",
        "transform": from_origin(origin_x, 5_600_000, 10, 10),
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values, 1)
        dst.update_tags(ACQUISITION_TIME=ACQUISITION_TIME)
    return path
