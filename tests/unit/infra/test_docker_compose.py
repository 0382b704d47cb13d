"""docker-compose.yml is valid for Docker Compose and uses the same Trino configuration as the native stack.

Without `docker compose`, the file is loaded by the Compose Specification's own loader (compose-go), built by
infra/install_compose_checker.sh: these tests never skip.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from satlake.settings import Settings
from satlake.stack.config import COLLECTORS, StackConfig
from satlake.stack.configs import docker_trino_etc_files
from satlake.stack.haproxy import COMPOSE_CONFIG, compose_haproxy_config
from satlake.stack.versions import KAFKA_VERSION, TRINO_VERSION

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKER_TRINO_ETC = REPO / "infra" / "docker" / "trino" / "etc"
GRAFANA_PROVISIONING = REPO / "satlake" / "ops" / "grafana" / "provisioning"
DASHBOARDS = REPO / "satlake" / "ops" / "dashboards"


INSTALL_COMPOSE_CHECKER = REPO / "infra" / "install_compose_checker.sh"


@functools.cache
def compose_checker() -> str:
    """The Compose Specification's reference loader (infra/compose-checker), built once from the Go module proxy."""
    completed = subprocess.run(["bash", str(INSTALL_COMPOSE_CHECKER)], capture_output=True, text=True)
    if completed.returncode != 0:
        pytest.fail(f"could not build the Compose checker with {INSTALL_COMPOSE_CHECKER}:\n{completed.stderr}")
    return completed.stdout.strip().splitlines()[-1]


