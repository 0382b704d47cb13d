"""Health probes for the three servers: each answers (healthy, detail) quickly and never raises."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

from satlake.stack.process import port_accepts

_quiet = logging.getLogger("satlake.stack.kafka-probe")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def kafka_health(host: str, port: int, timeout_s: float = 3.0) -> tuple[bool, str]:
    """Healthy when the broker answers a metadata request and reports itself as controller-backed."""
    if not port_accepts(host, port):
        return False, f"nothing accepts connections on {host}:{port}"
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": f"{host}:{port}", "socket.timeout.ms": 2000}, logger=_quiet)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except Exception as error:  # KafkaException or a timeout: report, the caller decides
        return False, f"no metadata from {host}:{port}: {error}"
    topics = sorted(name for name in metadata.topics if not name.startswith("__"))
    return True, f"{len(metadata.brokers)} broker, topics: {', '.join(topics) or 'none'}"


def http_json(url: str, timeout_s: float) -> tuple[int, object]:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        body = response.read()
        return response.status, json.loads(body) if body else None


def minio_health(host: str, port: int, timeout_s: float = 3.0) -> tuple[bool, str]:
    url = f"http://{host}:{port}/minio/health/live"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status == 200, f"{url} answered {response.status}"
    except (urllib.error.URLError, OSError) as error:
        return False, f"{url}: {error}"


# Trino reports itself started before its node manager has listed any worker (itself included): until then a
# table scan fails with NO_NODES_AVAILABLE, so health also asks how many nodes are active.
ACTIVE_NODES_SQL = "SELECT count(*) FROM system.runtime.nodes WHERE state = 'active'"
PROBE_USER = "admin"


def trino_active_nodes(host: str, port: int, timeout_s: float = 3.0) -> int:
    """How many nodes Trino's node manager lists as active (raises ``TrinoLakeError`` when the query fails)."""
    from satlake.resources.trino import TrinoLake

    client = TrinoLake(host, port, user=PROBE_USER, request_timeout_s=timeout_s, max_attempts=1, startup_wait_s=0)
    try:
        _, rows = client.query(ACTIVE_NODES_SQL)
        return int(rows[0][0])
    finally:
        client.close()


def trino_health(host: str, port: int, timeout_s: float = 3.0) -> tuple[bool, str]:
    url = f"http://{host}:{port}/v1/info"
    try:
        status, info = http_json(url, timeout_s)
    except (urllib.error.URLError, OSError, ValueError) as error:
        return False, f"{url}: {error}"
    if not isinstance(info, dict):
        return False, f"{url} answered {status} without server info"
    version = info.get("nodeVersion", {}).get("version", "?")
    if info.get("starting", True):
        return False, f"Trino {version} is still starting"
    try:
        nodes = trino_active_nodes(host, port, timeout_s)
    except Exception as error:  # TrinoLakeError, or a reply the client cannot read: report, the caller decides
        return False, f"Trino {version} started but cannot run a query yet: {error}"
    if nodes == 0:
        return False, f"Trino {version} started, no active node yet"
    return True, f"Trino {version}, uptime {info.get('uptime', '?')}, {nodes} active node{'s' * (nodes > 1)}"
