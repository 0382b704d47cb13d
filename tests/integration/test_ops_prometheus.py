"""Prometheus in stack mode scrapes `satlake metrics serve`, and a failing asset check fires an alert that
Alertmanager delivers to a webhook: the whole alerting path with the real servers."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from satlake.ops.exporter import build_exporter, serve_metrics
from satlake.settings import Settings
from satlake.stack import stack_up
from satlake.stack.config import StackConfig

pytestmark = pytest.mark.integration
CHECK_OUTCOME = {"passed": True}


@dg.asset
def ops_probe_table() -> int:
    return 1


@dg.asset_check(asset=ops_probe_table)
def ops_probe_reconciles() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=CHECK_OUTCOME["passed"])


class AlertReceiver(BaseHTTPRequestHandler):
    """A webhook like an operator's paging service: keeps every notification Alertmanager posts."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        AlertReceiver.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def webhook() -> Iterator[str]:
    AlertReceiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), AlertReceiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()
    server.server_close()


def wait_for(what: str, probe: Callable[[], Any], timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}; last answer: {last!r}")


def prometheus_query(config: StackConfig, query: str) -> list[dict[str, Any]]:
    url = f"http://{config.monitoring_host}:{config.prometheus_port}/api/v1/query?" + urllib.parse.urlencode(
        {"query": query}
    )
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def firing_notifications(alertname: str) -> list[dict[str, Any]]:
    return [
        alert
        for notification in AlertReceiver.received
        for alert in notification["alerts"]
        if alert["labels"].get("alertname") == alertname and alert["status"] == "firing"
    ]


def test_a_failing_check_pages_through_prometheus_and_alertmanager(
    stack: Settings, webhook: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SATLAKE_MONITORING_INTERVAL", "1s")
    settings = stack.with_overrides(alert_webhook_url=webhook)
    stack_up(settings, ["alertmanager", "prometheus"])  # already running: rewrites and reloads the configuration
    config = StackConfig.from_settings(settings)
    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))
    server = serve_metrics(build_exporter(settings, instance), config.metrics_host, config.metrics_port)
    try:
        CHECK_OUTCOME["passed"] = True
        assert dg.materialize([ops_probe_table, ops_probe_reconciles], instance=instance).success
        passing = 'satlake_check_passed{asset="ops_probe_table",check="ops_probe_reconciles"} == 1'
        wait_for("Prometheus to scrape the passing check", lambda: prometheus_query(config, passing))
        up = prometheus_query(config, 'up{job="satlake"}')
        assert [sample["value"][1] for sample in up] == ["1"]
        lag = prometheus_query(config, f'satlake_consumer_lag{{topic="{settings.telemetry_topic}"}}')
        assert sorted(int(s["metric"]["partition"]) for s in lag) == list(range(settings.telemetry_partitions))
        assert not firing_notifications("AssetCheckFailed")

        CHECK_OUTCOME["passed"] = False
        assert dg.materialize([ops_probe_table, ops_probe_reconciles], instance=instance, raise_on_error=False)
        alerts = wait_for("the AssetCheckFailed notification", lambda: firing_notifications("AssetCheckFailed"))
        assert alerts[0]["labels"]["asset"] == "ops_probe_table"
        assert alerts[0]["labels"]["check"] == "ops_probe_reconciles"
        assert alerts[0]["labels"]["severity"] == "critical"
        assert "ops_probe_reconciles on ops_probe_table failed" in alerts[0]["annotations"]["summary"]
    finally:
        server.close()
        CHECK_OUTCOME["passed"] = True
