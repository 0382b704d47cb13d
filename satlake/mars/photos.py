"""``catalog/mars_photos``: each photo of a sol fetched into the object store when its URL answers, and
catalogued as a STAC item either way (the remote ``img_src`` when the fetch failed).

Image hosts are not the API: their requests do not count against the API's hourly limit, but a run caps the
bytes it downloads (``SATLAKE_MARS_IMAGE_BYTE_BUDGET``) and stops asking a host after a few connection failures in
a row (an unreachable host would otherwise cost every photo its timeouts). A photo fetched before, with the same
``img_src``, is not fetched again. A redirect to another host is refused and the item keeps the remote href.
"""

import hashlib
import mimetypes
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import dagster as dg
import pyarrow as pa

from satlake.catalog.static import rewrite_static_catalog
from satlake.catalog.table import CATALOG_ITEMS, catalog_rows
from satlake.catalog.validation import validate_stac_object
from satlake.mars.assets import GROUP
from satlake.mars.bronze import BRONZE_PHOTOS_KEY
from satlake.mars.client import ApiResponse, MarsClient
from satlake.mars.items import collection_descriptions, photo_item, photo_item_id
from satlake.mars.landing import put_bytes
from satlake.mars.partitions import ROVER_SOL_PARTITIONS, rover_sols
from satlake.mars.tables import MARS_PHOTO_FILES, MARS_PHOTO_FILES_SCHEMA, MARS_PHOTOS
from satlake.resources.http import PoliteSession
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.object_store import ObjectStore
from satlake.settings import Settings

PHOTO_ITEMS_KEY = dg.AssetKey(["catalog", "mars_photos"])
HOST_FAILURES_BEFORE_GIVING_UP = 3
IMAGE_TYPES = {"image/jpeg": ".jpg", "image/png": ".png"}


class ImageFetcher:
    """Fetches photos' images for one run: byte budget, same-host redirects only, hosts given up on."""

    def __init__(self, settings: Settings, photos: int) -> None:
        session = PoliteSession(
            timeout_s=settings.mars_timeout_s,
            max_retries=1,
            request_budget=max(2 * photos, 1) + 5,
            budget_hint="the run asks each image at most twice",
        )
        self.client = MarsClient(settings.mars_photos_url, settings.mars_mmgis_url, settings.nasa_api_key, session)
        self.bytes_left = settings.mars_image_byte_budget
        self.failures: dict[str, int] = {}
        self.last_failure: dict[str, str] = {}

    def fetch(self, img_src: str, rover: str, sol: int) -> tuple[bytes | None, str | None, str | None]:
        """(body, extension, reason): the image, or None with why it was not fetched."""
        host = urlsplit(img_src).netloc
        if urlsplit(img_src).scheme not in ("http", "https"):
            return None, None, f"img_src {img_src!r} is not an http(s) URL"
        if self.failures.get(host, 0) >= HOST_FAILURES_BEFORE_GIVING_UP:
            failed = f"{host} failed {HOST_FAILURES_BEFORE_GIVING_UP} times in a row this run, so it was not asked"
            return None, None, f"{failed} again (last: {self.last_failure.get(host)})"
        if self.bytes_left <= 0:
            return None, None, "the run's image byte budget (SATLAKE_MARS_IMAGE_BYTE_BUDGET) is spent"
        response: ApiResponse = self.client.image(img_src, rover=rover, sol=sol)
        self.failures[host] = self.failures.get(host, 0) + 1 if response.status == 0 else 0
        if response.status == 0 and response.error:
            self.last_failure[host] = response.error
        if response.error:
            return None, None, response.error
        content_type = (response.content_type or "").split(";")[0].strip().lower()
        extension = IMAGE_TYPES.get(content_type) or mimetypes.guess_extension(content_type or "")
        if not content_type.startswith("image/") or not response.body:
            return None, None, f"{img_src} answered {content_type or 'no content type'}, not an image"
        self.bytes_left -= len(response.body)
        return response.body, extension or ".jpg", None


