"""The acquisition time of a raster that carries none, supplied beside it as a ``<file>.datetime.json`` sidecar.

A STAC item needs a datetime. Landsat takes it from the MTL and GeoTIFFs from their ``ACQUISITION_TIME`` or
``TIFFTAG_DATETIME`` tag; a raster with neither (a HiRISE COG, an export that dropped its tags) is quarantined
by raw/scenes with ``missing_time_reason`` until its time is supplied:

- ``satlake put --datetime 2024-05-01T10:30:00Z scene.tif`` lands ``scene.tif.datetime.json`` beside the raster
  (the sidecar first, then the raster, so a run that sees the raster also finds its sidecar), or
- the user lands ``scene.tif.datetime.json`` holding ``{"datetime": "2024-05-01T10:30:00Z"}`` themselves, with
  the raster or afterwards.

The sidecar is one more file of the scene (grouping keeps it with its raster and it is kept in the raw zone).
Its time wins over the raster's own tags and the MTL (an explicit time given by a person is the correction);
the replaced value stays in the scene's extras. A sidecar that holds no usable time quarantines its scene with
that reason. Only key strings and small text are handled here, so the sensor can use it without GDAL.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path

SIDECAR_SUFFIX = ".datetime.json"
EXAMPLE_TIME = "2024-05-01T10:30:00Z"
ACCEPTED_FORMATS = (
    f"an ISO 8601 / RFC 3339 date and time, e.g. {EXAMPLE_TIME}, 2024-05-01T12:30:00+02:00 or 2024-05-01T10:30:00 "
    "(no zone: UTC); add T00:00:00Z when only the day is known"
)
MAX_SIDECAR_BYTES = 64 * 1024
# SceneMetadata.extra fields: where a supplied time came from, what it replaced, time tags that did not parse.
ACQUIRED_AT_FROM_EXTRA = "satlake:acquired_at_from"
REPLACED_TIME_EXTRA = "satlake:replaced_acquired_at"
UNREADABLE_TIME_EXTRA = "satlake:unreadable_time_tags"
# A date, a separator and at least the hour: a bare date is refused rather than silently taken as midnight.
_DATE_AND_TIME = re.compile(r"^\d{4}-?\d{2}-?\d{2}[Tt ]\d{2}")


class AcquisitionTimeError(ValueError):
    """A datetime sidecar that holds no usable acquisition time (the scene is quarantined with this reason)."""

    def __init__(self, file: str, reason: str) -> None:
        self.file = file
        self.reason = reason
        super().__init__(
            f'sidecar {file!r} holds no usable acquisition time: {reason}. Write {{"datetime": "{EXAMPLE_TIME}"}} '
            "into it and land it again, or land the raster again with `satlake put --datetime TIME FILE`"
        )


def parse_acquisition_time(text: str) -> datetime:
    """A timezone-aware UTC datetime from an ISO 8601 date and time; ValueError naming the accepted formats."""
    stripped = text.strip() if isinstance(text, str) else ""
    if stripped[-1:] in ("z", "Z"):
        stripped = stripped[:-1] + "+00:00"
    moment = None
    if _DATE_AND_TIME.match(stripped):
        try:
            moment = datetime.fromisoformat(stripped)
        except ValueError:
            moment = None
    try:
        if moment is not None:
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        pass  # year 1 with a positive offset: before the first representable instant
    raise ValueError(f"{text!r} is not an acquisition time: expected {ACCEPTED_FORMATS}")


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as sidecars are written."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def sidecar_name_for(raster_name: str) -> str:
    """``scene.tif`` -> ``scene.tif.datetime.json`` (works on keys as well as file names)."""
    return raster_name + SIDECAR_SUFFIX


def raster_key_of_sidecar(key: str) -> str | None:
    """The raster key a sidecar key belongs to (``a/x.tif.datetime.json`` -> ``a/x.tif``), else None."""
    if not key.endswith(SIDECAR_SUFFIX):
        return None
    raster = key[: -len(SIDECAR_SUFFIX)]
    return raster if posixpath.basename(raster) else None


def sidecar_document(moment: datetime) -> str:
    """The text of a sidecar holding ``moment``."""
    return json.dumps({"datetime": format_time(moment)}) + "\n"


def write_sidecar(raster: Path, moment: datetime, directory: Path) -> Path:
    """Write the sidecar of ``raster`` (named after it) into ``directory``; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / sidecar_name_for(raster.name)
    path.write_text(sidecar_document(moment), encoding="utf-8")
    return path


