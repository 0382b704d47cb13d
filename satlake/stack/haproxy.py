"""HAProxy in front of the stack's packet collectors: the distribution's package (apt-get), its configuration
rendered from the stack config (a raw TCP front and an HTTP front, each balancing over every collector), its
foreground launch under the stack's process management, and its health probe.

The same renderer writes the file docker-compose.yml mounts into the official image
(``python3 -m satlake.stack docker-haproxy infra/docker/haproxy/haproxy.cfg``); a unit test fails when they drift.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from satlake.settings import Settings
from satlake.stack.apt import apt_install
from satlake.stack.config import COLLECTORS, StackConfig
from satlake.stack.errors import StackError
from satlake.stack.install import Progress, install_lock
from satlake.stack.process import port_accepts
from satlake.stack.servers import Launch, write_files

HAPROXY_PACKAGE = "haproxy"
DEBIAN_BINARY = Path("/usr/sbin/haproxy")  # /usr/sbin is often not on a non-root user's PATH
CONFIG_FILE = "haproxy.cfg"
HEALTH_URI = "/healthz"
# Docker's embedded DNS: compose's collectors get a new address when their container is recreated.
DOCKER_DNS = "127.0.0.11:53"
COMPOSE_CONFIG = "infra/docker/haproxy/haproxy.cfg"  # in the repository, mounted by docker-compose.yml


@dataclass(frozen=True)
class CollectorAddress:
    """One collector as HAProxy reaches it: its raw TCP port and its HTTP port (uploads and ``/healthz``)."""

    name: str
    host: str
    tcp_port: int
    http_port: int


def find_haproxy() -> Path | None:
    """The installed haproxy binary (Debian's package puts it in /usr/sbin)."""
    found = shutil.which(HAPROXY_PACKAGE)
    if found:
        return Path(found)
    return DEBIAN_BINARY if DEBIAN_BINARY.is_file() else None


def install_haproxy(cache: Path, log_file: Path, progress: Progress) -> Path:
    """HAProxy from the distribution's package, once."""
    with install_lock(cache, "haproxy"):
        found = find_haproxy()
        if found is not None:
            return found
        apt_install(
            [HAPROXY_PACKAGE],
            log_file,
            progress,
            needed_for="install HAProxy (in front of the packet collectors)",
            how_to="Install the haproxy package of your distribution and rerun.",
        )
        found = find_haproxy()
        if found is None:
            raise StackError(f"apt-get installed {HAPROXY_PACKAGE} but no haproxy binary is on PATH; see {log_file}")
        return found


def _server_lines(collectors: Sequence[CollectorAddress], http: bool) -> list[str]:
    # The TCP backend checks each collector's /healthz on its HTTP port too: a station's stream never goes to a
    # collector that cannot publish, and health checks open no empty connections on the packet port.
    return [
        f"    server {c.name} {c.host}:{c.http_port} check"
        if http
        else f"    server {c.name} {c.host}:{c.tcp_port} check port {c.http_port}"
        for c in collectors
    ]


def haproxy_config_text(
    bind_host: str,
    tcp_port: int,
    http_port: int,
    collectors: Sequence[CollectorAddress],
    *,
    dns_resolver: str | None = None,
) -> str:
    """haproxy.cfg: packets over raw TCP (``mode tcp``, least connections, an hour of idle stream) and HTTP
    uploads (``mode http``, round robin, ``X-Forwarded-For``), both to ``collectors`` while their ``/healthz``
    answers 200. ``dns_resolver`` (``host:port``) re-resolves collectors named by host name (containers)."""
    health_check = [
        "    option httpchk",
        f"    http-check send meth GET uri {HEALTH_URI}",
        "    http-check expect status 200",
    ]
    resolvers = ["resolvers dns", f"    nameserver dns {dns_resolver}", ""] if dns_resolver else []
    # Named collectors may not resolve yet when HAProxy starts (containers start in any order): start anyway.
    resolve = " resolvers dns init-addr last,libc,none" if dns_resolver else ""
    lines = [
        "global",
        "    log stdout format raw local0",
        "",
        *resolvers,
        "defaults",
        "    log global",
        "    option dontlognull  # health probes that connect and send nothing",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        f"    default-server inter 2s fall 3 rise 2{resolve}",
        "",
        "# Raw CCSDS packet streams (an optional AUTH line, then packets back to back): bytes pass untouched, and a",
        "# station's connection stays on one collector for its lifetime.",
        "frontend packets_tcp",
        "    mode tcp",
        "    option tcplog",
        f"    bind {bind_host}:{tcp_port}",
        "    default_backend collectors_tcp",
        "",
        "backend collectors_tcp",
        "    mode tcp",
        "    balance leastconn",
        "    # A station's stream may stay quiet between passes.",
        "    timeout tunnel 1h",
        *health_check,
        *_server_lines(collectors, http=False),
        "",
        "# Packet uploads: POST /v1/missions/<mission>/packets.",
        "frontend packets_http",
        "    mode http",
        "    option httplog",
        "    option forwardfor",
        "    timeout http-request 10s",
        f"    bind {bind_host}:{http_port}",
        "    default_backend collectors_http",
        "",
        "backend collectors_http",
        "    mode http",
        "    balance roundrobin",
        *health_check,
        *_server_lines(collectors, http=True),
    ]
    return "\n".join(lines) + "\n"


def native_collectors(config: StackConfig) -> list[CollectorAddress]:
    """The stack's collectors, on the ports ``StackConfig.ports`` gives them."""
    return [
        CollectorAddress(name, config.host(name), config.ports(name)["tcp"], config.ports(name)["http"])
        for name in COLLECTORS
    ]


def native_haproxy_config(config: StackConfig) -> str:
    header = "# Rendered by `satlake stack up` (satlake/stack/haproxy.py) from the stack's settings: change those.\n"
    return header + haproxy_config_text(
        config.collector_host, config.collector_tcp_port, config.collector_http_port, native_collectors(config)
    )


def compose_haproxy_config() -> str:
    """The configuration docker-compose.yml mounts: the default ports, the fronts on all the container's
    interfaces, and the collectors reached by their service names (``collector1``, ``collector2``)."""
    defaults = StackConfig.from_settings(Settings(), environ={})
    collectors = [replace(collector, host=collector.name) for collector in native_collectors(defaults)]
    header = f"# Rendered by `python3 -m satlake.stack docker-haproxy {COMPOSE_CONFIG}` (satlake/stack/haproxy.py).\n"
    return header + haproxy_config_text(
        "", defaults.collector_tcp_port, defaults.collector_http_port, collectors, dns_resolver=DOCKER_DNS
    )


def haproxy_config_path(config: StackConfig) -> Path:
    return config.server_dir("haproxy") / CONFIG_FILE


def check_haproxy_config(binary: Path, config_file: Path) -> str:
    """``haproxy -c -f``: the output of a valid configuration; raises StackError with HAProxy's reasons."""
    completed = subprocess.run(
        [str(binary), "-c", "-f", str(config_file)], capture_output=True, text=True, timeout=60, check=False
    )
    output = (completed.stdout + completed.stderr).strip()
    if completed.returncode != 0:
        raise StackError(f"HAProxy refuses {config_file} (`haproxy -c`, exit {completed.returncode}):\n{output}")
    return output


def prepare_haproxy(config: StackConfig, binary: Path) -> Launch:
    """Write haproxy.cfg under the stack home, check it, and run HAProxy in the foreground (``-db``)."""
    config_file = haproxy_config_path(config)
    write_files(config_file.parent, {CONFIG_FILE: native_haproxy_config(config)})
    check_haproxy_config(binary, config_file)
    return Launch(command=[str(binary), "-db", "-f", str(config_file)], cwd=config_file.parent, marker=str(config_file))


def haproxy_restart_reason(config: StackConfig) -> str | None:
    """Why a running HAProxy must restart: its file differs from the rendered one (a port moved)."""
    config_file = haproxy_config_path(config)
    on_disk = config_file.read_text() if config_file.is_file() else None
    return None if on_disk == native_haproxy_config(config) else f"its configuration changed ({CONFIG_FILE})"


def haproxy_health(host: str, tcp_port: int, http_port: int) -> tuple[bool, str]:
    """Healthy when both fronts accept connections (the collectors' own health is theirs to report)."""
    closed = [
        f"{kind} {host}:{port}"
        for kind, port in (("tcp", tcp_port), ("http", http_port))
        if not port_accepts(host, port)
    ]
    if closed:
        return False, f"nothing accepts connections on {' and '.join(closed)}"
    return True, f"packets over tcp://{host}:{tcp_port} and http://{host}:{http_port}"
