"""``gold/mars_timelapses``: per rover, one animated GIF per camera over the sols whose photos are in the object
store, catalogued as a STAC item (collection ``mars-timelapses``) linked to the photo items it shows.

The latest ``MAX_FRAMES`` photos of a camera make its timelapse (the frame order is sol, then photo id);
``satlake mars timelapse`` builds one for any sol range on request.
"""

import tempfile
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa

from satlake.catalog.static import rewrite_static_catalog
from satlake.catalog.table import CATALOG_ITEMS, catalog_rows
from satlake.mars.assets import GROUP
from satlake.mars.items import collection_descriptions, timelapse_item
from satlake.mars.partitions import ROVER_PARTITIONS
from satlake.mars.photos import PHOTO_ITEMS_KEY
from satlake.mars.rovers import rover_named
from satlake.mars.tables import MARS_PHOTO_FILES, MARS_PHOTOS, MARS_TIMELAPSES, MARS_TIMELAPSES_SCHEMA
from satlake.mars.timelapse import Frame, build_timelapse
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.object_store import ObjectStore

TIMELAPSES_KEY = dg.AssetKey(["gold", "mars_timelapses"])
MAX_FRAMES = 120
MIN_FRAMES = 2
# Built when missing (once some photo of the rover is catalogued) and again after new photos; a rover none of whose
# sols was fetched waits (its sol partitions exist because other rovers' sols do: they must not hold it back).
FOLLOW_PHOTOS = (
    (dg.AutomationCondition.missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
    & dg.AutomationCondition.all_deps_match(~dg.AutomationCondition.missing())
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after new photos of the rover")


def fetched_photos(
    lakehouse: Lakehouse, rover: str, camera: str | None = None, sols: tuple[int, int] | None = None
) -> list[dict[str, object]]:
    """The rover's photos with an image in the object store, with their earth dates, in (sol, id) order."""
    filters: list[tuple[str, str, object]] = [("rover_name", "=", rover)]
    files = lakehouse.read(MARS_PHOTO_FILES, filters=filters)
    photos = lakehouse.read(MARS_PHOTOS, filters=filters, columns=["id", "earth_date"])
    if files is None or photos is None:
        return []
    dates = dict(zip(photos["id"].to_pylist(), photos["earth_date"].to_pylist(), strict=True))
    rows = [
        {**row, "earth_date": dates.get(row["id"])}
        for row in files.to_pylist()
        if row["object_key"]
        and (camera is None or row["camera_name"] == camera)
        and (sols is None or sols[0] <= row["sol"] <= sols[1])
    ]
    return sorted(rows, key=lambda r: (r["sol"], r["id"]))


def make_timelapse(
    store: ObjectStore, rover: str, camera: str, photos: Sequence[dict[str, object]], scratch: Path
) -> tuple[dict[str, object], dict[str, object]] | None:
    """Build, store and describe one camera's timelapse: (gold row, STAC item), or None below MIN_FRAMES."""
    frames = []
    for photo in photos:
        key = str(photo["object_key"])
        path = store.local_path(key) or store.get_to_path(key, scratch / Path(key).name)
        frames.append(Frame(int(photo["sol"]), int(photo["id"]), path, camera))  # type: ignore[call-overload]
    if len(frames) < MIN_FRAMES:
        return None
    sols = [int(p["sol"]) for p in photos]  # type: ignore[call-overload]
    out = scratch / f"{rover}-{camera}.gif"
    info = build_timelapse(frames, out)
    key = f"mars/timelapses/{rover}/{camera.lower()}-sols-{min(sols):05d}-{max(sols):05d}.gif"
    store.put_file(out, key)
    dates = [d for d in (p["earth_date"] for p in photos) if isinstance(d, date)]
    item = timelapse_item(rover, camera, store.uri(key), info.size_bytes, sols, (min(dates), max(dates)),
                          [int(p["id"]) for p in photos], info.frame_count)  # type: ignore[call-overload]  # fmt: skip
    row = {"rover_name": rover, "camera_name": camera, "first_sol": min(sols), "last_sol": max(sols),
           "frames": info.frame_count, "object_key": key, "size_bytes": info.size_bytes, "sha256": info.sha256,
           "item_id": item["id"], "built_at": datetime.now(UTC)}  # fmt: skip
    return row, item


@dg.asset(
    key=TIMELAPSES_KEY,
    group_name=GROUP,
    kinds={"delta", "gif", "stac"},
    partitions_def=ROVER_PARTITIONS,
    deps=[dg.AssetDep(PHOTO_ITEMS_KEY, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("rover"))],
    automation_condition=FOLLOW_PHOTOS,
    description=f"Per camera, an animated GIF of its latest {MAX_FRAMES} fetched photos in (sol, photo id) order, "
    "under mars/timelapses/<rover>/ in the object store, a row in gold.mars_timelapses and a STAC item in the "
    "mars-timelapses collection linked (derived_from) to the photo items it shows.",
)
def gold_mars_timelapses(
    context: dg.AssetExecutionContext,
    lakehouse: dg.ResourceParam[Lakehouse],
    object_store: dg.ResourceParam[ObjectStore],
) -> dg.MaterializeResult:
    rover = rover_named(context.partition_key).name
    photos = fetched_photos(lakehouse, rover)
    cameras = sorted({str(p["camera_name"]) for p in photos})
    rows, items = [], []
    with tempfile.TemporaryDirectory(prefix="satlake-timelapse-") as scratch:
        for camera in cameras:
            made = make_timelapse(object_store, rover, camera, [p for p in photos if p["camera_name"] == camera][
                -MAX_FRAMES:], Path(scratch))  # fmt: skip
            if made is None:
                context.log.info(f"{rover} {camera}: fewer than {MIN_FRAMES} fetched photos, no timelapse")
                continue
            rows.append(made[0])
            items.append(made[1])
    lakehouse.replace_where(MARS_TIMELAPSES, pa.Table.from_pylist(rows, schema=MARS_TIMELAPSES_SCHEMA),
                            f"rover_name = '{rover}'", partition_by=[], retries=8)  # fmt: skip
    if items:
        listed = ", ".join(f"'{item['id']}'" for item in items)
        lakehouse.replace_where(CATALOG_ITEMS, catalog_rows(items), f"id IN ({listed})", partition_by=[], retries=8)
    rewrite_static_catalog(lakehouse, object_store, collection_descriptions())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "timelapses": dg.MetadataValue.json(
                {str(r["camera_name"]): f"sols {r['first_sol']}-{r['last_sol']}, {r['frames']} frames" for r in rows}
            ),
        }
    )