def parse_sidecar(name: str, text: str) -> datetime:
    """The time a sidecar holds: ``{"datetime": "..."}``, a JSON string, or the bare time as plain text.

    Raises AcquisitionTimeError naming the sidecar and what is wrong.
    """
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = text  # a file holding only the time, as a person may write it
    if isinstance(data, dict):
        if "datetime" not in data:
            raise AcquisitionTimeError(name, f"no 'datetime' field (fields: {sorted(map(str, data))[:10]})")
        data = data["datetime"]
    if not isinstance(data, str):
        raise AcquisitionTimeError(name, f"the datetime is a {type(data).__name__}, not a text like {EXAMPLE_TIME!r}")
    try:
        return parse_acquisition_time(data)
    except ValueError as error:
        raise AcquisitionTimeError(name, str(error)[:400]) from None


def read_sidecar(name: str, path: Path) -> datetime:
    """``parse_sidecar`` of a local file (at most MAX_SIDECAR_BYTES)."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SIDECAR_BYTES + 1)
    except OSError as error:
        raise AcquisitionTimeError(name, f"the file cannot be read ({error.strerror or error})") from error
    if len(raw) > MAX_SIDECAR_BYTES:
        raise AcquisitionTimeError(name, f"the file is larger than {MAX_SIDECAR_BYTES} bytes")
    return parse_sidecar(name, raw.decode("utf-8", errors="replace"))


def sidecar_time(files: Mapping[str, Path], raster_names: Collection[str]) -> tuple[datetime, str] | None:
    """(time, sidecar name) from the scene's sidecar files (name -> local path), or None when it has none.

    Raises AcquisitionTimeError for a sidecar that is unreadable, names no raster of the scene, or disagrees
    with another sidecar of the scene.
    """
    found: dict[str, datetime] = {}
    for name in sorted(files):
        raster = raster_key_of_sidecar(name)
        if raster is None:
            continue
        if raster not in raster_names:
            raise AcquisitionTimeError(name, f"it is named after {raster!r}, which is not a raster of this scene")
        found[name] = read_sidecar(name, files[name])
    if not found:
        return None
    if len(set(found.values())) > 1:
        times = ", ".join(f"{name}: {format_time(moment)}" for name, moment in found.items())
        raise AcquisitionTimeError(sorted(found)[0], f"the scene's sidecars disagree ({times}); keep one time")
    name = sorted(found)[0]
    return found[name], name


def missing_time_reason(raster_names: Collection[str], extra: Mapping[str, str] | None = None) -> str:
    """The quarantine reason of a scene whose rasters carry no acquisition time and that has no sidecar
    (``extra``: the scene's extras, naming time tags that were there but did not parse)."""
    names = sorted(raster_names) or ["FILE"]
    shown = ", ".join(names)
    unreadable = (extra or {}).get(UNREADABLE_TIME_EXTRA)
    tags = (
        f"no readable time tag ({unreadable} is not a date and time)"
        if unreadable
        else ("no ACQUISITION_TIME or TIFFTAG_DATETIME tag")
    )
    return (
        f"no acquisition time: {shown} has {tags}, no MTL and no {SIDECAR_SUFFIX} sidecar, and a STAC item "
        "needs one; land it again with "
        f"`satlake put --datetime {EXAMPLE_TIME} {names[0]}`, or land a sidecar {sidecar_name_for(names[0])} "
        f'holding {{"datetime": "{EXAMPLE_TIME}"}} beside it'
    )
