"""The bytes of a scene's files: sha256 and size of each, and checking them against what an acquisition
manifest recorded, so a file replaced after it was acquired is never catalogued as that acquisition.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from satlake.scenes.geotiff import RasterReadError
from satlake.scenes.grouping import ACQUIRED_MANIFEST_NAME, ManifestError, acquired_manifest_files
from satlake.scenes.metadata import SceneFile

__all__ = ["HASH_CHUNK_BYTES", "check_acquired_files", "file_sha256"]

HASH_CHUNK_BYTES = 1 << 20


def file_sha256(path: Path, chunk_bytes: int = HASH_CHUNK_BYTES) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file, read in chunks so large scenes never sit in memory."""
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(chunk_bytes):
                digest.update(chunk)
                size += len(chunk)
    except OSError as error:
        raise RasterReadError(path.name, f"file cannot be read ({error.strerror or error})") from error
    return digest.hexdigest(), size


def check_acquired_files(manifest: Path, landed: Mapping[str, SceneFile]) -> None:
    """Every file an acquisition manifest lists is among the scene's files with the sha256 and size it records:
    a band file replaced after it was acquired must not be catalogued as that acquisition."""
    try:
        text = manifest.read_text(encoding="utf-8", errors="replace")
        listed = acquired_manifest_files(text, ACQUIRED_MANIFEST_NAME)
    except OSError as error:
        raise RasterReadError(manifest.name, f"file cannot be read ({error.strerror or error})") from error
    except ManifestError as error:
        raise RasterReadError(ACQUIRED_MANIFEST_NAME, str(error)) from error
    entries = json.loads(text)["files"]
    for role, name in listed.items():
        found = landed.get(name)
        if found is None:
            raise RasterReadError(
                name, f"{ACQUIRED_MANIFEST_NAME} lists it as {role!r} but it is not a file of the scene"
            )
        expected_sha256, expected_size = entries[role].get("sha256"), entries[role].get("size")
        if expected_sha256 is not None and str(expected_sha256).lower() != found.sha256:
            raise RasterReadError(
                name,
                f"sha256 {found.sha256} differs from {expected_sha256} recorded in {ACQUIRED_MANIFEST_NAME}: the "
                "file changed after it was acquired; acquire the item again",
            )
        if expected_size is not None and expected_size != found.size_bytes:
            raise RasterReadError(
                name, f"size {found.size_bytes} bytes differs from {expected_size} recorded in {ACQUIRED_MANIFEST_NAME}"
            )
