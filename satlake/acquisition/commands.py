"""The AOI commands of the ``satlake`` CLI: ``aoi add``, ``aoi list`` and ``aoi remove``.

``add_acquisition_commands(subparsers)`` registers them on the top-level subparsers; further ``aoi``
subcommands join through ``aoi_subparsers(subparsers)``, which returns the ``aoi`` command's subparsers
(creating the command the first time).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from satlake.acquisition.aoi import (
    DEFAULT_ALERT_MIN_HA,
    DEFAULT_CLOUD_COVER_MAX,
    DEFAULT_COLLECTIONS,
    DEFAULT_SOURCE,
    AoiError,
    AreaOfInterest,
    new_aoi,
    parse_bbox,
    parse_collections,
    parse_geojson,
)
from satlake.cli_support import CliError, report_for, settings_from_args

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from satlake.resources.lakehouse import Lakehouse
    from satlake.settings import Settings

LIST_COLUMNS = ("name", "source", "collections", "cloud max", "since", "area km²", "bbox", "created")
NO_AOIS_MESSAGE = (
    "no AOIs yet: add one with `satlake aoi add NAME --bbox=W,S,E,N` or `satlake aoi add NAME --geojson FILE`"
)


def lakehouse_for(settings: Settings) -> Lakehouse:
    from satlake.resources import build_resources

    return build_resources(settings).lakehouse


def format_bbox(bbox: tuple[float, float, float, float]) -> str:
    return ",".join(f"{value:.4f}" for value in bbox)


def _timestamp(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def read_geometry(geojson: str | None, bbox: str | None) -> BaseGeometry:
    """The AOI geometry from ``--geojson FILE`` (``-`` reads stdin) or ``--bbox W,S,E,N``."""
    if bbox is not None:
        return parse_bbox(bbox)
    assert geojson is not None, "argparse requires --geojson or --bbox"
    if geojson == "-":
        return parse_geojson(sys.stdin.read(), "GeoJSON on stdin")
    path = Path(geojson)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"--geojson {geojson}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"--geojson {geojson}: a directory, not a GeoJSON file") from None
    except UnicodeDecodeError:
        raise CliError(f"--geojson {geojson}: not UTF-8 text, so not GeoJSON") from None
    except OSError as error:
        raise CliError(f"--geojson {geojson}: cannot read it ({error.strerror or error})") from None
    return parse_geojson(text, geojson)


def parse_since(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CliError(f"--since {text!r} is not a day: write YYYY-MM-DD, e.g. --since 2024-05-01") from None


def added_line(aoi: AreaOfInterest, source_name: str, source_url: str) -> str:
    """What ``aoi add`` prints about the AOI it stored."""
    source = f"{source_name} ({source_url})"
    return (
        f"added AOI {aoi.name}: {aoi.area_km2:,.1f} km², bbox {format_bbox(aoi.bbox)}, source {source}, "
        f"collections {', '.join(aoi.collections)}"
    )


def cmd_aoi_add(args: argparse.Namespace) -> int:
    from satlake.acquisition.aoi_table import add_aoi
    from satlake.acquisition.request import requester

    settings = settings_from_args(args)
    try:
        geometry = read_geometry(args.geojson, args.bbox)
        aoi, source = new_aoi(
            settings,
            args.name,
            geometry,
            created_by=requester(),
            collections=parse_collections(args.collections),
            cloud_cover_max=args.cloud_cover_max,
            since=parse_since(args.since),
            source=args.source,
            alert_min_ha=args.alert_min_ha,
        )
        add_aoi(lakehouse_for(settings), aoi, source.url)
    except AoiError as error:
        raise CliError(str(error)) from error
    report_for(args).line(added_line(aoi, source.name, source.url))
    return 0


def aoi_list_rows(aois: list[AreaOfInterest], include_removed: bool) -> list[tuple[str, ...]]:
    rows = []
    for aoi in aois:
        row = (
            aoi.name,
            aoi.source,
            ",".join(aoi.collections),
            "-" if aoi.cloud_cover_max is None else f"{aoi.cloud_cover_max:g}",
            "-" if aoi.since is None else aoi.since.isoformat(),
            f"{aoi.area_km2:,.1f}",
            format_bbox(aoi.bbox),
            _timestamp(aoi.created_at),
        )
        rows.append((*row, _timestamp(aoi.removed_at)) if include_removed else row)
    return rows


def cmd_aoi_list(args: argparse.Namespace) -> int:
    from satlake.acquisition.aoi_table import load_aois

    aois = load_aois(lakehouse_for(settings_from_args(args)), include_removed=args.all)
    report = report_for(args)
    if not aois:
        report.line(NO_AOIS_MESSAGE)
        return 0
    columns = [*LIST_COLUMNS, "removed"] if args.all else list(LIST_COLUMNS)
    report.table(columns, aoi_list_rows(aois, args.all))
    return 0


def cmd_aoi_remove(args: argparse.Namespace) -> int:
    from satlake.acquisition.aoi_table import remove_aoi

    try:
        removed = remove_aoi(lakehouse_for(settings_from_args(args)), args.name)
    except AoiError as error:
        raise CliError(str(error)) from error
    report_for(args).line(
        f"removed AOI {removed.name} (added {_timestamp(removed.created_at)} by {removed.created_by}); it is no "
        "longer searched, and `satlake aoi list --all` still shows it"
    )
    return 0


def aoi_subparsers(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The subparsers of the top-level ``aoi`` command (created when missing), to add ``aoi`` subcommands to."""
    aoi = subparsers.choices.get("aoi")
    if aoi is None:
        aoi = subparsers.add_parser("aoi", help="areas of interest: where and what to acquire from STAC APIs")
        return aoi.add_subparsers(dest="action", required=True)
    for action in aoi._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return aoi.add_subparsers(dest="action", required=True)


