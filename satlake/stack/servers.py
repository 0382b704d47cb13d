"""How each server is prepared and launched: its config files under the stack home and its command line.

The pid-file marker of each server is a path unique to this stack home, so two stacks on one machine (a
developer's and the test suite's) never mistake each other's processes for their own. (A collector's command
line names no path: its marker is its command and name, found only through this stack home's pid file.)
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from satlake.stack.config import COLLECTORS, StackConfig
from satlake.stack.configs import (
    kafka_jvm_options,
    kafka_log4j2_properties,
    kafka_server_properties,
    minio_arguments,
    minio_environment,
    native_trino_etc_files,
)
from satlake.stack.credentials import (
    ROOT_USER_VAR,
    TRINO_ACCESS_KEY_VAR,
    TRINO_SECRET_KEY_VAR,
    KeyPair,
    StackCredentials,
)
from satlake.stack.errors import StackError
from satlake.stack.process import open_files_hard_limit
from satlake.stack.provision import minio_accepts_root

TRINO_MIN_OPEN_FILES = 4096
# Trino re-reads these every few seconds (security.refresh-period, file.refresh-period): no restart needed.
TRINO_RELOADED_FILES = ("rules.json", "groups.txt")


@dataclass(frozen=True)
class Launch:
    """A server's command, environment and working directory, plus the marker found in its command line."""

    command: list[str]
    cwd: Path
    marker: str
    env: dict[str, str] = field(default_factory=dict)
    min_open_files: int | None = None


def write_files(directory: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)


def kafka_paths(config: StackConfig) -> tuple[Path, Path, Path]:
    """(config dir, data dir, server.properties) of the Kafka broker."""
    kafka_dir = config.server_dir("kafka")
    return kafka_dir / "config", kafka_dir / "data", kafka_dir / "config" / "server.properties"


def minio_paths(config: StackConfig) -> tuple[Path, Path]:
    """(data dir, notification queue dir) of MinIO."""
    minio_dir = config.server_dir("minio")
    return minio_dir / "data", minio_dir / "notify-queue"


def trino_paths(config: StackConfig) -> tuple[Path, Path]:
    """(etc dir, data dir) of Trino."""
    trino_dir = config.server_dir("trino")
    return trino_dir / "etc", trino_dir / "data"


def markers(config: StackConfig) -> dict[str, str]:
    return {
        "kafka": str(kafka_paths(config)[2]),
        "minio": str(minio_paths(config)[0]),
        "trino": str(trino_paths(config)[0]),
        # PostgreSQL's data directory (satlake.stack.postgres.postgres_paths), on the postmaster's command line.
        "postgres": str(config.server_dir("postgres") / "data"),
        # Their config files (satlake.stack.monitoring), on their command lines.
        "prometheus": str(config.server_dir("prometheus") / "prometheus.yml"),
        "alertmanager": str(config.server_dir("alertmanager") / "alertmanager.yml"),
        # HAProxy's config file (satlake.stack.haproxy); a collector's command and name (satlake.stack.collectors):
        # its pid file is this stack home's, and the name ends where the command line has a space.
        "haproxy": str(config.server_dir("haproxy") / "haproxy.cfg"),
        **{name: f"collect --stack --name {name} " for name in COLLECTORS},
    }


def _java_tool(java_home: Path, lib_dir: Path, main_class: str, *arguments: str) -> str:
    command = [str(java_home / "bin" / "java"), "-cp", f"{lib_dir}/*", main_class, *arguments]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if completed.returncode != 0:
        raise StackError(
            f"`{main_class} {' '.join(arguments)}` failed (exit {completed.returncode}): "
            f"{(completed.stdout + completed.stderr).strip()[-1500:]}"
        )
    return completed.stdout.strip()


