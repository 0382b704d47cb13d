"""The demo's Mars mission: the recorded NASA responses (``tests/fixtures/mars``) served by a local replay of the
photo API, MMGIS and the image host, a request for a few sols of two rovers, the pipeline run through the same
sensors and automation a deployment uses, and the mission timeline from gold, in a dozen lines of the report.

The requests are published once per storage root; a second demo run finds the Mars tables built and only reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from satlake.mars.replay import MarsReplayServer
from satlake.mars.request import new_request, publish_request
from satlake.reporting import Report
from satlake.reporting.report import checks_summary
from satlake.resources import build_resources
from satlake.runner import SectionResult, check_results, run_failures, run_pending_work
from satlake.settings import Settings

RECORDED_RESPONSES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "mars"
DEMO_SOLS = {"curiosity": (1000, 1002), "perseverance": (100, 102)}  # what the recorded responses hold
TIMELINE_QUERY = """SELECT rover_name AS rover, sol, earth_date, photos, cameras, round(driven_m, 1) AS driven_m,
       round(cumulative_m, 1) AS cumulative_m, manifest_photos
FROM gold.mars_mission_timeline WHERE photos > 0 ORDER BY rover_name, sol"""
DRIVE_QUERY = """SELECT rover_name AS rover, count(*) AS sols, round(sum(driven_m) / 1000, 2) AS km,
       min(sol) AS first_sol, max(sol) AS last_sol
FROM gold.mars_mission_timeline WHERE driven_m > 0 GROUP BY rover_name ORDER BY rover_name"""


def publish_demo_requests(settings: Settings, marker: Path) -> str:
    """Publish one request per demo rover, once per storage root; says what was requested."""
    if marker.exists():
        return "requested by an earlier demo run"
    event_log = build_resources(settings).event_log
    published = []
    for rover, (first, last) in DEMO_SOLS.items():
        request = new_request(rover, first, last, requested_by="satlake demo")
        publish_request(event_log, settings.mars_topic, request)
        published.append(request.request_id)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"requests": published}))
    return "requested " + ", ".join(f"{rover} sols {first}..{last}" for rover, (first, last) in DEMO_SOLS.items())


def report_timeline(settings: Settings, report: Report, checks: str = "") -> bool:
    """Print the mission timeline from gold (its sols with photos) and each rover's drive; False when unreadable."""
    engine = build_resources(settings).query_engine
    try:
        timeline = engine.query(TIMELINE_QUERY)
        drives = engine.query(DRIVE_QUERY)
    except Exception as error:  # a failed run above leaves the table missing: say so, the demo goes on
        report.error(f"the Mars mission timeline could not be read: {error}")
        return False
    checks = f"{checks}; " if checks else ""
    report.line(f"  {checks}mission timeline (gold.mars_mission_timeline, sols with photos; {engine.name}):")
    table = timeline.format_table().splitlines()
    for line in [table[0], *table[2 : len(timeline.rows) + 2]]:  # the header and the rows
        report.line(f"    {line}".rstrip())
    driven = "; ".join(f"{r[0]} {r[2]:.2f} km over {r[1]} sols ({r[3]}..{r[4]})" for r in drives.rows)
    report.line(f"  driven (MMGIS traverse, geodesics on the Mars ellipsoid): {driven or 'no traverse'}")
    return bool(timeline.rows)


def run_mars_demo(settings: Settings, instance: dg.DagsterInstance, report: Report) -> SectionResult:
    """Run the Mars section against the recorded responses and report it."""
    from satlake.definitions import build_definitions

    if not (RECORDED_RESPONSES / "manifests").is_dir():
        report.heading("Mars:")
        report.warning(f"no recorded Mars responses at {RECORDED_RESPONSES} (run the demo from a clone); skipped")
        return SectionResult(runs_ok=True)
    with MarsReplayServer(RECORDED_RESPONSES) as server:
        report.heading(f"Mars (NASA's photo API, MMGIS and image host replayed from recordings at {server.base_url}):")
        mars_settings = settings.with_overrides(mars_photos_url=server.photos_url, mars_mmgis_url=server.mmgis_url)
        requested = publish_demo_requests(mars_settings, settings.root / "demo" / "mars.json")
        defs = build_definitions(mars_settings)
        outcomes = report.track_runs(
            f"  {requested}; runs", lambda count: run_pending_work(defs, instance, report=count), detail=False
        )
    for failure in run_failures(instance, outcomes):
        report.error(failure)
    checks = check_results(instance, [o.run_id for o in outcomes])
    timeline_ok = report_timeline(settings, report, checks_summary(checks) if checks else "")
    failed = report.failed_checks(checks, summary=False)
    return SectionResult(runs_ok=all(o.success for o in outcomes) and timeline_ok, failed_checks=failed,
                          outcomes=outcomes)  # fmt: skip