def add_aoi_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``aoi add``, ``aoi list`` and ``aoi remove``."""
    actions = aoi_subparsers(subparsers)
    add = actions.add_parser(
        "add",
        help="add an area of interest (GeoJSON or bbox) to search for new scenes",
        description="Validate and store an AOI in catalog.areas_of_interest. Exit code 2 on bad input.",
    )
    add.add_argument("name", metavar="NAME", help="1-63 lower-case letters, digits, '-', '_'")
    where = add.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--geojson", metavar="FILE", help="Polygon, MultiPolygon, or a Feature(Collection) of one; - reads stdin"
    )
    where.add_argument("--bbox", metavar="W,S,E,N", help="lon/lat box in degrees; write --bbox=W,S,E,N when W < 0")
    add.add_argument(
        "--collections",
        default=",".join(DEFAULT_COLLECTIONS),
        metavar="C1,C2",
        help=f"STAC collection ids, comma-separated (default {','.join(DEFAULT_COLLECTIONS)})",
    )
    add.add_argument(
        "--cloud-cover-max",
        type=float,
        default=DEFAULT_CLOUD_COVER_MAX,
        metavar="PCT",
        help=f"skip scenes cloudier than this, 0-100 (default {DEFAULT_CLOUD_COVER_MAX:g})",
    )
    add.add_argument("--since", metavar="YYYY-MM-DD", help="never search for scenes acquired before this day")
    add.add_argument(
        "--source",
        default=DEFAULT_SOURCE,
        metavar="NAME|URL",
        help=f"earth-search, planetary-computer, cdse, a name from SATLAKE_STAC_SOURCES, or a STAC API URL "
        f"(default {DEFAULT_SOURCE})",
    )
    add.add_argument(
        "--alert-min-ha",
        type=float,
        default=DEFAULT_ALERT_MIN_HA,
        metavar="HA",
        help=f"forest loss smaller than this raises no alert (default {DEFAULT_ALERT_MIN_HA:g} ha)",
    )
    add.add_argument("--stack", action="store_true", help="store it in the stack's lakehouse")
    add.set_defaults(func=cmd_aoi_add)

    listing = actions.add_parser("list", help="list the areas of interest")
    listing.add_argument("--all", action="store_true", help="include removed AOIs, with when they were removed")
    listing.add_argument("--stack", action="store_true", help="read the stack's lakehouse")
    listing.set_defaults(func=cmd_aoi_list)

    remove = actions.add_parser("remove", help="stop searching for an AOI (its history is kept)")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--stack", action="store_true", help="change the stack's lakehouse")
    remove.set_defaults(func=cmd_aoi_remove)


def add_acquisition_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the acquisition commands on the CLI's top-level subparsers (entry point ``satlake.cli``)."""
    from satlake.acquisition.status_commands import add_request_commands

    add_aoi_commands(subparsers)
    add_request_commands(subparsers, aoi_subparsers(subparsers))
