"""The rules an object key must follow before satlake turns it into a local path or a partition key.

Every object store checks keys with these rules (a local directory must never be escaped, an S3 key must fit
its limits), and the scene sensor checks announced keys with the same ones, so they live below both.
"""

from __future__ import annotations

import re
import unicodedata

MAX_KEY_BYTES = 1024  # S3 and MinIO limit for a whole object key
# The landing-area prefix the Mars source's responses land under: its own sensor reads them, the scene sensor
# leaves them alone (a user's scene files never go there: `satlake put` refuses the prefix).
MARS_LANDING_PREFIX = "mars-api"
MAX_SEGMENT_BYTES = 255  # NAME_MAX of local file systems: the raw zone is a directory in embedded mode

# Unicode general categories refused in keys: controls, invisible format characters (bidi overrides that
# disguise an extension, zero-width characters), surrogates, private use, unassigned code points, and
# line/paragraph separators.
_REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character",
    "Cs": "a lone surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


class UnsafeObjectKeyError(ValueError):
    """An object key that satlake refuses to turn into a local path or partition key."""

    def __init__(self, key: object, rule: str) -> None:
        self.key = key
        self.rule = rule
        super().__init__(
            f"unsafe object key {_short_repr(key)}: {rule}. Rename the object (a plain relative path, "
            "no '..', at most 1024 UTF-8 bytes) and upload it again."
        )


def _short_repr(key: object, limit: int = 160) -> str:
    text = repr(key)
    if len(text) <= limit:
        return text
    length = len(key) if isinstance(key, str) else len(text)
    return f"{text[:limit]}... ({length} characters)"


def validate_object_key(key: str) -> str:
    """Return ``key`` normalised to Unicode NFC, or raise UnsafeObjectKeyError naming the broken rule."""
    if not isinstance(key, str):
        raise UnsafeObjectKeyError(key, f"key must be a string, got {type(key).__name__}")
    for char in key:
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES:
            raise UnsafeObjectKeyError(
                key, f"contains {_REFUSED_CATEGORIES[category]} (U+{ord(char):04X}, category {category})"
            )
    normalised = unicodedata.normalize("NFC", key)
    if not normalised.strip():
        raise UnsafeObjectKeyError(key, "key is empty or only whitespace")
    try:
        encoded = normalised.encode("utf-8")
    except UnicodeEncodeError as error:  # pragma: no cover - surrogates are refused above
        raise UnsafeObjectKeyError(key, f"not encodable as UTF-8 ({error.reason})") from error
    if len(encoded) > MAX_KEY_BYTES:
        raise UnsafeObjectKeyError(key, f"key is {len(encoded)} bytes in UTF-8, the limit is {MAX_KEY_BYTES}")
    if "\\" in normalised:
        raise UnsafeObjectKeyError(key, "contains a backslash, which is a path separator on Windows")
    if normalised.startswith("/") or re.match(r"^[A-Za-z]:", normalised):
        raise UnsafeObjectKeyError(key, "is an absolute path; keys must be relative")
    if normalised.endswith("/"):
        raise UnsafeObjectKeyError(key, "ends with '/', which names a folder, not a file")
    for segment in normalised.split("/"):
        if segment in ("", ".", ".."):
            rule = "contains a '..' segment (path traversal)" if segment == ".." else "has an empty or '.' segment"
            raise UnsafeObjectKeyError(key, rule)
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise UnsafeObjectKeyError(
                key, f"has a path segment longer than {MAX_SEGMENT_BYTES} bytes, too long for a file name"
            )
    return normalised
