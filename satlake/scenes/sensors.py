"""The sensor that turns object-created events into scene partitions and runs.

Each tick reads the events after the offsets stored in its cursor, groups the landed keys into scenes
(``grouping.group_scene_files``), adds one dynamic partition per complete scene and requests its run. Scenes
still waiting for band files stay in the cursor; unsafe keys, files that belong to no scene and scenes whose
files never all arrive go to ``raw/scene_rejects`` with a reason. The cursor (offsets and pending scenes) only
advances when a tick succeeds, so no event is processed twice or missed.

Acquired scenes (the acquisition downloader's folders) are complete when their scene.json and every file it
lists have landed. Landsat groups are complete when the MTL and bands ``LANDSAT_OLI_PRODUCT_BANDS`` (B2 to B5:
blue, green, red, nir) have landed: those are what satlake's products need, and deliveries such as the
downsampled fixture in shared/data/landsat8 ship only them. Other listed bands that do land are kept and
converted too.
"""

import hashlib
import json
import tempfile
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa

from satlake.automation import SENSOR_DEFAULT_STATUS
from satlake.resources.event_log import EventLog, LogRecord
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.object_events import ObjectEventError, parse_object_events, record_event_time
from satlake.resources.object_store import ObjectStore
from satlake.scenes.assets import SCENE_ASSET_KEYS, SCENE_KEYS_TAG, SCENE_PARTITIONS
from satlake.scenes.checks import reject_row
from satlake.scenes.grouping import LANDSAT_OLI_PRODUCT_BANDS, SceneGroup, group_scene_files
from satlake.scenes.landing import is_reserved_landing_key
from satlake.scenes.tables import SCENE_REJECTS
from satlake.settings import Settings

MAX_EVENTS_PER_READ = 1000
# A read returns as soon as it reaches the end offsets the log reported when it started, so this only bounds the
# wait for events the broker already holds. On a busy machine Kafka can take over a second to deliver them after a
# (re)assignment; a shorter wait skipped the tick and delayed every landed scene by a whole pass (seen in the soak).
MAX_READ_WAIT_S = 10.0
MAX_EVENTS_PER_TICK = 20_000
INCOMPLETE_SCENE_TIMEOUT = timedelta(hours=24)
MAX_TAG_CHARS = 4000  # run tags are for short values; longer key lists are found again by raw/scenes

scene_pipeline_job = dg.define_asset_job(
    "scene_pipeline_job",
    selection=dg.AssetSelection.assets(*SCENE_ASSET_KEYS),
    description="Raw copy, COGs, NDVI, quicklook, STAC item and forest change of one scene",
)


@dataclass
class SensorCursor:
    """Offsets already consumed per log partition, and landed keys of scenes not yet complete."""

    offsets: dict[int, int] = field(default_factory=dict)
    # key -> {"etag": ..., "first_seen": iso time, "event_time": iso time}
    pending: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str | None) -> "SensorCursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls({int(p): int(o) for p, o in data.get("offsets", {}).items()}, dict(data.get("pending", {})))

    def to_json(self) -> str:
        return json.dumps({"offsets": {str(p): o for p, o in sorted(self.offsets.items())},
                           "pending": self.pending}, sort_keys=True)  # fmt: skip


@dataclass
class ScenePlan:
    """What one tick decided."""

    ready: list[SceneGroup]
    rejects: list[tuple[SceneGroup, str, datetime | None]]  # group, reason, event time
    cursor: SensorCursor
    events: int = 0
    etags: dict[str, str] = field(default_factory=dict)  # etag of every key of a ready scene


def plan_scenes(
    records: list[LogRecord],
    cursor: SensorCursor,
    landing_bucket: str,
    read_text: Callable[[str], str],
    now: datetime,
    timeout: timedelta = INCOMPLETE_SCENE_TIMEOUT,
    landed: Callable[[str], bool] | None = None,
) -> ScenePlan:
    """Fold new event records into the pending keys and split them into ready scenes, rejects and waiting.

    ``read_text(key)`` returns a landed text object: a Landsat MTL or an acquisition manifest (scene.json).
    ``landed(key)`` says whether a key is in the landing store: a GeoTIFF's datetime sidecar landed after its
    raster (or the raster after its sidecar) joins the scene that way (``group_scene_files``).
    """
    pending = {key: dict(value) for key, value in cursor.pending.items()}
    offsets = dict(cursor.offsets)
    bad_events: list[tuple[SceneGroup, str, datetime | None]] = []
    events = 0
    for record in records:
        offsets[record.partition] = max(offsets.get(record.partition, 0), record.offset + 1)
        try:
            created = parse_object_events(record.value)
        except ObjectEventError as error:
            where = f"{record.topic}/{record.partition}@{record.offset}"
            group = SceneGroup(f"event-{record.partition}-{record.offset}", (where,), False, kind="rejected")
            bad_events.append((group, f"event at {where} is not a bucket notification: {error}", None))
            continue
        for event in created:
            if event.bucket != landing_bucket or is_reserved_landing_key(event.key):
                continue  # the lake's own notifications, and what a source lands for its own sensor
            events += 1
            moment = record_event_time(record, event)
            # Grouping returns keys in NFC; keep them that way so the pending entry is found again.
            key = unicodedata.normalize("NFC", event.key)
            previous = pending.get(key, {})
            pending[key] = {
                "etag": event.etag or "",
                "first_seen": previous.get("first_seen", moment.isoformat()),
                "event_time": moment.isoformat(),
            }
    groups = group_scene_files(list(pending), read_text, LANDSAT_OLI_PRODUCT_BANDS, landed)
    ready, rejects = [], list(bad_events)
    etags: dict[str, str] = {}
    for group in groups:
        times = [datetime.fromisoformat(pending[k]["first_seen"]) for k in group.files if k in pending]
        latest = max((datetime.fromisoformat(pending[k]["event_time"]) for k in group.files if k in pending),
                     default=None)  # fmt: skip
        if group.problems:
            rejects.append((group, "; ".join(group.problems), latest))
        elif group.complete:
            ready.append(group)
            etags.update({key: pending[key]["etag"] for key in group.files if key in pending})
        elif times and now - min(times) > timeout:
            missing = ", ".join(group.missing) or "(unknown)"
            reason = f"scene {group.scene_id} incomplete after {timeout}: never received {missing}"
            rejects.append((group, reason, latest))
        else:
            continue
        for key in group.files:
            pending.pop(key, None)
    return ScenePlan(ready, rejects, SensorCursor(offsets, pending), events, etags)


