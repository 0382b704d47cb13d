"""``satlake metrics serve``: the Prometheus exporter of this storage root's Dagster instance and lakehouse."""

from __future__ import annotations

import argparse
import threading

from satlake.cli_support import CliError, report_for, settings_from_args

DEFAULT_HOST = "127.0.0.1"


def cmd_metrics_serve(args: argparse.Namespace) -> int:
    """Serve ``/metrics`` until interrupted (or for ``--seconds``)."""
    from satlake.ops.exporter import build_exporter, serve_metrics
    from satlake.runner import dagster_instance

    settings = settings_from_args(args)
    port = args.port if args.port is not None else settings.metrics_port
    exporter = build_exporter(settings, dagster_instance(settings.dagster_home))
    try:
        server = serve_metrics(exporter, args.host, port)
    except OSError as error:
        raise CliError(
            f"cannot listen on {args.host}:{port} ({error.strerror}): "
            "choose another port with --port or SATLAKE_METRICS_PORT"
        ) from None
    report_for(args).line(
        f"satlake metrics: serving http://{args.host}:{port}/metrics "
        f"({settings.mode.value} mode, root {settings.root}); Ctrl-C stops it"
    )
    try:
        threading.Event().wait(args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def add_ops_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``metrics serve`` on the CLI's top-level subparsers."""
    metrics = subparsers.add_parser("metrics", help="Prometheus metrics of the pipeline and the lakehouse")
    actions = metrics.add_subparsers(dest="metrics_command", required=True)
    serve = actions.add_parser(
        "serve",
        help="serve /metrics for Prometheus: runs, checks, consumer lag, rejects, scenes, freshness",
        description="Every value is recomputed from the Dagster instance and the lakehouse on each scrape.",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=None, help="port (default SATLAKE_METRICS_PORT, 9108)")
    serve.add_argument("--seconds", type=float, default=None, help="stop after this many seconds (default: never)")
    serve.add_argument("--stack", action="store_true", help="read the stack-mode lakehouse and Kafka")
    serve.set_defaults(func=cmd_metrics_serve)

    from satlake.ops.report_commands import add_report_commands

    add_report_commands(subparsers)
