"""Orchestration overhead: a backfill of N daily partitions of bronze telemetry plus every dbt model (small data,
embedded mode) as ONE run (satlake's policy, ``satlake.runner.backfill_days``) and as ONE RUN PER PARTITION (what a
user gets from the UI's backfill when the assets' policy is ``BackfillPolicy.multi_run(1)``: Dagster's own asset
backfill daemon code plans the runs, each run executes its steps in their own processes), and how long a new event
waits before a run starts when the sensors tick (tick evaluation plus run launch; a daemon adds up to the sensor
interval on top).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from bench.common import RESULTS_DIR, SIZES, comparison, print_table, run_isolated, write_result

DAYS = {"small": 3, "full": 30}


def bench_environment(root: str) -> dict[str, str]:
    """The settings of a benchmark worker (set before it imports satlake): its own embedded root, and daily
    partitions reaching back over the year of history it may land (a fresh root's start is two days back)."""
    start = (datetime.now(UTC).date() - timedelta(days=400)).isoformat()
    return {"SATLAKE_ROOT": root, "SATLAKE_MODE": "embedded", "SATLAKE_PARTITIONS_START": start}


SATELLITES = 2
INTERVAL_S = 1800.0
TARGET_365_S = 180.0
IN_PROCESS, SINGLE_RUN, PER_PARTITION = "single-run-in-process", "single-run", "per-partition"
ALL_MODES = (IN_PROCESS, SINGLE_RUN, PER_PARTITION)
DEFAULT_MODES = {"small": (IN_PROCESS,), "full": ALL_MODES}
REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
# Runs launched by the backfill execute right away, in the benchmark's process, one after another; their steps
# still get a process each (Dagster's default multiprocess executor), as in a deployment.
BACKFILL_INSTANCE_OVERRIDES = {
    "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
    "run_launcher": {
        "module": "dagster._core.launcher.sync_in_memory_run_launcher",
        "class": "SyncInMemoryRunLauncher",
    },
}
# What a deployment's run launcher does before a run's first step: start Python and load the code location.
RUN_WORKER_START = "import dagster; from satlake.definitions import defs; defs.resolve_asset_graph()"


# Set by --in-process-steps for the code server the backfill daemon loads: each run executes its steps in its
# own process instead of one process per step (a run-level choice a user can make too).
STEP_EXECUTOR_VARIABLE = "SATLAKE_BENCH_IN_PROCESS_STEPS"


def backfill_definitions(one_run_per_partition: bool) -> dg.Definitions:
    """satlake's definitions (settings come from the environment), with every daily asset's backfill policy set
    to one run per partition if asked, and the in-process executor if ``SATLAKE_BENCH_IN_PROCESS_STEPS`` is
    set."""
    from satlake.definitions import build_definitions
    from satlake.partitions import DAILY_PARTITIONS

    base = build_definitions()

    def with_policy(asset: Any) -> Any:
        daily = isinstance(asset, dg.AssetsDefinition) and asset.partitions_def == DAILY_PARTITIONS
        if one_run_per_partition and daily:
            return asset.with_attributes(backfill_policy=dg.BackfillPolicy.multi_run(1))
        return asset

    kept = ("asset_checks", "jobs", "schedules", "sensors", "resources", "loggers")
    executor = dg.in_process_executor if os.environ.get(STEP_EXECUTOR_VARIABLE) else base.executor
    assets = [with_policy(asset) for asset in base.assets or []]
    return dg.Definitions(assets=assets, executor=executor, **{name: getattr(base, name) for name in kept})


@dg.definitions
def single_run_definitions() -> dg.Definitions:
    """The code location of the single-run mode: satlake's own backfill policy."""
    return backfill_definitions(one_run_per_partition=False)


@dg.definitions
def one_run_per_partition_definitions() -> dg.Definitions:
    """The code location of the per-partition mode: every daily asset backfills one run per partition."""
    return backfill_definitions(one_run_per_partition=True)


def is_daily(partitions: dg.PartitionsDefinition | None) -> bool:
    """Daily time partitions (the code server's asset graph rebuilds them, so compare by kind, not identity)."""
    return isinstance(partitions, dg.TimeWindowPartitionsDefinition) and partitions.cron_schedule == "0 0 * * *"


def backfill_through_daemon(
    instance: dg.DagsterInstance, day_keys: list[str], module_name: str, attribute: str
) -> dict[str, Any]:
    """Submit an asset backfill of every daily asset over ``day_keys`` (as the UI's "backfill" button does) and
    drive Dagster's backfill daemon iterations until it finishes, with the code location loaded from
    ``module_name:attribute`` in a code server as ``dagster dev`` does. What it ran and how long it took."""
    import logging

    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.backfill import execute_backfill_iteration

    target = ModuleTarget(
        module_name=module_name, attribute=attribute, working_directory=str(REPOSITORY_ROOT), location_name="satlake"
    )
    with create_test_daemon_workspace_context(target, instance) as workspace:
        request = workspace.create_request_context()
        error = request.get_code_location_error("satlake")
        if error is not None:
            raise RuntimeError(f"the code location {module_name}:{attribute} did not load: {error.to_string()}")
        graph = request.asset_graph
        daily = [k for k in graph.materializable_asset_keys if is_daily(graph.get(k).partitions_def)]
        started = time.perf_counter()
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id="bench",
            asset_graph=graph,
            partition_names=day_keys,
            asset_selection=sorted(daily),
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title="bench backfill",
            description=None,
            run_config=None,
        )
        instance.add_backfill(backfill)
        iterations = 0
        while instance.get_backfill(backfill.backfill_id).status == BulkActionStatus.REQUESTED:
            list(execute_backfill_iteration(workspace, logging.getLogger("bench.backfill")))
            iterations += 1
        seconds = time.perf_counter() - started
        status = instance.get_backfill(backfill.backfill_id).status
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
    run_seconds = []
    for run in runs:
        stats = instance.get_run_stats(run.run_id)
        if stats.start_time and stats.end_time:
            run_seconds.append(stats.end_time - stats.start_time)
    return {
        "seconds": seconds,
        "status": status.value,
        "iterations": iterations,
        "runs": len(runs),
        "runs_succeeded": sum(run.status == dg.DagsterRunStatus.SUCCESS for run in runs),
        "partitions_per_run": sorted(partitions_in_run(run.tags) for run in runs),
        "run_seconds": run_seconds,
    }


