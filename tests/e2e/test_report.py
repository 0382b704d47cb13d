"""The pictures a person looks at after `satlake demo`, in Debian's headless Chromium driven over the DevTools
protocol: the page `satlake report` writes draws a telemetry chart per satellite per day (anomalies marked as
the bronze table's limit alarms), every scene's quicklook and every forest-change result's NDVI change map, with
nothing fetched from anywhere; and the Dagster UI shows the telemetry chart of bronze/telemetry's latest
materialization. Screenshots go to docs/images/report.png and docs/images/ui-telemetry-chart.png."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest

from satlake.ops.report import DEFAULT_REPORT_DAYS, newest_days
from satlake.reporting.plots import CHART_MEASURES, CHART_WIDTH
from satlake.resources.lakehouse import Lakehouse
from satlake.scenes.tables import GOLD_FOREST_CHANGE, GOLD_QUICKLOOKS
from satlake.telemetry.tables import BRONZE_TELEMETRY
from tests.e2e import test_map_page
from tests.e2e.test_map_page import Browser, count
from tests.e2e.test_ui import free_port
from tests.e2e.test_ui_after_demo import environment

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "docs" / "images"
browser = test_map_page.browser  # the module's headless Chromium page, as the map page's tests drive it


@pytest.fixture(scope="module")
def report(demo_lakehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page `satlake report` writes for the session's demo root (written outside it: the root is shared)."""
    output = tmp_path_factory.mktemp("report") / "report.html"
    done = subprocess.run([sys.executable, "-m", "satlake", "report", "--output", str(output)],
                          env=environment(demo_lakehouse), cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"report written: {output}" in done.stdout
    return output


def expected_pictures(root: Path) -> tuple[int, int, int, int]:
    """(satellite-days charted, readings with an alarm on a charted measure, quicklooks, forest-change results)
    counted from the lakehouse itself."""
    lakehouse = Lakehouse(root_uri=str(root / "lake"))
    first, last = newest_days(lakehouse, DEFAULT_REPORT_DAYS) or pytest.fail("the demo wrote no telemetry")
    columns = ["satellite_name", "event_date", *(f"{measure}_alarm" for measure, *_ in CHART_MEASURES)]
    bronze = lakehouse.read(BRONZE_TELEMETRY, filters=[("event_date", ">=", first), ("event_date", "<=", last)],
                            columns=columns)  # fmt: skip
    assert bronze is not None
    days = bronze.group_by(["satellite_name", "event_date"]).aggregate([]).num_rows
    alarms = sum(pc.sum(pc.is_valid(bronze.column(c))).as_py() for c in columns[2:])
    quicklooks = lakehouse.read(GOLD_QUICKLOOKS, columns=["scene_id"])
    change = lakehouse.read(GOLD_FOREST_CHANGE, columns=["scene_id"])
    assert quicklooks is not None and change is not None
    return days, alarms, quicklooks.num_rows, len(set(change.column("scene_id").to_pylist()))


def test_the_report_page_renders_every_chart_quicklook_and_change_map(
    report: Path, demo_lakehouse: Path, browser: Browser
) -> None:
    days, alarms, quicklooks, changes = expected_pictures(demo_lakehouse)
    assert days >= 8 and alarms > 0 and quicklooks >= 8 and changes >= 1  # the demo: 4 satellites, 10 scenes

    browser.navigate(report.as_uri())

    assert count(browser, "#telemetry figure svg") == days
    assert count(browser, "#telemetry circle.anomaly") == alarms
    lines = browser.evaluate(
        "[...document.querySelectorAll('#telemetry svg')].map(svg => [...svg.querySelectorAll('polyline')]"
        ".map(line => [line.points.numberOfItems, Math.round(line.getBoundingClientRect().width)]))"
    )
    assert all(len(chart) == len(CHART_MEASURES) for chart in lines)
    assert all(points > 1 and width > 0 for chart in lines for points, width in chart)
    assert max(width for chart in lines for _, width in chart) > 500  # a full day's line across the chart
    # Every image decoded (a broken data URI has no natural size) and drew something that is not transparent.
    drawn = browser.evaluate(
        """[...document.querySelectorAll('#quicklooks img, #forest-change img')].map(img => {
             const canvas = document.createElement('canvas');
             canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
             if (!img.complete || !canvas.width) return [img.closest('section').id, 0];
             const context = canvas.getContext('2d'); context.drawImage(img, 0, 0);
             const alpha = context.getImageData(0, 0, canvas.width, canvas.height).data.filter((_, i) => i % 4 == 3);
             return [img.closest('section').id, alpha.filter(a => a > 0).length / alpha.length];
           })"""
    )
    assert [section for section, _ in drawn].count("quicklooks") == quicklooks
    assert [section for section, _ in drawn].count("forest-change") == changes
    assert all(opaque > 0.1 for _, opaque in drawn), drawn
    assert [url for url in browser.requests if not url.startswith(("file:", "data:", "about:"))] == []

    IMAGES.mkdir(parents=True, exist_ok=True)
    browser.screenshot(IMAGES / "report.png")
    assert (IMAGES / "report.png").stat().st_size > 50_000


@pytest.fixture(scope="module")
def ui_port(demo_lakehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`satlake ui` over the session's demo root, until the module's tests are done."""
    port, log = free_port(), tmp_path_factory.mktemp("report-ui") / "ui.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "satlake", "ui", "--port", str(port)], env=environment(demo_lakehouse),
            cwd=REPO, stdout=output, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while "Dagster UI ready at" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`satlake ui` did not become ready:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)


def test_the_dagster_ui_shows_the_telemetry_chart_of_bronze(
    ui_port: int, demo_lakehouse: Path, browser: Browser
) -> None:
    newest = newest_days(Lakehouse(root_uri=str(demo_lakehouse / "lake")), 1) or pytest.fail("no telemetry")
    day = (newest[0] - timedelta(days=1)).isoformat()  # the newest whole day: the demo's last is just begun
    browser.navigate(f"http://127.0.0.1:{ui_port}/assets/bronze/telemetry?view=events&partition={day}")
    labels = [f"chart SAT-00{n} {day}" for n in range(1, 5)]
    rows = "[...document.querySelectorAll('tr')]"
    browser.wait_for(f"{json.dumps(labels)}.every(label => {rows}.some(tr => tr.textContent.startsWith(label)))",
                     timeout=120, what=f"a chart per satellite in the metadata of partition {day}")  # fmt: skip
    browser.evaluate(
        f"{rows}.find(tr => tr.textContent.startsWith({json.dumps(labels[1])})).querySelector('a').click()"
    )
    image = "document.querySelector('[role=dialog] img')"
    browser.wait_for(f"!!{image} && {image}.complete && {image}.naturalWidth > 0", what="the chart in its dialog")
    assert browser.evaluate(f"{image}.getAttribute('src').startsWith('data:image/svg+xml;base64,')")
    assert browser.evaluate(f"{image}.naturalWidth") == CHART_WIDTH
    assert labels[1] in browser.evaluate("document.querySelector('[role=dialog]').innerText")
    time.sleep(1)  # the dialog's opening transition
    IMAGES.mkdir(parents=True, exist_ok=True)
    browser.screenshot(IMAGES / "ui-telemetry-chart.png")
    assert (IMAGES / "ui-telemetry-chart.png").stat().st_size > 30_000
