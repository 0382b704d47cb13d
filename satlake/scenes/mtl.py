"""Landsat MTL metadata files: a strict parser for the GROUP/KEY = VALUE text and the fields satlake keeps."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

MtlValue = str | int | float
MtlGroup = dict[str, Any]  # values are MtlValue or nested MtlGroup

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?$")
_BAND_FILE_KEY = re.compile(r"^FILE_NAME_BAND_(\d{1,2})$")
_REFLECTANCE_KEY = re.compile(r"^REFLECTANCE_(MULT|ADD)_BAND_(\d{1,2})$")
# Level-2 products carry their own surface-reflectance scaling, which applies to the SR band files.
_REFLECTANCE_GROUP_PREFERENCE = ("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", "LEVEL1_RADIOMETRIC_RESCALING")


class MtlParseError(ValueError):
    """An MTL file that does not follow the GROUP / KEY = VALUE / END_GROUP / END grammar."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"MTL {where}{message}")


def _parse_value(raw: str, line: int) -> MtlValue:
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise MtlParseError(f"unterminated quoted string {raw!r}", line)
        return raw[1:-1]
    if raw == "":
        raise MtlParseError("missing value after '='", line)
    if _INT.match(raw):
        try:
            return int(raw)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits): a corrupt file
            raise MtlParseError(f"number of {len(raw)} digits is too long to be a value", line) from None
    if _FLOAT.match(raw):
        return float(raw)
    return raw  # dates, times and enumerations stay text


def parse_mtl(text: str) -> MtlGroup:
    """Parse MTL text into nested dicts, one per GROUP, with ints, floats and strings as values.

    Raises MtlParseError with the 1-based line number for unbalanced groups, lines without ``=``, bad keys,
    duplicate keys, unterminated strings, or content after ``END``.
    """
    root: MtlGroup = {}
    stack: list[tuple[str, MtlGroup]] = [("", root)]
    ended = False
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line:
            continue
        if ended:
            raise MtlParseError(f"content after END: {line[:60]!r}", number)
        if line == "END":
            ended = True
            continue
        key, sep, raw_value = line.partition("=")
        if not sep:
            raise MtlParseError(f"expected 'KEY = VALUE', got {line[:60]!r}", number)
        key, raw_value = key.strip(), raw_value.strip()
        if not _KEY.match(key):
            raise MtlParseError(f"invalid key {key!r}", number)
        current = stack[-1][1]
        if key == "GROUP":
            if not _KEY.match(raw_value):
                raise MtlParseError(f"invalid group name {raw_value!r}", number)
            if raw_value in current:
                raise MtlParseError(f"duplicate group {raw_value!r}", number)
            child: MtlGroup = {}
            current[raw_value] = child
            stack.append((raw_value, child))
        elif key == "END_GROUP":
            if len(stack) == 1:
                raise MtlParseError(f"END_GROUP = {raw_value} without an open GROUP", number)
            if stack[-1][0] != raw_value:
                raise MtlParseError(f"END_GROUP = {raw_value} closes GROUP = {stack[-1][0]}", number)
            stack.pop()
        else:
            if key in current:
                raise MtlParseError(f"duplicate key {key!r}", number)
            current[key] = _parse_value(raw_value, number)
    if len(stack) > 1:
        raise MtlParseError(f"GROUP = {stack[-1][0]} is never closed (file truncated?)", None)
    if not root:
        raise MtlParseError("no GROUP or KEY = VALUE lines; this is not an MTL file", None)
    return root


def _walk(group: MtlGroup, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str, MtlValue]]:
    """(group path, key, value) for every leaf, in document order."""
    leaves: list[tuple[tuple[str, ...], str, MtlValue]] = []
    for key, value in group.items():
        if isinstance(value, dict):
            leaves.extend(_walk(value, (*path, key)))
        else:
            leaves.append((path, key, value))
    return leaves


def _find(mtl: MtlGroup, key: str) -> MtlValue | None:
    """The first value for ``key`` in any group: Collection 1 and 2 files place fields in different groups."""
    for _, leaf_key, value in _walk(mtl):
        if leaf_key == key:
            return value
    return None


def landsat_band_files(mtl: MtlGroup) -> dict[str, str]:
    """Band id (``"B4"``) to file name for every ``FILE_NAME_BAND_<n>`` entry of a parsed MTL."""
    files: dict[str, str] = {}
    for _, key, value in _walk(mtl):
        match = _BAND_FILE_KEY.match(key)
        if match and isinstance(value, str):
            files.setdefault(f"B{int(match.group(1))}", value)
    return dict(sorted(files.items(), key=lambda item: int(item[0][1:])))


