"""The Dagster UI as a user meets it: the webserver loads every asset, check, sensor and job of satlake, and a
partition materialized through its GraphQL API (what the Materialize button calls) runs and succeeds."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TODAY = datetime.now(UTC).date().isoformat()  # inside a fresh root's daily partitions


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


@pytest.mark.e2e
def test_webserver_loads_everything_and_materializes_a_partition(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SATLAKE_ROOT": str(tmp_path), "SATLAKE_MODE": "embedded",
           "DAGSTER_HOME": str(tmp_path / "dagster")}  # fmt: skip
    (tmp_path / "dagster").mkdir()
    # No daemon here: launch runs directly, as `dagster dev` (with its daemon) would dequeue them.
    (tmp_path / "dagster" / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster._core.run_coordinator\n"
        "  class: DefaultRunCoordinator\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-w", str(REPO / "workspace.yaml"), "-p", str(port)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                data = graphql(port, "{ assetNodes { assetKey { path } hasAssetChecks } repositoriesOrError { "
                                     "... on RepositoryConnection { nodes { sensors { name } } } } }")  # fmt: skip
                break
            except urllib.error.HTTPError as error:
                pytest.fail(f"GraphQL refused the query: {error.read()[:500]!r}")
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("the webserver did not come up")
                time.sleep(2)
        keys = {"/".join(node["assetKey"]["path"]) for node in data["assetNodes"]}
        assert {"raw/telemetry_events", "bronze/telemetry", "gold/telemetry_hourly", "catalog/items"} <= keys
        assert all(node["hasAssetChecks"] for node in data["assetNodes"] if node["assetKey"]["path"][0] == "bronze")
        sensors = {s["name"] for repo in data["repositoriesOrError"]["nodes"] for s in repo["sensors"]}
        assert {"telemetry_events_sensor", "bronze_days_sensor", "object_events_sensor"} <= sensors

        launched = graphql(
            port,
            """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
                 __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
            {"params": {
                "selector": {"repositoryLocationName": "satlake", "repositoryName": "__repository__",
                             "jobName": "bronze_telemetry_job"},
                "executionMetadata": {"tags": [{"key": "dagster/partition", "value": TODAY}]},
            }},
        )["launchRun"]  # fmt: skip
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        status = "STARTING"
        while status not in {"SUCCESS", "FAILURE", "CANCELED"} and time.monotonic() < deadline + 240:
            time.sleep(3)
            status = graphql(port, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                             {"id": run_id})["runOrError"]["status"]  # fmt: skip
        assert status == "SUCCESS"
        assert (tmp_path / "lake" / "bronze" / "telemetry" / "_delta_log").is_dir()
    finally:
        server.terminate()
        server.wait(timeout=30)
