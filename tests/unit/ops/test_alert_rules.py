"""The alert rules under promtool (Debian's prometheus package, installed through the stack's install) and the
configuration the stack generates for Prometheus and Alertmanager, checked by their own tools."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from satlake.ops import names
from satlake.settings import Settings
from satlake.stack.config import StackConfig
from satlake.stack.install import InstallToolMissing
from satlake.stack.monitoring import (
    RULES_FILE,
    MonitoringBinaries,
    alertmanager_config,
    install_monitoring,
    prepare_alertmanager,
    prepare_prometheus,
    prometheus_config,
)

RULES_DIR = Path(__file__).resolve().parents[3] / "satlake" / "ops" / "rules"
ALERTS = {
    "ConsumerLagGrowing",
    "IngestionStalled",
    "FreshnessOverLimit",
    "AssetCheckFailed",
    "AssetCheckWarning",
    "RunFailed",
    "SceneQuarantineBurst",
}


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> MonitoringBinaries:
    config = StackConfig.from_settings(Settings.from_env({"SATLAKE_ROOT": str(tmp_path_factory.mktemp("root"))}))
    try:
        return install_monitoring(
            config.cache, config.logs_dir / "install-monitoring.log", lambda m: print(m, file=sys.stderr)
        )
    except InstallToolMissing as error:
        pytest.skip(f"Prometheus cannot be installed on this machine: {error}")


def run(command: list[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_rules_pass_promtool_check(binaries: MonitoringBinaries) -> None:
    checked = run([binaries.promtool, "check", "rules", RULES_DIR / RULES_FILE])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout


def test_every_alert_fires_and_stays_quiet_on_recorded_series(binaries: MonitoringBinaries) -> None:
    tested = run([binaries.promtool, "test", "rules", "alerts_test.yml"], cwd=RULES_DIR)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tests = yaml.safe_load((RULES_DIR / "alerts_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    assert {case["alertname"] for case in cases if case["exp_alerts"]} == ALERTS
    assert {case["alertname"] for case in cases if not case["exp_alerts"]} == ALERTS


def test_a_broken_expectation_fails_promtool(binaries: MonitoringBinaries, tmp_path: Path) -> None:
    (tmp_path / RULES_FILE).write_text((RULES_DIR / RULES_FILE).read_text())
    broken = (RULES_DIR / "alerts_test.yml").read_text().replace("check: row_count_reconciliation", "check: other")
    (tmp_path / "alerts_test.yml").write_text(broken)
    tested = run([binaries.promtool, "test", "rules", "alerts_test.yml"], cwd=tmp_path)
    assert tested.returncode != 0
    assert "AssetCheckFailed" in tested.stdout + tested.stderr


def test_rules_use_only_the_exporters_metric_names() -> None:
    rules = yaml.safe_load((RULES_DIR / RULES_FILE).read_text())
    used = {
        metric
        for group in rules["groups"]
        for rule in group["rules"]
        for metric in re.findall(r"\bsatlake_[a-z_]+", rule["expr"])
    }
    exposed = names.all_exposed_series()
    assert used and used <= exposed, used - exposed


def test_generated_prometheus_configuration_passes_promtool(binaries: MonitoringBinaries, tmp_path: Path) -> None:
    settings = Settings.from_env({"SATLAKE_ROOT": str(tmp_path), "SATLAKE_METRICS_PORT": "19108"})
    launch = prepare_prometheus(StackConfig.from_settings(settings), binaries)
    config_file = Path(launch.command[1].removeprefix("--config.file="))
    checked = run([binaries.promtool, "check", "config", config_file])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout
    scrape = yaml.safe_load(config_file.read_text())["scrape_configs"][0]
    assert scrape["static_configs"][0]["targets"] == ["127.0.0.1:19108"]


@pytest.mark.parametrize("webhook", [None, "http://127.0.0.1:18000/alerts"])
def test_generated_alertmanager_configuration_routes_to_the_webhook(
    binaries: MonitoringBinaries, tmp_path: Path, webhook: str | None
) -> None:
    environment = {"SATLAKE_ROOT": str(tmp_path)} | ({"SATLAKE_ALERT_WEBHOOK_URL": webhook} if webhook else {})
    config = StackConfig.from_settings(Settings.from_env(environment))
    launch = prepare_alertmanager(config, binaries)
    amtool = binaries.alertmanager.with_name("amtool")
    checked = run([amtool, "check-config", launch.command[1].removeprefix("--config.file=")])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    route = alertmanager_config(config)
    receivers = {receiver["name"]: receiver for receiver in route["receivers"]}  # type: ignore[index,union-attr]
    chosen = receivers[route["route"]["receiver"]]  # type: ignore[index]
    urls = [hook["url"] for hook in chosen.get("webhook_configs", [])]
    assert urls == ([webhook] if webhook else [])


COMPOSE_DIR = RULES_DIR.parent / "compose"


def test_compose_prometheus_matches_the_native_one_and_passes_promtool(
    binaries: MonitoringBinaries, tmp_path: Path
) -> None:
    compose = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    native = StackConfig.from_settings(Settings.from_env({"SATLAKE_ROOT": str(tmp_path)}))
    in_containers = replace(
        native,
        monitoring_host="alertmanager",
        alertmanager_port=9093,
        metrics_host="satlake-metrics",
        metrics_port=9108,
    )
    expected = prometheus_config(in_containers)
    assert {key: compose[key] for key in ("global", "alerting", "scrape_configs")} == {
        key: expected[key] for key in ("global", "alerting", "scrape_configs")
    }
    assert [Path(path).name for path in compose["rule_files"]] == [RULES_FILE]
    # The rules sit where the compose file mounts them; promtool reads them from beside the copy.
    (tmp_path / RULES_FILE).write_text((RULES_DIR / RULES_FILE).read_text())
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({**compose, "rule_files": [RULES_FILE]}))
    checked = run([binaries.promtool, "check", "config", tmp_path / "prometheus.yml"])
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_compose_alertmanager_groups_as_the_native_one_and_passes_amtool(
    binaries: MonitoringBinaries, tmp_path: Path
) -> None:
    compose = yaml.safe_load((COMPOSE_DIR / "alertmanager.yml").read_text())
    native = StackConfig.from_settings(Settings.from_env({"SATLAKE_ROOT": str(tmp_path)}))
    assert compose == alertmanager_config(native)
    checked = run([binaries.alertmanager.with_name("amtool"), "check-config", COMPOSE_DIR / "alertmanager.yml"])
    assert checked.returncode == 0, checked.stdout + checked.stderr