def compose_command() -> list[str]:
    """`docker compose` (plugin) or the standalone `docker-compose`; without either, the Compose checker."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone is not None:
        return [standalone]
    return [compose_checker()]


def run_config(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SATLAKE_")}
    return subprocess.run(
        [*compose_command(), "-f", str(COMPOSE_FILE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        env={**env, **environment},
        cwd=REPO,
    )


# One value per variable, so a test can tell which identity reached which container.
COMPOSE_CREDENTIALS = {
    "SATLAKE_MINIO_ROOT_USER": "compose-root",
    "SATLAKE_MINIO_ROOT_PASSWORD": "compose-root-secret",
    "SATLAKE_S3_ACCESS_KEY": "compose-pipeline",
    "SATLAKE_S3_SECRET_KEY": "compose-pipeline-secret",
    "SATLAKE_TRINO_S3_ACCESS_KEY": "compose-trino",
    "SATLAKE_TRINO_S3_SECRET_KEY": "compose-trino-secret",
    "SATLAKE_POSTGRES_PASSWORD": "compose-postgres-secret",
    "SATLAKE_GRAFANA_ADMIN_PASSWORD": "compose-grafana-secret",
}


def test_compose_file_is_accepted_and_wires_the_stack_together() -> None:
    completed = run_config(COMPOSE_CREDENTIALS)
    assert completed.returncode == 0, completed.stderr
    services = json.loads(completed.stdout)["services"]
    expected = {"kafka", "minio", "trino", "postgres", "satlake-init", "dagster-webserver", "dagster-daemon"}
    assert expected <= set(services)
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert services["trino"]["image"] == f"trinodb/trino:{TRINO_VERSION}"
    assert services["minio"]["image"].startswith("minio/minio:")
    assert services["minio"]["environment"]["MINIO_NOTIFY_KAFKA_TOPIC_SATLAKE"] == "satlake.object-events"
    trino_mounts = {volume["target"]: volume["source"] for volume in services["trino"]["volumes"]}
    assert Path(trino_mounts["/etc/trino"]) == DOCKER_TRINO_ETC
    for service in ("dagster-webserver", "dagster-daemon", "satlake-init"):
        environment = services[service]["environment"]
        assert environment["SATLAKE_MODE"] == "stack"
        assert environment["SATLAKE_KAFKA_BOOTSTRAP"] == "kafka:19092"
        assert environment["SATLAKE_S3_ENDPOINT"] == "http://minio:9000"
    assert services["dagster-daemon"]["command"][:2] == ["dagster-daemon", "run"]


def secrets_of(service: dict[str, object]) -> set[str]:
    environment = service.get("environment") or {}
    return {value for value in environment.values() if value in COMPOSE_CREDENTIALS.values()}  # type: ignore[union-attr]


def test_each_container_gets_only_the_identity_it_needs() -> None:
    completed = run_config(COMPOSE_CREDENTIALS)
    assert completed.returncode == 0, completed.stderr
    services = json.loads(completed.stdout)["services"]
    root = {"compose-root", "compose-root-secret"}
    pipeline = {"compose-pipeline", "compose-pipeline-secret"}
    trino = {"compose-trino", "compose-trino-secret"}
    postgres = {"compose-postgres-secret"}
    assert secrets_of(services["minio"]) == root
    assert services["minio"]["environment"]["MINIO_ROOT_USER"] == "compose-root"
    # Only the one-shot provisioning holds the root user, to create the pipeline's and Trino's users.
    assert secrets_of(services["satlake-init"]) == root | pipeline | trino
    assert services["satlake-init"]["command"] == ["python", "-m", "satlake.stack", "provision"]
    assert secrets_of(services["trino"]) == trino
    assert services["trino"]["depends_on"]["satlake-init"]["condition"] == "service_completed_successfully"
    # The serving database's password: the database itself and the Dagster processes that write to it.
    assert secrets_of(services["postgres"]) == postgres
    for service in ("dagster-webserver", "dagster-daemon"):
        assert secrets_of(services[service]) == pipeline | postgres
    assert secrets_of(services["kafka"]) == set()
    assert secrets_of(services["grafana"]) == {"compose-grafana-secret"}


@pytest.mark.parametrize("missing", sorted(COMPOSE_CREDENTIALS))
def test_compose_refuses_to_start_without_any_one_credential(missing: str) -> None:
    completed = run_config({name: value for name, value in COMPOSE_CREDENTIALS.items() if name != missing})
    assert completed.returncode != 0
    assert f"required variable {missing} is missing" in completed.stderr


def test_grafana_runs_the_official_image_with_satlake_provisioning_mounted() -> None:
    completed = run_config(COMPOSE_CREDENTIALS)
    assert completed.returncode == 0, completed.stderr
    grafana = json.loads(completed.stdout)["services"]["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    mounts = {volume["target"]: volume for volume in grafana["volumes"]}
    assert Path(mounts["/etc/grafana/provisioning"]["source"]) == GRAFANA_PROVISIONING
    provider = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards" / "satlake.yml").read_text())["providers"][0]
    dashboards_mount = mounts[provider["options"]["path"]]
    assert Path(dashboards_mount["source"]) == DASHBOARDS
    assert all(volume.get("read_only") for volume in mounts.values())
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert (DASHBOARDS / home.relative_to(provider["options"]["path"])).is_file()
    datasource = yaml.safe_load((GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    # The datasource reaches Prometheus by its Compose service name.
    assert datasource["url"].startswith("http://prometheus:")
    assert ports_on_host(grafana) == {3001}
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def ports_on_host(service: dict[str, object]) -> set[int]:
    return {int(port["published"]) for port in service.get("ports", [])}  # type: ignore[union-attr]


def test_no_two_services_publish_the_same_host_port() -> None:
    completed = run_config(COMPOSE_CREDENTIALS)
    assert completed.returncode == 0, completed.stderr
    published = [
        port for service in json.loads(completed.stdout)["services"].values() for port in ports_on_host(service)
    ]
    assert len(published) == len(set(published)), sorted(published)


def test_haproxy_fronts_two_collectors_with_the_rendered_configuration() -> None:
    completed = run_config(COMPOSE_CREDENTIALS)
    assert completed.returncode == 0, completed.stderr
    services = json.loads(completed.stdout)["services"]
    haproxy = services["haproxy"]
    assert haproxy["image"] == "haproxy:2.6"  # the branch of the Debian package the native stack runs
    [mount] = haproxy["volumes"]
    assert (Path(mount["source"]), mount["target"], mount["read_only"]) == (
        REPO / COMPOSE_CONFIG,
        "/usr/local/etc/haproxy/haproxy.cfg",
        True,
    )
    assert ports_on_host(haproxy) == {10015, 8095}
    assert {name: dependency["condition"] for name, dependency in haproxy["depends_on"].items()} == dict.fromkeys(
        COLLECTORS, "service_healthy"
    )
    # In containers the collectors listen on every interface, on the native stack's default ports.
    in_containers = replace(StackConfig.from_settings(Settings(), environ={}), collector_backend_host="0.0.0.0")
    rendered = compose_haproxy_config()
    for name in COLLECTORS:
        collector = services[name]
        assert collector["command"] == ["satlake", *in_containers.collector_arguments(name)]
        assert collector["image"] == services["dagster-daemon"]["image"]
        assert collector["environment"]["SATLAKE_KAFKA_BOOTSTRAP"] == "kafka:19092"
        assert secrets_of(collector) == {"compose-pipeline", "compose-pipeline-secret"}
        assert collector["depends_on"]["satlake-init"]["condition"] == "service_completed_successfully"
        assert not collector.get("ports")  # reached through HAProxy only
        ports = in_containers.ports(name)
        assert f":{ports['http']}/healthz" in " ".join(collector["healthcheck"]["test"])
        assert f"server {name} {name}:{ports['tcp']} check port {ports['http']}" in rendered
        assert f"server {name} {name}:{ports['http']} check" in rendered


def test_docker_trino_configuration_is_the_rendered_one() -> None:
    expected = docker_trino_etc_files()
    on_disk = {
        str(path.relative_to(DOCKER_TRINO_ETC)): path.read_text()
        for path in DOCKER_TRINO_ETC.rglob("*")
        if path.is_file()
    }
    assert on_disk == expected, "regenerate with: python3 -m satlake.stack docker-configs infra/docker/trino/etc"


def test_compose_rejects_what_the_specification_does_not_allow(tmp_path: Path) -> None:
    # The loader validates against the Compose Specification's schema, not only YAML syntax.
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  grafana:\n    image: grafana/grafana\n    restart_policy: always\n")
    completed = subprocess.run(
        [*compose_command(), "-f", str(bad), "config", "--format", "json"], capture_output=True, text=True, cwd=tmp_path
    )
    assert completed.returncode != 0
    assert "restart_policy" in completed.stderr
