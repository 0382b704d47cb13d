"""The pictures of satlake.reporting.plots and the page of satlake.ops.report, from data built here: the telemetry
chart's lines and anomaly marks, the quicklook thumbnail, the NDVI change map's colours, the report's figures."""

from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
from deltalake import write_deltalake
from PIL import Image

from satlake.ops.report import ChangeCard, ReportContent, SceneCard, collect_telemetry, render_report_html
from satlake.reporting import plots
from satlake.resources.lakehouse import Lakehouse
from satlake.telemetry.tables import BRONZE_TELEMETRY
from tests.unit.rasters import write_band

SVG = "{http://www.w3.org/2000/svg}"
NANOS_PER_DAY = 86_400 * 10**9
READINGS = 2_000  # per satellite-day, one every 43.2 s


def bronze_rows(days: list[date], satellites: list[str], anomaly_at: float = 0.5) -> pa.Table:
    """Bronze-like rows: smooth measures, and one reading per satellite-day (at ``anomaly_at`` of the day) with
    a temperature alarm and an altitude alarm."""
    columns: dict[str, list] = {name: [] for name in plots.CHART_COLUMNS}
    for day in days:
        midnight = int(datetime(day.year, day.month, day.day).timestamp()) * 10**9
        for satellite in satellites:
            for index in range(READINGS):
                fraction = index / READINGS
                anomaly = index == int(anomaly_at * READINGS)
                columns["satellite_name"].append(satellite)
                columns["event_date"].append(day)
                columns["timestamp_ns"].append(midnight + int(fraction * NANOS_PER_DAY))
                columns["temp_c"].append(200.0 if anomaly else 20 + 5 * np.sin(fraction * 40))
                columns["temp_c_alarm"].append("critical" if anomaly else None)
                columns["battery_charge_pct"].append(80 + 10 * np.cos(fraction * 30))
                columns["battery_charge_pct_alarm"].append(None)
                columns["altitude_km"].append(9_000.0 if anomaly else 550.0 + fraction)
                columns["altitude_km_alarm"].append("severe" if anomaly else None)
    types = {"event_date": pa.date32(), "timestamp_ns": pa.int64()}
    return pa.table(
        {
            name: pa.array(values, type=types.get(name, pa.string() if not name.endswith(("_c", "_pct", "_km"))
                                                      else pa.float64()))
            for name, values in columns.items()
        }
    )  # fmt: skip


def test_one_chart_per_satellite_day_with_three_lines_and_every_anomaly_marked_at_its_time() -> None:
    days = [date(2026, 3, 1), date(2026, 3, 2)]
    charts = plots.telemetry_charts(bronze_rows(days, ["SAT-B", "SAT-A"], anomaly_at=0.5))

    assert list(charts) == [("SAT-A", days[0]), ("SAT-A", days[1]), ("SAT-B", days[0]), ("SAT-B", days[1])]
    svg = ET.fromstring(charts[("SAT-A", days[1])])
    lines = svg.findall(f"{SVG}polyline")
    assert [line.get("stroke") for line in lines] == [color for *_, color in plots.CHART_MEASURES]
    for line in lines:  # decimated: a day of readings drawn from a bounded number of points
        assert 100 <= len(line.get("points", "").split()) <= plots.MAX_CHART_POINTS + 1
    marks = svg.findall(f"{SVG}circle")
    assert len(marks) == 2  # the temperature and the altitude alarm of the one anomalous reading
    plot_left, plot_right = plots.MARGIN_LEFT, plots.CHART_WIDTH - plots.MARGIN_RIGHT
    for mark in marks:  # at noon: the middle of the x axis
        assert abs(float(mark.get("cx", "0")) - (plot_left + plot_right) / 2) < 1.0
    # The temperature spike is the panel's highest value: drawn at its top edge, labelled with its value.
    temperature_mark = min(marks, key=lambda m: float(m.get("cy", "0")))
    assert abs(float(temperature_mark.get("cy", "0")) - plots.MARGIN_TOP) < 1.0
    texts = [t.text or "" for t in svg.iter(f"{SVG}text")]
    assert "200" in texts and "9,000" in texts and "SAT-A · 2026-03-02 UTC · 2000 readings" in texts


