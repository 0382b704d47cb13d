"""The ``satlake`` command: demo, produce, ingest, run, query, ui and stack, and the commands each domain
registers (entry points ``satlake.cli``: scenes, telemetry)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path

from satlake.cli_support import CliError, report_for, set_produce_subcommands, settings_from_args
from satlake.reporting import Report, capture_output, command_log_path
from satlake.settings import Mode, Settings, SettingsError

_settings = settings_from_args


def cmd_demo(args: argparse.Namespace) -> int:
    from satlake.demo import run_demo

    return 0 if run_demo(_settings(args), report_for(args)) else 1


def cmd_produce_telemetry(args: argparse.Namespace) -> int:
    from satlake.resources import build_resources
    from satlake.telemetry.producer import publish_records, simulate_telemetry

    settings = _settings(args)
    resources = build_resources(settings)
    topic = settings.telemetry_topic
    resources.event_log.create_topic(topic, settings.telemetry_partitions)
    if args.from_csv:
        from satlake.telemetry.csv_replay import CsvFormatError, replay_csv_directory

        directory = Path(args.from_csv)
        if not directory.is_dir():
            raise CliError(f"--from-csv {directory}: not a directory of <satellite>.csv files")
        try:
            records = list(replay_csv_directory(directory, interval_s=args.interval))
        except CsvFormatError as error:
            raise CliError(str(error)) from error
    else:
        end = datetime.now(UTC)
        start = end - timedelta(hours=args.hours)
        records = simulate_telemetry(
            satellites=args.satellites,
            start_ns=int(start.timestamp() * 1e9),
            end_ns=int(end.timestamp() * 1e9),
            interval_s=args.interval,
            fault_rate=args.fault_rate,
            seed=args.seed,
        )
    report = report_for(args)
    with report.progress(f"publishing to {topic}") as progress:
        count = publish_records(resources.event_log, topic, records, progress=progress)
    report.line(f"published {count:,} events to {topic} ({settings.mode.value} mode)")
    resources.event_log.close()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from satlake.definitions import build_definitions
    from satlake.runner import LEGACY_STATE_FILE, dagster_instance, run_failures, run_pending_work

    settings = _settings(args)
    report = report_for(args)
    defs = build_definitions(settings)
    instance = dagster_instance(settings.dagster_home)
    state = settings.dagster_home / LEGACY_STATE_FILE
    outcomes = report.track_runs("runs", lambda show: run_pending_work(defs, instance, state, show))
    if not outcomes:
        report.line("nothing to do: no new events and every partition is up to date")
    for failure in run_failures(instance, outcomes):
        report.error(failure)
    return 0 if all(o.success for o in outcomes) else 1


def cmd_ingest(args: argparse.Namespace) -> int:
    import signal
    import threading

    from satlake.resources import build_resources
    from satlake.resources.run_metrics import RunMetrics
    from satlake.telemetry.ingest import IngestBatch, ingest_continuously, ingest_until_caught_up

    settings = _settings(args)
    resources = build_resources(settings)
    topic = settings.telemetry_topic
    if not resources.event_log.partitions(topic):
        raise CliError(f"topic {topic!r} does not exist yet: publish to it first (`satlake produce telemetry`)")

    report = report_for(args)
    metrics = RunMetrics.for_settings(settings, "ingest")  # latencies for the exporter (satlake metrics serve)

    def show(batch: IngestBatch) -> None:
        metrics.batch_committed(batch)
        report.line(
            f"committed {batch.events:,} events, offsets {batch.end_offsets}, days "
            f"{', '.join(d.isoformat() for d in batch.event_dates)} (delta v{batch.delta_version})"
        )

    if args.workers > 1:
        if args.follow:
            raise CliError("--workers runs until caught up; use one worker with --follow")
        from functools import partial

        from satlake.telemetry.ingest import ingest_in_parallel, log_and_lake_from_settings

        ingested = ingest_in_parallel(
            partial(log_and_lake_from_settings, settings), topic, args.workers, args.batch_size
        )
    elif not args.follow:
        ingested = ingest_until_caught_up(
            resources.event_log, resources.lakehouse, topic, args.batch_size, progress=show
        )
    else:
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        report.line(f"following {topic} ({settings.mode.value} mode); Ctrl-C stops after the current batch")
        ingested = ingest_continuously(
            resources.event_log, resources.lakehouse, topic, stop.is_set, args.batch_size, progress=show
        )
    if ingested.batches and args.workers <= 1:  # parallel workers report no batches here: keep the last file
        metrics.push()
    rate = ingested.events / ingested.seconds if ingested.seconds else 0.0
    report.line(f"ingested {ingested.events:,} events in {len(ingested.batches)} commits ({rate:,.0f}/s)")
    resources.event_log.close()
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from satlake.resources import build_resources

    settings = _settings(args)
    engine_name = args.engine or ("trino" if settings.mode is Mode.STACK else "duckdb")
    resources = build_resources(settings)
    if engine_name == "duckdb":
        from satlake.resources.query import DuckDbLakeQuery

        engine = DuckDbLakeQuery(resources.lakehouse)
    elif settings.mode is Mode.STACK:
        engine = resources.query_engine
    else:
        raise CliError("--engine trino needs stack mode: set SATLAKE_MODE=stack or pass --stack")
    try:
        result = engine.query(args.sql)
    except Exception as error:
        raise CliError(f"{engine_name} refused the query: {error}") from error
    report_for(args).line(result.format_table(max_rows=args.max_rows))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from satlake.runner import dagster_instance
    from satlake.ui import serve_ui

    settings = _settings(args)
    dagster_instance(settings.dagster_home)  # sets DAGSTER_HOME: the UI shows `satlake run` history and state
    return serve_ui(args.host, args.port)


def cmd_stack(args: argparse.Namespace) -> int:
    from satlake import stack

    settings = Settings.from_env({**os.environ, "SATLAKE_MODE": Mode.STACK.value})
    try:
        if args.action == "up":
            stack.stack_up(settings)
        elif args.action == "down":
            stack.stack_down(settings)
    except stack.StackError as error:
        raise CliError(str(error)) from error
    # Read again: `up` may have just generated credentials into the secrets file (the status logs in with them).
    settings = Settings.from_env({**os.environ, "SATLAKE_MODE": Mode.STACK.value})
    statuses = stack.stack_status(settings)
    report_for(args).table(
        ["server", "state", "port", "detail"],
        [(s.name, "healthy" if s.healthy else ("running" if s.running else "stopped"), str(s.port), s.detail)
         for s in statuses],
    )  # fmt: skip
    if args.action == "status":
        return 0 if all(s.healthy for s in statuses) else 3
    return 0


def domain_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    """The command registrars the domains declare (entry points ``satlake.cli``), in name order."""
    found = sorted(entry_points(group="satlake.cli"), key=lambda entry: entry.name)
    if not found:
        raise CliError("satlake's domain commands are not registered: install satlake (`pip install -e .`)")
    return [entry.load() for entry in found]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="satlake", description=__doc__)
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show the logs (dbt, Dagster, warnings) on the terminal; they always go to <root>/logs/",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="produce demo telemetry, run every asset and check, print a report")
    demo.add_argument("--stack", action="store_true", help="run on the servers of `satlake stack up`")
    demo.set_defaults(func=cmd_demo, captures_output=True)

    produce = commands.add_parser("produce", help="publish synthetic or replayed data")
    produce_what = produce.add_subparsers(dest="what", required=True)
    telemetry = produce_what.add_parser("telemetry", help="simulate satellites, or replay CSV files")
    telemetry.add_argument("--satellites", type=int, default=4)
    telemetry.add_argument("--hours", type=float, default=1.0, help="span of simulated time ending now")
    telemetry.add_argument("--interval", type=float, default=10.0, help="seconds between readings")
    telemetry.add_argument("--fault-rate", type=float, default=0.01, help="fraction of faulty messages")
    telemetry.add_argument("--seed", type=int, default=1)
    telemetry.add_argument("--from-csv", metavar="DIR", help="replay <satellite>.csv files from DIR")
    telemetry.add_argument("--stack", action="store_true")
    telemetry.set_defaults(func=cmd_produce_telemetry, captures_output=True)
    set_produce_subcommands(commands, produce_what)

    for register in domain_commands():
        register(commands)

    run = commands.add_parser("run", help="one pass of every sensor and automation, running what they request")
    run.add_argument("--stack", action="store_true")
    run.set_defaults(func=cmd_run, captures_output=True)

    ingest = commands.add_parser(
        "ingest", help="commit new telemetry events from the log to raw/telemetry_events (once, or --follow)"
    )
    ingest.add_argument("--follow", action="store_true", help="keep ingesting as events arrive, until Ctrl-C")
    ingest.add_argument("--batch-size", type=int, default=100_000, help="most events per Delta commit")
    ingest.add_argument(
        "--workers", type=int, default=1, help="processes, each ingesting a share of the partitions (default 1)"
    )
    ingest.add_argument("--stack", action="store_true")
    ingest.set_defaults(func=cmd_ingest, captures_output=True)

    query = commands.add_parser("query", help="run SQL over the lakehouse tables (<zone>.<table>)")
    query.add_argument("sql")
    query.add_argument("--engine", choices=["duckdb", "trino"], help="default: duckdb embedded, trino in stack")
    query.add_argument("--max-rows", type=int, default=100)
    query.add_argument("--stack", action="store_true")
    query.set_defaults(func=cmd_query)

    ui = commands.add_parser("ui", help="open the Dagster UI on this project")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--stack", action="store_true")
    ui.set_defaults(func=cmd_ui)

    stack_cmd = commands.add_parser("stack", help="install, start, stop and check the stack's servers")
    stack_cmd.add_argument("action", choices=["up", "down", "status"])
    stack_cmd.set_defaults(func=cmd_stack)
    return parser


def command_name(args: argparse.Namespace) -> str:
    """The command as typed, for the log file's name: ``demo``, ``produce-telemetry``, ``telemetry-rebuild``."""
    words = [args.command] + [
        getattr(args, sub) for sub in ("what", "action") if isinstance(getattr(args, sub, None), str)
    ]
    return "-".join(words)


