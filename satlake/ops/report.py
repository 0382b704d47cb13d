"""``satlake report``: one static HTML page of what the Dagster UI shows as pictures (the telemetry chart per
satellite per day with its anomalies, each scene's quicklook, the NDVI change map of each forest-change result),
read from the lakehouse. Every image is inside the page (inline SVG, ``data:`` PNGs): it opens offline, from a
file, with nothing fetched.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html import escape
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from satlake.reporting.plots import CHART_COLUMNS, change_map_png, data_uri, telemetry_charts, thumbnail_png
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.object_store import ObjectStore
from satlake.scenes.tables import CATALOG_ITEMS, GOLD_FOREST_CHANGE, GOLD_NDVI, GOLD_QUICKLOOKS
from satlake.telemetry.tables import BRONZE_TELEMETRY

DEFAULT_REPORT_DAYS = 7


@dataclass(frozen=True, slots=True)
class SceneCard:
    """A scene's quicklook, with what a person identifies it by: collection, acquisition time, cloud cover."""

    scene_id: str
    caption: str
    acquired: str  # ISO time, or "unknown" when the scene is not catalogued: orders the cards
    png: bytes


@dataclass(frozen=True, slots=True)
class ChangeCard:
    """The NDVI change map of one forest-change result and its totals."""

    scene_id: str
    before_scene_id: str
    polygons: int
    loss_ha: float
    png: bytes


@dataclass
class ReportContent:
    """Everything the page shows, gathered from the lakehouse."""

    telemetry: dict[tuple[str, date], str] = field(default_factory=dict)  # (satellite, day) -> SVG
    scenes: list[SceneCard] = field(default_factory=list)
    changes: list[ChangeCard] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.telemetry)} telemetry charts, {len(self.scenes)} quicklooks, "
            f"{len(self.changes)} NDVI change maps"
        )


def _local_copy(store: ObjectStore, key: str, scratch: Path) -> Path:
    local = store.local_path(key)
    if local is not None and local.is_file():
        return local
    return store.get_to_path(key, scratch / key)


def newest_days(lakehouse: Lakehouse, days: int) -> tuple[date, date] | None:
    """(first, last) of the newest ``days`` UTC days holding telemetry, from the Delta log's partition values
    (no data is read), or None when there is no telemetry."""
    delta_table = lakehouse.open(BRONZE_TELEMETRY)
    if delta_table is None:
        return None
    files = pa.table(delta_table.get_add_actions(flatten=True))
    if files.num_rows == 0 or "partition.event_date" not in files.column_names:
        return None
    last = pc.max(files.column("partition.event_date")).as_py()
    return last - timedelta(days=days - 1), last


def collect_telemetry(lakehouse: Lakehouse, days: int) -> dict[tuple[str, date], str]:
    """Telemetry charts of the newest ``days`` days, one per satellite per day."""
    window = newest_days(lakehouse, days)
    if window is None:
        return {}
    rows = lakehouse.read(
        BRONZE_TELEMETRY, filters=[("event_date", ">=", window[0]), ("event_date", "<=", window[1])],
        columns=CHART_COLUMNS,
    )  # fmt: skip
    return telemetry_charts(rows) if rows is not None else {}


def collect_scenes(lakehouse: Lakehouse, store: ObjectStore, scratch: Path) -> list[SceneCard]:
    """A card per quicklook, newest acquisition first (scenes not in the catalog yet come last)."""
    quicklooks = lakehouse.read(GOLD_QUICKLOOKS, columns=["scene_id", "object_key"])
    if quicklooks is None:
        return []
    items = lakehouse.read(CATALOG_ITEMS, columns=["id", "collection", "datetime", "cloud_cover"])
    catalog = {row["id"]: row for row in (items.to_pylist() if items is not None else [])}
    cards = []
    for row in quicklooks.to_pylist():
        item = catalog.get(row["scene_id"], {})
        acquired = item["datetime"].isoformat() if item.get("datetime") else "unknown"
        cloud = f" · cloud {item['cloud_cover']:.0f}%" if item.get("cloud_cover") is not None else ""
        caption = f"{item.get('collection') or 'not catalogued'} · {acquired}{cloud}"
        png = thumbnail_png(_local_copy(store, row["object_key"], scratch))
        cards.append(SceneCard(row["scene_id"], caption, acquired, png))
    return sorted(cards, key=lambda card: (card.acquired != "unknown", card.acquired), reverse=True)


