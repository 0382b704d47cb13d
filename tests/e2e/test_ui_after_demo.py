"""The Dagster UI as a user meets it after the demo: `satlake ui` (webserver and daemon) repeats none of the
demo's work and shows no failure; the asset page of bronze/telemetry, in headless Chromium, shows the demo's
days materialized and every check passed; new telemetry is then carried through bronze and the dbt models by
the daemon alone; and Ctrl-C's sibling SIGTERM stops the UI with all its processes."""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from satlake.resources.lakehouse import Lakehouse
from satlake.telemetry.tables import BRONZE_TELEMETRY, SILVER_TELEMETRY_CLEAN
from tests.e2e.test_ui import free_port, graphql

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "docs" / "images"
SENSORS = {
    "telemetry_events_sensor",
    "bronze_days_sensor",
    "object_events_sensor",
    "acquisition_requests_sensor",
    "mars_requests_sensor",
    "mars_landing_sensor",
    "ground_packets_sensor",
    "default_automation_condition_sensor",
}
# Two ticks of every sensor (minimum interval 30 s) and of the automation sensor, with room to launch a run.
QUIET_WAIT_S = 75


@dataclass
class UI:
    root: Path
    port: int
    process: subprocess.Popen[str]
    log: Path
    started_at: float

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(self.port, query, variables)

    def runs(self) -> list[dict]:
        data = self.graphql("{ runsOrError { ... on Runs { results { runId jobName status creationTime "
                            "tags { key value } assetSelection { path } } } } }")  # fmt: skip
        return data["runsOrError"]["results"]


def environment(root: Path) -> dict[str, str]:
    """A user's environment: their root, and satlake's defaults for everything else (the partitions start
    among them, which this test is about)."""
    inherited = {k: v for k, v in os.environ.items() if k not in ("SATLAKE_PARTITIONS_START", "SATLAKE_AUTOMATION")}
    return {**inherited, "SATLAKE_ROOT": str(root), "SATLAKE_MODE": "embedded", "SATLAKE_RUN_LOG_LEVEL": "WARNING"}


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    root = tmp_path_factory.mktemp("ui-after-demo")
    demo = subprocess.run([sys.executable, "-m", "satlake", "demo"], env=environment(root), cwd=REPO,
                          capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    assert demo.returncode == 0 and "all checks passed" in demo.stdout, demo.stdout[-3000:] + demo.stderr[-3000:]
    port, log = free_port(), root / "ui.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "satlake", "ui", "--port", str(port)], env=environment(root), cwd=REPO,
            stdout=output, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
    started_at = time.time()
    deadline = time.monotonic() + 300
    while "Dagster UI ready at" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"`satlake ui` did not become ready:\n{log.read_text()[-3000:]}")
        time.sleep(1)
    assert f"Dagster UI ready at http://127.0.0.1:{port}" in log.read_text()
    running = UI(root, port, process, log, started_at)
    yield running
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)


def test_the_ui_repeats_none_of_the_demo_and_reports_every_sensor_running(ui: UI) -> None:
    time.sleep(QUIET_WAIT_S)
    launched = [run for run in ui.runs() if run["creationTime"] > ui.started_at]
    assert launched == [], f"the daemon launched runs for work the demo did: {launched}"

    data = ui.graphql(
        """{ sensorsOrError(repositorySelector: {repositoryLocationName: "satlake", repositoryName: "__repository__"})
             { ... on Sensors { results { name sensorState { status } } } } }"""
    )
    states = {s["name"]: s["sensorState"]["status"] for s in data["sensorsOrError"]["results"]}
    assert states == dict.fromkeys(SENSORS, "RUNNING")

    nodes = ui.graphql(
        """{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name
             executionForLatestMaterialization { status } } } } } }"""
    )["assetNodes"]
    statuses = {
        f"{'/'.join(n['assetKey']['path'])}:{c['name']}": (c["executionForLatestMaterialization"] or {}).get("status")
        for n in nodes for c in (n["assetChecksOrError"].get("checks") or [])
    }  # fmt: skip
    assert len(statuses) >= 40
    assert [name for name, status in statuses.items() if status not in ("SUCCEEDED", None)] == []
    assert all(statuses[f"bronze/telemetry:{c}"] == "SUCCEEDED" for c in ("row_count_reconciliation", "limit_alarms"))


def page_text(dom: str) -> str:
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)))


def chromium(*arguments: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("Debian's chromium is not installed (bash infra/install_chromium.sh)")
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1600,1000",
         "--virtual-time-budget=20000", *arguments],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def rendered(url: str, *expected: str, attempts: int = 8) -> str:
    """The page's text once the app has rendered what is ``expected`` (its data arrives by GraphQL after load,
    later on a busy machine), or the last text seen."""
    text = ""
    for _ in range(attempts):
        text = page_text(chromium("--dump-dom", url).stdout)
        if all(part in text for part in expected):
            return text
        time.sleep(5)
    return text


