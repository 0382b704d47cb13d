"""Metrics that only a running process sees (batch and commit latencies), pushed by long runs as Prometheus
text files under the storage root; the exporter (``satlake metrics serve``) serves them with the rest.

Why files and not a Pushgateway: the exporter is already the one target Prometheus scrapes, a run that ends
between two scrapes still leaves its last values behind, nothing else has to run, and each file is replaced
atomically (written aside, then renamed), so a scrape never reads half a file. Each run source writes its own
file; the exporter labels its series ``source=<file name>``, so two sources never collide.

This sits with the resources because the domains that run long work (telemetry ingestion) push through it and
the ops domain reads what they pushed: both depend on it, it depends on neither.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram, write_to_textfile

from satlake.settings import Settings

INGEST_BATCH_SECONDS = "satlake_ingest_batch_seconds"
DELTA_COMMIT_SECONDS = "satlake_delta_commit_seconds"
# A batch of telemetry takes tens of milliseconds to commit and a few seconds to read and decode.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SUFFIX = ".prom"
# Pushing rewrites a small file; once a second keeps it current for any scrape interval.
PUSH_EVERY_S = 1.0


class CommittedBatch(Protocol):
    """What a pushed run needs of a committed batch: how long its Delta commit took."""

    commit_seconds: float


def pushed_metrics_dir(settings: Settings) -> Path:
    """Where long runs leave their metrics files (``<root>/ops/metrics``)."""
    return settings.root / "ops" / "metrics"


class RunMetrics:
    """Latency histograms of one long-running source (e.g. ``ingest``), pushed to its file.

    Use ``batch_committed`` as ingestion's progress callback and ``push()`` once more when the run ends."""

    def __init__(self, directory: Path, source: str) -> None:
        self.path = directory / f"{source}{SUFFIX}"
        self.registry = CollectorRegistry()
        self.batch_seconds = Histogram(
            INGEST_BATCH_SECONDS,
            "Seconds from one committed ingestion batch to the next (read, decode and commit)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            DELTA_COMMIT_SECONDS,
            "Seconds one Delta commit of an ingestion batch took",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._last_batch = time.monotonic()
        self._last_push = float("-inf")

    @classmethod
    def for_settings(cls, settings: Settings, source: str) -> RunMetrics:
        return cls(pushed_metrics_dir(settings), source)

    def batch_committed(self, batch: CommittedBatch | None = None) -> None:
        """Observe the time since the previous batch (or since this object was made) and the batch's commit
        time, and push at most once per ``PUSH_EVERY_S``."""
        now = time.monotonic()
        self.batch_seconds.observe(now - self._last_batch)
        if batch is not None:
            self.commit_seconds.observe(batch.commit_seconds)
        self._last_batch = now
        if now - self._last_push >= PUSH_EVERY_S:
            self.push()
            self._last_push = now

    def push(self) -> None:
        """Replace this source's file with the current values (atomically)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(self.path), self.registry)