def collect_changes(lakehouse: Lakehouse, store: ObjectStore, scratch: Path) -> list[ChangeCard]:
    """A change map per forest-change result (a later scene and the clear acquisition it was compared with)."""
    change = lakehouse.read(GOLD_FOREST_CHANGE, columns=["scene_id", "before_scene_id", "area_ha"])
    ndvi = lakehouse.read(GOLD_NDVI, columns=["scene_id", "object_key"])
    if change is None or ndvi is None or change.num_rows == 0:
        return []
    ndvi_keys = dict(zip(ndvi.column("scene_id").to_pylist(), ndvi.column("object_key").to_pylist(), strict=True))
    totals = change.group_by(["scene_id", "before_scene_id"]).aggregate([("area_ha", "sum"), ("area_ha", "count")])
    cards = []
    for row in sorted(totals.to_pylist(), key=lambda r: r["scene_id"]):
        before_key, after_key = ndvi_keys.get(row["before_scene_id"]), ndvi_keys.get(row["scene_id"])
        if before_key is None or after_key is None:
            continue
        png = change_map_png(_local_copy(store, before_key, scratch), _local_copy(store, after_key, scratch))
        cards.append(ChangeCard(row["scene_id"], row["before_scene_id"], row["area_ha_count"], row["area_ha_sum"], png))
    return cards


def collect_report(lakehouse: Lakehouse, store: ObjectStore, days: int = DEFAULT_REPORT_DAYS) -> ReportContent:
    """Read what the page shows from the lakehouse and the object store (objects copied only when remote)."""
    with tempfile.TemporaryDirectory(prefix="satlake-report-") as scratch_dir:
        scratch = Path(scratch_dir)
        return ReportContent(
            telemetry=collect_telemetry(lakehouse, days),
            scenes=collect_scenes(lakehouse, store, scratch),
            changes=collect_changes(lakehouse, store, scratch),
        )


STYLE = """
body { font-family: sans-serif; margin: 24px; color: #212529; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #dee2e6; }
.grid { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; } figcaption { font-size: 12px; color: #495057; max-width: 260px; }
figure.chart figcaption { max-width: none; }
img { image-rendering: pixelated; border: 1px solid #dee2e6; background: #f1f3f5; }
.empty { color: #868e96; font-style: italic; }
"""


def _section(title: str, section_id: str, figures: list[str], empty: str) -> str:
    body = f'<div class="grid">{"".join(figures)}</div>' if figures else f'<p class="empty">{escape(empty)}</p>'
    return f'<section id="{section_id}"><h2>{escape(title)}</h2>{body}</section>'


def render_report_html(content: ReportContent, title: str, generated_at: datetime | None = None) -> str:
    """The page: a section per kind of picture, each figure captioned with what it shows."""
    generated = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    charts = [
        f'<figure class="chart">{svg}<figcaption>{escape(satellite)} on {day.isoformat()}: temperature, battery '
        "and altitude; red dots are readings with a limit alarm</figcaption></figure>"
        for (satellite, day), svg in content.telemetry.items()
    ]
    scenes = [
        f'<figure class="quicklook"><img alt="quicklook of {escape(card.scene_id)}" '
        f'src="{data_uri("image/png", card.png)}"><figcaption><b>{escape(card.scene_id)}</b><br>'
        f"{escape(card.caption)}</figcaption></figure>"
        for card in content.scenes
    ]
    changes = [
        f'<figure class="change-map"><img alt="NDVI change {escape(card.before_scene_id)} to '
        f'{escape(card.scene_id)}" src="{data_uri("image/png", card.png)}"><figcaption><b>{escape(card.scene_id)}'
        f"</b> against {escape(card.before_scene_id)}: {card.polygons} loss polygons, {card.loss_ha:.2f} ha. "
        "Red: NDVI lost (full red at the 0.3 forest-loss threshold), green: gained.</figcaption></figure>"
        for card in content.changes
    ]
    return "\n".join(
        [
            "<!doctype html>",
            f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title><style>{STYLE}</style>',
            f"</head><body><h1>{escape(title)}</h1><p>Generated {generated}: {escape(content.summary())}.</p>",
            _section("Telemetry", "telemetry", charts, "No telemetry in bronze/telemetry yet."),
            _section("Scene quicklooks", "quicklooks", scenes, "No quicklooks in gold/quicklooks yet."),
            _section("Forest change (NDVI)", "forest-change", changes, "No forest-change pair in gold/forest_change."),
            "</body></html>",
        ]
    )


def write_report(
    lakehouse: Lakehouse, store: ObjectStore, output: Path, title: str, days: int = DEFAULT_REPORT_DAYS
) -> ReportContent:
    """Write the page to ``output`` (folders created) and return what it shows."""
    content = collect_report(lakehouse, store, days)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_report_html(content, title), encoding="utf-8")
    return content
