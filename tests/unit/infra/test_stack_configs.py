"""The native servers' configuration as rendered from Settings: ports, paths, pins and no secrets on disk."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from satlake.settings import Settings, SettingsError
from satlake.stack.config import StackConfig, default_servers_cache, parse_bootstrap, parse_endpoint
from satlake.stack.configs import (
    MINIO_KAFKA_QUEUE_ARN,
    kafka_pom,
    kafka_server_properties,
    minio_arguments,
    minio_environment,
    native_trino_etc_files,
    trino_jvm_config,
)
from satlake.stack.credentials import KeyPair
from satlake.stack.servers import refresh_trino_configuration, restart_reason, write_files
from satlake.stack.versions import KAFKA_VERSION, LOG4J_VERSION


def parse_properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


@pytest.fixture
def config(tmp_path: Path) -> StackConfig:
    settings = Settings.from_env(
        {
            "SATLAKE_ROOT": str(tmp_path / "root"),
            "SATLAKE_KAFKA_BOOTSTRAP": "127.0.0.1:19092",
            "SATLAKE_S3_ENDPOINT": "http://127.0.0.1:19000",
            "SATLAKE_TRINO_PORT": "18080",
        }
    )
    return StackConfig.from_settings(settings, {"SATLAKE_SERVERS_CACHE": str(tmp_path / "cache")})


def test_ports_follow_the_client_settings_and_extras_default_to_the_next_port(config: StackConfig) -> None:
    assert config.ports("kafka") == {"broker": 19092, "controller": 19093}
    assert config.ports("minio") == {"s3": 19000, "console": 19001}
    assert config.ports("trino") == {"http": 18080}
    assert config.kafka_bootstrap == "127.0.0.1:19092"
    assert config.s3_endpoint == "http://127.0.0.1:19000"


def test_defaults_match_settings_defaults(tmp_path: Path) -> None:
    config = StackConfig.from_settings(Settings.from_env({"SATLAKE_ROOT": str(tmp_path)}), {"HOME": "/home/u"})
    assert (config.kafka_port, config.controller_port, config.minio_port, config.console_port) == (
        9092,
        9093,
        9000,
        9001,
    )
    assert config.trino_port == 8081
    assert config.home == tmp_path / "stack"
    assert config.log_file("trino") == tmp_path / "stack" / "logs" / "trino.log"
    assert config.secrets_file == tmp_path / "secrets.env"


def test_servers_cache_is_outside_the_project_and_overridable(tmp_path: Path) -> None:
    assert default_servers_cache({"SATLAKE_SERVERS_CACHE": str(tmp_path)}) == tmp_path.resolve()
    assert default_servers_cache({"XDG_CACHE_HOME": "/xdg"}) == Path("/xdg/satlake/servers")
    assert default_servers_cache({}) == Path.home().resolve() / ".cache" / "satlake" / "servers"


def test_explicit_extra_ports_are_validated(tmp_path: Path) -> None:
    settings = Settings.from_env({"SATLAKE_ROOT": str(tmp_path)})
    config = StackConfig.from_settings(settings, {"SATLAKE_KAFKA_CONTROLLER_PORT": "29093"})
    assert config.controller_port == 29093
    with pytest.raises(SettingsError, match="SATLAKE_MINIO_CONSOLE_PORT='ninety'"):
        StackConfig.from_settings(settings, {"SATLAKE_MINIO_CONSOLE_PORT": "ninety"})


@pytest.mark.parametrize(
    ("bootstrap", "expected"),
    [("127.0.0.1:9092", ("127.0.0.1", 9092)), ("kafka:19092,other:1", ("kafka", 19092))],
)
def test_parse_bootstrap(bootstrap: str, expected: tuple[str, int]) -> None:
    assert parse_bootstrap(bootstrap) == expected


def test_malformed_endpoints_name_the_setting() -> None:
    with pytest.raises(SettingsError, match="SATLAKE_KAFKA_BOOTSTRAP='localhost'"):
        parse_bootstrap("localhost")
    with pytest.raises(SettingsError, match=re.escape("SATLAKE_S3_ENDPOINT='127.0.0.1:9000'")):
        parse_endpoint("127.0.0.1:9000")
    assert parse_endpoint("https://s3.example") == ("s3.example", 443)


def test_kafka_is_a_single_kraft_node_with_one_replica_everywhere(config: StackConfig, tmp_path: Path) -> None:
    values = parse_properties(kafka_server_properties(config, tmp_path / "data"))
    assert values["process.roles"] == "broker,controller"
    assert values["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert values["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert values["log.dirs"] == str(tmp_path / "data")
    replication = {key: value for key, value in values.items() if key.endswith(("replication.factor", "min.isr"))}
    assert len(replication) == 6
    assert set(replication.values()) == {"1"}


def test_kafka_pom_pins_the_broker_and_its_log4j2_backend() -> None:
    pom = kafka_pom()
    assert f"<artifactId>kafka_2.13</artifactId><version>{KAFKA_VERSION}</version>" in pom
    assert f"<artifactId>log4j-slf4j-impl</artifactId><version>{LOG4J_VERSION}</version>" in pom
    assert f"<artifactId>log4j-core</artifactId><version>{LOG4J_VERSION}</version>" in pom


def test_minio_announces_to_the_object_events_topic_with_a_durable_queue(config: StackConfig, tmp_path: Path) -> None:
    environment = minio_environment(config, KeyPair("root-user", "root-secret"), tmp_path / "queue")
    assert (environment["MINIO_ROOT_USER"], environment["MINIO_ROOT_PASSWORD"]) == ("root-user", "root-secret")
    assert environment["MINIO_NOTIFY_KAFKA_ENABLE_SATLAKE"] == "on"
    assert environment["MINIO_NOTIFY_KAFKA_BROKERS_SATLAKE"] == "127.0.0.1:19092"
    assert environment["MINIO_NOTIFY_KAFKA_TOPIC_SATLAKE"] == "satlake.object-events"
    assert environment["MINIO_NOTIFY_KAFKA_QUEUE_DIR_SATLAKE"] == str(tmp_path / "queue")
    assert MINIO_KAFKA_QUEUE_ARN == "arn:minio:sqs::SATLAKE:kafka"
    arguments = minio_arguments(config, tmp_path / "data")
    assert arguments[-4:] == ["--address", "127.0.0.1:19000", "--console-address", "127.0.0.1:19001"]


def test_trino_catalog_reads_its_own_key_from_the_environment_not_from_disk(config: StackConfig) -> None:
    files = native_trino_etc_files(config)
    catalog = parse_properties(files["catalog/lake.properties"])
    assert catalog["connector.name"] == "delta_lake"
    assert catalog["hive.metastore.catalog.dir"] == "s3://satlake/metastore"
    assert catalog["s3.endpoint"] == "http://127.0.0.1:19000"
    assert catalog["s3.path-style-access"] == "true"
    assert catalog["delta.register-table-procedure.enabled"] == "true"
    assert catalog["fs.cache.enabled"] == "true"
    assert catalog["fs.cache.directories"] == str(config.server_dir("trino") / "data" / "fs-cache")
    # Trino's key, not the pipeline's: it may read the lake and write only the metastore.
    assert catalog["s3.aws-access-key"] == "${ENV:SATLAKE_TRINO_S3_ACCESS_KEY}"
    assert catalog["s3.aws-secret-key"] == "${ENV:SATLAKE_TRINO_S3_SECRET_KEY}"
    server = parse_properties(files["config.properties"])
    assert server["http-server.http.port"] == "18080"
    assert server["node.bind-ip"] == "127.0.0.1"
    assert server["discovery.uri"] == "http://127.0.0.1:18080"
    access = parse_properties(files["access-control.properties"])
    assert access["access-control.name"] == "file"
    assert access["security.config-file"].endswith("/trino/etc/rules.json")


def test_trino_heap_is_configurable() -> None:
    assert "-Xmx3G\n" in trino_jvm_config("3G")


def test_a_running_trino_gets_new_rules_at_once_and_a_restart_only_for_what_it_cannot_reload(
    config: StackConfig,
) -> None:
    etc_dir = config.server_dir("trino") / "etc"
    rendered = native_trino_etc_files(config)
    write_files(etc_dir, rendered)
    assert refresh_trino_configuration(config) == []
    assert restart_reason(config, "trino", None) is None
    # As an older satlake left them: other rules, and a catalog reading the pipeline's key.
    (etc_dir / "rules.json").write_text("{}\n")
    catalog = etc_dir / "catalog" / "lake.properties"
    catalog.write_text(catalog.read_text().replace("SATLAKE_TRINO_S3_", "SATLAKE_S3_"))
    assert refresh_trino_configuration(config) == ["catalog/lake.properties"]
    assert (etc_dir / "rules.json").read_text() == rendered["rules.json"]  # Trino re-reads it within seconds
    assert restart_reason(config, "trino", None) == "its configuration changed (catalog/lake.properties)"
    assert restart_reason(config, "kafka", None) is None