def test_the_bronze_asset_page_shows_the_demo_days_and_every_check_passed_in_chromium(ui: UI) -> None:
    page = f"http://127.0.0.1:{ui.port}/assets/bronze/telemetry"
    days = {(datetime.now(UTC).date() - timedelta(days=n)).isoformat() for n in range(3)}

    partitions = rendered(f"{page}?view=partitions", "Materialized (", "Missing (")
    assert "Materialized (3)" in partitions and "Missing (0)" in partitions and "Failed (0)" in partitions, partitions
    assert all(day in partitions for day in days)
    assert "Join the Dagster community" not in partitions  # no sign-up dialog over the page

    checks = rendered(f"{page}?view=checks", "Checks (", "schema_unchanged Succeeded")
    assert "Checks (5)" in checks, checks
    for name in ("keys_not_null_and_unique", "latest_partition_fresh", "limit_alarms", "row_count_reconciliation",
                 "schema_unchanged"):  # fmt: skip
        assert re.search(rf"{name} {name} Succeeded", checks), name
    assert "Failed" not in checks

    overview = rendered(page, "Latest materialization")
    assert "Latest materialization" in overview and "error" not in overview.lower(), overview

    IMAGES.mkdir(parents=True, exist_ok=True)
    for view, name in (("partitions", "ui-bronze-partitions.png"), ("checks", "ui-bronze-checks.png")):
        shot = IMAGES / name
        result = chromium(f"--screenshot={shot}", f"{page}?view={view}")
        assert result.returncode == 0 and shot.stat().st_size > 20_000, result.stderr[-2000:]


def test_new_telemetry_is_carried_through_bronze_and_dbt_by_the_daemon_alone(ui: UI) -> None:
    # Readings of yesterday (a closed day, whose dbt models follow bronze at once), arriving now; 5 s off the
    # demo's 20 s grid, so none repeats a demo reading of the same satellite and time.
    yesterday = datetime.now(UTC).replace(hour=6, minute=0, second=5, microsecond=0) - timedelta(days=1)
    produce = (
        "from satlake.resources import build_resources\n"
        "from satlake.settings import Settings\n"
        "from satlake.telemetry.producer import publish_records, simulate_telemetry\n"
        "settings = Settings.from_env()\n"
        "log = build_resources(settings).event_log\n"
        f"records = simulate_telemetry(2, {int(yesterday.timestamp() * 1e9)}, "
        f"{int((yesterday + timedelta(minutes=20)).timestamp() * 1e9)}, 10.0, 0.0, seed=99)\n"
        "print(publish_records(log, settings.telemetry_topic, records))\n"
        "log.close()\n"
    )
    lake = Lakehouse(root_uri=str(ui.root / "lake"))
    day = yesterday.date()
    before = lake.read(SILVER_TELEMETRY_CLEAN, filters=[("event_date", "=", day)])
    published = subprocess.run([sys.executable, "-c", produce], env=environment(ui.root), cwd=REPO,
                               capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    assert int(published.stdout.strip()) == 240
    produced_at = time.time()

    deadline = time.monotonic() + 480
    while time.monotonic() < deadline:
        runs = [run for run in ui.runs() if run["creationTime"] > produced_at]
        finished = {run["jobName"]: run["status"] for run in runs if run["status"] in ("SUCCESS", "FAILURE")}
        curated = [run for run in runs if any(a["path"] == ["silver", "telemetry_clean"]
                                              for a in run["assetSelection"] or [])]  # fmt: skip
        if curated and all(run["status"] == "SUCCESS" for run in curated):
            break
        assert "FAILURE" not in finished.values(), runs
        time.sleep(5)
    else:
        pytest.fail(f"the daemon did not carry the new telemetry through the dbt models: {ui.runs()[:8]}")

    bronze = lake.read(BRONZE_TELEMETRY, filters=[("event_date", "=", day)])
    after = lake.read(SILVER_TELEMETRY_CLEAN, filters=[("event_date", "=", day)])
    assert bronze is not None and after is not None
    assert after.num_rows == (before.num_rows if before is not None else 0) + 240
    jobs = {run["jobName"] for run in ui.runs() if run["creationTime"] > produced_at}
    assert {"ingest_telemetry_job", "bronze_telemetry_job"} <= jobs

    # `satlake run` continues from the state the daemon left: it finds nothing to do twice.
    before_run = time.time()
    again = subprocess.run([sys.executable, "-m", "satlake", "run"], env=environment(ui.root), cwd=REPO,
                           capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to do" in again.stdout
    assert [run for run in ui.runs() if run["creationTime"] > before_run] == [], again.stdout


def test_sigterm_stops_the_ui_and_every_process_it_started(ui: UI) -> None:
    os.kill(ui.process.pid, signal.SIGTERM)
    assert ui.process.wait(timeout=60) == 0
    assert "stopping the Dagster UI and daemon" in ui.log.read_text()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(ui.process.pid, 0)  # anything left of the UI's process group?
        except ProcessLookupError:
            return
        time.sleep(1)
    pytest.fail("processes of the UI outlived it")
