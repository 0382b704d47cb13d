"""A snapshot of the whole asset graph: any unintended change to keys, dependencies, partitions, checks,
sensors or jobs fails here. After an intended change: SATLAKE_UPDATE_SNAPSHOT=1 pytest tests/dagster."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import dagster as dg
import pytest

from satlake.definitions import build_definitions
from satlake.settings import Settings

SNAPSHOT = Path(__file__).with_name("asset_graph.snapshot.json")


def describe(defs: dg.Definitions) -> dict[str, object]:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        assets[key.to_user_string()] = {
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "partitions": type(partitions).__name__ if partitions else None,
            "checks": sorted(c.name for c in node.check_keys),
            "automation": node.automation_condition.get_label() if node.automation_condition else None,
            "materializable": node.is_materializable,
        }
    return {
        "assets": assets,
        "sensors": sorted(s.name for s in defs.sensors or []),
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
    }


def test_asset_graph_matches_snapshot(tmp_path: Path) -> None:
    settings = Settings.from_env({"SATLAKE_ROOT": str(tmp_path), "SATLAKE_MODE": "embedded"})
    current = describe(build_definitions(settings))
    if os.environ.get("SATLAKE_UPDATE_SNAPSHOT") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        pytest.skip(f"snapshot written to {SNAPSHOT}")
    assert current == json.loads(SNAPSHOT.read_text())


def test_definitions_load_without_deprecation_warnings(tmp_path: Path) -> None:
    settings = Settings.from_env({"SATLAKE_ROOT": str(tmp_path), "SATLAKE_MODE": "embedded"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        defs = build_definitions(settings)
        defs.resolve_asset_graph()
        defs.resolve_all_job_defs()
    deprecations = [
        str(w.message) for w in caught if issubclass(w.category, DeprecationWarning) and "dagster" in str(w.filename)
    ]
    assert deprecations == []
