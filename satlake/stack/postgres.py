"""PostgreSQL + PostGIS of the stack: the distribution's packages (apt-get), a cluster under the stack home, its
launch, its health probe and the serving database with the ``postgis`` extension.

PostgreSQL refuses to run as root. When satlake runs as root (containers, CI), the cluster runs as the
``postgres`` OS user the Debian packages create, given only the right to traverse directories
(CAP_DAC_READ_SEARCH), so its data directory can stay under a stack home that only root may enter.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from satlake.stack.apt import apt_install
from satlake.stack.config import StackConfig
from satlake.stack.errors import StackError
from satlake.stack.install import InstallToolMissing, Progress, install_lock, require_tool
from satlake.stack.servers import Launch

DEBIAN_POSTGRES = Path("/usr/lib/postgresql")
# The distribution's own PostgreSQL and its PostGIS 3 (metapackages: 15 on Debian 12, 17 on Debian 13).
POSTGRES_PACKAGES = ("postgresql", "postgresql-postgis")
SERVER_OS_USER = "postgres"
ADMIN_DATABASE = "postgres"
# A server sized for a shared developer machine; the serving tables are copies of the lake, rebuilt by the
# serving/* assets, yet they stay crash-safe (fsync on) so QGIS users never see a torn table.
SERVER_SETTINGS: dict[str, str] = {
    "shared_buffers": "256MB",
    "work_mem": "16MB",
    "maintenance_work_mem": "128MB",
    "max_connections": "100",
    "unix_socket_directories": "",  # TCP only: a socket path under a deep stack home can exceed 107 bytes
    "log_destination": "stderr",
    "logging_collector": "off",
}


def postgres_bindir() -> Path | None:
    """The ``bin`` directory of the newest Debian PostgreSQL that has PostGIS installed beside it."""
    versions = sorted(
        (p for p in DEBIAN_POSTGRES.glob("*") if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
    )
    for version in versions:
        postgis = Path("/usr/share/postgresql") / version.name / "extension" / "postgis.control"
        if (version / "bin" / "initdb").is_file() and postgis.is_file():
            return version / "bin"
    return None


def install_postgres(cache: Path, log_file: Path, progress: Progress) -> Path:
    """PostgreSQL and PostGIS from the distribution's packages (once); returns PostgreSQL's ``bin`` directory."""
    with install_lock(cache, "postgres"):
        found = postgres_bindir()
        if found is not None:
            return found
        apt_install(
            POSTGRES_PACKAGES,
            log_file,
            progress,
            needed_for="install PostgreSQL and PostGIS",
            how_to="Install PostgreSQL with PostGIS 3 from your distribution (e.g. postgresql-15-postgis-3) and rerun.",
        )
        found = postgres_bindir()
        if found is None:
            raise StackError(
                f"apt-get installed {' '.join(POSTGRES_PACKAGES)} but no PostgreSQL with PostGIS is under "
                f"{DEBIAN_POSTGRES}; see {log_file}"
            )
        return found


def as_server_user(command: list[str]) -> list[str]:
    """``command`` as run by the cluster's OS user: unchanged unless satlake runs as root."""
    if os.geteuid() != 0:
        return command
    try:
        pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        raise InstallToolMissing(
            f"PostgreSQL refuses to run as root and there is no {SERVER_OS_USER!r} OS user to run it as: "
            "install the Debian postgresql package (it creates that user) or run satlake as another user"
        ) from None
    setpriv = require_tool("setpriv", "run PostgreSQL as its own user", "Install util-linux.")
    return [
        setpriv,
        f"--reuid={SERVER_OS_USER}",
        f"--regid={SERVER_OS_USER}",
        "--init-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
        *command,
    ]


def postgres_paths(config: StackConfig) -> tuple[Path, Path]:
    """(server dir, data dir) of the cluster."""
    server_dir = config.server_dir("postgres")
    return server_dir, server_dir / "data"


def _give_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, SERVER_OS_USER, SERVER_OS_USER)


