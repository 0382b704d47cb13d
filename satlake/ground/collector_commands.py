"""The ground-station commands of the ``satlake`` CLI: ``collect`` runs a collector (TCP and HTTP fronts),
``produce packets`` replays recorded packet or frame files through a collector or straight into the log.

``add_collector_commands(subparsers)`` registers ``collect`` on the top-level subparsers,
``add_replay_command(produce_subparsers)`` registers ``packets`` under ``satlake produce``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from satlake.cli_support import CliError, report_for, settings_from_args

if TYPE_CHECKING:
    from satlake.ground.collector_core import FrameOptions
    from satlake.ground.replay import ReplaySummary

MIB = 1024 * 1024


def cmd_collect(args: argparse.Namespace) -> int:
    from satlake.ground.collector import CollectorPorts, run_collector
    from satlake.ground.collector_core import CollectorConfig
    from satlake.ground.registry import load_missions, load_stations
    from satlake.resources import build_resources

    settings = settings_from_args(args)
    resources = build_resources(settings)
    logging.getLogger("satlake.ground.collector").setLevel(args.log_level.upper())
    try:
        config = CollectorConfig(
            host=args.host or settings.collector_host,
            tcp_port=settings.collector_tcp_port + 1 if args.tcp_port is None else args.tcp_port,
            http_port=settings.collector_http_port + 1 if args.http_port is None else args.http_port,
            name=args.name,
            max_packet_length=args.max_packet_length,
            max_body_bytes=args.max_body_bytes,
            max_inflight_bytes=args.max_inflight_bytes,
            anonymous_station=args.anonymous_station,
            anonymous_mission=args.anonymous_mission,
            topic_partitions=settings.packets_partitions,
        )
    except ValueError as error:
        raise CliError(str(error)) from error
    report = report_for(args)
    lakehouse = resources.lakehouse

    def ready(ports: CollectorPorts) -> None:
        report.line(
            f"collector {config.name} listening on {ports.describe()} ({settings.mode.value} mode); Ctrl-C or "
            "SIGTERM stops it after the batches in flight are published"
        )

    try:
        run_collector(
            resources.event_log, lambda: load_missions(lakehouse), lambda: load_stations(lakehouse), config,
            on_ready=ready,
        )  # fmt: skip
    except OSError as error:
        raise CliError(
            f"collector {config.name} cannot listen on {config.host} (TCP {config.tcp_port}, HTTP {config.http_port}):"
            f" {error}; choose other ports with --tcp-port/--http-port"
        ) from error
    finally:
        resources.event_log.close()
    return 0


def _frame_options(args: argparse.Namespace) -> FrameOptions | None:
    from satlake.ground.collector_core import FrameOptions

    if not args.frames:
        if args.frame_length is not None or args.no_fecf:
            raise CliError("--frame-length and --no-fecf need --frames")
        return None
    if args.frame_length is None:
        raise CliError("--frames needs --frame-length N (bytes per TM transfer frame)")
    try:
        return FrameOptions(args.frame_length, fecf=not args.no_fecf)
    except ValueError as error:
        raise CliError(f"--frame-length: {error}") from error


def _replay(args: argparse.Namespace, frames: FrameOptions | None, total: int) -> ReplaySummary:
    from satlake.ground.replay import parse_via, replay_over_tcp, replay_to_log

    files = [Path(name) for name in args.files]
    report = report_for(args)
    settings = settings_from_args(args)
    if args.via is None:
        from satlake.ground.registry import RegistryError, get_mission
        from satlake.resources import build_resources

        resources = build_resources(settings)
        try:
            mission = get_mission(resources.lakehouse, args.mission)
        except RegistryError as error:
            raise CliError(str(error)) from error
        with report.progress(f"replaying {len(files)} file(s) into {mission.topic}", total=total) as progress:
            summary = replay_to_log(
                resources.event_log, mission.topic, files, station=args.station or "replay", frames=frames,
                known_apids=mission.apids, rate=args.rate, partitions=settings.packets_partitions, progress=progress,
            )  # fmt: skip
        resources.event_log.close()
        return summary
    scheme, host, port = parse_via(args.via)
    if scheme == "tcp":
        with report.progress(f"replaying {len(files)} file(s) to {args.via}", total=total) as progress:
            return replay_over_tcp(
                host, port, files, mission=args.mission, station=args.station, token=args.token, frames=frames,
                rate=args.rate, progress=progress,
            )  # fmt: skip
    from satlake.ground.replay_http import replay_over_http

    if args.station is None or args.token is None:
        raise CliError("--via http://... needs --station and --token (the collector answers 401 without them)")
    with report.progress(f"replaying {len(files)} file(s) to {args.via}", total=total) as progress:
        return replay_over_http(
            args.via, files, mission=args.mission, station=args.station, token=args.token, frames=frames,
            rate=args.rate, chunk_bytes=args.chunk_bytes, progress=progress,
        )  # fmt: skip


def cmd_produce_packets(args: argparse.Namespace) -> int:
    from satlake.ground.replay import ReplayError

    frames = _frame_options(args)
    missing = [name for name in args.files if not Path(name).is_file()]
    if missing:
        raise CliError(f"no such file: {', '.join(missing)}")
    if args.token is not None and args.station is None:
        raise CliError("--token needs --station")
    total = sum(Path(name).stat().st_size for name in args.files)
    try:
        summary = _replay(args, frames, total)
    except ReplayError as error:
        raise CliError(str(error)) from error
    report_for(args).line(summary.line())
    return 0


def add_collector_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``collect`` on the CLI's top-level subparsers."""
    collect = subparsers.add_parser(
        "collect",
        help="receive packets from ground stations (raw TCP and HTTP) and publish them to the missions' topics",
        description="A collector: ground stations send CCSDS packets (or TM frames) over TCP (Yamcs framing, after "
        "'AUTH <station> <token> <mission>') or HTTP (POST /v1/missions/<mission>/packets); each packet is published "
        "with the station and the ground receive time. Stateless: run several behind HAProxy. Ctrl-C stops it.",
    )
    collect.add_argument("--host", help="address to bind (default SATLAKE_COLLECTOR_HOST, 127.0.0.1)")
    collect.add_argument("--tcp-port", type=int, help="raw packet stream port (default SATLAKE_COLLECTOR_TCP_PORT+1)")
    collect.add_argument("--http-port", type=int, help="HTTP port (default SATLAKE_COLLECTOR_HTTP_PORT+1)")
    collect.add_argument("--name", default="col1", help="this collector's name in logs and thread names")
    collect.add_argument("--max-packet-length", type=int, default=65542, help="longest packet taken (bytes)")
    collect.add_argument("--max-body-bytes", type=int, default=16 * MIB, help="largest HTTP body (413 past it)")
    collect.add_argument(
        "--max-inflight-bytes", type=int, default=64 * MIB,
        help="bytes being published at once before HTTP answers 429 and TCP stops reading (the broker is behind)",
    )  # fmt: skip
    collect.add_argument(
        "--anonymous-station", help="take TCP streams without AUTH line as this station (trusted link)"
    )
    collect.add_argument("--anonymous-mission", help="... and as packets of this mission")
    collect.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    collect.add_argument("--stack", action="store_true", help="publish to the stack's Kafka, read its catalog")
    collect.set_defaults(func=cmd_collect)


