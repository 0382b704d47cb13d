"""Bounded soak of the whole pipeline: telemetry at a steady rate and scenes arriving alongside, processed the way
production processes them, with memory, open files, threads and backlog sampled every minute.

    python -m bench.soak --minutes 30 [--rate N] [--stack | --embedded]

Three processes run side by side: the **pipeline** (a loop of ``satlake.runner.run_pending_work``, the sensors
and automation conditions that ``satlake run`` evaluates, one pass at most every ``--tick`` seconds, like the
daemon's sensor interval), the **producer** (simulated satellites published to the telemetry topic at
``--rate`` events/s, stamped with the time they are sent) and this **driver**, which lands one synthetic scene
every ``--scene-interval`` seconds through the ``put`` path and samples everything. The rate defaults to half
the maximum ingestion rate measured by ``bench.ingest`` (read from bench/results/ingest.json at run time).

When the load ends the pipeline drains; then every asset check evaluation recorded in the Dagster instance is
read back, the counts are reconciled (produced = in the log = committed = raw rows = bronze + rejects, scenes
put = catalogued) and a trend is fitted over the second half of the samples. The samples and the verdict go to
bench/results/soak.json, the curves to docs/images/soak.png.

``--stack`` starts a private Kafka + MinIO + Trino on free ports under the work directory (binaries from the
shared cache) and stops it at the end: the developer stack is never touched, because Trino table names and
MinIO's notification topic are global to a stack.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import RESULTS_DIR, machine_info
from satlake.settings import Settings

if TYPE_CHECKING:
    from satlake.resources.event_log import EventLog
    from satlake.resources.lakehouse import Lakehouse, TableRef

INGEST_RESULTS = RESULTS_DIR / "ingest.json"
DEFAULT_OUT = RESULTS_DIR / "soak.json"
DEFAULT_PLOT = Path(__file__).resolve().parents[1] / "docs" / "images" / "soak.png"
SCENE_PREFIX = "soak"
PRODUCE_BATCH = 20_000
PROBE_INTERVAL_S = 5.0
# A trend is growth when the fitted rise over the judged window exceeds max(absolute, relative x median).
RSS_LIMIT = (64.0, 0.10)  # MiB
COUNT_LIMIT = (8.0, 0.10)  # open files, threads
MIN_SAMPLES_FOR_TREND = 6


@dataclass(frozen=True)
class SoakConfig:
    minutes: float
    rate: int
    satellites: int = 100
    fault_rate: float = 0.01
    scene_interval_s: float = 60.0
    scene_size_px: int = 512
    sample_interval_s: float = 60.0
    tick_s: float = 30.0
    drain_timeout_s: float = 900.0
    # Guards for a shared machine: the soak stops rather than let the pipeline exhaust memory or disk.
    max_pipeline_rss_mib: float = 8192.0
    min_available_memory_gib: float = 2.0
    min_free_disk_gib: float = 15.0
    seed: int = 11


# --- the load rate --------------------------------------------------------------------------------------------


def half_max_ingest_rate(results: dict[str, Any], log: str) -> int:
    """Half the events/s of satlake's ``ingest_until_caught_up`` on ``log`` ("kafka" or "embedded")."""
    rates = [
        row["events_per_s"]
        for row in results.get("rows", [])
        if row.get("log") == log and row.get("system") == "satlake" and "ingest_until_caught_up" in row.get("step", "")
    ]
    if not rates:
        raise ValueError(f"no satlake ingest_until_caught_up row for log {log!r}; run `python -m bench.ingest` first")
    return int(max(rates)) // 2


# --- processes, read from /proc -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessUsage:
    rss_mib: float
    open_fds: int
    threads: int
    processes: int


def parent_pid_from_stat(stat: str) -> int:
    """The ppid field of /proc/<pid>/stat (the command name may hold spaces and parentheses)."""
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def parent_pids() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = parent_pid_from_stat((entry / "stat").read_text())
            except (OSError, ValueError):
                continue  # exited while we looked
    return parents


def process_tree(pid: int, parents: dict[int, int]) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [c for p in frontier for c in children.get(p, [])]
        tree += frontier
    return tree


def status_fields(status: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in status.splitlines())}


def tree_usage(pid: int) -> ProcessUsage:
    """Resident memory, open file descriptors and threads of ``pid`` and its children, summed."""
    rss_kib, fds, threads, alive = 0, 0, 0, 0
    for member in process_tree(pid, parent_pids()):
        try:
            fields = status_fields(Path(f"/proc/{member}/status").read_text())
            member_fds = len(os.listdir(f"/proc/{member}/fd"))
        except OSError:
            continue
        rss_kib += int(fields.get("VmRSS", "0 kB").split()[0])
        threads += int(fields.get("Threads", "0"))
        fds += member_fds
        alive += 1
    return ProcessUsage(round(rss_kib / 1024, 1), fds, threads, alive)


