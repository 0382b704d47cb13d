"""The metric names every dashboard and alert rule uses; the exporter is the one place that defines them."""

from __future__ import annotations

# Histograms pushed by ingestion runs (defined where they are written, below the domains that push them).
from satlake.resources.run_metrics import DELTA_COMMIT_SECONDS, INGEST_BATCH_SECONDS

EVENTS_CONSUMED = "satlake_events_consumed"  # counter (exposed with _total)
EVENTS_REJECTED = "satlake_events_rejected"  # counter
CONSUMER_LAG = "satlake_consumer_lag"  # gauge {topic, partition}
BYTES_WRITTEN = "satlake_bytes_written"  # counter {table}
SCENES = "satlake_scenes"  # counter {outcome}
RUN_DURATION_SECONDS = "satlake_run_duration_seconds"  # histogram {job}
RUNS = "satlake_runs"  # counter {job, status}
CHECK_PASSED = "satlake_check_passed"  # gauge {asset, check}
CHECK_FAILURES = "satlake_check_failures"  # counter {asset, check}
PARTITION_AGE_SECONDS = "satlake_partition_age_seconds"  # gauge {asset}
SCRAPE_ERRORS = "satlake_exporter_scrape_errors"  # counter

SCENE_OUTCOMES = ("landed", "converted", "quarantined")
# Run durations span a one-second sensor tick to a backfill of hours.
RUN_DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)

COUNTERS = frozenset({EVENTS_CONSUMED, EVENTS_REJECTED, BYTES_WRITTEN, SCENES, RUNS, CHECK_FAILURES, SCRAPE_ERRORS})
HISTOGRAMS = frozenset({INGEST_BATCH_SECONDS, DELTA_COMMIT_SECONDS, RUN_DURATION_SECONDS})
GAUGES = frozenset({CONSUMER_LAG, CHECK_PASSED, PARTITION_AGE_SECONDS})


def exposed_series(family: str) -> set[str]:
    """The series names a metric family is exposed as in the text format Prometheus scrapes."""
    if family in COUNTERS:
        return {f"{family}_total"}
    if family in HISTOGRAMS:
        return {f"{family}_{suffix}" for suffix in ("bucket", "sum", "count")}
    return {family}


def all_exposed_series() -> set[str]:
    """Every series name the exporter can expose: what dashboards and alert rules may query."""
    return {series for family in COUNTERS | HISTOGRAMS | GAUGES for series in exposed_series(family)}
