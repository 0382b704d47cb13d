"""The ``satlake report`` command: write the static HTML page of telemetry charts, quicklooks and NDVI change
maps (satlake.ops.report) and say where it is.

``add_report_commands(subparsers)`` registers it on the top-level subparsers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from satlake.cli_support import CliError, settings_from_args


def cmd_report(args: argparse.Namespace) -> int:
    from satlake.ops.report import write_report
    from satlake.resources import build_resources
    from satlake.resources.object_store import build_scene_stores

    if args.days < 1:
        raise CliError(f"--days must be 1 or more, got {args.days}")
    settings = settings_from_args(args)
    output = Path(args.output).expanduser().resolve() if args.output else settings.root / "report.html"
    lakehouse = build_resources(settings).lakehouse
    content = write_report(
        lakehouse, build_scene_stores(settings).lake, output, title=f"satlake report · {settings.root}", days=args.days
    )
    print(f"report written: {output}")
    print(f"  {content.summary()} (telemetry: the newest {args.days} days)")
    return 0


def add_report_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``satlake report``."""
    report = subparsers.add_parser(
        "report",
        help="write one static HTML page of telemetry charts, scene quicklooks and NDVI change maps",
        description="Write one static HTML page (images inside it, opens offline) of the telemetry chart per "
        "satellite per day, each scene's quicklook and the NDVI change map of each forest-change result.",
    )
    report.add_argument("--output", "-o", help="where to write the page (default: <SATLAKE_ROOT>/report.html)")
    report.add_argument("--days", type=int, default=7, help="days of telemetry to chart, newest first (default 7)")
    report.add_argument("--stack", action="store_true", help="read the stack's lakehouse (`satlake stack up`)")
    report.set_defaults(func=cmd_report)