def add_replay_command(produce_subparsers: argparse._SubParsersAction) -> None:
    """Register ``packets`` under ``satlake produce``."""
    packets = produce_subparsers.add_parser(
        "packets",
        help="replay recorded CCSDS packet (or TM frame) files through a collector or into the log",
        description="Replay files of packets back to back (or of TM transfer frames with --frames) as a ground "
        "station would: --via tcp://HOST:PORT or http://HOST:PORT sends them to a collector; without --via they are "
        "split here and appended to the mission's topic. Exit code 2 on bad input or refused credentials.",
    )
    packets.add_argument("files", nargs="+", metavar="FILE")
    packets.add_argument("--mission", required=True, help="the registered mission the packets belong to")
    packets.add_argument("--via", metavar="URL", help="tcp://HOST:PORT or http://HOST:PORT of a collector")
    packets.add_argument("--station", help="the ground station (default without --via: replay)")
    packets.add_argument("--token", help="the station's token (for --via)")
    packets.add_argument("--frames", action="store_true", help="the files hold TM transfer frames")
    packets.add_argument("--frame-length", type=int, metavar="N", help="bytes per frame (with --frames)")
    packets.add_argument("--no-fecf", action="store_true", help="the frames carry no CRC (frame error control)")
    packets.add_argument("--rate", type=float, metavar="PACKETS_PER_S", help="pace the replay (default: at once)")
    packets.add_argument(
        "--chunk-bytes", type=int, default=MIB, help="largest HTTP POST body (whole packets), default 1 MiB"
    )
    packets.add_argument("--stack", action="store_true", help="the stack's log and catalog (without --via)")
    packets.set_defaults(func=cmd_produce_packets, captures_output=True)