def stop_tree(pid: int) -> None:
    """SIGKILL a process this soak started and its descendants (children first seen, then the parent)."""
    for member in reversed(process_tree(pid, parent_pids())):
        with suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def free_disk_gib(path: Path) -> float:
    return shutil.disk_usage(path).free / 1024**3


def available_memory_gib(meminfo: str) -> float:
    """MemAvailable of /proc/meminfo: what the machine can still give before it swaps or kills."""
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024**2
    raise ValueError("no MemAvailable line in /proc/meminfo")


# --- trend ----------------------------------------------------------------------------------------------------


def theil_sen_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Median of the pairwise slopes: a line fit that one outlying sample (a big run caught mid-way) cannot tilt."""
    slopes = [
        (ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[j] != xs[i]
    ]
    if not slopes:
        raise ValueError("a slope needs at least two samples at different times")
    return statistics.median(slopes)


def judge_trend(minutes: Sequence[float], values: Sequence[float], absolute: float, relative: float) -> dict[str, Any]:
    """Fit a slope over the second half of the samples; growth when the fitted rise exceeds the tolerance."""
    half = len(minutes) // 2
    xs, ys = list(minutes[half:]), list(values[half:])
    if len(xs) < MIN_SAMPLES_FOR_TREND // 2 or len(minutes) < MIN_SAMPLES_FOR_TREND:
        return {"judged": False, "passed": None, "note": f"{len(minutes)} samples: too few to judge a trend"}
    slope = theil_sen_slope(xs, ys)
    rise = slope * (xs[-1] - xs[0])
    limit = max(absolute, relative * statistics.median(ys))
    return {"judged": True, "passed": rise <= limit, "window_minutes": [xs[0], xs[-1]], "slope_per_minute": slope,
            "fitted_rise": round(rise, 1), "limit": round(limit, 1), "median": statistics.median(ys)}  # fmt: skip


# --- the three workloads --------------------------------------------------------------------------------------


def run_pipeline_loop(settings: Settings, tick_s: float, stop: Event, journal_path: Path) -> None:
    """The pipeline process: sensors and automation, one pass at most every ``tick_s``, until ``stop``.

    Every run and pass goes to the journal (JSON lines); an exception in a pass is recorded and the loop goes on,
    as a daemon's next tick would.
    """
    from satlake.definitions import build_definitions
    from satlake.runner import RunOutcome, dagster_instance, run_pending_work

    defs = build_definitions(settings)
    instance = dagster_instance(settings.dagster_home)
    # Run logs (dbt's output included) go to a file beside the journal, not to the soak's terminal.
    output = os.open(journal_path.with_name("pipeline.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(output, 1)
    os.dup2(output, 2)
    with journal_path.open("a", encoding="utf-8") as journal:

        def write(entry: dict[str, Any]) -> None:
            journal.write(json.dumps({"at": time.time(), **entry}) + "\n")
            journal.flush()

        def record(outcome: RunOutcome) -> None:
            write({"kind": "run", **asdict(outcome)})

        while not stop.is_set():
            started = time.time()
            try:
                outcomes = run_pending_work(defs, instance, report=record)
                write({"kind": "pass", "started": started, "seconds": time.time() - started, "runs": len(outcomes)})
            except Exception as error:  # recorded and judged by the driver; the loop goes on
                write({"kind": "error", "started": started, "error": f"{type(error).__name__}: {error}"})
            stop.wait(max(0.0, tick_s - (time.time() - started)))


def produce_at_rate(
    settings: Settings, config: SoakConfig, seconds: float, produced: Synchronized[int], stop: Event
) -> None:
    """The producer process: ``config.rate`` simulated events/s, each stamped with (about) the time it is sent."""
    from satlake.resources import build_resources
    from satlake.telemetry.producer import simulate_telemetry

    event_log = build_resources(settings).event_log
    started = time.time()
    start_ns = int(started * 1e9)
    records = simulate_telemetry(
        satellites=config.satellites, start_ns=start_ns, end_ns=start_ns + int((seconds + 600) * 1e9),
        interval_s=config.satellites / config.rate, fault_rate=config.fault_rate, seed=config.seed,
    )  # fmt: skip
    total = int(config.rate * seconds)
    published = 0
    while published < total and not stop.is_set():
        due = min(total, int(config.rate * (time.time() - started))) - published
        if due <= 0:
            stop.wait(0.05)
            continue
        published += event_log.append(
            settings.telemetry_topic, list(itertools.islice(records, min(due, PRODUCE_BATCH)))
        )
        produced.value = published
    event_log.close()


def synthetic_scene(scratch: Path, number: int, size_px: int, token: str) -> tuple[str, Path]:
    """Scene ``number`` of the stream: two tiles taking turns, each revisited every 10 days, as a uniquely named
    GeoTIFF. Returns (scene id, path)."""
    from satlake.scenes.synthetic import make_synthetic_scenes

    tile, revisit = number % 2, number // 2
    acquired = datetime(2024, 1, 1, 10, tzinfo=UTC) + timedelta(days=10 * revisit)
    written = make_synthetic_scenes(scratch / f"gen-{number}", tiles=2, dates=[acquired], size=size_px, seed=number)
    scene_id = f"{SCENE_PREFIX}-{token}-{number:04d}-t{tile:02d}"
    path = scratch / f"{scene_id}.tif"
    written[tile].rename(path)
    shutil.rmtree(scratch / f"gen-{number}")
    return scene_id, path


def land_scenes(settings: Settings, config: SoakConfig, token: str, scratch: Path, stop: threading.Event,
                landed: list[str], errors: list[str]) -> None:  # fmt: skip
    """The scene feeder (a thread of the driver): one scene now, then one every ``scene_interval_s``."""
    from satlake.scenes.commands import put_files

    for number in itertools.count():
        try:
            scene_id, path = synthetic_scene(scratch, number, config.scene_size_px, token)
            put_files(settings, [path], prefix=f"{SCENE_PREFIX}-{token}", say=lambda _: None)
            path.unlink()
            landed.append(scene_id)
        except Exception as error:  # a failed landing is a finding, not a crash
            errors.append(f"scene {number}: {type(error).__name__}: {error}")
        if stop.wait(config.scene_interval_s):
            return


# --- what the pipeline has done, read from the log, the lake and the journal ----------------------------------


def table_rows(lakehouse: Lakehouse, table: TableRef) -> int:
    """Rows of a Delta table from its log's file statistics (no data file is opened)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    delta_table = lakehouse.open(table)
    if delta_table is None:
        return 0
    actions = pa.table(delta_table.get_add_actions(flatten=True))
    return int(pc.sum(actions.column("num_records")).as_py() or 0) if actions.num_rows else 0


