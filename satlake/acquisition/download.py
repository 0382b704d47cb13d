"""One acquisition request, end to end: search the source, keep each item as received, skip what has landed
before, read the AOI's window of each needed band through HTTP range requests, and land the band files and
then the scene manifest in the landing area, where the ordinary object-created events take over.

Every item ends as one row of ``raw.acquisitions`` (landed, skipped or rejected, with the reason), and the
search itself as one more (``searched`` when it ran to the end, ``rejected`` with the reason when it could
not): a bad item or a failing API never loses the items around it, and never fails the run.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from satlake.acquisition.aoi import AreaOfInterest
from satlake.acquisition.landing import (
    MANIFEST_NAME,
    LandedFile,
    LandingError,
    ManifestFile,
    acquisition_prefix,
    band_file_name,
    band_tags,
    build_manifest,
    geohash5,
    item_datetime,
    item_self_href,
    key_safe,
    land_file,
    scene_id_for,
    write_manifest,
)
from satlake.acquisition.request import AcquisitionRequest
from satlake.acquisition.schedules import SEARCHED
from satlake.acquisition.search import (
    BandAsset,
    MissingBands,
    SearchError,
    href_signer,
    search_items,
    select_band_assets,
)
from satlake.acquisition.sources import StacSource
from satlake.acquisition.window import NoOverlap, WindowResult, read_window
from satlake.resources.http import BudgetExceeded, ByteBudget, HttpError, PoliteSession
from satlake.resources.object_store import ObjectStore, StoredObject
from satlake.settings import Settings

LANDED, SKIPPED, REJECTED = "landed", "skipped", "rejected"
ITEMS_PREFIX = "raw/acquisitions/items"


@dataclass
class AcquisitionReport:
    """The rows of one request and the objects it landed (to announce when the store does not)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    landed: list[StoredObject] = field(default_factory=list)
    requests_made: int = 0

    def count(self, status: str) -> int:
        return sum(1 for row in self.rows if row["item_id"] is not None and row["status"] == status)


@dataclass(frozen=True)
class AcquisitionPlan:
    """What a request asks for, with the AOI's settings where the request left them out."""

    request: AcquisitionRequest
    aoi: AreaOfInterest
    source: StacSource
    collections: tuple[str, ...]
    cloud_cover_max: float | None

    @classmethod
    def of(cls, request: AcquisitionRequest, aoi: AreaOfInterest, source: StacSource) -> AcquisitionPlan:
        cloud = request.cloud_cover_max if request.cloud_cover_given else aoi.cloud_cover_max
        return cls(request, aoi, source, request.collections or aoi.collections, cloud)

    @property
    def datetime_interval(self) -> str:
        """The request's interval as RFC 3339 date-times, as STAC APIs take it (``..`` for an open end)."""

        def end(moment: datetime | None) -> str:
            return ".." if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

        if self.request.start is not None and self.request.start == self.request.end:
            return end(self.request.start)
        return f"{end(self.request.start)}/{end(self.request.end)}"


def fingerprint(parts: Mapping[str, str]) -> str:
    """One digest of what identifies each band's content at the source (role -> checksum or ETag)."""
    return hashlib.sha256(json.dumps(dict(sorted(parts.items()))).encode()).hexdigest()[:32]


