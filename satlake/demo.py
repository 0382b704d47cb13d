"""``satlake demo``: produce a few satellites' telemetry over two days (faults included), run every asset and
check through the same sensors and automation a deployment uses, and print what the lakehouse now holds.

Safe to run twice: events are produced once per storage root, and re-running partitions replaces them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from satlake.partitions import DEFAULT_LOOKBACK_DAYS
from satlake.reporting import Report
from satlake.resources import SatlakeResources, build_resources
from satlake.runner import (
    LEGACY_STATE_FILE,
    RunOutcome,
    backfill_days,
    check_results,
    dagster_instance,
    run_failures,
    run_pending_work,
)
from satlake.settings import Settings
from satlake.telemetry.producer import publish_records, simulate_telemetry

DEMO_SATELLITES = 4
DEMO_DAYS = DEFAULT_LOOKBACK_DAYS  # the days a fresh root's partitions cover: the UI shows exactly these
DEMO_INTERVAL_S = 20.0
DEMO_FAULT_RATE = 0.02
DEMO_SEED = 7

ZONE_ORDER = ("raw", "bronze", "silver", "gold", "catalog")
SAMPLE_QUERY = """SELECT h.satellite_name, sum(h.reading_count) AS readings, round(avg(h.temp_c_avg), 1) AS avg_temp_c,
  round(min(h.battery_charge_pct_min), 1) AS min_battery_pct, (SELECT count(*) FROM gold.telemetry_anomalies a
  WHERE a.satellite_name = h.satellite_name) AS anomalies FROM gold.telemetry_hourly h GROUP BY 1 ORDER BY 1"""


@dataclass(frozen=True)
class DemoWindow:
    start_ns: int
    end_ns: int
    events: int

    @property
    def days(self) -> list[str]:
        first = datetime.fromtimestamp(self.start_ns / 1e9, UTC).date()
        last = datetime.fromtimestamp((self.end_ns - 1) / 1e9, UTC).date()
        return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def produce_demo_telemetry(resources: SatlakeResources, marker: Path, report: Report) -> DemoWindow:
    """Publish the demo's events once per storage root; later runs reuse the recorded window."""
    if marker.exists():
        recorded = DemoWindow(**json.loads(marker.read_text()))
        report.line(
            f"telemetry already produced by an earlier demo run ({recorded.events} events); not producing again"
        )
        return recorded
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=DEMO_DAYS)
    start_ns, end_ns = int(start.timestamp() * 1e9), int(end.timestamp() * 1e9)
    topic = resources.settings.telemetry_topic
    resources.event_log.create_topic(topic, resources.settings.telemetry_partitions)
    report.line(f"producing {DEMO_SATELLITES} satellites x {DEMO_DAYS} days every {DEMO_INTERVAL_S:g} s "
        f"({DEMO_FAULT_RATE:.0%} injected faults) to {topic}")  # fmt: skip
    records = simulate_telemetry(
        satellites=DEMO_SATELLITES, start_ns=start_ns, end_ns=end_ns, interval_s=DEMO_INTERVAL_S,
        fault_rate=DEMO_FAULT_RATE, seed=DEMO_SEED,
    )  # fmt: skip
    with report.progress(f"publishing to {topic}") as progress:
        produced = publish_records(resources.event_log, topic, records, progress=progress)
    window = DemoWindow(start_ns=start_ns, end_ns=end_ns, events=produced)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(window.__dict__))
    return window


def zone_lines(counts: dict[tuple[str, str], int], width: int = 118) -> list[str]:
    """Row counts of ``(zone, table)`` as lines per zone, ``  zone:   table count · table count ...`` wrapped at
    ``width``: one line per zone or two, however many tables the domains add."""
    zones = sorted({zone for zone, _ in counts}, key=lambda z: (ZONE_ORDER.index(z) if z in ZONE_ORDER else 99, z))
    indent = 2 + max((len(zone) for zone in zones), default=0) + 2
    lines = []
    for zone in zones:
        cells = [f"{name} {count:,}" for (table_zone, name), count in sorted(counts.items()) if table_zone == zone]
        line = f"  {zone + ':':<{indent - 2}}{cells[0]}"
        for cell in cells[1:]:
            if len(line) + 3 + len(cell) > width:
                lines.append(line)
                line = " " * indent + cell
            else:
                line += " · " + cell
        lines.append(line)
    return lines