def read_journal(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def catalogued_scene_ids(lakehouse: Lakehouse, token: str) -> set[str]:
    from satlake.scenes.tables import CATALOG_ITEMS

    rows = lakehouse.read(CATALOG_ITEMS, columns=["id"])
    ids = rows.column("id").to_pylist() if rows is not None else []
    return {i for i in ids if i.startswith(f"{SCENE_PREFIX}-{token}-")}


@dataclass
class Sample:
    minute: float
    phase: str  # load | drain
    rss_mib: float
    rss_floor_mib: float
    rss_peak_mib: float
    open_fds: int
    threads: int
    processes: int
    producer_rss_mib: float
    log_backlog: int
    bronze_lag: int
    events_produced: int
    events_ingested: int
    scenes_landed: int
    scenes_catalogued: int
    runs_ok: int
    runs_failed: int
    pass_errors: int
    slowest_bronze_run_s: float | None
    slowest_curated_run_s: float | None
    load_average_1m: float


@dataclass
class Probe:
    """Process usage seen since the last sample: its floor and peak, so a sample is not one random instant."""

    rss: list[float] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)

    def add(self, usage: ProcessUsage) -> None:
        self.rss.append(usage.rss_mib)
        self.fds.append(usage.open_fds)
        self.threads.append(usage.threads)
        self.processes.append(usage.processes)


class Observer:
    """Reads what the pipeline has done: log backlog, bronze lag, counts, and the runs in the journal."""

    def __init__(self, settings: Settings, token: str, journal_path: Path) -> None:
        from satlake.resources import build_resources

        resources = build_resources(settings)
        self.settings, self.token, self.journal_path = settings, token, journal_path
        self.event_log, self.lakehouse = resources.event_log, resources.lakehouse
        # In a shared lake, raw events of others may never have been built into bronze: count only new lag.
        self.bronze_lag_before = self._raw_minus_bronze()

    def _raw_minus_bronze(self) -> int:
        from satlake.telemetry.tables import BRONZE_TELEMETRY, BRONZE_TELEMETRY_REJECTS, RAW_TELEMETRY_EVENTS

        raw = table_rows(self.lakehouse, RAW_TELEMETRY_EVENTS)
        return raw - table_rows(self.lakehouse, BRONZE_TELEMETRY) - table_rows(self.lakehouse, BRONZE_TELEMETRY_REJECTS)

    def log_backlog(self) -> tuple[int, int]:
        """(events in the log not yet committed to the raw table, events committed)."""
        from satlake.telemetry.ingest import committed_offsets

        end = self.event_log.end_offsets(self.settings.telemetry_topic)
        done = committed_offsets(self.lakehouse, self.settings.telemetry_topic, list(end))
        return sum(end.values()) - sum(done.values()), sum(done.values())

    def bronze_lag(self) -> int:
        """Raw events not yet in bronze or its rejects (every raw event ends in exactly one of them)."""
        return max(0, self._raw_minus_bronze() - self.bronze_lag_before)

    def catalogued(self) -> set[str]:
        return catalogued_scene_ids(self.lakehouse, self.token)

    def journal(self) -> list[dict[str, Any]]:
        return read_journal(self.journal_path)


def slowest(runs: list[dict[str, Any]], since: float, job_or_asset: str) -> float | None:
    durations = [r["seconds"] for r in runs if r["at"] >= since and job_or_asset in r["description"]]
    return round(max(durations), 1) if durations else None


