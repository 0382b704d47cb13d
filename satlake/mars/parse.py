"""Bronze rows from raw Mars responses: photo manifests and photo pages of NASA's Mars rover photo API, and MMGIS
traverse waypoints.

Every parser is a pure function of one response body (as received, bytes) and its context (rover, sol, page,
response id, fetch time). It never raises on what the remote side sent: an error answer, a non-JSON or truncated
body, or a body of the wrong shape becomes one reject with a readable reason; a bad record inside a good body
becomes a reject of that record only, and the others are kept. Rejects are ``(record as JSON text, reason)``
pairs for bronze.mars_rejects; rows use exactly the column names of bronze.mars_manifests, bronze.mars_photos and
bronze.mars_waypoints with Python values matching their arrow types (``date`` for date32, ``bytes`` for WKB).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from satlake.mars.rovers import Rover, rover_named

MAX_RECORD_CHARS = 4000  # a rejected body is cut here; the whole body stays in raw.mars_responses
INT32_MAX = 2**31 - 1
_JSON_KINDS = {dict: "object", list: "array"}
_NO_DOCUMENT = object()  # what _load returns for a body that is not JSON (``None`` is the JSON document null)


@dataclass(slots=True)
class ParseResult:
    """What one response yielded: bronze rows, rejects ``(record JSON text, reason)`` and warnings."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def reject(self, record: Any, reason: str) -> None:
        """Reject a decoded record (kept as JSON text) or a raw body (bytes, kept as its text)."""
        self.rejects.append((_record_text(record), reason))


