"""The exporter behind ``satlake metrics serve``: one registry of the Dagster, lakehouse and pushed metrics,
each recomputed on every scrape, served at ``/metrics``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from wsgiref.simple_server import WSGIServer

import dagster as dg
from prometheus_client import CollectorRegistry, Counter, start_http_server

from satlake.ops import names
from satlake.ops.dagster_metrics import DagsterCollector
from satlake.ops.lakehouse_metrics import LakehouseCollector
from satlake.ops.pushed import PushedMetricsCollector
from satlake.resources import build_resources
from satlake.resources.run_metrics import pushed_metrics_dir
from satlake.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Exporter:
    """A registry ready to serve, with the counter of sections that failed to read."""

    registry: CollectorRegistry
    scrape_errors: Counter

    def record_error(self, source: str, error: Exception) -> None:
        self.scrape_errors.inc()
        log.warning("metrics: reading %s failed: %s", source, error)


def build_exporter(
    settings: Settings,
    instance: dg.DagsterInstance,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Exporter:
    """The exporter of ``settings``' lakehouse, event log and pushed files and of ``instance``'s runs and checks."""
    registry = CollectorRegistry()
    exporter = Exporter(
        registry=registry,
        scrape_errors=Counter(
            names.SCRAPE_ERRORS,
            "Sources (lakehouse, event log, Dagster, pushed files) the exporter failed to read",
            registry=None,
        ),
    )
    resources = build_resources(settings)
    topics = [settings.telemetry_topic]
    registry.register(
        LakehouseCollector(resources.lakehouse, resources.event_log, topics, exporter.record_error, now=now)
    )
    registry.register(DagsterCollector(instance, exporter.record_error))
    registry.register(PushedMetricsCollector(pushed_metrics_dir(settings), exporter.record_error))
    # Collected last, so a scrape already counts the errors of its own sections.
    registry.register(exporter.scrape_errors)
    return exporter


@dataclass
class MetricsServer:
    """``/metrics`` served in a background thread; ``close()`` stops it and frees the port at once."""

    server: WSGIServer

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()  # shutdown() alone leaves the socket bound until garbage collection

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def serve_metrics(exporter: Exporter, host: str, port: int) -> MetricsServer:
    """Serve ``/metrics`` on ``host:port`` in a background thread."""
    server, _thread = start_http_server(port, addr=host, registry=exporter.registry)
    return MetricsServer(server)
