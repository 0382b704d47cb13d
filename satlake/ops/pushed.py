"""Metrics that only a running process sees (batch and commit latencies), pushed by long runs as Prometheus
text files under the storage root and served by the exporter with the rest.

Why files and not a Pushgateway: the exporter is already the one target Prometheus scrapes, a run that ends
between two scrapes still leaves its last values behind, nothing else has to run, and each file is replaced
atomically (written aside, then renamed), so a scrape never reads half a file. Each run source writes its own
file; the exporter labels its series ``source=<file name>``, so two sources never collide.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry, Histogram, write_to_textfile
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from satlake.ops import names
from satlake.settings import Settings

log = logging.getLogger(__name__)
SUFFIX = ".prom"
SOURCE_LABEL = "source"
# Pushing rewrites a small file; once a second keeps it current for any scrape interval.
PUSH_EVERY_S = 1.0


def pushed_metrics_dir(settings: Settings) -> Path:
    """Where long runs leave their metrics files (``<root>/ops/metrics``)."""
    return settings.root / "ops" / "metrics"


class RunMetrics:
    """Latency histograms of one long-running source (e.g. ``ingest``), pushed to its file with ``push()``."""

    def __init__(self, directory: Path, source: str) -> None:
        self.path = directory / f"{source}{SUFFIX}"
        self.registry = CollectorRegistry()
        self.batch_seconds = Histogram(
            names.INGEST_BATCH_SECONDS,
            "Seconds to read, decode and commit one ingestion batch",
            buckets=names.LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            names.DELTA_COMMIT_SECONDS,
            "Seconds one Delta commit took",
            buckets=names.LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._last_batch = time.monotonic()
        self._last_push = float("-inf")

    def batch_committed(self, _batch: object = None) -> None:
        """A progress callback for ingestion (``ingest_until_caught_up(progress=...)``): observes the time since
        the previous batch (or since this object was made) and pushes, at most once per ``PUSH_EVERY_S``."""
        now = time.monotonic()
        self.batch_seconds.observe(now - self._last_batch)
        self._last_batch = now
        if now - self._last_push >= PUSH_EVERY_S:
            self.push()
            self._last_push = now

    @contextmanager
    def timed_batch(self) -> Iterator[None]:
        """Observe the duration of the enclosed batch."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.batch_seconds.observe(time.perf_counter() - started)

    def push(self) -> None:
        """Replace this source's file with the current values (atomically)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(self.path), self.registry)


class PushedMetricsCollector(Collector):
    """Every metric family in the pushed files, each series labelled with the file's source."""

    def __init__(self, directory: Path, on_error: object) -> None:
        self.directory = directory
        self.on_error = on_error

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                families = list(text_string_to_metric_families(path.read_text()))
            except (OSError, ValueError) as error:
                self.on_error(f"pushed file {path.name}", error)  # type: ignore[operator]
                continue
            source = path.name.removesuffix(SUFFIX)
            for family in families:
                target = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                for sample in family.samples:
                    labels = {**sample.labels, SOURCE_LABEL: source}
                    target.add_sample(sample.name, labels, sample.value, sample.timestamp)
        yield from merged.values()
