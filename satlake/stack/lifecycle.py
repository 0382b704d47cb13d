"""`satlake stack up | down | status`: install, start, health-check, provision and stop the native servers.

Servers start in dependency order (Kafka, then MinIO which announces objects to Kafka, then Trino which reads
MinIO, then Alertmanager and Prometheus which scrapes the metrics exporter and alerts through it, then PostgreSQL
which serves copies of the lake, then the ground stations' ingress: the packet collectors, which publish to Kafka
and read the missions from the lake, and HAProxy in front of them) and stop in reverse. `up` is idempotent: a
server already running from this stack home is only checked.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from satlake.settings import Settings
from satlake.stack.collectors import collector_health, ingress_restart_reason, prepare_collector
from satlake.stack.config import COLLECTORS, INGRESS, SERVERS, StackConfig
from satlake.stack.credentials import (
    StackCredentials,
    ensure_credentials,
    ensure_postgres_password,
    without_credentials,
)
from satlake.stack.errors import StackError
from satlake.stack.haproxy import haproxy_health, install_haproxy, prepare_haproxy
from satlake.stack.health import kafka_health, minio_health, trino_health
from satlake.stack.install import (
    install_kafka,
    install_minio,
    install_trino,
    kafka_java_home,
    trino_java_home,
)
from satlake.stack.monitoring import (
    MonitoringBinaries,
    install_monitoring,
    prepare_alertmanager,
    prepare_prometheus,
    ready_health,
    refresh_monitoring_configuration,
)
from satlake.stack.postgres import install_postgres, postgres_health, prepare_postgres, provision_postgres
from satlake.stack.process import (
    describe_port_owner,
    kill_process,
    owned_pid,
    port_bindable,
    process_alive,
    start_detached,
    stop_process,
)
from satlake.stack.provision import create_topics, provision_object_store
from satlake.stack.servers import Launch, markers, prepare_kafka, prepare_minio, prepare_trino, restart_reason

Progress = Callable[[str], None]

HEALTH_TIMEOUT_S = {
    "kafka": 120.0,
    "minio": 90.0,
    "trino": 300.0,
    "postgres": 90.0,
    "prometheus": 60.0,
    "alertmanager": 30.0,
    # A collector imports satlake and reads the missions from the lake before it answers.
    **dict.fromkeys(COLLECTORS, 90.0),
    "haproxy": 30.0,
}
STOP_TIMEOUT_S = {
    "kafka": 60.0,
    "minio": 30.0,
    "trino": 60.0,
    "postgres": 60.0,
    "prometheus": 30.0,
    "alertmanager": 30.0,
    # A collector answers what it has received once the log acknowledged it, then exits.
    **dict.fromkeys(COLLECTORS, 30.0),
    "haproxy": 10.0,
}
# PostgreSQL's SIGTERM waits for every client to disconnect; SIGINT is its fast shutdown (clients are cut off,
# data is checkpointed).
STOP_SIGNALS = {"postgres": signal.SIGINT}
PROGRESS_EVERY_S = 10.0
# Which setting moves each port, named in the error when a port is taken.
PORT_SETTINGS = {
    ("kafka", "broker"): "SATLAKE_KAFKA_BOOTSTRAP",
    ("kafka", "controller"): "SATLAKE_KAFKA_CONTROLLER_PORT",
    ("minio", "s3"): "SATLAKE_S3_ENDPOINT",
    ("minio", "console"): "SATLAKE_MINIO_CONSOLE_PORT",
    ("trino", "http"): "SATLAKE_TRINO_PORT",
    ("postgres", "sql"): "SATLAKE_POSTGRES_PORT",
    ("prometheus", "http"): "SATLAKE_PROMETHEUS_PORT",
    ("alertmanager", "http"): "SATLAKE_ALERTMANAGER_PORT",
    ("haproxy", "tcp"): "SATLAKE_COLLECTOR_TCP_PORT",
    ("haproxy", "http"): "SATLAKE_COLLECTOR_HTTP_PORT",
    **{
        (name, role): f"SATLAKE_COLLECTOR_{role.upper()}_PORT (the collectors listen on the ports after it)"
        for name in COLLECTORS
        for role in ("tcp", "http")
    },
}


@dataclass(frozen=True)
class ServerStatus:
    """One server as `satlake stack status` reports it."""

    name: str
    running: bool
    pid: int | None
    port: int
    healthy: bool
    detail: str


@dataclass(frozen=True)
class InstalledServers:
    """Paths of the installed binaries and runtimes (only those of the requested servers are set)."""

    kafka_lib: Path | None = None
    kafka_java: Path | None = None
    minio_binary: Path | None = None
    trino_server: Path | None = None
    trino_java: Path | None = None
    postgres_bin: Path | None = None
    monitoring: MonitoringBinaries | None = None
    haproxy: Path | None = None


def probe(config: StackConfig, server: str) -> tuple[bool, str]:
    if server == "postgres":
        return postgres_health(config)
    if server in ("prometheus", "alertmanager"):
        return ready_health(server, config.host(server), next(iter(config.ports(server).values())))
    if server == "haproxy":
        return haproxy_health(config.host(server), *config.ports(server).values())  # tcp, http
    if server in COLLECTORS:
        return collector_health(server, config.host(server), *config.ports(server).values())
    host, port = config.host(server), next(iter(config.ports(server).values()))
    return {"kafka": kafka_health, "minio": minio_health, "trino": trino_health}[server](host, port)


def requested(servers: Iterable[str]) -> list[str]:
    names = list(servers)
    unknown = sorted(set(names) - set(SERVERS))
    if unknown:
        raise StackError(f"unknown server(s) {', '.join(unknown)}: choose among {', '.join(SERVERS)}")
    return [server for server in SERVERS if server in names]


def install_servers(config: StackConfig, servers: Iterable[str], progress: Progress) -> InstalledServers:
    """Install what ``servers`` need into the binaries cache (a no-op when already there)."""
    wanted = requested(servers)
    logs = config.logs_dir
    installed: dict[str, Any] = {}
    if "kafka" in wanted:
        installed["kafka_java"] = kafka_java_home()
        installed["kafka_lib"] = install_kafka(config.cache, logs / "install-kafka.log", progress)
    if "minio" in wanted:
        installed["minio_binary"] = install_minio(config.cache, logs / "install-minio.log", progress)
    if "trino" in wanted:
        installed["trino_server"] = install_trino(config.cache, logs / "install-trino.log", progress)
        installed["trino_java"] = trino_java_home(config.cache, config.trino_java_home, progress)
    if "postgres" in wanted:
        installed["postgres_bin"] = install_postgres(config.cache, logs / "install-postgres.log", progress)
    if {"prometheus", "alertmanager"} & set(wanted):
        installed["monitoring"] = install_monitoring(config.cache, logs / "install-monitoring.log", progress)
    if "haproxy" in wanted:
        installed["haproxy"] = install_haproxy(config.cache, logs / "install-haproxy.log", progress)
    return InstalledServers(**installed)


def _check_ports_free(config: StackConfig, server: str) -> None:
    host = config.host(server)
    for role, port in config.ports(server).items():
        if not port_bindable(host, port):
            raise StackError(
                f"{server} cannot start: port {port} ({role}) on {host} is taken by "
                f"{describe_port_owner(port)}. Stop that process, or move {server} to a free port with "
                f"{PORT_SETTINGS[(server, role)]}"
            )


def _log_tail(log_file: Path, lines: int = 20) -> str:
    if not log_file.is_file():
        return "(no log written)"
    return "\n  ".join(log_file.read_text(errors="replace").splitlines()[-lines:])


def wait_until_healthy(config: StackConfig, server: str, pid: int, progress: Progress) -> str:
    """Poll the server's health until it answers, it dies, or its startup timeout passes."""
    started = time.monotonic()
    deadline = started + HEALTH_TIMEOUT_S[server]
    last_report = started
    detail = "no answer yet"
    while time.monotonic() < deadline:
        if not process_alive(pid):
            raise StackError(
                f"{server} (pid {pid}) exited while starting. Last lines of {config.log_file(server)}:\n  "
                f"{_log_tail(config.log_file(server))}"
            )
        healthy, detail = probe(config, server)
        if healthy:
            return detail
        if time.monotonic() - last_report >= PROGRESS_EVERY_S:
            last_report = time.monotonic()
            progress(f"  waiting for {server} ({time.monotonic() - started:.0f}s): {detail}")
        time.sleep(0.5)
    raise StackError(
        f"{server} (pid {pid}) did not become healthy within {HEALTH_TIMEOUT_S[server]:.0f}s ({detail}). "
        f"Last lines of {config.log_file(server)}:\n  {_log_tail(config.log_file(server))}"
    )


