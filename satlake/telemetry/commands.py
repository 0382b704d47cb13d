"""The telemetry commands of the ``satlake`` CLI: ``telemetry limits`` (check and show a limits file) and
``telemetry rebuild`` (re-judge days of bronze and the curated tables from the raw zone: after a limits
change, and to migrate tables written by an older satlake).

``add_telemetry_commands(subparsers)`` registers them on the top-level subparsers.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from satlake.cli_support import CliError, report_for, settings_from_args
from satlake.telemetry.limits import SEVERITIES, Band, TelemetryLimits
from satlake.telemetry.limits_file import LimitsFileError, load_limits
from satlake.telemetry.tables import MEASURES


def _describe(band: Band | None, unit: str = "") -> str:
    return band.describe(unit) if band is not None else "-"


def limits_table(limits: TelemetryLimits, satellite: str | None = None) -> list[str]:
    """The limits as a person reads them: one line per parameter, its hard range and its bands."""
    lines = [
        f"mission {limits.mission!r} · version {limits.version} · {limits.source}",
        f"max future clock skew {limits.max_future_skew_s:g} s · the limit_alarms check fails above "
        f"{limits.max_critical_alarm_rate:.2%} critical or severe readings per satellite",
        f"{'parameter':<20} {'unit':<6} {'hard':<18} " + " ".join(f"{s:<18}" for s in SEVERITIES),
    ]
    resolved = limits.for_satellite(satellite) if satellite is not None else (
        tuple(limits.parameters.get(m) for m in MEASURES))  # fmt: skip
    for measure, parameter in zip(MEASURES, resolved, strict=True):
        if parameter is None:
            lines.append(f"{measure:<20} {'':<6} {'-':<18} " + " ".join(f"{'-':<18}" for _ in SEVERITIES))
            continue
        bands = " ".join(f"{_describe(parameter.bands.get(s)):<18}" for s in SEVERITIES)
        lines.append(f"{measure:<20} {parameter.unit:<6} {_describe(parameter.hard):<18} {bands}")
    if satellite is None:
        for context in limits.contexts:
            changed = ", ".join(context.parameters)
            lines.append(f"overrides for {', '.join(context.satellites)}: {changed}")
    else:
        matching = [", ".join(c.satellites) for c in limits.contexts if c.matches(satellite)]
        applied = f"overrides {'; '.join(matching)}" if matching else "defaults"
        lines.append(f"for satellite {satellite!r}: {applied}")
    return lines


def cmd_limits(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    path = Path(args.file) if args.file else settings.telemetry_limits_path
    try:
        limits = load_limits(path)
    except LimitsFileError as error:
        raise CliError(f"invalid limits file: {error}") from error
    report_for(args).line("\n".join(line.rstrip() for line in limits_table(limits, args.satellite)))
    return 0


def _parse_day(text: str | None, flag: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CliError(f"{flag} {text!r} is not a day; write YYYY-MM-DD") from None


def cmd_rebuild(args: argparse.Namespace) -> int:
    from satlake.definitions import build_definitions
    from satlake.partitions import DAILY_PARTITIONS
    from satlake.resources import build_resources
    from satlake.runner import backfill_days, dagster_instance, run_failures
    from satlake.telemetry.report import contract_report
    from satlake.telemetry.tables import RAW_TELEMETRY_EVENTS

    settings = settings_from_args(args)
    try:
        limits = load_limits(settings.telemetry_limits_path)
    except LimitsFileError as error:
        raise CliError(f"invalid limits file: {error}") from error
    resources = build_resources(settings)
    raw = resources.lakehouse.read(RAW_TELEMETRY_EVENTS, columns=["event_date"])
    if raw is None or raw.num_rows == 0:
        raise CliError("the raw zone holds no telemetry yet: produce and ingest some first (`satlake run`)")
    stored_days = sorted(set(raw.column("event_date").to_pylist()))
    first = _parse_day(args.from_day, "--from") or stored_days[0]
    last = _parse_day(args.to_day, "--to") or stored_days[-1]
    partitions = DAILY_PARTITIONS.get_partition_keys()
    if first > last or first.isoformat() not in partitions or last.isoformat() not in partitions:
        raise CliError(f"cannot rebuild {first}..{last}: the daily partitions run from {partitions[0]} to "
                       f"{partitions[-1]} and raw telemetry covers {stored_days[0]}..{stored_days[-1]}; set "
                       "SATLAKE_PARTITIONS_START to an earlier day to rebuild older days")  # fmt: skip
    report = report_for(args)
    report.line(f"rebuilding bronze and the curated tables for {first}..{last} from the raw zone, "
          f"judged by limits {limits.mission!r} (version {limits.version})")  # fmt: skip
    defs = build_definitions(settings)
    instance = dagster_instance(settings.dagster_home)
    outcomes = backfill_days(defs, instance, [first.isoformat(), last.isoformat()], report.run)
    for failure in run_failures(instance, outcomes):
        report.error(failure)
    report.line("\n".join(contract_report(resources.lakehouse, limits, first, last)))
    return 0 if all(o.success for o in outcomes) else 1


def add_telemetry_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``telemetry limits`` and ``telemetry rebuild`` on the CLI's top-level subparsers."""
    telemetry = subparsers.add_parser("telemetry", help="the telemetry contract: limits, and rebuilding days")
    actions = telemetry.add_subparsers(dest="action", required=True)

    limits = actions.add_parser(
        "limits",
        help="check a limits file and show its limits",
        description="Validate a limits file (default: SATLAKE_TELEMETRY_LIMITS, else the shipped one) and print "
        "its parameters, hard ranges and severity bands. Exit code 2 names the file, line and key of a mistake.",
    )
    limits.add_argument("file", nargs="?", help="the limits file (YAML)")
    limits.add_argument("--satellite", help="show the limits that apply to this satellite (overrides resolved)")
    limits.set_defaults(func=cmd_limits)

    rebuild = actions.add_parser(
        "rebuild",
        help="re-judge bronze and rebuild the curated tables from the raw zone (after a limits change or upgrade)",
        description="Rebuild bronze/telemetry, its rejects and the dbt models for a range of days from the raw "
        "zone, which keeps every payload, as one backfill run: new limits apply, and tables written by an older "
        "satlake take the current contract. Default: every day the raw zone holds.",
    )
    rebuild.add_argument("--from", dest="from_day", metavar="YYYY-MM-DD", help="first day (default: the oldest)")
    rebuild.add_argument("--to", dest="to_day", metavar="YYYY-MM-DD", help="last day (default: the newest)")
    rebuild.add_argument("--stack", action="store_true", help="rebuild on the stack (`satlake stack up`)")
    rebuild.set_defaults(func=cmd_rebuild, captures_output=True)