@dg.asset(
    key=PHOTO_ITEMS_KEY,
    group_name=GROUP,
    kinds={"delta", "stac", "jpeg"},
    partitions_def=ROVER_SOL_PARTITIONS,
    deps=[BRONZE_PHOTOS_KEY],
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[
        dg.AssetCheckSpec(
            "items_valid_stac",
            asset=PHOTO_ITEMS_KEY,
            description="every photo item validates against STAC 1.1 and its extensions",
        )
    ],
    description="Each photo's image fetched into the object store (mars/photos/<rover>/sol-<sol>/<id>) when its "
    "URL answers, recorded in raw.mars_photo_files, and a STAC item per photo in catalog.items (collection "
    "mars-<rover>-photos, ssys:targets mars, no Earth geometry), pointing at the copy or at the remote img_src.",
)
def catalog_mars_photos(
    context: dg.AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    lakehouse: dg.ResourceParam[Lakehouse],
    object_store: dg.ResourceParam[ObjectStore],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    now = datetime.now(UTC)
    problems: list[str] = []
    fetched = not_fetched = reused = 0
    for rover, sols in rover_sols(context.partition_keys).items():
        sol_list = [int(sol) for sol in sols]
        photos = lakehouse.read(MARS_PHOTOS, filters=[("rover_name", "=", rover), ("sol", "in", sol_list)])
        earlier = lakehouse.read(MARS_PHOTO_FILES, filters=[("rover_name", "=", rover), ("sol", "in", sol_list)])
        before = {
            (r["id"], r["img_src"]): r
            for r in (earlier.to_pylist() if earlier is not None else [])
            if r["object_key"] and object_store.exists(r["object_key"])
        }
        rows = photos.to_pylist() if photos is not None else []
        fetcher = ImageFetcher(settings, len(rows))
        files, items = [], []
        for photo in sorted(rows, key=lambda r: (r["sol"], r["id"])):
            file_row = before.get((photo["id"], photo["img_src"]))
            if file_row is not None:
                reused += 1
            else:
                body, extension, reason = fetcher.fetch(photo["img_src"], rover, photo["sol"])
                key = size = digest = None
                if body is not None:
                    key = f"mars/photos/{rover}/sol-{photo['sol']:05d}/{photo['id']}{extension}"
                    size, digest = put_bytes(object_store, key, body).size_bytes, hashlib.sha256(body).hexdigest()
                    fetched += 1
                else:
                    not_fetched += 1
                    context.log.info(f"{rover} photo {photo['id']}: not fetched, {reason}")
                file_row = {
                    "id": photo["id"],
                    "rover_name": rover,
                    "sol": photo["sol"],
                    "camera_name": photo["camera_name"],
                    "img_src": photo["img_src"],
                    "object_key": key,
                    "size_bytes": size,
                    "sha256": digest,
                    "reason": reason,
                    "fetched_at": now,
                }
            files.append(file_row)
            href = object_store.uri(file_row["object_key"]) if file_row["object_key"] else photo["img_src"]
            item = photo_item(photo, href, file_row["size_bytes"])
            problems += [f"{item['id']}: {p}" for p in validate_stac_object(item)]
            items.append(item)
        where = f"rover_name = '{rover}' AND sol IN ({', '.join(str(s) for s in sol_list)})"
        lakehouse.replace_where(
            MARS_PHOTO_FILES,
            pa.Table.from_pylist(files, schema=MARS_PHOTO_FILES_SCHEMA),
            where,
            partition_by=["rover_name"],
            retries=8,
        )
        # The sols' items before (photos the API no longer lists lose theirs) and now, in one commit.
        ids = {photo_item_id(rover, int(r["id"])) for r in (earlier.to_pylist() if earlier is not None else [])}
        ids |= {item["id"] for item in items}
        if ids:  # item ids are "mars-<rover>-<integer>": safe inside quotes
            listed = ", ".join(f"'{item_id}'" for item_id in sorted(ids))
            lakehouse.replace_where(CATALOG_ITEMS, catalog_rows(items), f"id IN ({listed})", partition_by=[], retries=8)
    rewrite_static_catalog(lakehouse, object_store, collection_descriptions())
    yield dg.MaterializeResult(
        metadata={"photos_fetched": fetched, "photos_not_fetched": not_fetched, "photos_already_fetched": reused}
    )
    yield dg.AssetCheckResult(
        asset_key=PHOTO_ITEMS_KEY,
        check_name="items_valid_stac",
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="every item validates" if not problems else "; ".join(problems[:8]),
    )