def initialize_cluster(bindir: Path, data_dir: Path, user: str, password: str) -> None:
    """``initdb`` a new cluster whose superuser is ``user``, logging in by password (scram-sha-256) only."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _give_to_server_user(data_dir.parent)
    password_file = data_dir.parent / "initdb-password"
    descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(password + "\n")
    _give_to_server_user(password_file)
    command = [
        str(bindir / "initdb"),
        "-D",
        str(data_dir),
        "-U",
        user,
        f"--pwfile={password_file}",
        "--auth=scram-sha-256",
        "-E",
        "UTF8",
        "--locale=C.UTF-8",
    ]
    try:
        done = subprocess.run(as_server_user(command), capture_output=True, text=True, timeout=300, check=False)
    finally:
        password_file.unlink(missing_ok=True)
    if done.returncode != 0:
        output = (done.stderr or done.stdout)[-1500:]
        raise StackError(f"initdb of {data_dir} failed (exit {done.returncode}): {output}")


def postgres_command(bindir: Path, data_dir: Path, host: str, port: int) -> list[str]:
    """The postmaster's command line: listens on ``host:port`` only, settings from SERVER_SETTINGS."""
    options = [f"-c{name}={value}" for name, value in SERVER_SETTINGS.items()]
    return [str(bindir / "postgres"), "-D", str(data_dir), "-p", str(port), f"-clisten_addresses={host}", *options]


def prepare_postgres(config: StackConfig, bindir: Path) -> Launch:
    """Initialise the cluster on its first start (superuser and password from the stack's credentials)."""
    if not config.postgres_password:
        raise StackError("the PostgreSQL server needs SATLAKE_POSTGRES_PASSWORD; `satlake stack up` generates it")
    server_dir, data_dir = postgres_paths(config)
    if not (data_dir / "PG_VERSION").is_file():
        initialize_cluster(bindir, data_dir, config.postgres_user, config.postgres_password)
    return Launch(
        command=as_server_user(postgres_command(bindir, data_dir, config.postgres_host, config.postgres_port)),
        cwd=server_dir,
        marker=str(data_dir),
    )


def postgres_dsn(config: StackConfig, database: str) -> str:
    """A libpq connection string to ``database`` as the cluster's superuser."""
    from satlake.resources.postgis import PostgisServing

    return PostgisServing(
        host=config.postgres_host,
        port=config.postgres_port,
        user=config.postgres_user,
        database=database,
        password=config.postgres_password,
        secrets_file=config.secrets_file,
    ).conninfo


def postgres_health(config: StackConfig) -> tuple[bool, str]:
    """Healthy when the superuser logs in and PostGIS is available to the cluster."""
    import psycopg

    from satlake.stack.process import port_accepts

    where = f"{config.postgres_host}:{config.postgres_port}"
    if not config.postgres_password:
        return False, f"no SATLAKE_POSTGRES_PASSWORD in {config.secrets_file}: `satlake stack up` generates it"
    if not port_accepts(config.postgres_host, config.postgres_port):
        return False, f"nothing accepts connections on {where}"
    try:
        with psycopg.connect(postgres_dsn(config, ADMIN_DATABASE), autocommit=True) as connection:
            row = connection.execute(
                "SELECT current_setting('server_version'), "
                "(SELECT default_version FROM pg_available_extensions WHERE name = 'postgis')"
            ).fetchone()
    except psycopg.Error as error:
        return False, f"PostgreSQL on {where} refused user {config.postgres_user!r}: {str(error).strip()[:300]}"
    assert row is not None
    if row[1] is None:
        return False, f"PostgreSQL {row[0]} on {where} has no PostGIS extension installed"
    return True, f"PostgreSQL {row[0]}, PostGIS {row[1]} available"


def provision_postgres(config: StackConfig) -> str:
    """The serving database with the ``postgis`` extension (idempotent); returns the database's name."""
    import psycopg
    from psycopg import sql

    database = config.postgres_database
    with psycopg.connect(postgres_dsn(config, ADMIN_DATABASE), autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if exists is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    with psycopg.connect(postgres_dsn(config, database), autocommit=True) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    return database