def _launch(
    config: StackConfig,
    server: str,
    installed: InstalledServers,
    credentials: StackCredentials | None,
    settings: Settings,
) -> Launch:
    if server == "kafka":
        assert installed.kafka_lib and installed.kafka_java
        return prepare_kafka(config, installed.kafka_lib, installed.kafka_java)
    if server == "postgres":
        assert installed.postgres_bin
        return prepare_postgres(config, installed.postgres_bin)
    if server in ("prometheus", "alertmanager"):
        assert installed.monitoring
        prepare = prepare_prometheus if server == "prometheus" else prepare_alertmanager
        return prepare(config, installed.monitoring)
    if server == "haproxy":
        assert installed.haproxy
        return prepare_haproxy(config, installed.haproxy)
    assert credentials is not None
    if server in COLLECTORS:
        return prepare_collector(config, server, settings, credentials.pipeline)
    if server == "minio":
        assert installed.minio_binary
        return prepare_minio(config, installed.minio_binary, credentials.root)
    assert installed.trino_server and installed.trino_java
    return prepare_trino(config, installed.trino_server, installed.trino_java, credentials.trino)


def _bring_up(
    config: StackConfig,
    server: str,
    installed: InstalledServers,
    credentials: StackCredentials | None,
    settings: Settings,
    progress: Progress,
) -> None:
    marker = markers(config)[server]
    pid = owned_pid(config.pid_file(server), marker)
    if pid is not None:
        # HAProxy and the collectors answer on the ports of the settings only once restarted with them.
        reason = ingress_restart_reason(config, server, pid) if server in INGRESS else None
        if reason is None:
            detail = wait_until_healthy(config, server, pid, progress)
            reason = restart_reason(config, server, credentials)
        if reason is None:
            reloaded = server in ("prometheus", "alertmanager") and refresh_monitoring_configuration(config, server)
            how = ", configuration reloaded" if reloaded else ""
            progress(f"{server}: already running (pid {pid}){how}, healthy: {detail}")
            return
        progress(f"{server}: restarting (pid {pid}): {reason}")
        stop_process(pid, STOP_TIMEOUT_S[server], STOP_SIGNALS.get(server, signal.SIGTERM))
        config.pid_file(server).unlink(missing_ok=True)
        _wait_until_ports_released(config, server)
    _check_ports_free(config, server)
    launch = _launch(config, server, installed, credentials, settings)
    pid = start_detached(
        launch.command,
        # A server inherits no credential but the one pair its launch gives it.
        env={**without_credentials(os.environ), **launch.env},
        cwd=launch.cwd,
        log_file=config.log_file(server),
        pid_file=config.pid_file(server),
        min_open_files=launch.min_open_files,
    )
    progress(f"{server}: started (pid {pid}), log {config.log_file(server)}")
    detail = wait_until_healthy(config, server, pid, progress)
    progress(f"{server}: healthy: {detail}")