def take_sample(minute: float, phase: str, probe: Probe, producer_rss: float, observer: Observer, produced: int,
                landed: int, last_sample_at: float) -> Sample:  # fmt: skip
    journal = observer.journal()
    runs = [e for e in journal if e["kind"] == "run"]
    backlog, ingested = observer.log_backlog()
    return Sample(
        minute=round(minute, 2), phase=phase,
        rss_mib=probe.rss[-1] if probe.rss else 0.0,
        rss_floor_mib=min(probe.rss, default=0.0), rss_peak_mib=max(probe.rss, default=0.0),
        open_fds=max(probe.fds, default=0), threads=max(probe.threads, default=0),
        processes=max(probe.processes, default=0), producer_rss_mib=producer_rss,
        log_backlog=backlog, bronze_lag=observer.bronze_lag(), events_produced=produced, events_ingested=ingested,
        scenes_landed=landed, scenes_catalogued=len(observer.catalogued()),
        runs_ok=sum(1 for r in runs if r["success"]), runs_failed=sum(1 for r in runs if not r["success"]),
        pass_errors=sum(1 for e in journal if e["kind"] == "error"),
        slowest_bronze_run_s=slowest(runs, last_sample_at, "bronze_telemetry_job"),
        slowest_curated_run_s=slowest(runs, last_sample_at, "silver/telemetry_clean"),
        load_average_1m=os.getloadavg()[0],
    )  # fmt: skip


# --- the verdict ----------------------------------------------------------------------------------------------


def check_evaluations(settings: Settings) -> dict[str, Any]:
    """Every asset check's evaluations during the soak, read from the Dagster instance the pipeline used."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    from satlake.definitions import build_definitions
    from satlake.runner import dagster_instance

    check_keys = sorted(build_definitions(settings).resolve_asset_graph().asset_check_keys, key=str)
    instance = dagster_instance(settings.dagster_home)
    statuses: Counter[str] = Counter()
    never, failures, per_check = [], [], {}
    # Checks of assets the soak never drives (acquisition: no request is published) cannot run: left out, named.
    idle = [key for key in check_keys if instance.get_latest_materialization_event(key.asset_key) is None
            and not instance.event_log_storage.get_asset_check_execution_history(key, limit=1)]  # fmt: skip
    check_keys = [key for key in check_keys if key not in idle]
    for key in check_keys:
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=1_000_000)
        # Checks of daily partitions are planned with the partition and evaluated in a row of their own, so a
        # planned check is open only when its run stored no evaluation of it.
        evaluated_runs = {r.run_id for r in history if r.status is not AssetCheckExecutionRecordStatus.PLANNED}
        counts = Counter(r.status.value for r in history if r.status is not AssetCheckExecutionRecordStatus.PLANNED)
        counts["PLANNED"] = len({r.run_id for r in history} - evaluated_runs)
        statuses.update(counts)
        per_check[key.to_user_string()] = dict(counts)
        if not evaluated_runs:
            never.append(key.to_user_string())
        for record in history:
            if record.status is AssetCheckExecutionRecordStatus.FAILED and len(failures) < 20:
                evaluation = record.evaluation
                failures.append({"check": key.to_user_string(), "partition": record.partition,
                                 "severity": evaluation.severity.value if evaluation else None,
                                 "description": evaluation.description if evaluation else None})  # fmt: skip
    green = not never and statuses["FAILED"] == 0 and statuses["PLANNED"] == 0
    return {"check_keys": len(check_keys), "evaluations": sum(statuses.values()), "succeeded": statuses["SUCCEEDED"],
            "failed": statuses["FAILED"], "planned_never_evaluated": statuses["PLANNED"], "never_evaluated": never,
            "failures": failures, "all_green": green, "per_check": per_check,
            "not_driven": [key.to_user_string() for key in idle]}  # fmt: skip


def run_costs(settings: Settings, journal: list[dict[str, Any]], started_at: float) -> dict[str, list[dict[str, Any]]]:
    """Per telemetry run: when it finished, how many events it handled (from its materialization) and how long
    it took, to see whether a run's cost follows the batch or the whole day."""
    import dagster as dg

    from satlake.runner import dagster_instance

    instance = dagster_instance(settings.dagster_home)
    runs = {entry["run_id"]: entry for entry in journal if entry["kind"] == "run"}

    def costs(key: list[str], metadata_key: str) -> list[dict[str, Any]]:
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(key)), limit=10_000)
        rows = []
        for record in records.records:
            run, materialization = runs.get(record.run_id), record.asset_materialization
            value = materialization.metadata.get(metadata_key) if materialization else None
            if run is not None:
                minute = round((run["at"] - started_at) / 60, 2)
                events = value.value if value is not None else None
                rows.append({"finished_minute": minute, "events": events, "seconds": round(run["seconds"], 1)})
        return sorted(rows, key=lambda row: row["finished_minute"])

    return {
        "ingest (events consumed)": costs(["raw", "telemetry_events"], "events"),
        "bronze (raw events of the window)": costs(["bronze", "telemetry"], "raw_events"),
        "dbt models (silver rows of the window)": costs(["silver", "telemetry_clean"], "dagster/row_count"),
    }


