"""The stack's PostgreSQL + PostGIS: its command line, who it runs as, its health without credentials, and the
docker-compose service that must match the native server's settings."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from satlake.settings import Settings
from satlake.stack.config import SERVERS, StackConfig
from satlake.stack.postgres import SERVER_OS_USER, as_server_user, postgres_command, postgres_health
from satlake.stack.servers import markers

REPO = Path(__file__).resolve().parents[3]


def _config(tmp_path: Path, **environment: str) -> StackConfig:
    return StackConfig.from_settings(Settings.from_env({"SATLAKE_ROOT": str(tmp_path), **environment}))


def test_postgres_is_a_stack_server_with_its_port_setting(tmp_path: Path) -> None:
    config = _config(tmp_path, SATLAKE_POSTGRES_PORT="15432", SATLAKE_POSTGRES_DB="lakeserve")
    # Started after the lakehouse's servers, stopped before them: nothing but the ground stations' ingress after it.
    assert SERVERS[SERVERS.index("postgres") + 1 :] == ("collector1", "collector2", "haproxy")
    assert config.ports("postgres") == {"sql": 15432}
    assert (config.host("postgres"), config.postgres_database, config.postgres_user) == (
        "127.0.0.1",
        "lakeserve",
        "satlake",
    )
    assert markers(config)["postgres"] == str(tmp_path / "stack" / "postgres" / "data")


def test_postmaster_listens_on_the_configured_address_only_without_a_unix_socket(tmp_path: Path) -> None:
    command = postgres_command(Path("/usr/lib/postgresql/15/bin"), tmp_path / "data", "127.0.0.1", 15432)
    assert command[:5] == ["/usr/lib/postgresql/15/bin/postgres", "-D", str(tmp_path / "data"), "-p", "15432"]
    assert "-clisten_addresses=127.0.0.1" in command
    assert "-cunix_socket_directories=" in command


def test_the_server_never_runs_as_root() -> None:
    wrapped = as_server_user(["postgres", "-D", "/data"])
    if os.geteuid() == 0:
        assert f"--reuid={SERVER_OS_USER}" in wrapped and wrapped[-3:] == ["postgres", "-D", "/data"]
        assert "--ambient-caps=+dac_read_search" in wrapped  # traverse a root-only stack home, nothing more
    else:
        assert wrapped == ["postgres", "-D", "/data"]


def test_health_without_a_password_says_how_to_get_one(tmp_path: Path) -> None:
    healthy, detail = postgres_health(_config(tmp_path))
    assert not healthy
    assert "SATLAKE_POSTGRES_PASSWORD" in detail and "stack up" in detail


def test_compose_postgres_service_matches_the_native_server(tmp_path: Path) -> None:
    config = _config(tmp_path)
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgis/postgis:")
    assert postgres["environment"]["POSTGRES_USER"] == config.postgres_user
    assert postgres["environment"]["POSTGRES_DB"] == config.postgres_database
    assert postgres["ports"] == [f"127.0.0.1:{config.postgres_port}:5432"]
    for name in ("dagster-webserver", "dagster-daemon"):
        environment = services[name]["environment"]
        assert environment["SATLAKE_POSTGRES_HOST"] == "postgres"
        assert environment["SATLAKE_POSTGRES_USER"] == config.postgres_user
        assert environment["SATLAKE_POSTGRES_DB"] == config.postgres_database
        assert "SATLAKE_POSTGRES_PASSWORD" in environment
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "SATLAKE_POSTGRES_PASSWORD" not in services["satlake-init"]["environment"]