def _record_text(record: Any) -> str:
    """A decoded record as JSON text; a raw body (bytes: not JSON, or not a document at all) as its text."""
    if isinstance(record, bytes | bytearray):
        text = bytes(record).decode("utf-8", errors="replace")
    else:
        try:
            text = json.dumps(record, ensure_ascii=False, default=str, allow_nan=False)
        except ValueError:  # NaN/Infinity are not JSON: keep them readable, as strings
            text = json.dumps(_finite(record), ensure_ascii=False, default=str, allow_nan=False)
    if len(text) > MAX_RECORD_CHARS:
        return text[:MAX_RECORD_CHARS] + f"... ({len(text)} chars, cut)"
    return text


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def json_type(value: Any) -> str:
    """What a decoded JSON value is, in JSON's words (object, array, string, number, boolean, null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for kind, name in ((Mapping, "object"), (list, "array"), (str, "string"), (int | float, "number")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def as_rover(rover: Rover | str) -> Rover:
    return rover if isinstance(rover, Rover) else rover_named(rover)


def _load(body: bytes | str, what: str, result: ParseResult) -> Any:
    """The decoded JSON document, or _NO_DOCUMENT after recording one reject that says why there is none."""
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        result.reject(raw, f"the {what} body is not UTF-8 text ({exc.reason} at byte {exc.start}); not JSON")
        return _NO_DOCUMENT
    if not text.strip():
        result.reject(raw, f"the {what} body is empty; expected JSON")
        return _NO_DOCUMENT
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        end = len(text.rstrip())
        if exc.pos >= end or exc.msg.startswith("Unterminated string"):
            reason = f"truncated JSON: {exc.msg} at char {exc.pos} of {len(text)}; the {what} body was cut short"
        else:
            start = text.lstrip()[:40]
            reason = f"the {what} body is not JSON: {exc.msg} at char {exc.pos} (body starts with {start!r})"
        result.reject(raw, reason)
        return _NO_DOCUMENT


def _api_error(document: Any) -> str | None:
    """The reason for an error answer of the api.nasa.gov gateway or the photo API, None for a normal body."""
    if not isinstance(document, Mapping):
        return None
    if "error" in document:
        error = document["error"]
        if isinstance(error, Mapping):
            parts = [str(error[key]) for key in ("code", "message") if error.get(key)]
            return f"the API answered with an error: {': '.join(parts) or json.dumps(error)}"
        return f"the API answered with an error: {error}"
    if "errors" in document:
        errors = document["errors"]
        if isinstance(errors, list):
            errors = "; ".join(str(error) for error in errors)
        return f"the API answered with an error: {errors}"
    return None


def load_document(body: bytes | str, what: str, key: str, kind: type, result: ParseResult) -> Any | None:
    """``document[key]`` when the body is JSON with that key of that kind; else None and one reject."""
    document = _load(body, what, result)
    if document is _NO_DOCUMENT:
        return None
    error = _api_error(document)
    if error is not None:
        result.reject(document, error)
        return None
    if not isinstance(document, Mapping) or not isinstance(document.get(key), kind):
        shape = f"keys {sorted(document)}" if isinstance(document, Mapping) else f"a JSON {json_type(document)}"
        result.reject(document, f"not a {what}: expected an object with a {key!r} {_JSON_KINDS[kind]}, got {shape}")
        return None
    return document[key]


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        return None


def as_float(value: Any) -> float | None:
    """A finite number as float; None for missing, non-numeric or non-finite values."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def parse_manifest(body: bytes | str, rover: Rover | str, response_id: str, fetched_at: datetime) -> ParseResult:
    """bronze.mars_manifests rows, one per sol listed in the rover's photo manifest."""
    rover = as_rover(rover)
    result = ParseResult()
    manifest = load_document(body, "photo manifest", "photo_manifest", dict, result)
    if manifest is None:
        return result
    name = manifest.get("name")
    if not isinstance(name, str) or name.strip().lower() != rover.name:
        result.reject(manifest, f"the manifest is for rover {name!r}, but {rover.name}'s manifest was requested")
        return result
    max_sol, max_date = as_int(manifest.get("max_sol")), _date(manifest.get("max_date"))
    total, status = as_int(manifest.get("total_photos")), manifest.get("status")
    problems = [
        problem
        for problem, bad in (
            (f"max_sol {manifest.get('max_sol')!r} is not a sol", max_sol is None or max_sol < 0),
            (f"max_date {manifest.get('max_date')!r} is not a date", max_date is None),
            (f"total_photos {manifest.get('total_photos')!r} is not a count", total is None or total < 0),
            (f"status {status!r} is not a string", not isinstance(status, str)),
        )
        if bad
    ]
    photos = manifest.get("photos")
    if not isinstance(photos, list):
        problems.append(f"photos is a JSON {json_type(photos)}, not a list of sols")
    if problems:
        header = {key: value for key, value in manifest.items() if key != "photos"}
        result.reject(header, f"{rover.name}'s manifest is malformed: {'; '.join(problems)}")
        return result
    seen: set[int] = set()
    for entry in photos:
        reason = _manifest_entry_problem(entry, max_sol, seen)
        if reason is not None:
            result.reject(entry, f"{rover.name} manifest: {reason}")
            continue
        seen.add(entry["sol"])
        result.rows.append(
            {
                "rover_name": rover.name,
                "sol": as_int(entry["sol"]),
                "earth_date": _date(entry["earth_date"]),
                "total_photos": as_int(entry["total_photos"]),
                "cameras": list(entry["cameras"]),
                "max_sol": max_sol,
                "max_date": max_date,
                "status": status,
                "manifest_total_photos": total,
                "response_id": response_id,
                "fetched_at": fetched_at,
            }
        )
    return result


def _manifest_entry_problem(entry: Any, max_sol: int, seen: set[int]) -> str | None:
    if not isinstance(entry, Mapping):
        return f"a sol entry is a JSON {json_type(entry)}, not an object"
    sol = as_int(entry.get("sol"))
    if sol is None or not 0 <= sol <= INT32_MAX:
        return f"sol {entry.get('sol')!r} is not a sol number"
    if sol > max_sol:
        return f"sol {sol} is after the manifest's max_sol {max_sol}"
    if sol in seen:
        return f"sol {sol} is listed twice (first kept)"
    if _date(entry.get("earth_date")) is None:
        return f"sol {sol}: earth_date {entry.get('earth_date')!r} is not a date"
    count = as_int(entry.get("total_photos"))
    if count is None or not 0 <= count <= INT32_MAX:
        return f"sol {sol}: total_photos {entry.get('total_photos')!r} is not a count"
    cameras = entry.get("cameras")
    if not isinstance(cameras, list) or not all(isinstance(camera, str) for camera in cameras):
        return f"sol {sol}: cameras {cameras!r} is not a list of camera names"
    return None