def reconcile_events(observer: Observer, produced: int) -> dict[str, Any]:
    """produced = in the log = committed = raw rows of the topic = bronze + rejects rows of those batches."""
    import duckdb

    from satlake.telemetry.tables import BRONZE_TELEMETRY, BRONZE_TELEMETRY_REJECTS, RAW_TELEMETRY_EVENTS

    in_log = sum(observer.event_log.end_offsets(observer.settings.telemetry_topic).values())
    backlog, committed = observer.log_backlog()
    con = duckdb.connect()
    try:
        for name, table in (("raw", RAW_TELEMETRY_EVENTS), ("bronze", BRONZE_TELEMETRY),
                            ("rejects", BRONZE_TELEMETRY_REJECTS)):  # fmt: skip
            delta_table = observer.lakehouse.open(table)
            if delta_table is None:
                con.execute(f"CREATE VIEW {name} AS SELECT NULL::VARCHAR AS batch_id, NULL::VARCHAR AS topic LIMIT 0")
            else:
                con.register(name, delta_table.to_pyarrow_dataset())
        raw_rows, bronze_rows, reject_rows = con.execute(
            """
            WITH batches AS (SELECT DISTINCT batch_id FROM raw WHERE topic = $topic)
            SELECT (SELECT count(*) FROM raw WHERE topic = $topic),
                   (SELECT count(*) FROM bronze WHERE batch_id IN (SELECT batch_id FROM batches)),
                   (SELECT count(*) FROM rejects WHERE batch_id IN (SELECT batch_id FROM batches))
            """,
            {"topic": observer.settings.telemetry_topic},
        ).fetchone()  # type: ignore[misc]
    finally:
        con.close()
    reconciled = produced == in_log == committed == raw_rows == bronze_rows + reject_rows and backlog == 0
    return {
        "produced": produced,
        "in_log": in_log,
        "committed": committed,
        "raw_rows": raw_rows,
        "bronze_rows": bronze_rows,
        "reject_rows": reject_rows,
        "reconciled": reconciled,
    }


def reconcile_scenes(observer: Observer, landed: list[str]) -> dict[str, Any]:
    catalogued = observer.catalogued()
    missing = sorted(set(landed) - catalogued)
    return {"landed": len(landed), "catalogued": len(catalogued & set(landed)), "missing": missing[:20],
            "reconciled": not missing and len(landed) > 0}  # fmt: skip


def achieved_rate(samples: Sequence[dict[str, Any]]) -> int | None:
    """Events/s the producer really published, between the first and the last sample of the load."""
    load = [s for s in samples if s["phase"] == "load"]
    if len(load) < 2 or load[-1]["minute"] <= load[0]["minute"]:
        return None
    produced = load[-1]["events_produced"] - load[0]["events_produced"]
    return round(produced / ((load[-1]["minute"] - load[0]["minute"]) * 60))


def judge_trends(samples: list[Sample]) -> dict[str, Any]:
    load = [s for s in samples if s.phase == "load"]
    minutes = [s.minute for s in load]
    series: dict[str, tuple[list[float], tuple[float, float]]] = {
        "rss_peak_mib": ([s.rss_peak_mib for s in load], RSS_LIMIT),
        "rss_floor_mib": ([s.rss_floor_mib for s in load], RSS_LIMIT),
        "open_fds": ([float(s.open_fds) for s in load], COUNT_LIMIT),
        "threads": ([float(s.threads) for s in load], COUNT_LIMIT),
    }
    trends = {name: judge_trend(minutes, values, *limit) for name, (values, limit) in series.items()}
    # Backlogs: the pipeline may not fall further behind, over the window, than one minute of production.
    minute_of_events = max((s.events_produced for s in load), default=0) / max(minutes[-1], 1.0) if minutes else 0.0
    for name in ("log_backlog", "bronze_lag"):
        trends[name] = judge_trend(minutes, [float(getattr(s, name)) for s in load], minute_of_events, 0.0)
    return trends


