"""The Grafana dashboards against the real Prometheus of the stack: after a stack-mode demo, with the exporter
serving the demo's lakehouse and Dagster instance where Prometheus scrapes it, every panel's query returns series.

Grafana itself is not installable here; what a panel shows is what Prometheus answers to its query, so this
is the check that no panel of satlake/ops/dashboards stays empty on a working stack."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from satlake.demo import run_demo
from satlake.ops.exporter import build_exporter, serve_metrics
from satlake.runner import dagster_instance
from satlake.settings import Settings

pytestmark = pytest.mark.integration

DASHBOARDS = Path(__file__).resolve().parents[2] / "satlake" / "ops" / "dashboards"
# Grafana's $__rate_interval is at least four scrape intervals; two minutes covers the stack's default 15 s.
GRAFANA_INTERVALS = re.compile(r"\$__(rate_interval|interval|range)\b")
RATE_INTERVAL = "2m"
SCRAPES_DEADLINE_SECONDS = 240


def panel_queries() -> dict[str, str]:
    """'dashboard / panel title [refId]' -> the query Grafana sends to Prometheus."""
    queries = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                key = f"{path.stem} / {panel['title']} [{target['refId']}]"
                queries[key] = GRAFANA_INTERVALS.sub(RATE_INTERVAL, target["expr"])
    return queries


def instant_query(prometheus: str, expr: str) -> list[dict[str, object]]:
    """The result vector of an instant query, through Prometheus' HTTP API."""
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_every_dashboard_panel_returns_series_after_a_stack_demo(stack: Settings, tmp_path: Path) -> None:
    settings = stack.with_overrides(root=tmp_path)
    # Whether every run of the demo succeeded is the demo's tests' concern; a failed run is a series here too.
    run_demo(settings)
    instance = dagster_instance(settings.dagster_home)
    # Prometheus (started by the stack) scrapes the exporter at the stack's metrics port.
    server = serve_metrics(build_exporter(settings, instance), "127.0.0.1", settings.metrics_port)
    prometheus = f"http://127.0.0.1:{settings.prometheus_port}"
    queries = panel_queries()
    assert len(queries) >= 20
    try:
        empty = dict(queries)
        deadline = time.monotonic() + SCRAPES_DEADLINE_SECONDS
        while empty and time.monotonic() < deadline:
            empty = {key: expr for key, expr in empty.items() if not instant_query(prometheus, expr)}
            if empty:
                time.sleep(5)
        assert not empty, f"panels without series after {SCRAPES_DEADLINE_SECONDS} s of scrapes: {sorted(empty)}"
        # The demo caught up with its events (no lag remains) and converted scenes.
        (lag,) = instant_query(prometheus, "sum(satlake_consumer_lag)")
        assert float(lag["value"][1]) == 0.0  # type: ignore[index]
        scenes = {
            row["metric"]["outcome"]: float(row["value"][1])  # type: ignore[index]
            for row in instant_query(prometheus, "sum by (outcome) (satlake_scenes_total)")
        }
        assert scenes["landed"] >= scenes["converted"] > 0
    finally:
        server.close()
        instance.dispose()
