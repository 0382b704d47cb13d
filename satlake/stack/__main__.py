"""`python3 -m satlake.stack up|down|status|install|provision`: the stack without the satlake CLI."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from satlake.settings import Settings, SettingsError
from satlake.stack.config import SERVERS, StackConfig
from satlake.stack.configs import docker_trino_etc_files
from satlake.stack.credentials import require_stack_credentials
from satlake.stack.errors import StackError
from satlake.stack.haproxy import compose_haproxy_config
from satlake.stack.lifecycle import format_status_table, install_servers, stack_down, stack_status, stack_up
from satlake.stack.provision import create_topics, provision_object_store
from satlake.stack.servers import write_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m satlake.stack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("up", "install (once), start and health-check the servers"),
        ("install", "only install the servers into the binaries cache (for CI caches)"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument(
            "--servers", default=",".join(SERVERS), help=f"comma-separated subset of {','.join(SERVERS)}"
        )
    commands.add_parser("down", help="stop the servers started from this stack home (data is kept)")
    commands.add_parser(
        "provision", help="create topics, buckets, landing notifications and MinIO users on running servers (Docker)"
    )
    docker_configs = commands.add_parser("docker-configs", help="write Trino's etc for docker-compose.yml")
    docker_configs.add_argument("directory", type=Path, help="target directory, e.g. infra/docker/trino/etc")
    docker_haproxy = commands.add_parser("docker-haproxy", help="write HAProxy's config for docker-compose.yml")
    docker_haproxy.add_argument("file", type=Path, help="target file, e.g. infra/docker/haproxy/haproxy.cfg")
    status = commands.add_parser("status", help="show each server's state; exit 1 unless all are healthy")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    arguments = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if arguments.command == "up":
            stack_up(settings, servers=arguments.servers.split(","), progress=print)
        elif arguments.command == "install":
            config = StackConfig.from_settings(settings)
            install_servers(config, arguments.servers.split(","), progress=print)
            print(f"installed into {config.cache}")
        elif arguments.command == "down":
            stack_down(settings, progress=print)
        elif arguments.command == "provision":
            config = StackConfig.from_settings(settings)
            print(f"topics ready: {', '.join(create_topics(config))}")
            buckets = provision_object_store(config, require_stack_credentials(settings))
            print(f"buckets ready: {', '.join(buckets)}; the pipeline's and Trino's MinIO users and policies are set")
        elif arguments.command == "docker-configs":
            write_files(arguments.directory, docker_trino_etc_files())
            print(f"wrote Trino's docker configuration to {arguments.directory}")
        elif arguments.command == "docker-haproxy":
            write_files(arguments.file.parent, {arguments.file.name: compose_haproxy_config()})
            print(f"wrote HAProxy's docker configuration to {arguments.file}")
        else:
            statuses = stack_status(settings)
            rows = [asdict(status) for status in statuses]
            print(json.dumps(rows, indent=2) if arguments.json else format_status_table(statuses))
            return 0 if all(status.healthy for status in statuses) else 1
    except (StackError, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