def scene_run_key(group: SceneGroup, etags: Mapping[str, str]) -> str:
    """Same files with the same content -> same run key, so a replayed event never starts a second run."""
    digest = hashlib.sha256(json.dumps([[k, etags.get(k, "")] for k in group.files]).encode()).hexdigest()[:16]
    return f"{group.scene_id}:{digest}"


def _read_text(store: ObjectStore, key: str) -> str:
    with tempfile.TemporaryDirectory(prefix="satlake-text-") as scratch:
        return store.get_to_path(key, Path(scratch) / "object").read_text(encoding="utf-8", errors="replace")


def _record_rejects(lakehouse: Lakehouse, plan: ScenePlan) -> None:
    rows = [reject_row(group.scene_id, list(group.files), reason, "sensor", "landing store (unchanged)", moment)
            for group, reason, moment in plan.rejects]  # fmt: skip
    if rows:
        lakehouse.append_exactly_once(SCENE_REJECTS, pa.concat_tables(rows), partition_by=[], app_transactions={})


@dg.sensor(
    job=scene_pipeline_job,
    minimum_interval_seconds=30,
    default_status=SENSOR_DEFAULT_STATUS,
    description="Reads object-created events, groups landed files into scenes, adds a partition and requests a "
    "run per complete scene, and quarantines keys that can never form one.",
)
def object_events_sensor(
    context: dg.SensorEvaluationContext,
    settings: dg.ResourceParam[Settings],
    event_log: dg.ResourceParam[EventLog],
    lakehouse: dg.ResourceParam[Lakehouse],
    landing_store: dg.ResourceParam[ObjectStore],
) -> dg.SensorResult | dg.SkipReason:
    topic = settings.object_events_topic
    cursor = SensorCursor.from_json(context.cursor)
    if not event_log.partitions(topic) and not cursor.pending:
        return dg.SkipReason(f"{topic}: the topic does not exist yet (nothing has landed)")
    records: list[LogRecord] = []
    offsets = dict(cursor.offsets)
    while len(records) < MAX_EVENTS_PER_TICK and event_log.partitions(topic):
        batch = event_log.read(topic, offsets, MAX_EVENTS_PER_READ, timeout_s=event_log.poll_wait(MAX_READ_WAIT_S))
        if not batch:
            break
        records += batch
        for record in batch:
            offsets[record.partition] = record.offset + 1
    plan = plan_scenes(records, cursor, landing_store.bucket, lambda key: _read_text(landing_store, key),
                       datetime.now(UTC), landed=landing_store.exists)  # fmt: skip
    _record_rejects(lakehouse, plan)
    if not plan.ready and not plan.rejects and plan.cursor.to_json() == cursor.to_json():
        return dg.SkipReason(f"{topic}: no new events ({len(cursor.pending)} keys waiting for their scene)")
    new_ids = [group.scene_id for group in plan.ready]
    existing = set(context.instance.get_dynamic_partitions(SCENE_PARTITIONS.name))
    to_add = sorted(set(new_ids) - existing)
    if to_add:
        # Added here as well as requested below: `satlake run` executes run requests without the daemon,
        # which is what normally applies dynamic_partitions_requests before launching runs.
        context.instance.add_dynamic_partitions(SCENE_PARTITIONS.name, to_add)
    run_requests = []
    for group in plan.ready:
        tags = {"satlake/scene": group.scene_id, "satlake/scene_kind": group.kind}
        keys_json = json.dumps(list(group.files))
        if len(keys_json) <= MAX_TAG_CHARS:
            tags[SCENE_KEYS_TAG] = keys_json
        run_requests.append(
            dg.RunRequest(run_key=scene_run_key(group, plan.etags), partition_key=group.scene_id, tags=tags)
        )
    context.log.info(
        f"{topic}: {plan.events} events up to offsets {plan.cursor.offsets}; {len(plan.ready)} scenes ready, "
        f"{len(plan.rejects)} rejected, {len(plan.cursor.pending)} keys waiting"
    )
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[SCENE_PARTITIONS.build_add_request(to_add)] if to_add else [],
        cursor=plan.cursor.to_json(),
    )


scene_sensors = [object_events_sensor]
scene_jobs = [scene_pipeline_job]
