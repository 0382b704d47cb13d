"""The Mars commands of the ``satlake`` CLI: ``mars fetch`` publishes a request for a rover's sols, ``mars
status`` shows what satlake holds of each rover (manifest, sols fetched, photos, traverse, rejects, budget).

``add_mars_commands(subparsers)`` registers them (entry point ``satlake.cli``).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from satlake.cli_support import CliError, report_for, settings_from_args

if TYPE_CHECKING:
    from satlake.reporting import Report
    from satlake.resources.lakehouse import Lakehouse
    from satlake.settings import Settings

STATUS_COLUMNS = ("rover", "mission", "manifest max sol", "sols fetched", "photos", "images", "waypoints",
                  "driven km", "timelapses", "rejects")  # fmt: skip
MAX_REJECTS_SHOWN = 10


def cmd_mars_fetch(args: argparse.Namespace) -> int:
    from satlake.mars.request import MarsRequestError, new_request, parse_sol_range, publish_request
    from satlake.resources import build_resources

    try:
        first, last = parse_sol_range(args.sols)
        request = new_request(args.rover, first, last, traverse=not args.no_traverse, requested_by="satlake mars fetch")
    except (ValueError, MarsRequestError) as error:
        raise CliError(str(error)) from error
    settings = settings_from_args(args)
    event_log = build_resources(settings).event_log
    publish_request(event_log, settings.mars_topic, request)
    event_log.close()
    report_for(args).line(
        f"published request {request.request_id}: {request.rover} sols {first}..{last} on {settings.mars_topic}; "
        "`satlake run` (or the Dagster daemon) fetches it, `satlake mars status` shows the result"
    )
    return 0


def _count(lakehouse: Lakehouse, table: object, column: str, rover: str) -> int:
    rows = lakehouse.read(table, filters=[(column, "=", rover)], columns=[column])  # type: ignore[arg-type]
    return 0 if rows is None else rows.num_rows


def rover_status(lakehouse: Lakehouse, rover: str) -> tuple[object, ...]:
    """One row of ``mars status``: what the lake holds of ``rover``."""
    import pyarrow.compute as pc

    from satlake.mars.tables import (
        MARS_MANIFESTS,
        MARS_MISSION_TIMELINE,
        MARS_PHOTO_FILES,
        MARS_PHOTOS,
        MARS_REJECTS,
        MARS_TIMELAPSES,
        MARS_WAYPOINTS,
    )

    manifest = lakehouse.read(MARS_MANIFESTS, filters=[("rover_name", "=", rover)], columns=["max_sol", "status"])
    mission, max_sol = "-", "-"
    if manifest is not None and manifest.num_rows:
        mission, max_sol = str(manifest["status"][0].as_py()), str(manifest["max_sol"][0].as_py())
    photos = lakehouse.read(MARS_PHOTOS, filters=[("rover_name", "=", rover)], columns=["id", "sol"])
    sols = "-"
    photo_count = 0
    if photos is not None and photos.num_rows:
        photo_count = len(pc.unique(photos["id"]))
        distinct = pc.unique(photos["sol"])
        sols = f"{len(distinct)} ({pc.min(distinct).as_py()}..{pc.max(distinct).as_py()})"
    files = lakehouse.read(MARS_PHOTO_FILES, filters=[("rover_name", "=", rover)], columns=["object_key"])
    images = 0 if files is None else files.num_rows - files["object_key"].null_count
    timeline = lakehouse.read(MARS_MISSION_TIMELINE, filters=[("rover_name", "=", rover)], columns=["driven_m"])
    driven = "-"
    if timeline is not None and timeline.num_rows and timeline["driven_m"].null_count < timeline.num_rows:
        driven = f"{(pc.sum(timeline['driven_m']).as_py() or 0.0) / 1000:.2f}"
    waypoints = _count(lakehouse, MARS_WAYPOINTS, "rover_name", rover)
    timelapses = _count(lakehouse, MARS_TIMELAPSES, "rover_name", rover)
    rejects = _count(lakehouse, MARS_REJECTS, "rover", rover)
    return rover, mission, max_sol, sols, photo_count, images, waypoints, driven, timelapses, rejects


def _recent_rejects(lakehouse: Lakehouse, report: Report) -> None:
    from satlake.mars.tables import MARS_REJECTS

    rejects = lakehouse.read(MARS_REJECTS, columns=["rejected_at", "kind", "rover", "sol", "reason"])
    if rejects is None or not rejects.num_rows:
        return
    rows = sorted(rejects.to_pylist(), key=lambda row: row["rejected_at"], reverse=True)[:MAX_REJECTS_SHOWN]
    report.table(
        ("when", "kind", "rover", "sol", "reason"),
        [(r["rejected_at"].strftime("%Y-%m-%d %H:%M"), r["kind"], r["rover"], r["sol"], r["reason"]) for r in rows],
        title=f"latest rejects (bronze.mars_rejects, {rejects.num_rows} in all)",
    )


def _budget_line(settings: Settings, lakehouse: Lakehouse) -> str:
    from satlake.mars.fetch import requests_in_last_hour
    from satlake.settings import NASA_DEMO_KEY

    used = requests_in_last_hour(lakehouse, datetime.now(UTC))
    return (
        f"API requests in the last hour: {used} of SATLAKE_MARS_REQUEST_BUDGET={settings.mars_request_budget} "
        f"({'DEMO_KEY' if settings.nasa_api_key == NASA_DEMO_KEY else 'a personal key'})"
    )


def cmd_mars_status(args: argparse.Namespace) -> int:
    from satlake.mars.rovers import UnknownRover, rover_named
    from satlake.resources import build_resources

    settings = settings_from_args(args)
    try:
        rovers = [rover_named(args.rover).name] if args.rover else list(settings.mars_rovers)
    except UnknownRover as error:
        raise CliError(str(error)) from error
    lakehouse = build_resources(settings).lakehouse
    report = report_for(args)
    report.table(STATUS_COLUMNS, [rover_status(lakehouse, rover) for rover in rovers], title="Mars rovers")
    report.line(_budget_line(settings, lakehouse))
    _recent_rejects(lakehouse, report)
    return 0


def add_mars_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``mars fetch`` and ``mars status`` on the CLI's top-level subparsers."""
    mars = subparsers.add_parser("mars", help="Mars rover missions: photos, manifests and traverses from NASA's APIs")
    actions = mars.add_subparsers(dest="action", required=True)
    fetch = actions.add_parser(
        "fetch",
        help="request a rover's manifest, photos of a range of sols and traverse",
        description="Publish a Mars request on SATLAKE_MARS_TOPIC; `satlake run` or the daemon fetches it within the "
        "hourly request budget (SATLAKE_MARS_REQUEST_BUDGET). Exit code 2 on bad input.",
    )
    fetch.add_argument("--rover", required=True, help="curiosity, perseverance, opportunity or spirit")
    fetch.add_argument("--sols", required=True, metavar="FIRST:LAST", help="the sols to fetch, e.g. 1000:1010")
    fetch.add_argument("--no-traverse", action="store_true", help="skip the MMGIS traverse")
    fetch.add_argument("--stack", action="store_true", help="publish on the stack's Kafka")
    fetch.set_defaults(func=cmd_mars_fetch)
    status = actions.add_parser("status", help="what the lake holds of each followed rover")
    status.add_argument("--rover", help="one rover (default: SATLAKE_MARS_ROVERS)")
    status.add_argument("--stack", action="store_true", help="read the stack's lakehouse")
    status.set_defaults(func=cmd_mars_status)