def partitions_in_run(tags: dict[str, str]) -> int:
    """How many daily partitions a run covered, from the tags Dagster puts on it (one key, or a range)."""
    if "dagster/partition" in tags:
        return 1
    first, last = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    if first is None or last is None:
        return 0
    return (datetime.fromisoformat(last) - datetime.fromisoformat(first)).days + 1


def run_worker_start_seconds(root: str, repetitions: int = 2) -> float:
    """Best of ``repetitions`` cold starts of a Python process that loads satlake's code location."""
    times = []
    for _ in range(repetitions):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", RUN_WORKER_START],
            check=True,
            cwd=REPOSITORY_ROOT,
            env={**os.environ, **bench_environment(root)},
            capture_output=True,
        )
        times.append(time.perf_counter() - started)
    return min(times)


def land_raw_telemetry(days: int) -> tuple[int, int, list[str]]:
    """Produce ``days`` days of telemetry into the event log and ingest it into the raw table (set-up, not
    measured); events produced, events ingested, and the day partition keys."""
    from satlake.resources import build_resources
    from satlake.settings import Settings
    from satlake.telemetry.ingest import ingest_until_caught_up
    from satlake.telemetry.producer import publish_records, simulate_telemetry

    settings = Settings.from_env()
    resources = build_resources(settings)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    records = simulate_telemetry(
        SATELLITES, int(start.timestamp() * 1e9), int(end.timestamp() * 1e9), INTERVAL_S, fault_rate=0.02, seed=5
    )
    resources.event_log.create_topic(settings.telemetry_topic, 4)
    produced = publish_records(resources.event_log, settings.telemetry_topic, records)
    ingested = ingest_until_caught_up(resources.event_log, resources.lakehouse, settings.telemetry_topic, 50_000).events
    return produced, ingested, [(start + timedelta(days=i)).date().isoformat() for i in range(days)]


def daemon_backfill_step(root: str, days: int, mode: str, in_process_steps: bool = False) -> dict[str, Any]:
    """A backfill through Dagster's backfill daemon code, in one fresh process with its own storage root."""
    os.environ.update(bench_environment(root))
    if in_process_steps:
        os.environ[STEP_EXECUTOR_VARIABLE] = "1"
    produced, ingested, day_keys = land_raw_telemetry(days)
    # Importable by the code server, which the environment above configures.
    attribute = "single_run_definitions" if mode == SINGLE_RUN else "one_run_per_partition_definitions"
    target = ("bench.orchestration", attribute)
    with dg.instance_for_test(overrides=BACKFILL_INSTANCE_OVERRIDES) as instance:
        result = backfill_through_daemon(instance, day_keys, *target)
    return {"produced": produced, "ingested": ingested, "days": days, **result}