def _dispatch(args: argparse.Namespace, report: Report) -> int:
    try:
        return int(args.func(args))
    except (CliError, SettingsError) as error:
        report.error(str(error))
        return 2
    except KeyboardInterrupt:
        report.error("interrupted")
        return 130


def run_captured(args: argparse.Namespace) -> int:
    """Run a command whose work logs a lot (dbt, Dagster): its report on the terminal, every log line in
    ``<root>/logs/satlake-<command>-<time>.log`` (on the terminal too with ``-v``), the file named at the end."""
    report = Report()
    try:
        root = settings_from_args(args).root
    except SettingsError as error:
        report.error(str(error))
        return 2
    log_path = command_log_path(root, command_name(args))
    os.environ.setdefault("SATLAKE_RUN_LOG_LEVEL", "INFO")  # into the log file, not onto the terminal
    with capture_output(log_path, verbose=args.verbose) as terminal:
        args.report = report = Report(terminal.out, terminal.err)
        code = _dispatch(args, report)
        report.line(f"full log: {log_path}")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except CliError as error:
        Report().error(str(error))
        return 2
    args = parser.parse_args(argv)
    if getattr(args, "captures_output", False):
        return run_captured(args)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s"
    )
    args.report = report = Report()
    return _dispatch(args, report)


if __name__ == "__main__":
    sys.exit(main())