def _reflectance_scaling(mtl: MtlGroup) -> dict[str, tuple[float, float]]:
    by_group: dict[str, dict[str, dict[str, float]]] = {}
    for path, key, value in _walk(mtl):
        match = _REFLECTANCE_KEY.match(key)
        if match and isinstance(value, int | float):
            group = path[-1] if path else ""
            by_group.setdefault(group, {}).setdefault(f"B{int(match.group(2))}", {})[match.group(1)] = float(value)
    if not by_group:
        return {}
    preferred = next((g for g in _REFLECTANCE_GROUP_PREFERENCE if g in by_group), next(iter(by_group)))
    return {
        band: (parts["MULT"], parts["ADD"])
        for band, parts in sorted(by_group[preferred].items(), key=lambda item: int(item[0][1:]))
        if "MULT" in parts and "ADD" in parts
    }


def _acquisition_time(date_text: MtlValue | None, time_text: MtlValue | None) -> datetime:
    if not isinstance(date_text, str):
        raise MtlParseError("DATE_ACQUIRED is missing; cannot date the scene")
    try:
        day = datetime.strptime(date_text, "%Y-%m-%d").date()
    except ValueError as error:
        raise MtlParseError(f"DATE_ACQUIRED {date_text!r} is not YYYY-MM-DD") from error
    if not isinstance(time_text, str):
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    match = re.fullmatch(r"(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?Z?", time_text.strip())
    if not match:
        raise MtlParseError(f"SCENE_CENTER_TIME {time_text!r} is not HH:MM:SS[.fraction]Z")
    hour, minute, second, fraction = match.groups()
    microsecond = int((fraction or "0")[:6].ljust(6, "0"))  # MTL carries 7 digits; datetime holds 6
    try:
        return datetime(day.year, day.month, day.day, int(hour), int(minute), int(second), microsecond, tzinfo=UTC)
    except ValueError as error:
        raise MtlParseError(f"SCENE_CENTER_TIME {time_text!r} is not a time of day ({error})") from error


def _platform(spacecraft: MtlValue | None) -> str | None:
    if not isinstance(spacecraft, str):
        return None
    return spacecraft.strip().lower().replace("_", "-")  # LANDSAT_8 -> landsat-8, the STAC convention


def _optional_float(value: MtlValue | None) -> float | None:
    # '1e999' parses as infinity: no field satlake keeps can be infinite, so it counts as absent.
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _optional_int(value: MtlValue | None) -> int | None:
    return int(value) if isinstance(value, int | float) and math.isfinite(value) else None


def landsat_metadata_from_mtl(mtl: MtlGroup) -> dict[str, Any]:
    """The MTL fields satlake catalogs, under stable names.

    Keys: ``acquired_at`` (UTC datetime from DATE_ACQUIRED + SCENE_CENTER_TIME), ``platform``
    (``landsat-8``), ``instrument`` (``oli_tirs``/``oli``), ``cloud_cover`` and ``cloud_cover_land``
    (percent), ``sun_azimuth``, ``sun_elevation`` (degrees), ``wrs_path``, ``wrs_row``, ``product_id``,
    ``landsat_scene_id``, ``processing_level``, ``collection_number``, ``collection_category``,
    ``band_files`` (``{"B4": file name}``) and ``reflectance`` (``{"B4": (mult, add)}``). Values the
    file lacks are None (or empty dicts). Raises MtlParseError when DATE_ACQUIRED is missing or malformed.
    """
    sensor = _find(mtl, "SENSOR_ID")
    cloud_cover = _optional_float(_find(mtl, "CLOUD_COVER"))
    if cloud_cover is not None and cloud_cover < 0:
        cloud_cover = None  # USGS writes -1 when cloud cover could not be assessed
    processing_level = _find(mtl, "PROCESSING_LEVEL") or _find(mtl, "DATA_TYPE")
    return {
        "acquired_at": _acquisition_time(_find(mtl, "DATE_ACQUIRED"), _find(mtl, "SCENE_CENTER_TIME")),
        "platform": _platform(_find(mtl, "SPACECRAFT_ID")),
        "instrument": sensor.strip().lower() if isinstance(sensor, str) else None,
        "cloud_cover": cloud_cover,
        "cloud_cover_land": _optional_float(_find(mtl, "CLOUD_COVER_LAND")),
        "sun_azimuth": _optional_float(_find(mtl, "SUN_AZIMUTH")),
        "sun_elevation": _optional_float(_find(mtl, "SUN_ELEVATION")),
        "wrs_path": _optional_int(_find(mtl, "WRS_PATH")),
        "wrs_row": _optional_int(_find(mtl, "WRS_ROW")),
        "product_id": _find(mtl, "LANDSAT_PRODUCT_ID"),
        "landsat_scene_id": _find(mtl, "LANDSAT_SCENE_ID"),
        "processing_level": processing_level,
        "collection_number": _optional_int(_find(mtl, "COLLECTION_NUMBER")),
        "collection_category": _find(mtl, "COLLECTION_CATEGORY"),
        "band_files": landsat_band_files(mtl),
        "reflectance": _reflectance_scaling(mtl),
    }