def verdict(
    trends: dict[str, Any],
    checks: dict[str, Any],
    events: dict[str, Any],
    scenes: dict[str, Any],
    samples: list[Sample],
    drained: bool,
    aborted: str | None,
    scene_errors: list[str],
) -> dict[str, Any]:
    last = samples[-1] if samples else None
    reasons = []
    if aborted:
        reasons.append(f"aborted: {aborted}")
    if not drained:
        reasons.append("the pipeline did not drain the backlog after the load stopped")
    if not checks["all_green"]:
        reasons.append(f"checks: {checks['failed']} failed, {checks['planned_never_evaluated']} planned but never "
                       f"evaluated, {len(checks['never_evaluated'])} never run")  # fmt: skip
    if not events["reconciled"]:
        reasons.append(f"events do not reconcile: {events['produced']:,} produced, {events['committed']:,} committed, "
                       f"{events['raw_rows']:,} raw, {events['bronze_rows'] + events['reject_rows']:,} in bronze + "
                       "rejects")  # fmt: skip
    if not scenes["reconciled"]:
        reasons.append(f"scenes do not reconcile: {scenes['landed']} landed, {scenes['catalogued']} catalogued")
    if last and (last.runs_failed or last.pass_errors):
        reasons.append(f"{last.runs_failed} runs failed, {last.pass_errors} passes raised")
    if scene_errors:
        reasons.append(f"{len(scene_errors)} scenes could not be landed: {scene_errors[:3]}")
    reasons += [
        f"growth in {name}: {t['fitted_rise']} > {t['limit']}" for name, t in trends.items() if t["passed"] is False
    ]
    return {"passed": not reasons, "reasons": reasons, "drained": drained, "aborted": aborted,
            "counts_reconcile": events["reconciled"] and scenes["reconciled"], "checks_green": checks["all_green"],
            "no_growth": all(t["passed"] is not False for t in trends.values()),
            "trends_judged": all(t["judged"] for t in trends.values())}  # fmt: skip


# --- the soak -------------------------------------------------------------------------------------------------


def start_scene_sensor_at_log_end(settings: Settings, event_log: EventLog) -> None:
    """Only scenes landed from now on count: other users of a shared stack land scenes on the same topic."""
    from satlake.instance_state import SensorStateStore
    from satlake.runner import dagster_instance
    from satlake.scenes.sensors import SensorCursor, object_events_sensor

    topic = settings.object_events_topic
    if not event_log.partitions(topic):
        return
    cursor = SensorCursor(event_log.end_offsets(topic)).to_json()
    SensorStateStore(dagster_instance(settings.dagster_home)).save_cursor(object_events_sensor, cursor)


