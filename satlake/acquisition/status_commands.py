"""``satlake acquire`` (publish a download request for an AOI) and ``satlake aoi status`` (what an AOI has
requested, acquired and alerted), registered by ``commands.add_acquisition_commands``."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import TYPE_CHECKING

from satlake.acquisition.aoi import AoiError
from satlake.cli_support import CliError, report_for, settings_from_args

if TYPE_CHECKING:
    from satlake.resources import SatlakeResources

ALERT_COLUMNS = ("after", "before", "scene", "loss ha", "of polygon ha", "NDVI drop", "lon,lat")
MAX_ALERTS_SHOWN = 20


def _resources(args: argparse.Namespace) -> SatlakeResources:
    from satlake.resources import build_resources

    return build_resources(settings_from_args(args))


def cmd_acquire(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from satlake.acquisition.aoi_table import get_aoi
    from satlake.acquisition.request import RequestError, days_range, new_request, publish_request

    settings = settings_from_args(args)
    resources = _resources(args)
    try:
        aoi = get_aoi(resources.lakehouse, args.aoi)
    except AoiError as error:
        raise CliError(str(error)) from error
    today = datetime.now(UTC).date()
    window = args.datetime or days_range(aoi.since or today - timedelta(days=30), today)
    try:
        request = new_request(aoi.name, window)
    except RequestError as error:
        raise CliError(f"--datetime {window!r}: {error}") from error
    publish_request(resources.event_log, settings.acquisition_topic, request)
    resources.event_log.close()
    report_for(args).line(
        f"published request {request.request_id} for AOI {aoi.name} ({request.datetime}) on "
        f"{settings.acquisition_topic}; `satlake run` (or the Dagster daemon) acquires it, "
        f"`satlake aoi status {aoi.name}` shows the result"
    )
    return 0


def _status_counts(acquisitions: list[dict[str, object]]) -> str:
    counts = Counter(str(row["status"]) for row in acquisitions if row["item_id"] is not None)
    fetched = sum(int(row["bytes_fetched"] or 0) for row in acquisitions)  # type: ignore[call-overload]
    source = sum(int(row["source_bytes"] or 0) for row in acquisitions)  # type: ignore[call-overload]
    share = f" ({100 * fetched / source:.1f}% of the {source:,} bytes of the source files)" if source else ""
    parts = ", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "none"
    return f"items: {parts}; {fetched:,} bytes fetched{share}"


def cmd_aoi_status(args: argparse.Namespace) -> int:
    import shapely

    from satlake.acquisition.aoi_table import get_aoi
    from satlake.acquisition.tables import ACQUISITION_REQUESTS, ACQUISITIONS, FOREST_CHANGE_ALERTS

    lakehouse = _resources(args).lakehouse
    try:
        aoi = get_aoi(lakehouse, args.name)
    except AoiError as error:
        raise CliError(str(error)) from error
    report = report_for(args)
    west, south, east, north = aoi.bbox
    report.line(
        f"AOI {aoi.name}: {aoi.area_km2:,.1f} km² in {west:.4f},{south:.4f},{east:.4f},{north:.4f}; source "
        f"{aoi.source}, collections {', '.join(aoi.collections)}, cloud cover <= {aoi.cloud_cover_max}, alerts "
        f">= {aoi.alert_min_ha:g} ha"
    )
    requests = lakehouse.read(ACQUISITION_REQUESTS, filters=[("aoi", "=", aoi.name)])
    acquisitions = lakehouse.read(ACQUISITIONS, filters=[("aoi", "=", aoi.name)])
    rows = acquisitions.to_pylist() if acquisitions is not None else []
    searched = {row["request_id"] for row in rows if row["status"] == "searched"}
    failed = [row for row in rows if row["item_id"] is None and row["status"] == "rejected"]
    report.line(
        f"requests: {requests.num_rows if requests is not None else 0} received, {len(searched)} searched to the "
        f"end, {len(failed)} failed; {_status_counts(rows)}"
    )
    for row in failed[-3:]:
        report.line(f"  request {row['request_id']}: {row['reason']}")
    alerts = lakehouse.read(FOREST_CHANGE_ALERTS, filters=[("aoi", "=", aoi.name)])
    if alerts is None or not alerts.num_rows:
        report.line("forest-change alerts: none yet")
        return 0
    ordered = sorted(alerts.to_pylist(), key=lambda row: (row["after_date"], row["scene_id"]), reverse=True)
    report.heading(f"forest-change alerts ({len(ordered)}, {sum(r['area_ha'] for r in ordered):,.2f} ha):")
    table_rows = []
    for row in ordered[:MAX_ALERTS_SHOWN]:
        centre = shapely.from_wkb(row["geometry_lonlat_wkb"]).centroid
        drop = "-" if row["mean_ndvi_drop"] is None else f"{row['mean_ndvi_drop']:.2f}"
        table_rows.append(
            (str(row["after_date"]), str(row["before_date"]), row["scene_id"], round(row["area_ha"], 2),
             round(row["polygon_area_ha"], 2), drop, f"{centre.x:.5f},{centre.y:.5f}")
        )  # fmt: skip
    report.table(list(ALERT_COLUMNS), table_rows)
    if len(ordered) > MAX_ALERTS_SHOWN:
        report.line(f"... and {len(ordered) - MAX_ALERTS_SHOWN} older (SELECT * FROM gold.forest_change_alerts)")
    return 0


def add_request_commands(subparsers: argparse._SubParsersAction, aoi_actions: argparse._SubParsersAction) -> None:
    """Register ``satlake acquire`` and ``satlake aoi status``."""
    acquire = subparsers.add_parser(
        "acquire",
        help="publish a download request for an AOI's scenes (STAC search, windows of the bands it needs)",
        description="Publish an acquisition request on the requests topic (Kafka in stack mode, the local log "
        "otherwise); the acquisition sensor picks it up. Exit code 2 on bad input.",
    )
    acquire.add_argument("--aoi", required=True, metavar="NAME", help="an AOI of `satlake aoi list`")
    acquire.add_argument(
        "--datetime",
        metavar="A/B",
        help="RFC 3339 interval or date (default: the AOI's since day, or the last 30 days, to today)",
    )
    acquire.add_argument("--stack", action="store_true", help="publish to the stack's Kafka")
    acquire.set_defaults(func=cmd_acquire)

    status = aoi_actions.add_parser("status", help="what an AOI has requested, acquired and alerted")
    status.add_argument("name", metavar="NAME")
    status.add_argument("--stack", action="store_true", help="read the stack's lakehouse")
    status.set_defaults(func=cmd_aoi_status)
