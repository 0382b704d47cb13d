"""Prometheus and Alertmanager of the stack: the distribution's packages (apt-get), their configuration under
the stack home (Prometheus scrapes ``satlake metrics serve`` and evaluates satlake's alert rules; Alertmanager
sends firing alerts to the configured webhook), their launch and their health probes."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from satlake.stack.apt import apt_install
from satlake.stack.config import StackConfig
from satlake.stack.errors import StackError
from satlake.stack.install import Progress, install_lock
from satlake.stack.servers import Launch, write_files

MONITORING_PACKAGES = ("prometheus", "prometheus-alertmanager")
RULES_FILE = "satlake.rules.yml"
EXPORTER_JOB = "satlake"
NO_WEBHOOK_RECEIVER = "satlake-ui-only"
WEBHOOK_RECEIVER = "satlake-webhook"


@dataclass(frozen=True)
class MonitoringBinaries:
    """The Debian packages' executables."""

    prometheus: Path
    promtool: Path
    alertmanager: Path


def find_monitoring_binaries() -> MonitoringBinaries | None:
    """The installed Prometheus, promtool and Alertmanager (Debian names the last ``prometheus-alertmanager``)."""
    found = [shutil.which(name) for name in ("prometheus", "promtool", "prometheus-alertmanager")]
    if not all(found):
        alertmanager = shutil.which("alertmanager")
        found[2] = found[2] or alertmanager
    if not all(found):
        return None
    return MonitoringBinaries(*(Path(path) for path in found if path is not None))


def install_monitoring(cache: Path, log_file: Path, progress: Progress) -> MonitoringBinaries:
    """Prometheus (with promtool) and Alertmanager from the distribution's packages, once."""
    with install_lock(cache, "monitoring"):
        found = find_monitoring_binaries()
        if found is not None:
            return found
        apt_install(
            MONITORING_PACKAGES,
            log_file,
            progress,
            needed_for="install Prometheus and Alertmanager",
            how_to="Install the prometheus and prometheus-alertmanager packages of your distribution and rerun.",
        )
        found = find_monitoring_binaries()
        if found is None:
            raise StackError(
                f"apt-get installed {' '.join(MONITORING_PACKAGES)} but prometheus, promtool or "
                f"prometheus-alertmanager is not on PATH; see {log_file}"
            )
        return found


def rules_text() -> str:
    """satlake's alert rules as shipped in ``satlake/ops/rules``."""
    return resources.files("satlake.ops").joinpath("rules", RULES_FILE).read_text()


def prometheus_paths(config: StackConfig) -> tuple[Path, Path]:
    """(config file, data dir) of Prometheus."""
    server_dir = config.server_dir("prometheus")
    return server_dir / "prometheus.yml", server_dir / "data"


def alertmanager_paths(config: StackConfig) -> tuple[Path, Path]:
    """(config file, data dir) of Alertmanager."""
    server_dir = config.server_dir("alertmanager")
    return server_dir / "alertmanager.yml", server_dir / "data"


def prometheus_config(config: StackConfig) -> dict[str, object]:
    """prometheus.yml: scrape the exporter, evaluate the rules beside it, alert through Alertmanager."""
    interval = config.monitoring_interval
    alertmanager = f"{config.monitoring_host}:{config.alertmanager_port}"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [RULES_FILE],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {
                "job_name": EXPORTER_JOB,
                # The exporter's own `job` label (satlake_runs_total{job=...}) is Dagster's job; without this
                # Prometheus renames it exported_job and run panels and alerts lose it.
                "honor_labels": True,
                "static_configs": [{"targets": [f"{config.metrics_host}:{config.metrics_port}"]}],
            }
        ],
    }