def test_chart_markdown_keeps_the_newest_days_as_svg_data_uris() -> None:
    days = [date(2026, 3, d) for d in (1, 2, 3, 4)]
    entries = plots.telemetry_chart_markdown(bronze_rows(days, ["SAT-A"]), max_days=2)

    assert sorted(entries) == ["chart SAT-A 2026-03-03", "chart SAT-A 2026-03-04"]
    markdown = entries["chart SAT-A 2026-03-04"]
    prefix = "![telemetry SAT-A 2026-03-04](data:image/svg+xml;base64,"
    assert markdown.startswith(prefix) and markdown.endswith(")")
    svg = base64.b64decode(markdown[len(prefix) : -1]).decode("utf-8")
    assert ET.fromstring(svg).tag == f"{SVG}svg" and "2026-03-04" in svg


def test_quicklook_thumbnail_is_small_and_keeps_transparency(tmp_path: Path) -> None:
    pixels = np.zeros((320, 512, 4), dtype=np.uint8)
    pixels[:, :256] = (30, 160, 60, 255)  # left half green, right half no data (transparent)
    Image.fromarray(pixels, mode="RGBA").save(tmp_path / "quicklook.png")

    thumbnail = Image.open(io.BytesIO(plots.thumbnail_png(tmp_path / "quicklook.png"))).convert("RGBA")

    assert thumbnail.size == (plots.THUMBNAIL_MAX_SIZE, 320 * plots.THUMBNAIL_MAX_SIZE // 512)
    rgba = np.asarray(thumbnail)
    assert tuple(rgba[50, 20]) == (30, 160, 60, 255)
    assert rgba[50, -20, 3] == 0


def test_change_map_draws_loss_red_gain_green_and_no_data_transparent(tmp_path: Path) -> None:
    before = np.full((64, 64), 0.8, dtype=np.float32)
    after = before.copy()
    after[:16, :16] = 0.2  # loss of 0.6: beyond the threshold
    after[40:, 40:] = 0.95  # a small gain
    after[30:34, :] = np.nan
    write_band(tmp_path / "before.tif", before, nodata=float("nan"))
    write_band(tmp_path / "after.tif", after, nodata=float("nan"))

    change = plots.ndvi_change(tmp_path / "before.tif", tmp_path / "after.tif")
    assert change.shape == (64, 64) and np.isclose(change[5, 5], -0.6) and np.isnan(change[31, 5])
    rgba = np.asarray(Image.open(io.BytesIO(plots.change_map_png(tmp_path / "before.tif", tmp_path / "after.tif"))).
                      convert("RGBA")).astype(int)  # fmt: skip
    red, gain, unchanged, missing = rgba[5, 5], rgba[50, 50], rgba[20, 50], rgba[31, 5]
    assert red[0] > 180 and red[1] < 30 and red[3] == 255
    assert gain[1] > gain[0] and gain[1] > gain[2]
    assert abs(unchanged[0] - unchanged[1]) < 10 and unchanged[0] > 200
    assert missing[3] == 0


def test_report_reads_the_newest_days_of_telemetry_from_the_lakehouse(tmp_path: Path) -> None:
    lakehouse = Lakehouse(root_uri=str(tmp_path / "lake"))
    days = [date(2026, 3, d) for d in (1, 2, 3)]
    write_deltalake(lakehouse.uri(BRONZE_TELEMETRY), bronze_rows(days, ["SAT-A", "SAT-B"]),
                    partition_by=["event_date"])  # fmt: skip

    charts = collect_telemetry(lakehouse, days=2)

    assert sorted(charts) == [("SAT-A", days[1]), ("SAT-A", days[2]), ("SAT-B", days[1]), ("SAT-B", days[2])]
    assert collect_telemetry(Lakehouse(root_uri=str(tmp_path / "empty")), days=2) == {}


def test_report_page_embeds_every_picture_with_its_caption() -> None:
    png = plots.change_map_rgba(np.array([[-0.5, 0.1], [np.nan, 0.0]]))
    buffer = io.BytesIO()
    Image.fromarray(png, mode="RGBA").save(buffer, format="PNG")
    content = ReportContent(
        telemetry=plots.telemetry_charts(bronze_rows([date(2026, 3, 1)], ["SAT-A"])),
        scenes=[SceneCard("scene<1>", "satlake-sim · 2024-05-02 · cloud 12%", "2024-05-02", buffer.getvalue())],
        changes=[ChangeCard("scene<1>", "scene0", 3, 4.25, buffer.getvalue())],
    )

    page = render_report_html(content, "ops report")

    assert page.count("<svg") == 1 and page.count('class="anomaly"') == 2
    assert page.count("data:image/png;base64,") == 2 and "scene&lt;1&gt;" in page and "scene<1>" not in page
    assert "3 loss polygons, 4.25 ha" in page and "cloud 12%" in page
    assert "1 telemetry charts, 1 quicklooks, 1 NDVI change maps" in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing fetched: it opens offline
