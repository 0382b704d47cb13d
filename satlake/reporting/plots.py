"""Charts and images a person looks at instead of reading numbers: the telemetry chart of one satellite-day
(inline SVG, anomalies marked), a scene's quicklook thumbnail and the NDVI change map of a forest-change pair
(small PNGs). Pure functions of plain inputs, cheap enough to run inside every asset; the Dagster UI shows them
as Markdown images with ``data:`` URIs, and ``satlake report`` embeds the same bytes in its HTML page.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import rasterio
from PIL import Image
from rasterio.enums import Resampling

# The measures drawn on a telemetry chart: (bronze column, label, unit, line colour).
CHART_MEASURES: tuple[tuple[str, str, str, str], ...] = (
    ("temp_c", "temperature", "°C", "#d9480f"),
    ("battery_charge_pct", "battery", "%", "#1971c2"),
    ("altitude_km", "altitude", "km", "#2b8a3e"),
)
ANOMALY_COLOR = "#e03131"
CHART_WIDTH = 640  # two charts side by side on a 1400 px page
PANEL_HEIGHT = 110
MAX_CHART_DAYS = 3  # days of charts one bronze run attaches (the newest of its window)
MAX_CHART_POINTS = 240  # per line: a day of 1 Hz readings is drawn from at most this many points
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP = 64, 12, 28
SECONDS_PER_DAY = 86_400
THUMBNAIL_MAX_SIZE = 192
CHANGE_MAP_MAX_SIZE = 256
NDVI_LOSS_THRESHOLD = 0.3  # a drop at least this large is drawn in full red (the forest-loss threshold)


@dataclass(frozen=True, slots=True)
class ChartSeries:
    """One measure of a satellite-day: values at seconds since midnight UTC, and which readings are anomalies."""

    label: str
    unit: str
    color: str
    seconds: np.ndarray
    values: np.ndarray
    anomalies: np.ndarray  # bool, same length as values


def data_uri(media_type: str, content: bytes | str) -> str:
    """``content`` as a ``data:`` URI (base64), which an <img> or a Markdown image shows without a server."""
    raw = content.encode("utf-8") if isinstance(content, str) else content
    return f"data:{media_type};base64,{base64.b64encode(raw).decode('ascii')}"


def markdown_image(alt: str, uri: str) -> str:
    """A Markdown image (Dagster's ``MetadataValue.md`` renders ``data:`` image URIs inline)."""
    return f"![{alt.replace(']', ')')}]({uri})"


def _decimate(count: int, anomalies: np.ndarray) -> np.ndarray:
    """Indices to draw: an even sample of at most MAX_CHART_POINTS, plus every anomaly (never dropped)."""
    step = max(1, -(-count // MAX_CHART_POINTS))
    return np.union1d(np.arange(0, count, step), np.flatnonzero(anomalies))


def _format(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _panel(series: ChartSeries, top: float, width: int) -> list[str]:
    plot_width = width - MARGIN_LEFT - MARGIN_RIGHT
    height = PANEL_HEIGHT - 24
    finite = np.isfinite(series.values)
    low, high = (float(series.values[finite].min()), float(series.values[finite].max())) if finite.any() else (0, 1)
    span = high - low if high > low else 1.0
    keep = _decimate(len(series.values), series.anomalies)
    keep = keep[finite[keep]]
    xs = MARGIN_LEFT + np.clip(series.seconds[keep] / SECONDS_PER_DAY, 0, 1) * plot_width
    ys = top + height - (series.values[keep] - low) / span * height
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    parts = [
        f'<rect x="{MARGIN_LEFT}" y="{top:.0f}" width="{plot_width}" height="{height}" fill="#f8f9fa" '
        'stroke="#dee2e6"/>',
        f'<text x="{MARGIN_LEFT - 6}" y="{top + 10:.0f}" text-anchor="end">{_format(high)}</text>',
        f'<text x="{MARGIN_LEFT - 6}" y="{top + height:.0f}" text-anchor="end">{_format(low)}</text>',
        f'<text x="{MARGIN_LEFT + 6}" y="{top + 13:.0f}" font-weight="bold">{escape(series.label)} '
        f"({escape(series.unit)})</text>",
        f'<polyline class="series" fill="none" stroke="{series.color}" stroke-width="1.2" points="{points}"/>',
    ]
    marked = keep[series.anomalies[keep]]
    for x, y in zip(xs[np.isin(keep, marked)], ys[np.isin(keep, marked)], strict=True):
        parts.append(f'<circle class="anomaly" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{ANOMALY_COLOR}"/>')
    return parts


def telemetry_chart_svg(title: str, series: Sequence[ChartSeries], width: int = CHART_WIDTH) -> str:
    """An SVG of one panel per measure over a UTC day (hours 0-24 on the x axis), anomalies as red dots."""
    height = MARGIN_TOP + PANEL_HEIGHT * len(series) + 16
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{MARGIN_LEFT}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    anomalies = sum(int(s.anomalies.sum()) for s in series)
    parts.append(
        f'<text x="{width - MARGIN_RIGHT}" y="18" text-anchor="end" fill="{ANOMALY_COLOR}">'
        f"● {anomalies} anomal{'y' if anomalies == 1 else 'ies'} (limit alarms)</text>"
    )
    for index, one in enumerate(series):
        parts += _panel(one, MARGIN_TOP + index * PANEL_HEIGHT, width)
    plot_width = width - MARGIN_LEFT - MARGIN_RIGHT
    for hour in range(0, 25, 6):
        x = MARGIN_LEFT + hour / 24 * plot_width
        anchor = "end" if hour == 24 else "middle"
        parts.append(f'<text x="{x:.0f}" y="{height - 4}" text-anchor="{anchor}">{hour:02d}:00</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def telemetry_day_series(rows: pa.Table) -> list[ChartSeries]:
    """The chart's series from bronze rows of one satellite-day (``event_time`` and the CHART_MEASURES columns
    with their ``<measure>_alarm`` columns): a reading is an anomaly when its measure raised a limit alarm."""
    order = pc.sort_indices(rows, [("timestamp_ns", "ascending")])
    rows = rows.take(order)
    nanos = rows.column("timestamp_ns").to_numpy()
    seconds = (nanos % (SECONDS_PER_DAY * 10**9)) / 1e9
    series = []
    for column, label, unit, color in CHART_MEASURES:
        alarm = f"{column}_alarm"
        flagged = (
            pc.is_valid(rows.column(alarm)).to_numpy(zero_copy_only=False)
            if alarm in rows.column_names
            else np.zeros(rows.num_rows, dtype=bool)
        )
        values = rows.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
        series.append(ChartSeries(label, unit, color, seconds, values, flagged))
    return series


CHART_COLUMNS = [
    "satellite_name",
    "event_date",
    "timestamp_ns",
    *(column for measure, *_ in CHART_MEASURES for column in (measure, f"{measure}_alarm")),
]


def telemetry_charts(rows: pa.Table) -> dict[tuple[str, date], str]:
    """One SVG chart per (satellite, UTC day) of bronze rows holding CHART_COLUMNS, in satellite-day order."""
    charts: dict[tuple[str, date], str] = {}
    if rows.num_rows == 0:
        return charts
    keys = rows.select(["satellite_name", "event_date"]).group_by(["satellite_name", "event_date"]).aggregate([])
    for satellite, day in sorted(zip(*(keys.column(c).to_pylist() for c in keys.column_names), strict=True)):
        mask = pc.and_(pc.equal(rows.column("satellite_name"), satellite), pc.equal(rows.column("event_date"), day))
        day_rows = rows.filter(mask)
        title = f"{satellite} · {day.isoformat()} UTC · {day_rows.num_rows} readings"
        charts[(satellite, day)] = telemetry_chart_svg(title, telemetry_day_series(day_rows))
    return charts


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def thumbnail_png(path: Path, max_size: int = THUMBNAIL_MAX_SIZE) -> bytes:
    """A small PNG of an image file (a quicklook), longest side at most ``max_size``, colours to a palette."""
    with Image.open(path) as source:
        image = source.convert("RGBA")
    image.thumbnail((max_size, max_size))
    return _png_bytes(image.quantize(colors=128, method=Image.Quantize.FASTOCTREE))


def _read_ndvi(path: Path, shape: tuple[int, int] | None, max_size: int) -> np.ndarray:
    with rasterio.open(path) as src:
        scale = min(1.0, max_size / max(src.width, src.height))
        out_shape = shape or (max(1, round(src.height * scale)), max(1, round(src.width * scale)))
        values = src.read(1, out_shape=out_shape, resampling=Resampling.average, masked=True)
    return np.ma.filled(values.astype(np.float64), np.nan)


def ndvi_change(before: Path, after: Path, max_size: int = CHANGE_MAP_MAX_SIZE) -> np.ndarray:
    """After minus before NDVI, read decimated on the after raster's grid shape (the pair is one tile)."""
    after_values = _read_ndvi(after, None, max_size)
    before_values = _read_ndvi(before, after_values.shape, max_size)
    return after_values - before_values


def change_map_rgba(change: np.ndarray, loss_threshold: float = NDVI_LOSS_THRESHOLD) -> np.ndarray:
    """RGBA of an NDVI change: loss in reds (full red at ``loss_threshold`` and beyond), gain in greens, no
    change pale grey, no data transparent."""
    valid = np.isfinite(change)
    strength = np.clip(np.abs(np.nan_to_num(change)) / loss_threshold, 0.0, 1.0)
    pale = np.array([235.0, 235.0, 235.0])
    loss, gain = np.array([200.0, 0.0, 0.0]), np.array([20.0, 140.0, 40.0])
    target = np.where((np.nan_to_num(change) < 0)[..., None], loss, gain)
    rgb = pale + (target - pale) * strength[..., None]
    alpha = np.where(valid, 255, 0)
    return np.dstack([rgb.round(), alpha]).astype(np.uint8)


def change_map_png(before: Path, after: Path, max_size: int = CHANGE_MAP_MAX_SIZE) -> bytes:
    """The NDVI change map of a forest-change pair as a PNG (see change_map_rgba for its colours)."""
    image = Image.fromarray(change_map_rgba(ndvi_change(before, after, max_size)), mode="RGBA")
    return _png_bytes(image.quantize(colors=32, method=Image.Quantize.FASTOCTREE))


def telemetry_chart_markdown(rows: pa.Table, max_days: int = MAX_CHART_DAYS) -> dict[str, str]:
    """Metadata entries ``chart <satellite> <day>`` (Markdown images of telemetry_charts) for the newest
    ``max_days`` days of ``rows``, so a backfill of months attaches a bounded amount of metadata."""
    charts = telemetry_charts(rows)
    days = sorted({day for _, day in charts})[-max_days:]
    return {
        f"chart {satellite} {day.isoformat()}": markdown_image(
            f"telemetry {satellite} {day.isoformat()}", data_uri("image/svg+xml", svg)
        )
        for (satellite, day), svg in charts.items()
        if day in days
    }