def run_soak(settings: Settings, config: SoakConfig, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the soak against ``settings`` (its own root and telemetry topic) and return the result document."""
    from satlake.resources import build_resources

    token = uuid.uuid4().hex[:8]
    settings.root.mkdir(parents=True, exist_ok=True)
    journal_path = settings.root / "soak-journal.jsonl"
    scratch = Path(tempfile.mkdtemp(prefix="satlake-soak-scenes-"))
    event_log = build_resources(settings).event_log
    event_log.create_topic(settings.telemetry_topic, settings.telemetry_partitions)
    start_scene_sensor_at_log_end(settings, event_log)
    observer = Observer(settings, token, journal_path)

    context = multiprocessing.get_context("spawn")
    stop_pipeline, stop_producer, stop_scenes = context.Event(), context.Event(), threading.Event()
    produced = context.Value("q", 0)
    load_s = config.minutes * 60
    pipeline = context.Process(target=run_pipeline_loop, args=(settings, config.tick_s, stop_pipeline, journal_path),
                               name="soak-pipeline")  # fmt: skip
    producer = context.Process(target=produce_at_rate, args=(settings, config, load_s, produced, stop_producer),
                               name="soak-producer")  # fmt: skip
    landed: list[str] = []
    scene_errors: list[str] = []
    feeder = threading.Thread(target=land_scenes, args=(settings, config, token, scratch, stop_scenes, landed,
                                                        scene_errors), daemon=True)  # fmt: skip
    started_at = datetime.now(UTC)
    load_before = os.getloadavg()[0]
    t0, started_wall = time.monotonic(), time.time()
    pipeline.start()
    producer.start()
    feeder.start()
    samples: list[Sample] = []
    aborted: str | None = None
    drained = False
    probe, producer_rss = Probe(), 0.0
    next_sample, last_sample_wall = t0 + config.sample_interval_s, time.time()
    phase, load_stopped_wall = "load", None
    try:
        while True:
            now = time.monotonic()
            usage = tree_usage(pipeline.pid) if pipeline.is_alive() else None  # type: ignore[arg-type]
            if usage is None:
                aborted = f"the pipeline process exited with code {pipeline.exitcode}"
                break
            probe.add(usage)
            if producer.is_alive():
                producer_rss = tree_usage(producer.pid).rss_mib  # type: ignore[arg-type]
            if usage.rss_mib > config.max_pipeline_rss_mib:
                aborted = f"pipeline RSS {usage.rss_mib:.0f} MiB over the {config.max_pipeline_rss_mib:.0f} MiB guard"
                break
            if available_memory_gib(Path("/proc/meminfo").read_text()) < config.min_available_memory_gib:
                aborted = f"less than {config.min_available_memory_gib} GiB of memory left on the machine"
                break
            if free_disk_gib(settings.root) < config.min_free_disk_gib:
                aborted = f"less than {config.min_free_disk_gib} GiB free on the disk of {settings.root}"
                break
            if phase == "load" and now - t0 >= load_s:
                phase, load_stopped_wall = "drain", time.time()
                stop_producer.set()
                stop_scenes.set()
                producer.join(timeout=120)
                feeder.join(timeout=300)
                say(f"load stopped after {(now - t0) / 60:.1f} min: {produced.value:,} events, {len(landed)} scenes")
            if now >= next_sample or phase == "drain":
                if now >= next_sample:
                    sample = take_sample((now - t0) / 60, phase, probe, producer_rss, observer, produced.value,
                                         len(landed), last_sample_wall)  # fmt: skip
                    samples.append(sample)
                    say(progress_line(sample))
                    probe, next_sample, last_sample_wall = Probe(), next_sample + config.sample_interval_s, time.time()
                if phase == "drain":
                    if is_drained(observer, landed, load_stopped_wall):  # type: ignore[arg-type]
                        drained = True
                        break
                    if time.time() - load_stopped_wall > config.drain_timeout_s:  # type: ignore[operator]
                        break
            time.sleep(PROBE_INTERVAL_S)
        load_ended_wall = load_stopped_wall or time.time()
    finally:
        stop_producer.set()
        stop_scenes.set()
        stop_pipeline.set()
        for process, grace in ((producer, 60), (pipeline, 600 if aborted is None else 5)):
            process.join(timeout=grace)
            if process.is_alive():
                stop_tree(process.pid)  # type: ignore[arg-type]
                process.join()
        shutil.rmtree(scratch, ignore_errors=True)
    drain_s = time.time() - load_stopped_wall if load_stopped_wall else None
    say("reading the check evaluations and reconciling counts")
    return summarise({
        "benchmark": "soak",
        "mode": settings.mode.value,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "load_average_1m_at_start": load_before},
        "config": asdict(config),
        "load_minutes": round((load_ended_wall - started_wall) / 60, 2),
        "drain_seconds": round(drain_s, 1) if drain_s is not None else None,
        "drained": drained,
        "aborted": aborted,
        "scene_errors": scene_errors,
        "events": reconcile_events(observer, produced.value),
        "scenes": reconcile_scenes(observer, landed),
        "checks": check_evaluations(settings),
        "run_costs": run_costs(settings, observer.journal(), started_wall),
        "samples": [asdict(s) for s in samples],
    })  # fmt: skip


def summarise(document: dict[str, Any]) -> dict[str, Any]:
    """Add what is derived from the recorded samples and counts: the published rate, the trends, the verdict."""
    samples = [Sample(**sample) for sample in document["samples"]]
    document["events"]["produced_per_s"] = achieved_rate(document["samples"])
    document["trends"] = judge_trends(samples)
    document["verdict"] = verdict(
        document["trends"], document["checks"], document["events"], document["scenes"], samples,
        document["drained"], document["aborted"], document["scene_errors"],
    )  # fmt: skip
    return document


def is_drained(observer: Observer, landed: list[str], load_stopped_at: float) -> bool:
    """Nothing waits in the log or for bronze, every scene is catalogued, and a whole pass that started after
    the load stopped found nothing to do."""
    if observer.log_backlog()[0] or observer.bronze_lag() or set(landed) - observer.catalogued():
        return False
    passes = [e for e in observer.journal() if e["kind"] == "pass" and e["started"] > load_stopped_at]
    return any(p["runs"] == 0 for p in passes)


def progress_line(s: Sample) -> str:
    return (f"[{s.minute:5.1f} min {s.phase}] rss {s.rss_floor_mib:.0f}..{s.rss_peak_mib:.0f} MiB, fds {s.open_fds}, "
            f"threads {s.threads}, log backlog {s.log_backlog:,}, bronze lag {s.bronze_lag:,}, "
            f"produced {s.events_produced:,}, ingested {s.events_ingested:,}, scenes {s.scenes_catalogued}/"
            f"{s.scenes_landed}, runs {s.runs_ok} ok {s.runs_failed} failed, slowest bronze run "
            f"{'-' if s.slowest_bronze_run_s is None else f'{s.slowest_bronze_run_s} s'}, "
            f"load {s.load_average_1m:.1f}")  # fmt: skip


# --- the plot -------------------------------------------------------------------------------------------------


def plot_samples(result: dict[str, Any], path: Path) -> Path:
    """Memory, open files and threads, and backlogs against minutes, the drain shaded (matplotlib, dev extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    minutes = [s["minute"] for s in samples]
    drain_from = next((s["minute"] for s in samples if s["phase"] == "drain"), None)
    figure, (memory, files, backlog) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    memory.plot(minutes, [s["rss_peak_mib"] for s in samples], label="peak in the minute")
    memory.plot(minutes, [s["rss_floor_mib"] for s in samples], label="floor in the minute")
    memory.set_ylabel("pipeline RSS (MiB)")
    files.plot(minutes, [s["open_fds"] for s in samples], label="open file descriptors")
    files.plot(minutes, [s["threads"] for s in samples], label="threads")
    files.set_ylabel("count")
    backlog.plot(minutes, [s["log_backlog"] for s in samples], label="log backlog (not committed to raw)")
    backlog.plot(minutes, [s["bronze_lag"] for s in samples], label="bronze lag (raw not yet in bronze)")
    backlog.set_ylabel("events")
    backlog.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
    backlog.set_xlabel("minutes since start")
    for axes in (memory, files, backlog):
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend(loc="upper left", fontsize=8)
        if drain_from is not None:
            axes.axvspan(drain_from, max(minutes), color="grey", alpha=0.12)
    config, verdict_ = result["config"], result["verdict"]
    achieved = achieved_rate(samples)
    ran = f"aborted at minute {minutes[-1]:.0f}" if verdict_["aborted"] else f"{config['minutes']:g} min"
    figure.suptitle(f"satlake soak ({result['mode']}): {config['rate']:,} events/s asked, {achieved or 0:,} published, "
                    f"{ran}, a scene every {config['scene_interval_s']:g} s; verdict: "
                    f"{'passed' if verdict_['passed'] else 'FAILED'}" + (" (grey: drain)" if drain_from else ""),
                    fontsize=10)  # fmt: skip
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


# --- settings for each mode, and the command line -------------------------------------------------------------


def clean_environment(root: Path) -> dict[str, str]:
    """The environment without the caller's SATLAKE_* settings, rooted at ``root``."""
    keep = ("SATLAKE_SERVERS_CACHE", "SATLAKE_TRINO_JAVA_HOME")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SATLAKE_") or k in keep}
    return {**environment, "SATLAKE_ROOT": str(root)}


@contextmanager
def embedded_settings(workdir: Path) -> Iterator[Settings]:
    yield Settings.from_env(clean_environment(workdir / "root"))


@contextmanager
def private_stack_settings(workdir: Path, say: Callable[[str], None]) -> Iterator[Settings]:
    """A Kafka + MinIO + Trino of the soak's own, on free ports, stopped at the end."""
    from satlake.settings import Mode
    from satlake.stack import stack_down, stack_up
    from satlake.stack.isolated import isolated_stack_environment

    environment = isolated_stack_environment(workdir / "root")
    settings = Settings.from_env(environment)
    try:
        stack_up(settings, progress=lambda message: say(f"[stack] {message}"))
        yield Settings.from_env(environment).with_overrides(mode=Mode.STACK)
    finally:
        stack_down(settings, progress=lambda message: say(f"[stack] {message}"))


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="load duration (the drain comes after)")
    parser.add_argument(
        "--rate",
        type=int,
        default=None,
        help="events/s (default: half the max ingest rate in bench/results/ingest.json)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--stack", action="store_true", help="a private Kafka + MinIO + Trino (started and stopped)")
    mode.add_argument("--embedded", action="store_true", help="the embedded log and a local lake (default)")
    parser.add_argument("--scene-interval", type=float, default=60.0, help="seconds between landed scenes")
    parser.add_argument("--sample-interval", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--tick", type=float, default=30.0, help="seconds between pipeline passes (at most)")
    parser.add_argument("--max-rss-mib", type=float, default=8192.0, help="abort when the pipeline uses more")
    parser.add_argument("--workdir", type=Path, default=None, help="where data goes (default: a temp dir, removed)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="result JSON")
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help="PNG of the curves")
    parser.add_argument("--replot", type=Path, default=None, metavar="RESULT",
                        help="re-derive the verdict of a recorded result JSON and redraw --plot")  # fmt: skip
    return parser.parse_args(argv)


def replot(result_path: Path, plot_path: Path) -> Path:
    """Re-derive the rate, trends and verdict of a recorded soak from its samples and counts; redraw its curves."""
    result = summarise(json.loads(result_path.read_text()))
    result_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return plot_samples(result, plot_path)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.replot:
        print(f"redrew {replot(arguments.replot, arguments.plot)}")
        return 0
    log = "kafka" if arguments.stack else "embedded"
    rate = arguments.rate or half_max_ingest_rate(json.loads(INGEST_RESULTS.read_text()), log)
    rate_source = "--rate" if arguments.rate else f"half the {log} ingest_until_caught_up rate in {INGEST_RESULTS.name}"
    config = SoakConfig(minutes=arguments.minutes, rate=rate, scene_interval_s=arguments.scene_interval,
                        sample_interval_s=arguments.sample_interval, tick_s=arguments.tick,
                        max_pipeline_rss_mib=arguments.max_rss_mib)  # fmt: skip
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="satlake-soak-"))
    say = lambda message: print(message, flush=True)  # noqa: E731
    say(f"soak: {rate:,} events/s ({rate_source}) for {config.minutes:g} min, {log} log, work dir {workdir}")
    settings_for = private_stack_settings(workdir, say) if arguments.stack else embedded_settings(workdir)
    try:
        with settings_for as settings:
            result = run_soak(settings, config, say)
    finally:
        if arguments.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    command = " ".join(["python -m bench.soak", *(sys.argv[1:] if argv is None else argv)])
    result = {"command": command, "rate_source": rate_source, **result}
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    plot_samples(result, arguments.plot)
    say(f"verdict: {'passed' if result['verdict']['passed'] else 'FAILED'} {result['verdict']['reasons']}")
    say(f"wrote {arguments.out} and {arguments.plot}")
    return 0 if result["verdict"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