def parse_photos(
    body: bytes | str,
    rover: Rover | str,
    sol: int,
    page: int,
    response_id: str,
    fetched_at: datetime,
    max_sol: int | None = None,
) -> ParseResult:
    """bronze.mars_photos rows of one photo page (``{"photos": [...]}``), in either rover shape.

    ``max_sol`` is the rover's latest sol from its manifest: a page for a later sol cannot be right, so all its
    records are rejected.
    """
    rover = as_rover(rover)
    result = ParseResult()
    photos = load_document(body, "photo page", "photos", list, result)
    if photos is None:
        return result
    if max_sol is not None and sol > max_sol:
        reason = f"sol {sol} is after the rover's latest sol {max_sol} (manifest of {rover.name})"
        for record in photos:
            result.reject(record, reason)
        return result
    seen: set[int] = set()
    for record in photos:
        row, reason = _photo_row(record, rover, sol, page, seen)
        if row is None:
            result.reject(record, f"{rover.name} sol {sol} page {page}: {reason}")
            continue
        seen.add(row["id"])
        row["response_id"] = response_id
        row["fetched_at"] = fetched_at
        result.rows.append(row)
    return result


def _photo_row(record: Any, rover: Rover, sol: int, page: int, seen: set[int]) -> tuple[dict[str, Any] | None, str]:
    if not isinstance(record, Mapping):
        return None, f"a photo record is a JSON {json_type(record)}, not an object"
    photo_id = as_int(record.get("id"))
    if photo_id is None:
        return None, f"photo has no integer id (id={record.get('id')!r})"
    if photo_id in seen:
        return None, f"photo {photo_id} appears twice on the page (first kept)"
    img_src = record.get("img_src")
    if not isinstance(img_src, str) or not img_src.strip():
        return None, f"photo {photo_id} has no img_src"
    split = urlsplit(img_src.strip())
    if split.scheme.lower() not in ("http", "https") or not split.netloc:
        return None, f"photo {photo_id} img_src {img_src!r} is not an http(s) URL"
    record_sol = as_int(record.get("sol"))
    if record_sol != sol:
        return None, f"photo {photo_id} is from sol {record.get('sol')!r}, but the page was requested for sol {sol}"
    rover_object = record.get("rover")
    rover_name = rover_object.get("name") if isinstance(rover_object, Mapping) else None
    if not isinstance(rover_name, str):
        return None, f"photo {photo_id} has no rover object with a name"
    if rover_name.strip().lower() != rover.name:
        return None, f"photo {photo_id} belongs to rover {rover_name!r}, but the page was requested for {rover.name}"
    camera = record.get("camera")
    camera_name = camera.get("name") if isinstance(camera, Mapping) else None
    if not isinstance(camera_name, str) or not camera_name.strip():
        return None, f"photo {photo_id} has no camera name"
    earth_date = _date(record.get("earth_date"))
    if earth_date is None:
        return None, f"photo {photo_id} earth_date {record.get('earth_date')!r} is not a date"
    full_name = camera.get("full_name")
    long_shape = "max_sol" in rover_object or "cameras" in rover_object
    return {
        "id": photo_id,
        "rover_name": rover.name,
        "sol": sol,
        "earth_date": earth_date,
        "camera_name": camera_name.strip(),
        "camera_full_name": full_name.strip() if isinstance(full_name, str) else None,
        "img_src": img_src.strip(),
        "rover_shape": "long" if long_shape else "short",
        "page": page,
    }, ""