def in_process_step(root: str, days: int) -> dict[str, Any]:
    """satlake's own single-run backfill (``satlake demo``, ``satlake run``), then a new event through the
    sensors, in one fresh process with its own storage root and a throwaway Dagster instance."""
    os.environ.update(bench_environment(root))
    from satlake.definitions import build_definitions
    from satlake.resources import build_resources
    from satlake.runner import RunOutcome, backfill_days, run_pending_work
    from satlake.settings import Settings
    from satlake.telemetry.producer import publish_records, simulate_telemetry
    from satlake.telemetry.sensors import telemetry_events_sensor

    produced, ingested, day_keys = land_raw_telemetry(days)
    settings = Settings.from_env()
    resources = build_resources(settings)
    defs = build_definitions(settings)
    outcomes: list[RunOutcome] = []
    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        outcomes = backfill_days(defs, instance, day_keys, lambda _: None)
        backfill_s = time.perf_counter() - started

        # A new event arrives; the sensors tick once and the requested run starts.
        now_ns = time.time_ns()
        fresh = simulate_telemetry(1, now_ns - 10**9, now_ns, 1.0, fault_rate=0.0, seed=9)
        publish_records(resources.event_log, settings.telemetry_topic, fresh)
        appended_at = time.time()
        context = dg.build_sensor_context(
            instance=instance,
            definitions=defs,
            sensor_name=telemetry_events_sensor.name,
            resources=defs.resources,
        )
        tick_started = time.perf_counter()
        tick = defs.resolve_sensor_def(telemetry_events_sensor.name).evaluate_tick(context)
        tick_s = time.perf_counter() - tick_started
        follow_up = run_pending_work(defs, instance)
        first_run = instance.get_run_stats(follow_up[0].run_id) if follow_up else None
    return {
        "produced": produced,
        "ingested": ingested,
        "days": days,
        "seconds": backfill_s,
        "runs": len(outcomes),
        "runs_succeeded": sum(o.success for o in outcomes),
        "sensor_tick_s": tick_s,
        "tick_requested_runs": len(tick.run_requests or []),
        "event_to_run_start_s": (first_run.start_time - appended_at) if first_run and first_run.start_time else None,
        "follow_up_runs": [f"{o.source}: {o.description} ({'ok' if o.success else 'FAILED'})" for o in follow_up],
    }


def measure_mode(
    workdir: Path, days: int, mode: str, worker_start_s: float, in_process_steps: bool = False
) -> dict[str, Any]:
    root = str(workdir / f"root-{mode}-{days}")
    if mode == IN_PROCESS:
        measured = run_isolated(in_process_step, root, days)
    else:
        measured = run_isolated(daemon_backfill_step, root, days, mode, in_process_steps)
    value = measured.value
    row: dict[str, Any] = {
        "days": days,
        "mode": mode,
        "events": value["produced"],
        "runs": value["runs"],
        "backfill_s": round(value["seconds"], 1),
        "backfill_ok": value["runs"] > 0 and value["runs_succeeded"] == value["runs"],
        "s_per_partition": round(value["seconds"] / days, 2),
        "peak_rss_mib": measured.peak_rss_mib,
    }
    if mode == IN_PROCESS:
        row["sensor_tick_ms"] = round(value["sensor_tick_s"] * 1000, 1)
        start_s = value["event_to_run_start_s"]
        row["event_to_run_start_s"] = None if start_s is None else round(start_s, 2)
        row["follow_up_runs"] = value["follow_up_runs"]
    else:
        row["steps"] = "one process per run" if in_process_steps else "one process per step"
        row["daemon_iterations"] = value["iterations"]
        row["backfill_status"] = value["status"]
        row["partitions_per_run"] = value["partitions_per_run"]
        row["run_s_mean"] = round(sum(value["run_seconds"]) / max(1, len(value["run_seconds"])), 2)
        # A deployment's launcher starts one more process per run; its cold start is measured separately.
        row["with_run_worker_starts_s"] = round(value["seconds"] + value["runs"] * worker_start_s, 1)
    return row


