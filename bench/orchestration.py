"""Orchestration overhead: one single-run backfill of N daily partitions of bronze telemetry plus every dbt model
(small data, embedded mode, ``satlake.demo.backfill_days``), and how long a new event waits before a run starts
when the sensors tick (tick evaluation plus run launch; a daemon adds up to the sensor interval on top).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import SIZES, comparison, print_table, run_isolated, write_result

DAYS = {"small": 3, "full": 30}
SATELLITES = 2
INTERVAL_S = 1800.0
TARGET_365_S = 180.0


def orchestration_step(root: str, days: int) -> dict[str, Any]:
    """Everything in one fresh process with its own storage root and a throwaway Dagster instance."""
    os.environ["SATLAKE_ROOT"] = root
    os.environ["SATLAKE_MODE"] = "embedded"
    import dagster as dg

    from satlake.definitions import build_definitions
    from satlake.demo import backfill_days
    from satlake.resources import build_resources
    from satlake.runner import RunOutcome, run_pending_work
    from satlake.settings import Settings
    from satlake.telemetry.ingest import ingest_until_caught_up
    from satlake.telemetry.producer import publish_records, simulate_telemetry
    from satlake.telemetry.sensors import telemetry_events_sensor

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
    day_keys = [(start + timedelta(days=i)).date().isoformat() for i in range(days)]
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
        state = Path(root) / "bench-runner-state.json"
        follow_up = run_pending_work(defs, instance, state)
        first_run = instance.get_run_stats(follow_up[0].run_id) if follow_up else None
    return {
        "produced": produced,
        "ingested": ingested,
        "days": days,
        "backfill_s": backfill_s,
        "backfill_success": all(o.success for o in outcomes),
        "sensor_tick_s": tick_s,
        "tick_requested_runs": len(tick.run_requests or []),
        "event_to_run_start_s": (first_run.start_time - appended_at) if first_run and first_run.start_time else None,
        "follow_up_runs": [f"{o.source}: {o.description} ({'ok' if o.success else 'FAILED'})" for o in follow_up],
    }


def run(size: str, workdir: Path, days_list: list[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    rows = []
    for days in days_list:
        measured = run_isolated(orchestration_step, str(workdir / f"root-{days}"), days)
        value = measured.value
        rows.append(
            {
                "days": days,
                "events": value["produced"],
                "backfill_single_run_s": round(value["backfill_s"], 1),
                "backfill_ok": value["backfill_success"],
                "s_per_partition": round(value["backfill_s"] / days, 2),
                "sensor_tick_ms": round(value["sensor_tick_s"] * 1000, 1),
                "event_to_run_start_s": None
                if value["event_to_run_start_s"] is None
                else round(value["event_to_run_start_s"], 2),
                "peak_rss_mib": measured.peak_rss_mib,
            }
        )
    notes = [f"follow-up runs after one new event: {value['follow_up_runs']}"]
    longest = rows[-1]
    comparisons = [
        comparison(
            f"single-run backfill of {longest['days']} partitions (s)",
            longest["backfill_single_run_s"],
            None,
            f"365 partitions < {TARGET_365_S:.0f} s",
            longest["backfill_single_run_s"] < TARGET_365_S if longest["days"] >= 365 else None,
            "" if longest["days"] >= 365 else "365 not run; see s_per_partition",
        ),
        comparison(
            "event to run start without the daemon interval (s)",
            longest["event_to_run_start_s"],
            None,
            "sensor interval (30 s) + 5 s",
            None if longest["event_to_run_start_s"] is None else longest["event_to_run_start_s"] < 5,
        ),
    ]
    return rows, comparisons, notes


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--days", type=int, nargs="*", default=None, help="partition counts (default by size)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    days_list = args.days or [DAYS[args.size]]
    with tempfile.TemporaryDirectory(prefix="satlake-bench-orch-", dir=args.workdir) as scratch:
        rows, comparisons, notes = run(args.size, Path(scratch), days_list)
    print_table(rows)
    print()
    print_table(comparisons)
    for note in notes:
        print(note)
    data_size = f"{SATELLITES} satellites every {INTERVAL_S:.0f} s over {', '.join(map(str, days_list))} days"
    extra = f"--days {' '.join(map(str, args.days))}" if args.days else ""
    path = write_result("orchestration", args.size, data_size, rows, comparisons, args.out, notes, extra)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