class Downloader:
    """Carries one request through its items; ``run()`` returns the report."""

    def __init__(
        self,
        plan: AcquisitionPlan,
        settings: Settings,
        lake: ObjectStore,
        landing: ObjectStore,
        landed_before: Mapping[tuple[str, str], str],
        say: Callable[[str], None],
        session: PoliteSession | None = None,
    ) -> None:
        self.plan, self.settings, self.lake, self.landing, self.say = plan, settings, lake, landing, say
        self.landed_before = landed_before  # (item id, fingerprint) -> the request that landed it
        self.session = session or PoliteSession(
            timeout_s=settings.acquisition_timeout_s,
            max_retries=settings.acquisition_max_retries,
            request_budget=settings.acquisition_request_budget,
        )
        self.budget = ByteBudget(settings.acquisition_byte_budget)
        self.sign = href_signer(plan.source, settings.planetary_computer_sas_url, self.session)
        self.report = AcquisitionReport()

    def _row(self, status: str, reason: str | None = None, item: Mapping[str, Any] | None = None, **extra: Any) -> None:
        properties = (item or {}).get("properties", {})
        cloud = properties.get("eo:cloud_cover")
        moment = None
        if item is not None:
            try:
                moment = datetime.fromisoformat(item_datetime(item).replace("Z", "+00:00"))
            except LandingError:
                moment = None
        self.report.rows.append(
            {
                "request_id": self.plan.request.request_id,
                "aoi": self.plan.aoi.name,
                "source": self.plan.source.name,
                "collection": (item or {}).get("collection"),
                "item_id": str(item["id"]) if item is not None else None,
                "item_datetime": moment,
                "cloud_cover": float(cloud) if isinstance(cloud, int | float) else None,
                "status": status,
                "reason": reason,
                "scene_id": None,
                "landing_prefix": None,
                "bands": None,
                "bytes_fetched": 0,
                "source_bytes": None,
                "fingerprint": None,
                "item_object_key": None,
                "item_href": item_self_href(item, self.plan.source.url, item.get("collection", "")) if item else None,
                "acquired_at": datetime.now(UTC),
                **extra,
            }
        )

    def _keep_item(self, item: Mapping[str, Any], scratch: Path) -> str:
        """Store the item JSON exactly as the API returned it (the raw zone keeps what was received)."""
        key = f"{ITEMS_PREFIX}/{key_safe(self.plan.source.name)}/{key_safe(str(item.get('collection')))}/"
        key += f"{key_safe(str(item['id']))}.json"
        local = scratch / "item.json"
        local.write_text(json.dumps(item, sort_keys=True), encoding="utf-8")
        self.lake.put_file(local, key)
        return key

    def _items(self) -> Iterator[dict[str, Any]]:
        return search_items(
            self.plan.source, self.plan.aoi.geometry, list(self.plan.collections), self.plan.datetime_interval,
            self.plan.cloud_cover_max, self.session,
        )  # fmt: skip

    def run(self) -> AcquisitionReport:
        searched, reason = False, None
        items = self._items()
        try:
            for item in items:
                with tempfile.TemporaryDirectory(prefix="satlake-acquire-") as scratch:
                    self._acquire_item(item, Path(scratch))
            searched = True
        except BudgetExceeded as error:
            reason = f"stopped: {error}; the items not reached are acquired by the next request"
        except (SearchError, HttpError) as error:
            reason = f"search of {self.plan.source.url} failed: {error}"
        self.report.requests_made = self.session.requests_made
        if searched:
            self._row(SEARCHED, f"{self.report.count(LANDED)} landed, {self.report.count(SKIPPED)} skipped, "
                      f"{self.report.count(REJECTED)} rejected")  # fmt: skip
        else:
            self._row(REJECTED, reason)
        return self.report

    def _acquire_item(self, item: dict[str, Any], scratch: Path) -> None:
        item_id = str(item.get("id"))
        collection = str(item.get("collection") or self.plan.collections[0])
        item = {**item, "collection": collection}
        try:
            object_key = self._keep_item(item, scratch)
            bands = select_band_assets(item, self.plan.source, roles=self.plan.request.bands)
        except (MissingBands, LandingError) as error:
            self._row(REJECTED, str(error), item)
            return
        try:
            print_id = self._fingerprint(bands, collection)
        except BudgetExceeded:
            raise
        except HttpError as error:
            self._row(REJECTED, f"{type(error).__name__}: {error}", item, item_object_key=object_key)
            return
        earlier = self.landed_before.get((item_id, print_id))
        if earlier is not None:
            self._row(SKIPPED, f"already landed by request {earlier} (same item and assets)", item,
                      fingerprint=print_id, item_object_key=object_key)  # fmt: skip
            return
        try:
            self._land_item(item, collection, bands, print_id, object_key, scratch)
        except NoOverlap as error:
            self._row(SKIPPED, f"outside the AOI: {error}", item, item_object_key=object_key)
        except BudgetExceeded:
            self._row(REJECTED, "the request's byte or HTTP request budget ran out during this item", item)
            raise
        except (HttpError, LandingError, OSError) as error:
            self._row(REJECTED, f"{type(error).__name__}: {error}", item, item_object_key=object_key)

    def _fingerprint(self, bands: Mapping[str, BandAsset], collection: str) -> str:
        """Each band's STAC ``file:checksum``, else the ETag a HEAD request returns, else its href without the
        query (signatures change, the file does not): an item is landed again only when its content changed."""
        parts = {}
        for role, band in bands.items():
            checksum = band.asset.get("file:checksum")
            if not checksum:
                head = self.session.request("HEAD", self.sign(band.href, collection))
                checksum = head.headers.get("ETag") if head.ok else None
            parts[role] = str(checksum or band.href.split("?", 1)[0])
        return fingerprint(parts)

    def _read(self, band: BandAsset, collection: str, out: Path, tags: dict[str, str]) -> WindowResult:
        return read_window(
            self.sign(band.href, collection), self.plan.aoi.geometry, self.session, out, self.budget,
            description=band.description, tags=tags, display_href=band.href,
        )  # fmt: skip

    def _land_item(
        self, item: dict[str, Any], collection: str, bands: Mapping[str, BandAsset], print_id: str,
        object_key: str, scratch: Path,
    ) -> None:  # fmt: skip
        source = self.plan.source
        tags = band_tags(item, source.name, source.url, collection)
        roles = sorted(bands)
        fetched = source_bytes = 0
        results: dict[str, WindowResult] = {}
        # The first band's window names the folder; a folder whose manifest has landed is complete already.
        first = roles[0]
        results[first] = self._read(bands[first], collection, scratch / band_file_name(first), tags)
        window = results[first].bounds_lonlat
        prefix = acquisition_prefix(source.name, collection, geohash5(window), item_datetime(item), window, item["id"])
        if self.landing.exists(f"{prefix}/{MANIFEST_NAME}"):
            self._row(SKIPPED, f"already landed at {prefix} (a run that stopped before recording it)", item,
                      scene_id=scene_id_for(str(item["id"]), window), landing_prefix=prefix,
                      fingerprint=print_id, item_object_key=object_key)  # fmt: skip
            return
        files: dict[str, ManifestFile] = {}
        for role in roles:
            key = f"{prefix}/{band_file_name(role)}"
            if role != first and self.landing.exists(key):
                # Landed by a run that was stopped: a put is all-or-nothing, so the object is whole.
                landed = LandedFile(key=key, sha256=self.landing.sha256(key), size=self.landing.size(key) or 0)
                files[role] = ManifestFile(band_file_name(role), landed.sha256, landed.size, bands[role].href, None)
                continue
            if role not in results:
                results[role] = self._read(bands[role], collection, scratch / band_file_name(role), tags)
            result = results[role]
            fetched += result.bytes_fetched
            source_bytes += result.file_size
            landed = land_file(self.landing, result.path, key)
            self.report.landed.append(StoredObject(key=landed.key, size_bytes=landed.size, etag=landed.sha256))
            files[role] = ManifestFile(band_file_name(role), landed.sha256, landed.size, bands[role].href, result.etag)
        manifest = build_manifest(
            item=item, source=source.name, source_url=source.url, collection=collection, aoi=self.plan.aoi.name,
            request_id=self.plan.request.request_id, window_bbox=window, crs=str(results[first].crs), files=files,
        )  # fmt: skip
        landed_manifest = write_manifest(self.landing, prefix, manifest)
        self.report.landed.append(
            StoredObject(key=landed_manifest.key, size_bytes=landed_manifest.size, etag=landed_manifest.sha256)
        )
        self._row(
            LANDED, None, item, scene_id=manifest["scene_id"], landing_prefix=prefix, bands=roles,
            bytes_fetched=fetched, source_bytes=source_bytes, fingerprint=print_id, item_object_key=object_key,
        )  # fmt: skip
        self.say(f"{item['id']}: {len(roles)} bands, {fetched:,} of {source_bytes:,} bytes -> {prefix}")


def landed_items(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """(item id, fingerprint) -> request id, of the rows that landed or skipped as landed."""
    return {
        (row["item_id"], row["fingerprint"]): row["request_id"]
        for row in rows
        if row["item_id"] is not None and row["fingerprint"] is not None and row["status"] == LANDED
    }