def run_demo(settings: Settings, report: Report | None = None) -> bool:
    """Run the whole demo; returns True when every run and every check succeeded."""
    report = report or Report()
    started = time.perf_counter()
    report.line(f"satlake demo · mode {settings.mode.value} · storage root {settings.root}")
    from satlake.definitions import build_definitions

    resources = build_resources(settings)
    window = produce_demo_telemetry(resources, settings.root / "demo" / "telemetry.json", report)
    defs = build_definitions(settings)
    instance = dagster_instance(settings.dagster_home)

    state = settings.dagster_home / LEGACY_STATE_FILE
    outcomes = report.track_runs(
        "runs of the telemetry sensors and automation", partial(run_pending_work, defs, instance, state), detail=False
    )
    if not any(o.description.startswith("bronze_telemetry_job") for o in outcomes):
        # Nothing new arrived (a second demo run): re-run every demo day to show the result is identical.
        report.line(f"no new events; re-running days {window.days[0]}..{window.days[-1]} as one backfill")
        outcomes += report.track_runs(
            "backfill runs", partial(backfill_days, defs, instance, window.days), detail=False
        )

    report.heading("scenes:")
    from satlake.acquisition.demo import DEMO_TILE_PREFIX, acquisition_demo
    from satlake.scenes.demo import run_scene_demo

    # The first tile's scenes are acquired from a local STAC API while the scene pipeline runs; the rest are put.
    with acquisition_demo(settings, report) as acquisition:
        scenes_ok = run_scene_demo(settings, defs, instance, report, acquired_prefix=DEMO_TILE_PREFIX)
    scenes_ok = acquisition.report(report) and scenes_ok

    from satlake.mars.demo import run_mars_demo

    mars = run_mars_demo(settings, instance, report)

    from satlake.ground.demo import run_ground_demo

    ground = run_ground_demo(settings, instance, report)

    from satlake.serving.definitions import serving_note

    report.line(serving_note(settings))

    engine = resources.query_engine
    report.heading("tables (rows):")
    counts = {}
    for table in resources.lakehouse.list_tables():
        counts[(table.zone, table.name)] = engine.query(f'SELECT count(*) FROM "{table.zone}"."{table.name}"').rows[0][
            0
        ]
    for line in zone_lines(counts):  # a line or two per zone: the report stays short as domains add tables
        report.line(line)

    from satlake.telemetry.limits_file import load_limits
    from satlake.telemetry.report import contract_report

    limits = load_limits(settings.telemetry_limits_path)
    contract = contract_report(resources.lakehouse, limits)
    report.heading(f"telemetry contract: {contract[0]}")
    report.line("\n".join(contract[1:]))

    failed = report.checks("asset checks", check_results(instance, [o.run_id for o in outcomes]))
    failed += mars.failed_checks + ground.failed_checks

    report.heading(f"sample query ({engine.name}):")
    report.line(SAMPLE_QUERY)
    try:
        report.line(engine.query(SAMPLE_QUERY).format_table())
    except Exception as error:  # a failed run above leaves a table missing; the report says so and goes on
        report.error(f"the sample query failed: {error}")
        outcomes.append(RunOutcome("report", "sample query", "-", False, 0.0))

    for failure in run_failures(instance, outcomes):
        report.error(failure)
    runs_ok = all(o.success for o in outcomes) and scenes_ok and mars.runs_ok and ground.runs_ok
    report.heading(f"demo finished in {time.perf_counter() - started:.0f}s: "
                   f"{'all runs succeeded' if runs_ok else 'some runs FAILED'}, "
                   f"{'all checks passed' if not failed else f'{len(failed)} checks failed'}")  # fmt: skip
    return runs_ok and not failed