def alertmanager_config(config: StackConfig) -> dict[str, object]:
    """alertmanager.yml: every alert to the webhook (when one is configured), grouped per alert and subject."""
    receivers: list[dict[str, object]] = [{"name": NO_WEBHOOK_RECEIVER}]
    receiver = NO_WEBHOOK_RECEIVER
    if config.alert_webhook_url:
        receiver = WEBHOOK_RECEIVER
        receivers.append(
            {"name": WEBHOOK_RECEIVER, "webhook_configs": [{"url": config.alert_webhook_url, "send_resolved": True}]}
        )
    return {
        "route": {
            "receiver": receiver,
            "group_by": ["alertname", "asset", "check", "topic", "job"],
            "group_wait": config.monitoring_interval,
            "group_interval": "1m",
            "repeat_interval": "4h",
        },
        "receivers": receivers,
    }


def monitoring_files(config: StackConfig, server: str) -> tuple[Path, dict[str, str]]:
    """(config dir, {file name: text}) of Prometheus or Alertmanager as this satlake renders them."""
    if server == "prometheus":
        config_file = prometheus_paths(config)[0]
        rendered = {
            config_file.name: yaml.safe_dump(prometheus_config(config), sort_keys=False),
            RULES_FILE: rules_text(),
        }
    else:
        config_file = alertmanager_paths(config)[0]
        rendered = {config_file.name: yaml.safe_dump(alertmanager_config(config), sort_keys=False)}
    return config_file.parent, rendered


def refresh_monitoring_configuration(config: StackConfig, server: str, timeout_s: float = 10.0) -> bool:
    """Rewrite a running Prometheus's or Alertmanager's files and ask it to reload them (``POST /-/reload``)
    when they changed (a new webhook, interval or rule); returns whether it reloaded."""
    directory, rendered = monitoring_files(config, server)
    changed = [name for name, text in rendered.items() if _read(directory / name) != text]
    if not changed:
        return False
    write_files(directory, rendered)
    port = config.ports(server)["http"]
    request = urllib.request.Request(f"http://{config.monitoring_host}:{port}/-/reload", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            pass
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace").strip()[:500]
        raise StackError(f"{server} refused its new configuration ({', '.join(changed)}): {body}") from None
    except OSError as error:
        raise StackError(f"{server} could not be asked to reload its configuration: {error}") from None
    return True


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def prepare_prometheus(config: StackConfig, binaries: MonitoringBinaries) -> Launch:
    config_file, data_dir = prometheus_paths(config)
    data_dir.mkdir(parents=True, exist_ok=True)
    write_files(*monitoring_files(config, "prometheus"))
    return Launch(
        command=[
            str(binaries.prometheus),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address={config.monitoring_host}:{config.prometheus_port}",
            "--web.enable-lifecycle",  # `POST /-/reload` applies a rewritten configuration without a restart
        ],
        cwd=config_file.parent,
        marker=str(config_file),
    )


def prepare_alertmanager(config: StackConfig, binaries: MonitoringBinaries) -> Launch:
    config_file, data_dir = alertmanager_paths(config)
    data_dir.mkdir(parents=True, exist_ok=True)
    write_files(*monitoring_files(config, "alertmanager"))
    return Launch(
        command=[
            str(binaries.alertmanager),
            f"--config.file={config_file}",
            f"--storage.path={data_dir}",
            f"--web.listen-address={config.monitoring_host}:{config.alertmanager_port}",
            "--cluster.listen-address=",  # a single instance: no gossip port to collide with other stacks
        ],
        cwd=config_file.parent,
        marker=str(config_file),
    )


def ready_health(name: str, host: str, port: int, timeout_s: float = 3.0) -> tuple[bool, str]:
    """Healthy when ``GET /-/ready`` answers 200 (Prometheus and Alertmanager share this endpoint)."""
    url = f"http://{host}:{port}/-/ready"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        return False, f"{url} answered {error.code}"
    except OSError as error:
        return False, f"{url}: {error}"
    if status != 200:
        return False, f"{url} answered {status}"
    return True, f"{name} ready on http://{host}:{port}"
