"""Metrics read from the Dagster instance: runs per job and outcome, run durations, and the result of every
asset check (the latest one as a gauge, all failures as a counter).

Counters must never go down (Prometheus reads a drop as a restart and ``increase`` would report a burst of
failures that never happened), so they are not recomputed from a window of recent history. The collector
follows the event log instead: each scrape reads only the run-finished and check-evaluation events stored
since the previous scrape, in pages, and adds them to totals it keeps. The first scrape after the exporter
starts reads the whole history once, page by page.

Events are followed by timestamp, not by storage id: the default SQLite storage keeps one database per run, so
its storage ids repeat across runs and it refuses an id cursor. Each scrape reads again from a little before
the newest timestamp seen (``OVERLAP_S``, for events written slightly out of order) and counts an event, known by
its run and storage id, only once.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.events import DagsterEventType
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from satlake.ops import names

ErrorCounter = Callable[[str, Exception], None]
# Events read per query: a long history is read in pages, never in one query.
PAGE_SIZE = 1000
# How far back each scrape reads again: events of concurrent runs can be stored slightly out of time order.
OVERLAP_S = 120.0
EventId = tuple[str, int]  # (run id, storage id): storage ids alone repeat across the runs' databases
RUN_FINISHED = {
    DagsterEventType.RUN_SUCCESS: dg.DagsterRunStatus.SUCCESS,
    DagsterEventType.RUN_FAILURE: dg.DagsterRunStatus.FAILURE,
    DagsterEventType.RUN_CANCELED: dg.DagsterRunStatus.CANCELED,
}


class RunDurations:
    """A histogram per job, added to one run at a time (bucket counts, sum)."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts: defaultdict[str, list[int]] = defaultdict(lambda: [0] * (len(self.bounds) + 1))
        self.sums: Counter[str] = Counter()

    def observe(self, job: str, seconds: float) -> None:
        self.counts[job][bisect.bisect_left(self.bounds, seconds)] += 1
        self.sums[job] += seconds

    def buckets(self, job: str) -> list[tuple[str, float]]:
        cumulative, total = [], 0
        for bound, count in zip((*map(float, self.bounds), float("inf")), self.counts[job], strict=True):
            total += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        return cumulative


@dataclass
class EventFollower:
    """Where one event type has been read up to: the newest timestamp, and the events seen near it."""

    newest: float | None = None
    seen: dict[EventId, float] = field(default_factory=dict)

    def take_new(self, records: Sequence[dg.EventLogRecord]) -> list[dg.EventLogRecord]:
        """The records not seen before (recorded as seen now)."""
        new = []
        for record in records:
            key = (record.event_log_entry.run_id, record.storage_id)
            if key not in self.seen:
                self.seen[key] = record.timestamp
                new.append(record)
                self.newest = record.timestamp if self.newest is None else max(self.newest, record.timestamp)
        return new

    def forget_old(self) -> None:
        """Keep only what a later read can return again (events within the overlap of the newest)."""
        if self.newest is not None:
            horizon = self.newest - OVERLAP_S
            self.seen = {key: at for key, at in self.seen.items() if at >= horizon}


class DagsterCollector(Collector):
    """Run and asset-check metrics of one Dagster instance, kept up to date from its event log."""

    def __init__(self, instance: dg.DagsterInstance, on_error: ErrorCounter) -> None:
        self.instance = instance
        self.on_error = on_error
        self._lock = threading.Lock()  # scrapes may overlap; each event is counted once
        self._followers: dict[DagsterEventType, EventFollower] = {}
        self._outcomes: Counter[tuple[str, str]] = Counter()
        self._durations = RunDurations(names.RUN_DURATION_BUCKETS)
        self._latest_check: dict[tuple[str, str], tuple[bool, str]] = {}  # passed, the check's severity
        self._check_failures: Counter[tuple[str, str]] = Counter()

    def collect(self) -> Iterator[Metric]:
        for section in (self._runs, self._checks):
            try:
                with self._lock:
                    metrics = list(section())
            except Exception as error:  # a failing source must not hide the others' metrics
                self.on_error(section.__name__.strip("_"), error)
                continue
            yield from metrics

    def _new_events(self, event_type: DagsterEventType) -> list[dg.EventLogRecord]:
        """Events of ``event_type`` not counted yet, oldest first, read page by page."""
        follower = self._followers.setdefault(event_type, EventFollower())
        after = None if follower.newest is None else follower.newest - OVERLAP_S
        new: list[dg.EventLogRecord] = []
        while True:
            page = self.instance.event_log_storage.get_event_records(
                dg.EventRecordsFilter(event_type=event_type, after_timestamp=after), limit=PAGE_SIZE, ascending=True
            )
            new += follower.take_new(page)
            if len(page) < PAGE_SIZE or page[-1].timestamp == after:
                break
            after = page[-1].timestamp
        follower.forget_old()
        return new

    def _count_new_runs(self) -> None:
        for event_type, status in RUN_FINISHED.items():
            records = self._new_events(event_type)
            for start in range(0, len(records), PAGE_SIZE):
                chunk = records[start : start + PAGE_SIZE]
                runs = self.instance.get_run_records(
                    filters=dg.RunsFilter(run_ids=[r.event_log_entry.run_id for r in chunk])
                )
                for run in runs:
                    job = run.dagster_run.job_name
                    self._outcomes[(job, status.value)] += 1
                    if run.start_time is not None and run.end_time is not None:
                        self._durations.observe(job, max(run.end_time - run.start_time, 0.0))

    def _runs(self) -> Iterator[Metric]:
        self._count_new_runs()
        runs = CounterMetricFamily(names.RUNS, "Dagster runs finished, per job and status", labels=["job", "status"])
        for (job, status), count in sorted(self._outcomes.items()):
            runs.add_metric([job, status], float(count))
        durations = HistogramMetricFamily(
            names.RUN_DURATION_SECONDS, "Wall time of finished Dagster runs, per job", labels=["job"]
        )
        for job in sorted(self._durations.counts):
            durations.add_metric([job], self._durations.buckets(job), self._durations.sums[job])
        yield from (runs, durations)

    def _checks(self) -> Iterator[Metric]:
        for record in self._new_events(DagsterEventType.ASSET_CHECK_EVALUATION):
            event = record.event_log_entry.dagster_event
            if event is None:
                continue
            evaluation = event.event_specific_data
            key = (evaluation.asset_key.to_user_string(), evaluation.check_name)
            self._latest_check[key] = (bool(evaluation.passed), evaluation.severity.value)
            self._check_failures[key] += 0 if evaluation.passed else 1
        passed = GaugeMetricFamily(
            names.CHECK_PASSED,
            "1 when the latest evaluation of an asset check passed, else 0 (check_severity: ERROR or WARN)",
            labels=["asset", "check", "check_severity"],
        )
        failures = CounterMetricFamily(
            names.CHECK_FAILURES, "Failed evaluations of each asset check", labels=["asset", "check", "check_severity"]
        )
        for key, (ok, severity) in sorted(self._latest_check.items()):
            passed.add_metric([*key, severity], 1.0 if ok else 0.0)
            failures.add_metric([*key, severity], float(self._check_failures[key]))
        yield from (passed, failures)
