"""The stack's packet collectors: ``satlake collect --stack`` processes behind HAProxy, each on its own raw TCP
and HTTP port of the loopback interface, run by the same Python and the same satlake as ``stack up``, pointed at
the stack's Kafka and MinIO with the pipeline's key, and their health probe (``GET /healthz``)."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import satlake
from satlake.settings import Mode, Settings, endpoint_environment
from satlake.stack.config import StackConfig
from satlake.stack.credentials import ACCESS_KEY_VAR, SECRET_KEY_VAR, KeyPair
from satlake.stack.haproxy import haproxy_restart_reason
from satlake.stack.process import command_line
from satlake.stack.servers import Launch, markers

HEALTH_PATH = "/healthz"
# The directory holding the running satlake package: a collector imports the code that started it.
SATLAKE_SOURCE = Path(satlake.__file__).resolve().parent.parent


def collector_command(config: StackConfig, server: str) -> list[str]:
    """``python -m satlake collect --stack --name <server> --host … --tcp-port … --http-port …``."""
    return [sys.executable, "-m", "satlake", *config.collector_arguments(server)]


def collector_environment(settings: Settings, pipeline: KeyPair) -> dict[str, str]:
    """What makes ``Settings.from_env()`` in a collector equal ``settings`` for everything a collector uses: the
    stack's endpoints, root and secrets file, buckets, the packets' topics, and the pipeline's key (the only
    credential it inherits)."""
    python_path = os.pathsep.join(filter(None, (str(SATLAKE_SOURCE), os.environ.get("PYTHONPATH"))))
    return {
        **endpoint_environment(settings),
        "SATLAKE_MODE": Mode.STACK.value,
        "SATLAKE_ROOT": str(settings.root),
        "SATLAKE_SECRETS_FILE": str(settings.secrets_file),
        "SATLAKE_STACK_DIR": str(settings.stack_home),
        "SATLAKE_S3_REGION": settings.s3_region,
        "SATLAKE_LAKE_BUCKET": settings.lake_bucket,
        "SATLAKE_LANDING_BUCKET": settings.landing_bucket,
        "SATLAKE_PACKETS_TOPIC_PREFIX": settings.packets_topic_prefix,
        "SATLAKE_PACKETS_PARTITIONS": str(settings.packets_partitions),
        ACCESS_KEY_VAR: pipeline.access_key,
        SECRET_KEY_VAR: pipeline.secret_key,
        "PYTHONPATH": python_path,
        "PYTHONUNBUFFERED": "1",  # its log file shows each line as it is written
    }


def prepare_collector(config: StackConfig, server: str, settings: Settings, pipeline: KeyPair) -> Launch:
    server_dir = config.server_dir(server)
    server_dir.mkdir(parents=True, exist_ok=True)
    return Launch(
        command=collector_command(config, server),
        cwd=server_dir,
        marker=markers(config)[server],
        env=collector_environment(settings, pipeline),
    )


def ingress_restart_reason(config: StackConfig, server: str, pid: int) -> str | None:
    """Why HAProxy or a collector already running from this stack home must restart, or None: HAProxy's file
    differs from the rendered one, or a collector runs with other arguments (its ports moved)."""
    if server == "haproxy":
        return haproxy_restart_reason(config)
    wanted = " ".join(config.collector_arguments(server))
    if f"{wanted} " in (command_line(pid) or f"{wanted} "):
        return None
    return f"it does not run `satlake {wanted}` (its settings changed)"


def collector_health(name: str, host: str, tcp_port: int, http_port: int, timeout_s: float = 3.0) -> tuple[bool, str]:
    """Healthy when ``GET /healthz`` on the collector's HTTP port answers 200."""
    url = f"http://{host}:{http_port}{HEALTH_PATH}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace").strip()[:200]
        return False, f"{url} answered {error.code}{f': {body}' if body else ''}"
    except OSError as error:
        return False, f"{url}: {error}"
    if status != 200:
        return False, f"{url} answered {status}"
    return True, f"{name} takes packets on tcp://{host}:{tcp_port} and http://{host}:{http_port}"
