"""A private stack next to a developer's: its own root, secrets and free ports, the binaries cache shared.

The integration tests' session stack and the soak benchmark start one, so they never touch a running stack.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _ports_free(first: int, count: int) -> bool:
    for candidate in range(first, first + count):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                return False
    return True


def free_port_run(taken: set[int], count: int) -> int:
    """A port p such that p … p+count-1 are free (HAProxy's front and the collectors behind it)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        run = set(range(port, port + count))
        if port < 65000 and not run & taken and _ports_free(port, count):
            taken.update(run)
            return port
    raise RuntimeError(f"no {count} adjacent free TCP ports found on 127.0.0.1")


def free_port_pair(taken: set[int]) -> int:
    """A port p such that p and p+1 are free (Kafka broker+controller, MinIO API+console)."""
    return free_port_run(taken, 2)


def isolated_stack_environment(root: Path) -> dict[str, str]:
    """Environment for a private stack: own root, secrets and ports; the binaries cache stays shared."""
    taken: set[int] = set()
    kafka_port, minio_port, trino_port = free_port_pair(taken), free_port_pair(taken), free_port_pair(taken)
    postgres_port = free_port_pair(taken)
    prometheus_port, alertmanager_port, metrics_port = (
        free_port_pair(taken),
        free_port_pair(taken),
        free_port_pair(taken),
    )
    # HAProxy's fronts, each followed by the collectors' ports.
    collector_tcp_port, collector_http_port = free_port_run(taken, 3), free_port_run(taken, 3)
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SATLAKE_") or key in ("SATLAKE_SERVERS_CACHE", "SATLAKE_TRINO_JAVA_HOME")
    }
    environment.update(
        {
            "SATLAKE_MODE": "stack",
            "SATLAKE_ROOT": str(root),
            "SATLAKE_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
            "SATLAKE_S3_ENDPOINT": f"http://127.0.0.1:{minio_port}",
            "SATLAKE_TRINO_PORT": str(trino_port),
            "SATLAKE_POSTGRES_PORT": str(postgres_port),
            "SATLAKE_PROMETHEUS_PORT": str(prometheus_port),
            "SATLAKE_ALERTMANAGER_PORT": str(alertmanager_port),
            "SATLAKE_METRICS_PORT": str(metrics_port),
            "SATLAKE_COLLECTOR_TCP_PORT": str(collector_tcp_port),
            "SATLAKE_COLLECTOR_HTTP_PORT": str(collector_http_port),
        }
    )
    return environment