def prepare_kafka(config: StackConfig, lib_dir: Path, java_home: Path) -> Launch:
    """Write the broker's config and, on the very first start, format its storage as a new KRaft cluster."""
    config_dir, data_dir, server_properties = kafka_paths(config)
    log4j_file = config_dir / "log4j2.properties"
    write_files(
        config_dir,
        {
            "server.properties": kafka_server_properties(config, data_dir),
            "log4j2.properties": kafka_log4j2_properties(),
        },
    )
    if not (data_dir / "meta.properties").is_file():
        data_dir.mkdir(parents=True, exist_ok=True)
        cluster_id = _java_tool(java_home, lib_dir, "kafka.tools.StorageTool", "random-uuid").splitlines()[-1]
        _java_tool(
            java_home,
            lib_dir,
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            cluster_id,
            "--config",
            str(server_properties),
            "--ignore-formatted",
        )
    command = [
        str(java_home / "bin" / "java"),
        *kafka_jvm_options(log4j_file),
        "-cp",
        f"{lib_dir}/*",
        "kafka.Kafka",
        str(server_properties),
    ]
    return Launch(command=command, cwd=config.server_dir("kafka"), marker=str(server_properties))


def prepare_minio(config: StackConfig, minio_binary: Path, root: KeyPair) -> Launch:
    data_dir, queue_dir = minio_paths(config)
    data_dir.mkdir(parents=True, exist_ok=True)
    queue_dir.mkdir(parents=True, exist_ok=True)
    return Launch(
        command=[str(minio_binary), *minio_arguments(config, data_dir)],
        cwd=config.server_dir("minio"),
        marker=str(data_dir),
        env=minio_environment(config, root, queue_dir),
    )


def prepare_trino(config: StackConfig, server_dir: Path, java_home: Path, trino_key: KeyPair) -> Launch:
    hard_limit = open_files_hard_limit()
    if hard_limit < TRINO_MIN_OPEN_FILES:
        raise StackError(
            f"Trino refuses to start with fewer than {TRINO_MIN_OPEN_FILES} open files, and this shell's "
            f"hard limit is {hard_limit}: raise it (`ulimit -Hn 65536` as root, or nofile in "
            "/etc/security/limits.conf) and rerun"
        )
    etc_dir, data_dir = trino_paths(config)
    data_dir.mkdir(parents=True, exist_ok=True)
    # No Trino of this stack home runs when it is launched, so the launcher's own pid file is stale: its
    # process may still be a zombie not yet reaped, which the launcher would take for a running server.
    (data_dir / "var" / "run" / "launcher.pid").unlink(missing_ok=True)
    write_files(etc_dir, native_trino_etc_files(config))
    path = f"{java_home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return Launch(
        command=[
            str(server_dir / "bin" / "launcher"),
            "run",
            f"--etc-dir={etc_dir}",
            f"--data-dir={data_dir}",
            f"--jvm-dir={java_home}",
        ],
        cwd=config.server_dir("trino"),
        marker=str(etc_dir),
        env={
            "JAVA_HOME": str(java_home),
            "PATH": path,
            TRINO_ACCESS_KEY_VAR: trino_key.access_key,
            TRINO_SECRET_KEY_VAR: trino_key.secret_key,
        },
        min_open_files=TRINO_MIN_OPEN_FILES,
    )


def refresh_trino_configuration(config: StackConfig) -> list[str]:
    """Rewrite the files a running Trino reloads by itself (access rules, groups); name those it cannot reload
    that differ from what this satlake renders (a restart applies them)."""
    etc_dir = trino_paths(config)[0]
    wanted = native_trino_etc_files(config)
    write_files(etc_dir, {name: wanted[name] for name in TRINO_RELOADED_FILES})
    on_disk = {name: (etc_dir / name).read_text() if (etc_dir / name).is_file() else None for name in wanted}
    return sorted(name for name, text in wanted.items() if name not in TRINO_RELOADED_FILES and on_disk[name] != text)


def restart_reason(config: StackConfig, server: str, credentials: StackCredentials | None) -> str | None:
    """Why a server already running from this stack home must be restarted by `stack up`, or None.

    MinIO started by a satlake whose root user was the pipeline's key refuses the root user now in the secrets
    file; Trino started by an older satlake has another catalog file (it used the pipeline's key).
    """
    if server == "minio" and credentials is not None and not minio_accepts_root(config, credentials.root):
        return (
            f"it runs with another root user than {ROOT_USER_VAR} in {config.secrets_file} (a stack from before "
            "the pipeline had its own least-privilege key)"
        )
    if server == "trino":
        changed = refresh_trino_configuration(config)
        if changed:
            return f"its configuration changed ({', '.join(changed)})"
    return None
