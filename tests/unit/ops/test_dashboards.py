"""The provisioned Grafana dashboards: JSON in the shape Grafana's file provisioning loads, every panel on the
provisioned Prometheus datasource, every query valid PromQL (parsed by promtool) that reads only satlake's metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from satlake.ops import names

REPO = Path(__file__).resolve().parents[3]
DASHBOARDS = REPO / "satlake" / "ops" / "dashboards"
PROVISIONING = REPO / "satlake" / "ops" / "grafana" / "provisioning"
EXPECTED_DASHBOARDS = {"ingestion", "lakehouse", "scenes", "quality"}
GRID_COLUMNS = 24
PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table"}

# The series each metric family is exposed as, in the text format Prometheus scrapes (the exporter's own
# exposition is checked against the same names in test_exporter.py).
SERIES_OF_FAMILY = {family: names.exposed_series(family) for family in names.COUNTERS | names.HISTOGRAMS | names.GAUGES}
SERIES_NAMES = names.all_exposed_series()

# Grafana's interval variables, replaced by a literal duration to parse a query outside Grafana.
GRAFANA_INTERVALS = re.compile(r"\$__(rate_interval|interval|range)\b")
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless"}
PROMQL_KEYWORDS |= {"offset", "inf", "nan"}


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL) of every target of every panel."""
    return [
        (name, panel["title"], target["expr"])
        for name, dashboard in load_dashboards().items()
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def as_parseable_promql(expr: str) -> str:
    return GRAFANA_INTERVALS.sub("5m", expr)


def series_selected(expr: str) -> set[str]:
    """Metric names a PromQL expression selects: identifiers that are neither functions, aggregations, keywords,
    label names (inside braces or grouping clauses) nor parts of numbers, strings or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", as_parseable_promql(expr))
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    identifiers = re.findall(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()", text)
    return {identifier for identifier in identifiers if identifier.lower() not in PROMQL_KEYWORDS}


def test_the_four_dashboards_are_provisioned_with_unique_uids() -> None:
    dashboards = load_dashboards()
    assert set(dashboards) == EXPECTED_DASHBOARDS
    uids = [dashboard["uid"] for dashboard in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for name, dashboard in dashboards.items():
        # A provisioned dashboard is matched by uid; a numeric id would clash with the database's own.
        assert dashboard["id"] is None, name
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dashboard["uid"]), name
        assert name in dashboard["title"]
        assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
        assert dashboard["panels"], name


def test_panels_fit_the_grid_without_overlapping() -> None:
    for name, dashboard in load_dashboards().items():
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(set(ids)) == len(ids), f"{name}: panel ids repeat"
        cells: dict[tuple[int, int], str] = {}
        for panel in dashboard["panels"]:
            assert panel["type"] in PANEL_TYPES, (name, panel["title"])
            assert panel["title"] and panel["description"], (name, panel)
            grid = panel["gridPos"]
            assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= GRID_COLUMNS, (name, panel["title"])
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    assert (x, y) not in cells, f"{name}: {panel['title']!r} overlaps {cells[(x, y)]!r}"
                    cells[(x, y)] = panel["title"]


def test_every_panel_reads_the_provisioned_prometheus_datasource() -> None:
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (datasource,) = provisioned["datasources"]
    assert datasource["type"] == "prometheus"
    expected = {"type": "prometheus", "uid": datasource["uid"]}
    for name, dashboard in load_dashboards().items():
        for panel in dashboard["panels"]:
            assert panel["datasource"] == expected, (name, panel["title"])
            ref_ids = [target["refId"] for target in panel["targets"]]
            assert panel["targets"] and len(set(ref_ids)) == len(ref_ids), (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"] == expected, (name, panel["title"])
                assert target["expr"].strip(), (name, panel["title"])


def test_the_dashboard_provider_loads_the_dashboards_folder() -> None:
    provisioned = yaml.safe_load((PROVISIONING / "dashboards" / "satlake.yml").read_text())
    (provider,) = provisioned["providers"]
    assert provisioned["apiVersion"] == 1
    assert provider["type"] == "file"
    # docker-compose.yml mounts satlake/ops/dashboards at this path (checked in tests/unit/infra).
    assert provider["options"]["path"] == "/etc/satlake/dashboards"


def test_queries_select_only_satlake_metrics_and_show_every_one() -> None:
    selected: set[str] = set()
    for dashboard, title, expr in panel_queries():
        series = series_selected(expr)
        assert series, f"{dashboard}: {title!r} selects no metric: {expr}"
        assert series <= SERIES_NAMES, f"{dashboard}: {title!r} reads {series - SERIES_NAMES}: {expr}"
        selected |= series
    unshown = {family for family, series in SERIES_OF_FAMILY.items() if not series & selected}
    assert not unshown, f"no panel shows {sorted(unshown)}"


def test_the_metric_name_extraction_sees_through_promql_syntax() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (job, le) (rate(satlake_run_duration_seconds_bucket{job=~"a.*"}[5m])))'
        " / clamp_min(sum without (table) (up offset 1h), 1e-9) or vector(0) + on (job) group_left (x) other"
    )
    assert series_selected(expr) == {"satlake_run_duration_seconds_bucket", "up", "other"}


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; `satlake stack install` installs it)")
    # promtool parses the expression of every recording rule: one rule per panel query.
    rules = [
        {"record": f"satlake:panel_{index}", "expr": as_parseable_promql(expr)}
        for index, (_, _, expr) in enumerate(panel_queries())
    ]
    rules_file = tmp_path / "panels.rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    completed = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"SUCCESS: {len(rules)} rules found" in completed.stdout + completed.stderr


def test_promtool_rejects_a_malformed_panel_query(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; `satlake stack install` installs it)")
    rules_file = tmp_path / "bad.rules.yml"
    bad = "sum by (topic) (rate(satlake_events_consumed_total[5m])"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": [{"record": "x", "expr": bad}]}]}))
    completed = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert completed.returncode != 0
