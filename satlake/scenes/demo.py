"""The scene half of ``satlake demo``: land synthetic scenes (two tiles over four dates, a forest clearing,
clouds), a Mars raster, a corrupt file and the real Landsat fixture, run the pipeline through its sensor, and
report the catalog, the COG checks and the forest change found.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from satlake.reporting import Report
from satlake.resources import build_resources
from satlake.resources.object_events import ANNOUNCEMENT_WAIT_S, wait_for_announcements
from satlake.runner import LEGACY_STATE_FILE, run_failures, run_pending_work
from satlake.scenes.commands import produce_scene_files, put_files
from satlake.scenes.synthetic import clearing_plan
from satlake.scenes.tables import CATALOG_ITEMS, GOLD_FOREST_CHANGE, RAW_SCENES, SCENE_REJECTS
from satlake.settings import Mode, Settings

DEMO_TILES = 2
DEMO_SIZE = 256
DEMO_SEED = 7
DEMO_DATES = 4
LANDSAT_FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "landsat8"
CORRUPT_NAME = "demo_corrupt.tif"


def landsat_fixture_files(directory: Path = LANDSAT_FIXTURE) -> list[Path]:
    """Band and MTL files of the downsampled Landsat 8 scene, or [] when the fixture is not there."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name.upper().startswith("L"))


def land_demo_scenes(
    settings: Settings, marker: Path, say: Callable[[str], None], acquired_prefix: str | None = None
) -> int:
    """Put the demo's scene files once per storage root; returns how many files were landed now.

    Synthetic scenes whose name starts with ``acquired_prefix`` are left out: the demo acquires them instead."""
    if marker.exists():
        say("scenes already landed by an earlier demo run; not landing again")
        return 0
    with tempfile.TemporaryDirectory(prefix="satlake-demo-scenes-") as scratch:
        paths = produce_scene_files(Path(scratch), DEMO_TILES, DEMO_SIZE, DEMO_SEED)
        if acquired_prefix:
            paths = [path for path in paths if not path.name.startswith(acquired_prefix)]
        # A TIFF header followed by garbage: it must be quarantined without touching the other scenes.
        corrupt = Path(scratch) / CORRUPT_NAME
        corrupt.write_bytes(b"II*\x00" + bytes(range(256)) * 4)
        paths.append(corrupt)
        landsat = landsat_fixture_files()
        say(f"landing {len(paths) - 1} synthetic scenes (Mars among them), "
            f"a corrupt TIFF{' and the Landsat 8 fixture' if landsat else ''}")  # fmt: skip
        resources = build_resources(settings)
        topic = settings.object_events_topic
        before = resources.event_log.end_offsets(topic) if resources.event_log.partitions(topic) else {}
        count = put_files(settings, paths + landsat, say=lambda _line: None)
        if settings.mode is Mode.STACK:  # MinIO announces the uploads on Kafka, a moment after each put
            arrived = wait_for_announcements(resources.event_log, topic, before, count, ANNOUNCEMENT_WAIT_S)
            if arrived < count:
                say(f"  only {arrived} of {count} uploads announced on {topic} after {ANNOUNCEMENT_WAIT_S:.0f} s; "
                    "the rest are processed by the next `satlake run`")  # fmt: skip
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"files": count, "landed_at": time.time()}))
    return count


def _scene_check_results(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, tuple[bool, str]]:
    """Latest outcome per 'scene asset:check' over these runs (all partitions folded into one entry each)."""
    results: dict[str, list[tuple[bool, str]]] = {}
    for run_id in run_ids:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data  # type: ignore[union-attr]
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            results.setdefault(name, []).append((evaluation.passed, evaluation.description or ""))
    summary = {}
    for name, outcomes in sorted(results.items()):
        failed = [description for passed, description in outcomes if not passed]
        text = f"{len(outcomes) - len(failed)}/{len(outcomes)} scenes passed" + (f"; {failed[0]}" if failed else "")
        summary[name] = (not failed, text)
    return summary


def run_scene_demo(
    settings: Settings,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    report: Report,
    acquired_prefix: str | None = None,
) -> bool:
    """Land the demo scenes, run the scene pipeline in process and report what it produced.

    Returns True when every run succeeded, every scene check passed and the planted clearing was found.
    """
    from dagster._core.definitions.partitions.context import partition_loading_context

    say = report.line
    land_demo_scenes(settings, settings.root / "demo" / "scenes.json", say, acquired_prefix)

    # Dynamic partitions are read while sensor run requests are validated; outside the daemon the instance
    # has to be made available for that explicitly.
    with partition_loading_context(dynamic_partitions_store=instance):
        outcomes = report.track_runs(
            "runs of the scene pipeline",
            lambda show: run_pending_work(defs, instance, settings.dagster_home / LEGACY_STATE_FILE, show),
            detail=False,
        )
    if not outcomes:
        say("  nothing new to process (scenes were processed by an earlier run)")
    for failure in run_failures(instance, outcomes):
        report.error(failure)

    lakehouse = build_resources(settings).lakehouse
    catalog = lakehouse.read(CATALOG_ITEMS)
    scenes = lakehouse.read(RAW_SCENES, columns=["scene_id"])
    scene_ids = pa.array(scenes["scene_id"].to_pylist() if scenes is not None else [], pa.string())
    if catalog is not None:  # the scenes' items; other domains (Mars photos) report their own
        catalog = catalog.filter(pc.is_in(catalog["id"], value_set=scene_ids))
    report.heading(f"catalog ({catalog.num_rows if catalog is not None else 0} scene items):")
    if catalog is not None:
        columns = ["id", "collection", "datetime", "platform", "cloud_cover", "body", "bbox_xmin", "bbox_ymin"]
        for row in catalog.select(columns).sort_by([("collection", "ascending"), ("id", "ascending")]).to_pylist():
            where = "no Earth bbox" if row["bbox_xmin"] is None else f"{row['bbox_xmin']:.3f},{row['bbox_ymin']:.3f}"
            cloud = "-" if row["cloud_cover"] is None else f"{row['cloud_cover']:.1f}%"
            say(f"  {row['id']:<42} {row['collection']:<17} {row['datetime']:%Y-%m-%d} {row['body']:<6} "
                f"cloud {cloud:<6} {where}")  # fmt: skip

    rejects = lakehouse.read(SCENE_REJECTS)
    if rejects is not None and rejects.num_rows:  # under the catalog: what did not make it into it, and why
        for row in rejects.to_pylist()[-5:]:
            reason = row["reason"] if len(row["reason"]) <= 130 else row["reason"][:129] + "…"
            say(f"  quarantined {row['scene_id']}: {reason}")

    results = _scene_check_results(instance, [o.run_id for o in outcomes])
    failed = report.checks("scene checks", results) if results else []

    change = lakehouse.read(GOLD_FOREST_CHANGE)
    expected_ha = clearing_plan(DEMO_SIZE, DEMO_DATES).area_ha()
    found = False
    report.heading(f"forest change (planted clearing: {expected_ha:.2f} ha):")
    if change is not None and change.num_rows:
        for row in change.sort_by([("area_ha", "descending")]).to_pylist()[:5]:
            drop = row["mean_ndvi_drop"]
            say(f"  {row['scene_id']} vs {row['before_scene_id']}: {row['area_ha']:.2f} ha lost between "
                f"{row['before_date']} and {row['after_date']} (mean NDVI drop {drop:.2f})")  # fmt: skip
            found = found or abs(row["area_ha"] - expected_ha) <= 0.1 * expected_ha
    else:
        say("  no forest loss found")
    runs_ok = all(o.success for o in outcomes)
    return runs_ok and not failed and found
