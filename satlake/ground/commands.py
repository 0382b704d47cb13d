"""The ground segment's commands: ``mission add|list|show|remove`` registers mission databases, ``station
add|list|remove`` the ground stations allowed to deliver packets, ``collect`` runs a collector and ``produce
packets`` replays recorded packet files.

``add_ground_commands(subparsers)`` registers them (entry point ``satlake.cli``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from satlake.cli_support import CliError, produce_subcommands, report_for, settings_from_args

if TYPE_CHECKING:
    from satlake.resources.lakehouse import Lakehouse


def _lakehouse(args: argparse.Namespace) -> Lakehouse:
    from satlake.resources import build_resources

    return build_resources(settings_from_args(args)).lakehouse


def cmd_mission_add(args: argparse.Namespace) -> int:
    from satlake.ground.registry import RegistryError, add_mission
    from satlake.ground.xtce import MissionDefinitionError
    from satlake.resources import build_resources

    settings = settings_from_args(args)
    resources = build_resources(settings)
    path = Path(args.xtce or args.layout)
    try:
        record, new = add_mission(resources.lakehouse, settings, args.name, path, topic=args.topic,
                                  added_by="satlake mission add")  # fmt: skip
    except (RegistryError, MissionDefinitionError) as error:
        raise CliError(str(error)) from error
    resources.event_log.create_topic(record.topic, settings.packets_partitions)
    report = report_for(args)
    if not new:
        report.line(f"mission {record.name} v{record.version} is this file already (sha256 {record.checksum[:12]})")
        return 0
    report.line(
        f"mission {record.name} v{record.version} registered from {path.name} ({record.format}, sha256 "
        f"{record.checksum[:12]}): packet types "
        + ", ".join(f"{name} (APID {apid})" for apid, name in zip(record.apids, record.packet_types, strict=True))
        + f"; packets arrive on {record.topic}"
    )
    return 0


def cmd_mission_list(args: argparse.Namespace) -> int:
    from satlake.ground.registry import mission_history

    records = mission_history(_lakehouse(args))
    if not records:
        report_for(args).line("no mission registered yet: `satlake mission add NAME --xtce FILE`")
        return 0
    rows = [
        (r.name, r.version, r.format, r.file_name, r.checksum[:12], len(r.apids), r.topic,
         r.added_at.strftime("%Y-%m-%d %H:%M"), "removed" if r.removed_at else "active")
        for r in records if args.all or r is max((x for x in records if x.name == r.name), key=lambda x: x.version)
    ]  # fmt: skip
    report_for(args).table(
        ("mission", "version", "format", "file", "sha256", "packet types", "topic", "added (UTC)", "state"), rows
    )
    return 0


def cmd_mission_show(args: argparse.Namespace) -> int:
    from satlake.ground.registry import RegistryError, get_mission

    try:
        record = get_mission(_lakehouse(args), args.name)
    except RegistryError as error:
        raise CliError(str(error)) from error
    database = record.database
    report = report_for(args)
    report.line(f"mission {record.name} v{record.version} ({record.file_name}, {record.format})")
    for apid, packet_type in sorted(database.packet_types.items()):
        rows = []
        for parameter in packet_type.parameters:
            alarms = database.alarms.get(parameter.name)
            rows.append((parameter.name, parameter.kind, parameter.unit, "yes" if parameter.calibrated else "",
                         alarms.describe() if alarms is not None else ""))  # fmt: skip
        title = f"{packet_type.name} (APID {apid}) -> bronze.{record.name}_{packet_type.table}"
        report.table(("parameter", "type", "unit", "calibrated", "alarms"), rows, title=title)
    return 0


def cmd_mission_remove(args: argparse.Namespace) -> int:
    from satlake.ground.registry import RegistryError, remove_mission

    try:
        record = remove_mission(_lakehouse(args), args.name)
    except RegistryError as error:
        raise CliError(str(error)) from error
    report_for(args).line(f"mission {record.name} removed: collectors refuse its packets; its tables stay")
    return 0


def cmd_station_add(args: argparse.Namespace) -> int:
    from satlake.ground.registry import ALL_MISSIONS, RegistryError, add_station

    missions = tuple(m.strip() for m in args.missions.split(",") if m.strip()) if args.missions else (ALL_MISSIONS,)
    try:
        station, token = add_station(_lakehouse(args), args.name, missions)
    except RegistryError as error:
        raise CliError(str(error)) from error
    report = report_for(args)
    report.line(f"station {station.name} may deliver packets of {', '.join(station.missions)}; its token (shown "
                "once, only its hash is kept):")  # fmt: skip
    report.line(token)
    return 0


def cmd_station_list(args: argparse.Namespace) -> int:
    from satlake.ground.registry import load_stations

    stations = load_stations(_lakehouse(args))
    rows = [(s.name, ", ".join(s.missions), s.added_at.strftime("%Y-%m-%d %H:%M")) for s in stations.values()]
    report_for(args).table(("station", "missions", "added (UTC)"), rows)
    return 0


def cmd_station_remove(args: argparse.Namespace) -> int:
    from satlake.ground.registry import RegistryError, remove_station

    try:
        remove_station(_lakehouse(args), args.name)
    except RegistryError as error:
        raise CliError(str(error)) from error
    report_for(args).line(f"station {args.name} removed: its token no longer opens a collector")
    return 0


def add_ground_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``mission``, ``station``, ``collect`` and ``produce packets``."""
    from satlake.ground.collector_commands import add_collector_commands, add_replay_command

    mission = subparsers.add_parser("mission", help="register mission databases (XTCE or packet layouts)")
    actions = mission.add_subparsers(dest="action", required=True)
    add = actions.add_parser(
        "add",
        help="register (or update) a mission from its XTCE file or a ccsdspy packet layout",
        description="Validate the mission database and keep it in catalog.missions with a version and checksum. "
        "The same file again changes nothing; a changed file becomes the next version (its new parameters become "
        "new columns; history is kept). Exit code 2 names the file and element of a mistake.",
    )
    add.add_argument("name", help="mission name: lower-case letters, digits, '_' (it names tables and a topic)")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--xtce", metavar="FILE", help="the mission's XTCE 1.2 file")
    source.add_argument("--layout", metavar="FILE", help="a packet layout CSV (ccsdspy's format)")
    add.add_argument("--topic", help="the stream its packets arrive on (default <prefix>.<name>)")
    add.add_argument("--stack", action="store_true")
    add.set_defaults(func=cmd_mission_add)
    listing = actions.add_parser("list", help="the registered missions")
    listing.add_argument("--all", action="store_true", help="every version, removed ones too")
    listing.add_argument("--stack", action="store_true")
    listing.set_defaults(func=cmd_mission_list)
    show = actions.add_parser("show", help="a mission's packet types, parameters, units and alarms")
    show.add_argument("name")
    show.add_argument("--stack", action="store_true")
    show.set_defaults(func=cmd_mission_show)
    remove = actions.add_parser("remove", help="stop accepting a mission's packets (its tables stay)")
    remove.add_argument("name")
    remove.add_argument("--stack", action="store_true")
    remove.set_defaults(func=cmd_mission_remove)

    station = subparsers.add_parser("station", help="ground stations allowed to deliver packets, with tokens")
    station_actions = station.add_subparsers(dest="action", required=True)
    station_add = station_actions.add_parser("add", help="allow a station (prints its token once)")
    station_add.add_argument("name")
    station_add.add_argument("--missions", help="comma-separated missions it may deliver (default: all)")
    station_add.add_argument("--stack", action="store_true")
    station_add.set_defaults(func=cmd_station_add)
    station_list = station_actions.add_parser("list", help="the stations")
    station_list.add_argument("--stack", action="store_true")
    station_list.set_defaults(func=cmd_station_list)
    station_remove = station_actions.add_parser("remove", help="revoke a station's token")
    station_remove.add_argument("name")
    station_remove.add_argument("--stack", action="store_true")
    station_remove.set_defaults(func=cmd_station_remove)

    add_collector_commands(subparsers)
    add_replay_command(produce_subcommands(subparsers))
