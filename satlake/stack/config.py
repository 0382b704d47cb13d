"""Where the native stack lives and which ports it listens on, derived from satlake's Settings.

Client-facing endpoints (Kafka bootstrap, S3 endpoint, Trino port) come from Settings so servers and clients
can never disagree; only server-side extras (controller and console ports, caches, heap) are read here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from satlake.settings import Settings, SettingsError

# The packet collectors behind HAProxy: stateless, so several run side by side (see satlake/stack/collectors.py).
COLLECTORS = ("collector1", "collector2")
# Alertmanager before Prometheus, which sends it alerts; PostgreSQL after them: nothing else needs it. The ground
# stations' ingress last, once everything behind it is up, and first to stop: the collectors (which need Kafka and
# MinIO), then HAProxy in front of them.
INGRESS = (*COLLECTORS, "haproxy")
SERVERS = ("kafka", "minio", "trino", "alertmanager", "prometheus", "postgres", *INGRESS)


def default_servers_cache(environ: Mapping[str, str]) -> Path:
    """Binaries cache shared by every stack on the machine (and by CI runs that cache it)."""
    configured = environ.get("SATLAKE_SERVERS_CACHE")
    if configured:
        return Path(configured).expanduser().resolve()
    xdg_cache = environ.get("XDG_CACHE_HOME")
    base = Path(xdg_cache).expanduser() if xdg_cache else Path.home() / ".cache"
    return (base / "satlake" / "servers").resolve()


def parse_bootstrap(bootstrap: str) -> tuple[str, int]:
    """Host and port of the first broker in a Kafka bootstrap list such as ``127.0.0.1:9092``."""
    first = bootstrap.split(",")[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SettingsError(f"SATLAKE_KAFKA_BOOTSTRAP={bootstrap!r} is not host:port; use for example 127.0.0.1:9092")
    return host, int(port)


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """Host and port of an ``http://host:port`` S3 endpoint."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"SATLAKE_S3_ENDPOINT={endpoint!r} is not an http(s) URL; use for example http://127.0.0.1:9000"
        )
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name, "")
    if value == "":
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SettingsError(f"{name}={value!r} must be a TCP port number between 1 and 65535")
    return int(value)


@dataclass(frozen=True)
class StackConfig:
    """Everything the native servers need to know, resolved once from Settings and the environment."""

    home: Path
    cache: Path
    secrets_file: Path
    kafka_host: str
    kafka_port: int
    controller_port: int
    minio_host: str
    minio_port: int
    console_port: int
    trino_host: str
    trino_port: int
    trino_heap: str
    trino_java_home: Path | None
    s3_region: str
    lake_bucket: str
    landing_bucket: str
    telemetry_topic: str
    telemetry_partitions: int
    object_events_topic: str
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_user: str = "satlake"
    postgres_password: str | None = field(default=None, repr=False)
    postgres_database: str = "satlake"
    # Operations: Prometheus scrapes the exporter (`satlake metrics serve`) and alerts through Alertmanager.
    monitoring_host: str = "127.0.0.1"
    prometheus_port: int = 9090
    alertmanager_port: int = 9095  # 9093 is the Kafka controller's (the broker port + 1)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108
    monitoring_interval: str = "15s"  # scrape, rule evaluation and alert grouping wait
    alert_webhook_url: str | None = None
    # Ground stations: HAProxy's fronts (the collector settings); each collector listens on the backend host,
    # collector N on the TCP and HTTP front ports + N.
    collector_host: str = "127.0.0.1"
    collector_tcp_port: int = 10015
    collector_http_port: int = 8095
    collector_backend_host: str = "127.0.0.1"

    @classmethod
    def from_settings(cls, settings: Settings, environ: Mapping[str, str] | None = None) -> StackConfig:
        env = os.environ if environ is None else environ
        kafka_host, kafka_port = parse_bootstrap(settings.kafka_bootstrap)
        minio_host, minio_port = parse_endpoint(settings.s3_endpoint)
        java_home = env.get("SATLAKE_TRINO_JAVA_HOME")
        return cls(
            home=settings.stack_home,
            cache=default_servers_cache(env),
            secrets_file=settings.secrets_file,
            kafka_host=kafka_host,
            kafka_port=kafka_port,
            controller_port=_port(env, "SATLAKE_KAFKA_CONTROLLER_PORT", kafka_port + 1),
            minio_host=minio_host,
            minio_port=minio_port,
            console_port=_port(env, "SATLAKE_MINIO_CONSOLE_PORT", minio_port + 1),
            trino_host=settings.trino_host,
            trino_port=settings.trino_port,
            trino_heap=env.get("SATLAKE_TRINO_HEAP", "2G"),
            trino_java_home=Path(java_home).expanduser() if java_home else None,
            s3_region=settings.s3_region,
            lake_bucket=settings.lake_bucket,
            landing_bucket=settings.landing_bucket,
            telemetry_topic=settings.telemetry_topic,
            telemetry_partitions=settings.telemetry_partitions,
            object_events_topic=settings.object_events_topic,
            postgres_host=settings.postgres_host,
            postgres_port=settings.postgres_port,
            postgres_user=settings.postgres_user,
            postgres_password=settings.postgres_password,
            postgres_database=settings.postgres_database,
            prometheus_port=settings.prometheus_port,
            alertmanager_port=settings.alertmanager_port,
            metrics_port=settings.metrics_port,
            monitoring_interval=env.get("SATLAKE_MONITORING_INTERVAL", "15s"),
            alert_webhook_url=settings.alert_webhook_url,
            collector_host=settings.collector_host,
            collector_tcp_port=settings.collector_tcp_port,
            collector_http_port=settings.collector_http_port,
        )

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.kafka_host}:{self.kafka_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.minio_host}:{self.minio_port}"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    def server_dir(self, server: str) -> Path:
        return self.home / server

    def log_file(self, server: str) -> Path:
        return self.logs_dir / f"{server}.log"

    def pid_file(self, server: str) -> Path:
        return self.run_dir / f"{server}.pid"

    def ports(self, server: str) -> dict[str, int]:
        """Every port ``server`` listens on, by role; the first is the one clients use."""
        if server in COLLECTORS:
            offset = COLLECTORS.index(server) + 1
            return {"tcp": self.collector_tcp_port + offset, "http": self.collector_http_port + offset}
        return {
            "kafka": {"broker": self.kafka_port, "controller": self.controller_port},
            "minio": {"s3": self.minio_port, "console": self.console_port},
            "trino": {"http": self.trino_port},
            "postgres": {"sql": self.postgres_port},
            "prometheus": {"http": self.prometheus_port},
            "alertmanager": {"http": self.alertmanager_port},
            "haproxy": {"tcp": self.collector_tcp_port, "http": self.collector_http_port},
        }[server]

    def host(self, server: str) -> str:
        hosts = {
            "kafka": self.kafka_host,
            "minio": self.minio_host,
            "trino": self.trino_host,
            "prometheus": self.monitoring_host,
            "alertmanager": self.monitoring_host,
            "haproxy": self.collector_host,
            **dict.fromkeys(COLLECTORS, self.collector_backend_host),
        }
        return hosts.get(server, self.postgres_host)

    def collector_arguments(self, server: str) -> list[str]:
        """The ``satlake`` arguments of one of the stack's collectors."""
        ports = self.ports(server)
        return [
            "collect",
            "--stack",
            "--name",
            server,
            "--host",
            self.host(server),
            "--tcp-port",
            str(ports["tcp"]),
            "--http-port",
            str(ports["http"]),
        ]
