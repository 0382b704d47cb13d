"""The demo's mission: DEMOSAT, described by the XTCE satlake ships (``missions/demosat.xml``, written for the
demo). Its packets are generated from that XTCE (ten minutes of housekeeping, attitude and power, one battery
excursion), sent through a collector over TCP as a ground station would, and decoded by the same sensor, assets
and dbt models a deployment runs. The report shows the packets, the sequence check and the alarm.

The packets are sent once per storage root; a second demo run finds them decoded and only reports.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from satlake.reporting import Report
from satlake.reporting.report import checks_summary
from satlake.resources import SatlakeResources, build_resources
from satlake.runner import SectionResult, check_results, run_failures, run_pending_work
from satlake.settings import Settings

DEMO_MISSION = "demosat"
DEMO_XTCE = Path(__file__).resolve().parent / "missions" / "demosat.xml"
DEMO_STATION = "demo-station"
DEMO_SECONDS = 600
PACKETS_QUERY = """SELECT p.packet_type, count(*) AS packets, min(p.packet_time) AS first, max(p.packet_time) AS last
FROM bronze.packets p WHERE p.mission = 'demosat' GROUP BY p.packet_type ORDER BY p.packet_type"""
ALARMS_QUERY = """SELECT parameter, trigger_severity, severity, violations, min_violations, triggered_at, returned_at
FROM gold.alarms WHERE mission = 'demosat' ORDER BY triggered_at"""


def send_demo_packets(resources: SatlakeResources, marker: Path) -> str:
    """Register DEMOSAT and a station, generate the packets and send them through a collector over TCP, once per
    storage root; says what happened."""
    from satlake.ground.collector import Collector
    from satlake.ground.collector_core import CollectorConfig
    from satlake.ground.registry import add_mission, add_station, load_missions, load_stations
    from satlake.ground.replay import replay_over_tcp
    from satlake.ground.simulate import simulate_packets

    if marker.exists():
        return "packets sent by an earlier demo run"
    settings, lakehouse = resources.settings, resources.lakehouse
    record, _ = add_mission(lakehouse, settings, DEMO_MISSION, DEMO_XTCE, added_by="satlake demo")
    resources.event_log.create_topic(record.topic, settings.packets_partitions)
    _, token = add_station(lakehouse, DEMO_STATION, (DEMO_MISSION,))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=DEMO_SECONDS)
    packets = simulate_packets(record.database, start=start, seconds=DEMO_SECONDS)
    archive = marker.with_suffix(".bin")  # what a station would have recorded: packets back to back
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(b"".join(packets))
    config = CollectorConfig(tcp_port=0, http_port=None, name="demo", topic_partitions=settings.packets_partitions)
    collector = Collector(
        resources.event_log, lambda: load_missions(lakehouse), lambda: load_stations(lakehouse), config
    )
    with collector:
        assert collector.ports is not None and collector.ports.tcp is not None
        port = collector.ports.tcp
        summary = replay_over_tcp("127.0.0.1", port, [archive], mission=DEMO_MISSION, station=DEMO_STATION,
                                  token=token)  # fmt: skip
    marker.write_text(json.dumps({"packets": len(packets), "acknowledged": summary.packets}))
    types = len(record.apids)
    return (f"sent {len(packets):,} packets ({types} types, {DEMO_SECONDS // 60} min) over TCP through a collector "
            f"on 127.0.0.1:{port}: {summary.packets:,} acknowledged, {summary.rejects} rejected")  # fmt: skip


def report_ground(resources: SatlakeResources, report: Report, checks: str) -> bool:
    """The packets per type and the alarms, from the lake; False when they cannot be read."""
    engine = resources.query_engine
    try:
        packets = engine.query(PACKETS_QUERY).rows
        alarms = engine.query(ALARMS_QUERY).rows
        gaps = engine.query(
            "SELECT count(*) FROM bronze.packet_sequence_events WHERE mission = 'demosat' AND kind = 'gap'"
        ).rows[0][0]
    except Exception as error:  # a failed run above leaves a table missing: say so, the demo goes on
        report.error(f"the DEMOSAT tables could not be read: {error}")
        return False
    kinds = ", ".join(f"{name} {count:,}" for name, count, _, _ in packets)
    report.line(f"  bronze.packets: {kinds}; sequence gaps: {gaps}" + (f"; {checks}" if checks else ""))
    for parameter, trigger, worst, violations, minimum, triggered, returned in alarms:
        back = f"back to normal {returned:%H:%M:%S}" if returned is not None else "still active"
        report.line(f"  gold.alarms: {parameter} {trigger} (worst {worst}) triggered {triggered:%H:%M:%S} after "
                    f"{minimum} consecutive violations ({violations} in all), {back}")  # fmt: skip
    if not alarms:
        report.line("  gold.alarms: none")
    return bool(packets)


def run_ground_demo(settings: Settings, instance: dg.DagsterInstance, report: Report) -> SectionResult:
    """Run the ground section: DEMOSAT's packets through a collector, decoded, with one alarm."""
    from satlake.definitions import build_definitions

    resources = build_resources(settings)
    report.heading(f"ground segment (mission {DEMO_MISSION}, XTCE {DEMO_XTCE.name}):")
    sent = send_demo_packets(resources, settings.root / "demo" / "ground.json")
    defs = build_definitions(settings)  # after the mission is registered: its packet-type tables are assets
    outcomes = report.track_runs(
        f"  {sent}; runs", lambda count: run_pending_work(defs, instance, report=count), detail=False
    )
    for failure in run_failures(instance, outcomes):
        report.error(failure)
    checks = check_results(instance, [o.run_id for o in outcomes])
    read_ok = report_ground(resources, report, checks_summary(checks) if checks else "")
    failed = report.failed_checks(checks, summary=False)
    return SectionResult(all(o.success for o in outcomes) and read_ok, failed, outcomes)