def run(
    size: str, workdir: Path, days_list: list[int], modes: tuple[str, ...], in_process_steps: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    daemon_modes = [mode for mode in modes if mode != IN_PROCESS]
    repetitions = 2 if size == "full" else 1
    worker_start_s = run_worker_start_seconds(str(workdir / "worker-start"), repetitions) if daemon_modes else 0.0
    rows = [measure_mode(workdir, days, mode, worker_start_s, in_process_steps) for days in days_list for mode in modes]
    notes = [
        f"{IN_PROCESS}: satlake.runner.backfill_days, one execute_in_process run (what `satlake demo` and "
        "`satlake run` do); then one new event through the telemetry sensor and run_pending_work",
        f"{SINGLE_RUN} / {PER_PARTITION}: an asset backfill of the 6 daily assets submitted to the instance and "
        "driven by Dagster's backfill daemon iteration (dagster._daemon.backfill.execute_backfill_iteration) against "
        "a code server, with satlake's single_run policy / with every daily asset's policy overridden to "
        "BackfillPolicy.multi_run(1); runs execute one after another in the benchmark process, "
        + (
            "each run's steps in that process (in_process_executor, --in-process-steps)"
            if in_process_steps
            else "each step in its own process (multiprocess executor)"
        ),
    ]
    if daemon_modes:
        notes.append(
            f"run worker cold start (python + dagster + satlake definitions), best of {repetitions}: "
            f"{worker_start_s:.2f} s; with_run_worker_starts_s adds one per run, as a deployment's default run "
            "launcher would"
        )
    by_mode = {(row["days"], row["mode"]): row for row in rows}
    comparisons = []
    for days in days_list:
        for mode in modes:
            row = by_mode[(days, mode)]
            # Through the daemon, a deployment also starts one run worker per run: count them.
            seconds = row["backfill_s"] if mode == IN_PROCESS else row["with_run_worker_starts_s"]
            comparisons.append(
                comparison(
                    f"{mode} backfill of {days} partitions (s)",
                    seconds,
                    None,
                    f"365 partitions < {TARGET_365_S:.0f} s",
                    seconds < TARGET_365_S if days >= 365 else None,
                    ("" if days >= 365 else "365 not run; see s_per_partition")
                    + ("" if mode == IN_PROCESS else f"; {row['runs']} runs, with their run worker starts"),
                )
            )
        daemon_single, per_partition = by_mode.get((days, SINGLE_RUN)), by_mode.get((days, PER_PARTITION))
        if per_partition is not None and daemon_single is not None:
            comparisons.append(
                comparison(
                    f"backfill of {days} partitions, one run per partition / single run (daemon, s)",
                    per_partition["with_run_worker_starts_s"],
                    daemon_single["with_run_worker_starts_s"],
                    "",
                    None,
                    "ours = one run per partition, peer = satlake's single run, both through the backfill daemon "
                    "with their run worker starts",
                )
            )
    in_process_rows = [row for row in rows if row["mode"] == IN_PROCESS]
    if in_process_rows:
        latency = in_process_rows[-1]["event_to_run_start_s"]
        comparisons.append(
            comparison(
                "event to run start without the daemon interval (s)",
                latency,
                None,
                "sensor interval (30 s) + 5 s",
                None if latency is None else latency < 5,
            )
        )
    return rows, comparisons, notes


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--days", type=int, nargs="*", default=None, help="partition counts (default by size)")
    parser.add_argument("--modes", nargs="*", choices=ALL_MODES, default=None, help="backfill modes (default by size)")
    parser.add_argument(
        "--in-process-steps",
        action="store_true",
        help="daemon modes: run each run's steps in one process (in_process_executor) instead of one per step",
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    days_list = args.days or [DAYS[args.size]]
    modes = tuple(args.modes or DEFAULT_MODES[args.size])
    with tempfile.TemporaryDirectory(prefix="satlake-bench-orch-", dir=args.workdir) as scratch:
        rows, comparisons, notes = run(args.size, Path(scratch), days_list, modes, args.in_process_steps)
    print_table(rows)
    print()
    print_table(comparisons)
    for note in notes:
        print(note)
    data_size = f"{SATELLITES} satellites every {INTERVAL_S:.0f} s over {', '.join(map(str, days_list))} days"
    extra = " ".join(
        ([f"--days {' '.join(map(str, args.days))}"] if args.days else [])
        + ([f"--modes {' '.join(args.modes)}"] if args.modes else [])
        + (["--in-process-steps"] if args.in_process_steps else [])
    )
    out = args.out
    if out is None and IN_PROCESS not in modes:
        # The daemon modes have their own file, so the in-process figures of the default run stay.
        out = RESULTS_DIR / f"orchestration.daemon{'' if args.size == 'full' else '.' + args.size}.json"
    path = write_result("orchestration", args.size, data_size, rows, comparisons, out, notes, extra)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