def _provision(config: StackConfig, server: str, credentials: StackCredentials | None, progress: Progress) -> None:
    if server == "kafka":
        topics = create_topics(config)
        progress(f"kafka: topics ready: {', '.join(topics)}")
    elif server == "minio":
        assert credentials is not None
        buckets = provision_object_store(config, credentials)
        progress(
            f"minio: buckets ready: {', '.join(buckets)}; objects created in {config.landing_bucket} are "
            f"announced on {config.object_events_topic}; the pipeline's key {credentials.pipeline.access_key} may "
            f"use only these buckets, Trino's key {credentials.trino.access_key} only reads {config.lake_bucket}"
        )
    elif server == "postgres":
        database = provision_postgres(config)
        progress(f"postgres: database {database} ready with PostGIS (user {config.postgres_user})")


def stack_up(settings: Settings, servers: Iterable[str] = SERVERS, progress: Progress = print) -> None:
    """Install (once), start and health-check ``servers``, then create topics, buckets and notifications.

    Servers already running from this stack home are only health-checked. Raises StackError naming the server,
    what failed and what to do (a taken port, a failed download or build, a server that died while starting).
    """
    config = StackConfig.from_settings(settings)
    wanted = requested(servers)
    started = time.monotonic()
    installed = install_servers(config, wanted, progress)
    credentials = None
    if {"minio", "trino", *COLLECTORS} & set(wanted):
        credentials = ensure_credentials(settings, config.secrets_file)
    if "postgres" in wanted:
        config = replace(config, postgres_password=ensure_postgres_password(settings, config.secrets_file))
    for server in wanted:
        _bring_up(config, server, installed, credentials, settings, progress)
        _provision(config, server, credentials, progress)
    progress(
        f"stack up in {time.monotonic() - started:.0f}s: kafka {config.kafka_bootstrap}, "
        f"minio {config.s3_endpoint} (console http://{config.minio_host}:{config.console_port}), "
        f"trino http://{config.trino_host}:{config.trino_port}, "
        f"postgres postgresql://{config.postgres_user}@{config.postgres_host}:{config.postgres_port}/"
        f"{config.postgres_database}, prometheus http://{config.monitoring_host}:{config.prometheus_port} "
        f"(scraping http://{config.metrics_host}:{config.metrics_port}/metrics: `satlake metrics serve --stack`), "
        f"alertmanager http://{config.monitoring_host}:{config.alertmanager_port}, "
        f"packets tcp://{config.collector_host}:{config.collector_tcp_port} and "
        f"http://{config.collector_host}:{config.collector_http_port} (HAProxy to {', '.join(COLLECTORS)}); "
        f"credentials in {config.secrets_file}, "
        f"logs in {config.logs_dir}"
    )


