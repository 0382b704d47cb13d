"""The demo's Mars mission: the recorded NASA responses (``tests/fixtures/mars``) served by a local replay of the
photo API, MMGIS and the image host, a request for a few sols of two rovers, the pipeline run through the same
sensors and automation a deployment uses, and the mission timeline from gold.

The requests are published once per storage root; a second demo run finds the Mars tables built and only reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from satlake.mars.replay import MarsReplayServer
from satlake.mars.request import new_request, publish_request
from satlake.reporting import Report
from satlake.resources import build_resources
from satlake.runner import RunOutcome, run_pending_work
from satlake.settings import Settings

RECORDED_RESPONSES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "mars"
DEMO_SOLS = {"curiosity": (1000, 1002), "perseverance": (100, 102)}  # what the recorded responses hold
TIMELINE_QUERY = """SELECT rover_name AS rover, sol, earth_date, photos, cameras, round(driven_m, 1) AS driven_m,
       round(cumulative_m, 1) AS cumulative_m, manifest_photos
FROM gold.mars_mission_timeline WHERE photos > 0 ORDER BY rover_name, sol"""
DRIVE_QUERY = """SELECT rover_name AS rover, count(*) AS sols_driven, round(sum(driven_m) / 1000, 2) AS driven_km,
       min(sol) AS first_sol, max(sol) AS last_sol
FROM gold.mars_mission_timeline WHERE driven_m > 0 GROUP BY rover_name ORDER BY rover_name"""


def publish_demo_requests(settings: Settings, marker: Path, say: Callable[[str], None]) -> int:
    """Publish one request per demo rover, once per storage root; returns how many were published now."""
    if marker.exists():
        say("Mars: requested by an earlier demo run; not requesting again")
        return 0
    event_log = build_resources(settings).event_log
    published = []
    for rover, (first, last) in DEMO_SOLS.items():
        request = new_request(rover, first, last, requested_by="satlake demo")
        publish_request(event_log, settings.mars_topic, request)
        published.append(request.request_id)
        say(f"Mars: requested {rover} sols {first}..{last} ({request.request_id})")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"requests": published}))
    return len(published)


def report_timeline(settings: Settings, report: Report) -> bool:
    """Print the mission timeline from gold; False when it cannot be read."""
    engine = build_resources(settings).query_engine
    try:
        timeline = engine.query(TIMELINE_QUERY)
        drives = engine.query(DRIVE_QUERY)
    except Exception as error:  # a failed run above leaves the table missing: say so, the demo goes on
        report.error(f"the Mars mission timeline could not be read: {error}")
        return False
    report.line(f"mission timeline (gold.mars_mission_timeline, sols with photos; {engine.name}):")
    report.line(timeline.format_table())
    report.line("traverse (MMGIS waypoints, geodesic on the Mars ellipsoid):")
    report.line(drives.format_table())
    return bool(timeline.rows)


def run_mars_demo(settings: Settings, instance: dg.DagsterInstance, report: Report) -> list[RunOutcome]:
    """Run the Mars section against the recorded responses; returns its runs (a failed report adds a failed one)."""
    from satlake.definitions import build_definitions

    if not (RECORDED_RESPONSES / "manifests").is_dir():
        report.warning(f"Mars: no recorded responses at {RECORDED_RESPONSES} (run the demo from a clone); skipped")
        return []
    with MarsReplayServer(RECORDED_RESPONSES) as server:
        mars_settings = settings.with_overrides(mars_photos_url=server.photos_url, mars_mmgis_url=server.mmgis_url)
        report.line(f"Mars: the photo API, MMGIS and the image host replayed from {RECORDED_RESPONSES} at "
                    f"{server.base_url}")  # fmt: skip
        publish_demo_requests(mars_settings, settings.root / "demo" / "mars.json", report.line)
        defs = build_definitions(mars_settings)
        outcomes = report.track_runs(
            "runs of the Mars sensors and automation", lambda count: run_pending_work(defs, instance, report=count)
        )
    if not report_timeline(settings, report):
        outcomes.append(RunOutcome("report", "Mars mission timeline", "-", False, 0.0))
    return outcomes
