"""Metrics read from the Dagster instance on each scrape: runs per job and outcome, run durations, and the
result of every asset check (the latest one as a gauge, all failures as a counter)."""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence

import dagster as dg
from dagster._core.events import DagsterEventType
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from satlake.ops import names

ErrorCounter = Callable[[str, Exception], None]
# Runs read per scrape, newest first: a scrape stays fast on an instance with a long history.
RUN_HISTORY_LIMIT = 5000
CHECK_HISTORY_LIMIT = 20000
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def histogram_buckets(values: Sequence[float], bounds: Sequence[float]) -> list[tuple[str, float]]:
    """Cumulative Prometheus buckets (``le`` label, count) of ``values``, ending with ``+Inf``."""
    ordered = sorted(values)
    buckets = [(repr(float(bound)), float(bisect.bisect_right(ordered, bound))) for bound in bounds]
    return [*buckets, ("+Inf", float(len(ordered)))]


class DagsterCollector(Collector):
    """Run and asset-check metrics of one Dagster instance."""

    def __init__(self, instance: dg.DagsterInstance, on_error: ErrorCounter) -> None:
        self.instance = instance
        self.on_error = on_error

    def collect(self) -> Iterator[Metric]:
        for section in (self._runs, self._checks):
            try:
                yield from section()
            except Exception as error:  # a failing source must not hide the others' metrics
                self.on_error(section.__name__.strip("_"), error)

    def _runs(self) -> Iterator[Metric]:
        runs = CounterMetricFamily(names.RUNS, "Dagster runs finished, per job and status", labels=["job", "status"])
        durations = HistogramMetricFamily(
            names.RUN_DURATION_SECONDS, "Wall time of finished Dagster runs, per job", labels=["job"]
        )
        outcomes: Counter[tuple[str, str]] = Counter()
        seconds: defaultdict[str, list[float]] = defaultdict(list)
        records = self.instance.get_run_records(filters=dg.RunsFilter(statuses=list(FINISHED)), limit=RUN_HISTORY_LIMIT)
        for record in records:
            job = record.dagster_run.job_name
            outcomes[(job, record.dagster_run.status.value)] += 1
            if record.start_time is not None and record.end_time is not None:
                seconds[job].append(max(record.end_time - record.start_time, 0.0))
        for (job, status), count in sorted(outcomes.items()):
            runs.add_metric([job, status], float(count))
        for job, values in sorted(seconds.items()):
            durations.add_metric([job], histogram_buckets(values, names.RUN_DURATION_BUCKETS), sum(values))
        yield from (runs, durations)

    def _checks(self) -> Iterator[Metric]:
        passed = GaugeMetricFamily(
            names.CHECK_PASSED,
            "1 when the latest evaluation of an asset check passed, else 0",
            labels=["asset", "check"],
        )
        failures = CounterMetricFamily(
            names.CHECK_FAILURES, "Failed evaluations of each asset check", labels=["asset", "check"]
        )
        latest: dict[tuple[str, str], bool] = {}
        failed: Counter[tuple[str, str]] = Counter()
        records = self.instance.event_log_storage.get_event_records(
            dg.EventRecordsFilter(event_type=DagsterEventType.ASSET_CHECK_EVALUATION),
            limit=CHECK_HISTORY_LIMIT,
            ascending=True,
        )
        for record in records:
            event = record.event_log_entry.dagster_event
            if event is None:
                continue
            evaluation = event.event_specific_data
            key = (evaluation.asset_key.to_user_string(), evaluation.check_name)
            latest[key] = bool(evaluation.passed)
            failed[key] += 0 if evaluation.passed else 1
        for key, ok in sorted(latest.items()):
            passed.add_metric(list(key), 1.0 if ok else 0.0)
            failures.add_metric(list(key), float(failed[key]))
        yield from (passed, failures)