def stop_server(settings: Settings, server: str, progress: Progress = print, *, crash: bool = False) -> int | None:
    """Stop one server started from this stack home; its data is kept. Returns its pid (None if not running).

    By default it is asked to shut down (SIGTERM, SIGKILL after a timeout); ``crash=True`` SIGKILLs it at once,
    as a power cut would. ``stack_up(settings, [server])`` starts it again.
    """
    config = StackConfig.from_settings(settings)
    [name] = requested([server])
    pid = owned_pid(config.pid_file(name), markers(config)[name])
    if pid is None:
        config.pid_file(name).unlink(missing_ok=True)
        return None
    if crash:
        kill_process(pid)
        how = "killed (SIGKILL)"
    else:
        killed = stop_process(pid, STOP_TIMEOUT_S[name], STOP_SIGNALS.get(name, signal.SIGTERM))
        how = "killed after timeout" if killed else "stopped"
    config.pid_file(name).unlink(missing_ok=True)
    _wait_until_ports_released(config, name)
    progress(f"{name}: {how} (pid {pid})")
    return pid


def _wait_until_ports_released(config: StackConfig, server: str, timeout_s: float = 10.0) -> None:
    # A killed multi-threaded server shows as dead (its main thread a zombie) a moment before its last thread
    # closes the listening sockets; starting it again in that moment would find its own port taken.
    deadline = time.monotonic() + timeout_s
    host = config.host(server)
    while not all(port_bindable(host, port) for port in config.ports(server).values()):
        if time.monotonic() > deadline:
            return  # `stack up` names the port and its owner if it is still taken
        time.sleep(0.05)


def stack_down(settings: Settings, progress: Progress = print) -> None:
    """Stop every server started from this stack home (in reverse start order); data is kept."""
    for server in reversed(SERVERS):
        stop_server(settings, server, progress)


def stack_status(settings: Settings) -> list[ServerStatus]:
    """Running state and health of each server, without starting or changing anything."""
    config = StackConfig.from_settings(settings)
    server_markers = markers(config)
    statuses = []
    for server in SERVERS:
        port = next(iter(config.ports(server).values()))
        pid = owned_pid(config.pid_file(server), server_markers[server])
        healthy, detail = probe(config, server)
        if pid is None and healthy:
            detail = f"not started from {config.home}; port {port} is served by {describe_port_owner(port)}"
            healthy = False
        elif pid is None:
            detail = "not running"
        statuses.append(
            ServerStatus(name=server, running=pid is not None, pid=pid, port=port, healthy=healthy, detail=detail)
        )
    return statuses


def format_status_table(statuses: list[ServerStatus]) -> str:
    """`satlake stack status` as a fixed-width table, one server per line."""
    width = max([len("server"), *(len(status.name) for status in statuses)])
    lines = [f"{'server':<{width}} {'state':<8} {'pid':>8} {'port':>6}  detail"]
    for status in statuses:
        state = "healthy" if status.healthy else ("running" if status.running else "stopped")
        pid = status.pid if status.pid is not None else "-"
        lines.append(f"{status.name:<{width}} {state:<8} {pid!s:>8} {status.port!s:>6}  {status.detail}")
    return "\n".join(lines)
