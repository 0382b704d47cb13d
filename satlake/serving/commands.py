"""The ``satlake serve`` command: the access layer (STAC API, tiles, map page) in the foreground with uvicorn,
stopped by Ctrl-C.

``add_serving_commands(subparsers)`` registers it on the top-level subparsers (entry point ``satlake.cli``).
"""

from __future__ import annotations

import argparse
import signal
import socket

from satlake.cli_support import CliError, report_for, settings_from_args
from satlake.settings import Mode

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def ready_line(host: str, port: int) -> str:
    """The line ``satlake serve`` prints once it listens."""
    shown = f"[{host}]" if ":" in host else host
    return f"satlake API ready at http://{shown}:{port} (STAC at /, map at /map)"


def _require_free_port(host: str, port: int) -> None:
    """Fail before reading the catalog when ``host:port`` cannot be bound (taken, or not an address of this host)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise CliError(
                f"cannot listen on {host}:{port} ({error.strerror or error}); another server holds the port or the "
                "address is not this machine's: choose another with --port/--host"
            ) from error


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from satlake.serving.access import ensure_api_keys
    from satlake.serving.server import build_service

    if not 0 < args.port < 65536:
        raise CliError(f"--port {args.port} is not a TCP port (1-65535)")
    _require_free_port(args.host, args.port)
    settings = settings_from_args(args)
    report = report_for(args)
    if settings.mode is Mode.STACK:
        created = ensure_api_keys(settings)
        if created:
            report.line(f"satlake API: generated {', '.join(created)} in {settings.secrets_file}")
    try:
        app = build_service(settings, host=args.host)
    except ValueError as error:
        raise CliError(str(error)) from error
    if settings.mode is Mode.STACK:
        report.line(f"satlake API: {app.state.features_note}")
    report.line(f"satlake API: reading the catalog of {settings.root} ({settings.mode.value} mode)…")
    try:
        app.state.stac_client.backend.warm()
    except Exception as error:  # the catalog's storage, whatever its kind, refused: say where and what
        raise CliError(
            f"cannot read the catalog table of {settings.root} ({settings.mode.value} mode): {error}"
        ) from error

    line = ready_line(args.host, args.port)

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
            await super().startup(sockets=sockets)
            if self.started:
                report.line(line)

    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.log_level == "debug"
    )
    # uvicorn handles Ctrl-C (SIGINT) and SIGTERM itself: it stops accepting, finishes requests and returns, then
    # raises the signal again with the handler it found. Started in the background by a script, SIGINT is ignored
    # (as a shell starts background jobs): Python's own handler makes Ctrl-C end with 130 there too.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    server = AnnouncingServer(config)
    server.run()
    return 0 if server.started else 1


def add_serving_commands(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="serve the STAC API, tiles and the map page of the lakehouse (foreground; Ctrl-C stops)",
        description="Serve the catalog as a STAC API 1.0 at /, with tiles and a map page at /map.",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    serve.add_argument("--stack", action="store_true", help="serve the stack's lakehouse (SATLAKE_MODE=stack)")
    serve.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(func=cmd_serve)
