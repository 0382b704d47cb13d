"""Dagster wiring for the scene path, one dynamic partition per scene: raw copy, COGs, products, STAC catalog
and forest change. The work lives in scenes/, products/ and catalog/; these functions fetch inputs, call it,
store outputs and attach metadata and checks.

Order: raw/scenes -> silver/cogs -> gold/ndvi, gold/quicklooks -> catalog/items -> gold/forest_change. Items
link the NDVI and the thumbnail, so they are built after them; forest change looks up the previous clear
acquisition of the tile in the catalog table, so it comes last.
"""

import json
import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import rasterio

from satlake.catalog.items import (
    MEDIA_TYPE_COG,
    MEDIA_TYPE_PNG,
    MEDIA_TYPE_TEXT,
    AssetRef,
    build_stac_item,
)
from satlake.catalog.static import rewrite_static_catalog
from satlake.catalog.table import catalog_rows
from satlake.catalog.validation import validate_stac_object
from satlake.products.forest_change import bright_cloud_mask, detect_forest_loss, select_clear_pairs
from satlake.products.ndvi import compute_ndvi
from satlake.products.quicklook import render_quicklook
from satlake.reporting.plots import change_map_png, data_uri, markdown_image, thumbnail_png
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.object_store import ObjectStore
from satlake.scenes import checks
from satlake.scenes.cog import (
    COG_PROFILES,
    DEFAULT_COG_PROFILE,
    band_asset_key,
    cog_layout_path,
    compare_pixels,
    convert_to_cog,
    validate_cog,
)
from satlake.scenes.grouping import LANDSAT_OLI_PRODUCT_BANDS, LANDSAT_PRODUCT_ID, group_scene_files
from satlake.scenes.integrity import file_sha256
from satlake.scenes.metadata import SceneMetadata
from satlake.scenes.raster import RasterReadError, read_scene_metadata
from satlake.scenes.sidecar import AcquisitionTimeError, missing_time_reason
from satlake.scenes.tables import (
    CATALOG_ITEMS,
    GOLD_FOREST_CHANGE,
    GOLD_FOREST_CHANGE_SCHEMA,
    GOLD_NDVI,
    GOLD_NDVI_SCHEMA,
    GOLD_QUICKLOOKS,
    GOLD_QUICKLOOKS_SCHEMA,
    RAW_SCENES,
    SCENE_REJECTS,
    SILVER_COGS,
    SILVER_COGS_SCHEMA,
    checked_scene_id,
    load_scene_metadata,
    raw_scene_row,
    read_scene_rows,
    replace_rows,
)

SCENE_PARTITIONS = dg.DynamicPartitionsDefinition(name="scenes")
SCENE_KEYS_TAG = "satlake/scene_keys"
GROUP = "scenes"

RAW_SCENES_KEY = dg.AssetKey(["raw", "scenes"])
COGS_KEY = dg.AssetKey(["silver", "cogs"])
NDVI_KEY = dg.AssetKey(["gold", "ndvi"])
QUICKLOOKS_KEY = dg.AssetKey(["gold", "quicklooks"])
ITEMS_KEY = dg.AssetKey(["catalog", "items"])
FOREST_CHANGE_KEY = dg.AssetKey(["gold", "forest_change"])
SCENE_ASSET_KEYS = [RAW_SCENES_KEY, COGS_KEY, NDVI_KEY, QUICKLOOKS_KEY, ITEMS_KEY, FOREST_CHANGE_KEY]

QUICKLOOK_MAX_SIZE = 512
CLEAR_SCENE_MAX_CLOUD_PCT = 20.0
FOREST_LOSS_NDVI_DROP = 0.3
FOREST_LOSS_MIN_AREA_HA = 0.5
# Lon/lat bbox of an item vs. the COG's bounds reprojected with densified edges: well under a pixel.
BBOX_TOLERANCE_DEGREES = 1e-3
COLLECTION_DESCRIPTIONS = {
    "satlake-sim": "Synthetic 4-band (blue, green, red, nir) 10 m scenes produced by `satlake produce scenes`.",
    "satlake-sim-mars": "Synthetic rasters in a Mars equirectangular projection, catalogued on Mars.",
}
ERROR, WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN


class CogConfig(dg.Config):
    """How silver/cogs compresses: a named profile of scenes.cog.COG_PROFILES (all lossless)."""

    profile: str = DEFAULT_COG_PROFILE


# --- small helpers ------------------------------------------------------------------------------------------


# raw/scenes keeps GeoTIFF tags as ``tag:<KEY>`` extras; the acquisition downloader tags every band file with
# the source collection it came from.
ACQUIRED_COLLECTION_FIELD = "tag:SATLAKE_COLLECTION"


def collection_for(scene_id: str, meta: SceneMetadata) -> str:
    """Collection of a scene: the source collection of an acquired scene (its ``SATLAKE_COLLECTION`` tag),
    ``landsat-<n>`` for Landsat products, else its platform, else ``geotiff``."""
    tagged = meta.extra.get(ACQUIRED_COLLECTION_FIELD, "").strip()
    # STAC collection ids of the known sources are already safe path segments; anything else is made one.
    acquired = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in tagged).strip("-._")
    if acquired:
        return acquired[:64]
    if LANDSAT_PRODUCT_ID.fullmatch(scene_id):
        return f"landsat-{int(scene_id[2:4])}"
    platform = (meta.platform or "").strip().lower()
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in platform).strip("-._")
    return cleaned[:64] or "geotiff"


def fetch(store: ObjectStore, key: str, scratch: Path) -> Path:
    """A local path holding ``key``: the object's own file for a local store, else a download into scratch."""
    local = store.local_path(key)
    if local is not None and local.is_file():
        return local
    return store.get_to_path(key, scratch / key)


def output_path(store: ObjectStore, key: str, scratch: Path) -> Path:
    """Where to write an output before ``publish``: in place for a local store, else in scratch."""
    local = store.local_path(key)
    path = local if local is not None else scratch / "out" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def publish(store: ObjectStore, path: Path, key: str) -> tuple[str, int, str]:
    """Store ``path`` as ``key`` (a no-op when written in place); returns (uri, size, sha256)."""
    if store.local_path(key) != path:
        store.put_file(path, key)
    sha256, size = file_sha256(path)
    return store.uri(key), size, sha256


def _result(key: dg.AssetKey, name: str, outcome: checks.CheckOutcome, severity: dg.AssetCheckSeverity):
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=outcome.passed,
        severity=severity,
        description=outcome.description,
        metadata={
            k: dg.MetadataValue.json(v) if isinstance(v, list | dict) else v for k, v in outcome.metadata.items()
        },
    )


def _landing_keys(context: dg.AssetExecutionContext, landing: ObjectStore, scene_id: str) -> list[str]:
    """The scene's landing keys: from the sensor's run tag, else found again by grouping the landing store
    (a re-materialization or backfill started from the UI has no tag)."""
    tagged = context.run.tags.get(SCENE_KEYS_TAG)
    if tagged:
        return list(json.loads(tagged))

    def read_mtl(key: str) -> str:
        with tempfile.TemporaryDirectory(prefix="satlake-mtl-") as scratch:
            return landing.get_to_path(key, Path(scratch) / "mtl.txt").read_text(encoding="utf-8", errors="replace")

    for group in group_scene_files(landing.list(), read_mtl, LANDSAT_OLI_PRODUCT_BANDS):
        if group.scene_id == scene_id:
            return list(group.files)
    raise dg.Failure(
        f"scene {scene_id!r}: no files for it in the landing store {landing!r}; upload them with `satlake put`"
    )


# --- raw/scenes ---------------------------------------------------------------------------------------------


def _quarantine(
    context: dg.AssetExecutionContext,
    lake: ObjectStore,
    lakehouse: Lakehouse,
    scene_id: str,
    keys: list[str],
    files: dict[str, Path],
    reason: str,
) -> Iterator[dg.AssetObservation | dg.AssetCheckResult]:
    """Keep the originals under ``raw/quarantine/<scene>/<content hash>/`` and record a reject row; the asset
    is not materialized, so the scene's downstream steps are skipped and its run still succeeds."""
    digest = checks.files_digest(files)
    prefix = f"raw/quarantine/{scene_id}/{digest[:16]}"
    for name, path in sorted(files.items()):
        if not lake.exists(f"{prefix}/{name}"):
            lake.put_file(path, f"{prefix}/{name}")
    row = checks.reject_row(scene_id, keys, reason, "raw/scenes", lake.uri(prefix) if files else None, None)
    lakehouse.append_exactly_once(SCENE_REJECTS, row, partition_by=[], app_transactions={})
    context.log.warning(f"scene {scene_id} quarantined: {reason}")
    yield dg.AssetObservation(
        asset_key=RAW_SCENES_KEY, partition=scene_id, metadata={"quarantined": reason, "kept_at": lake.uri(prefix)}
    )
    kept = {name: lake.sha256(f"{prefix}/{name}") for name in files}
    expected = {name: file_sha256(path)[0] for name, path in files.items()}
    yield _result(RAW_SCENES_KEY, "originals_kept", checks.check_hashes(kept, expected), ERROR)


@dg.asset(
    key=RAW_SCENES_KEY,
    group_name=GROUP,
    kinds={"delta", "s3"},
    partitions_def=SCENE_PARTITIONS,
    output_required=False,
    description="Each scene's original files copied unchanged into raw/scenes/<collection>/<scene_id>/ (never "
    "overwritten), with sha256 and raster metadata in lake/raw/scenes. Unreadable scenes and scenes without an "
    "acquisition time go to raw/scene_rejects with a reason and stop there; other scenes are unaffected.",
    check_specs=[dg.AssetCheckSpec("originals_kept", asset=RAW_SCENES_KEY, description="sha256 of kept files")],
)
def raw_scenes(
    context: dg.AssetExecutionContext,
    lakehouse: dg.ResourceParam[Lakehouse],
    object_store: dg.ResourceParam[ObjectStore],
    landing_store: dg.ResourceParam[ObjectStore],
) -> Iterator[dg.Output | dg.AssetCheckResult | dg.AssetObservation]:
    scene_id = checked_scene_id(context.partition_key)
    keys = _landing_keys(context, landing_store, scene_id)
    with tempfile.TemporaryDirectory(prefix=f"satlake-raw-{scene_id}-") as scratch_dir:
        scratch = Path(scratch_dir)
        files = {posixpath.basename(key): fetch(landing_store, key, scratch / "landing") for key in keys}
        try:
            meta = read_scene_metadata(scene_id, "unsorted", files)
        except (RasterReadError, AcquisitionTimeError) as error:
            yield from _quarantine(context, object_store, lakehouse, scene_id, keys, files, str(error))
            return
        if meta.acquired_at is None:  # a STAC item needs one: wait here for the user's time (scenes.sidecar)
            reason = missing_time_reason(checks.band_files(meta), meta.extra)
            yield from _quarantine(context, object_store, lakehouse, scene_id, keys, files, reason)
            return
        meta = replace(meta, collection=collection_for(scene_id, meta))
        prefix = f"raw/scenes/{meta.collection}/{scene_id}"
        conflicts = checks.keep_originals(object_store, prefix, files, {f.name: f.sha256 for f in meta.files})
        if conflicts:
            reason = "; ".join(conflicts) + ". Raw originals are immutable: upload the new version under a new name"
            yield from _quarantine(context, object_store, lakehouse, scene_id, keys, files, reason)
            return
    version = replace_rows(lakehouse, RAW_SCENES, raw_scene_row(meta, prefix, keys), "scene_id", scene_id)
    context.log.info(f"scene {scene_id}: {len(meta.files)} files kept under {prefix}, delta v{version}")
    yield dg.Output(
        None,
        metadata={
            "collection": meta.collection,
            "body": meta.body,
            "crs": f"EPSG:{meta.crs_epsg}" if meta.crs_epsg else meta.crs_wkt[:80],
            "size": f"{meta.width}x{meta.height}",
            "bands": dg.MetadataValue.json([b.name for b in meta.bands]),
            "acquired_at": meta.acquired_at.isoformat() if meta.acquired_at else "unknown",
            "cloud_cover": meta.cloud_cover if meta.cloud_cover is not None else "unknown",
            "raw_prefix": object_store.uri(prefix),
            "delta_version": version,
        },
    )
    stored = {f.name: object_store.sha256(f"{prefix}/{f.name}") for f in meta.files}
    yield _result(
        RAW_SCENES_KEY, "originals_kept", checks.check_hashes(stored, {f.name: f.sha256 for f in meta.files}), ERROR
    )


# --- silver/cogs --------------------------------------------------------------------------------------------

COG_CHECKS = [
    dg.AssetCheckSpec("cog_valid", asset=COGS_KEY, description="rio_cogeo.cog_validate passes, with overviews"),
    dg.AssetCheckSpec("pixels_match_original", asset=COGS_KEY, description="sampled windows equal the original"),
]


@dg.asset(
    key=COGS_KEY,
    group_name=GROUP,
    kinds={"delta", "s3"},
    partitions_def=SCENE_PARTITIONS,
    deps=[RAW_SCENES_KEY],
    check_specs=COG_CHECKS,
    description="One Cloud-Optimized GeoTIFF per band (tiled, overviews, lossless profile) at cogs/<collection>/"
    "<geohash5>/<YYYY>/<MM>/<DD>/<scene_id>/bbox_.../<band>.tif, listed in lake/silver/cogs.",
)
def silver_cogs(
    context: dg.AssetExecutionContext,
    config: CogConfig,
    lakehouse: dg.ResourceParam[Lakehouse],
    object_store: dg.ResourceParam[ObjectStore],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    if config.profile not in COG_PROFILES:
        raise dg.Failure(f"COG profile {config.profile!r} is unknown; choose one of {sorted(COG_PROFILES)}")
    scene_id = checked_scene_id(context.partition_key)
    meta, prefix = load_scene_metadata(lakehouse, scene_id)
    rows, problems, mismatches = [], [], []
    with tempfile.TemporaryDirectory(prefix=f"satlake-cog-{scene_id}-") as scratch_dir:
        scratch = Path(scratch_dir)
        originals = {name: fetch(object_store, f"{prefix}/{name}", scratch / "raw") for name in checks.band_files(meta)}
        for band in meta.bands:
            asset_key = band_asset_key(meta, band)
            key = cog_layout_path(meta, asset_key)
            target = output_path(object_store, key, scratch)
            report = convert_to_cog(originals[band.file], target, profile=config.profile, band_index=band.index)
            problems += [f"{asset_key}: {p}" for p in validate_cog(target) if p.startswith("error")]
            if not compare_pixels(originals[band.file], target, band=band.index):
                mismatches.append(asset_key)
            uri, size, sha256 = publish(object_store, target, key)
            rows.append(
                {"scene_id": scene_id, "band": asset_key, "band_name": band.name, "object_key": key, "uri": uri,
                 "size_bytes": size, "sha256": sha256, "overviews": list(report.overviews),
                 "block_rows": report.blocksize[0], "block_cols": report.blocksize[1],
                 "compression": report.compression, "profile": config.profile}
            )  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=SILVER_COGS_SCHEMA)
    version = replace_rows(lakehouse, SILVER_COGS, table, "scene_id", scene_id)
    context.log.info(f"scene {scene_id}: {len(rows)} COGs ({config.profile}), delta v{version}")
    yield dg.MaterializeResult(
        metadata={
            "cogs": dg.MetadataValue.json({r["band"]: r["uri"] for r in rows}),
            "bytes": sum(r["size_bytes"] for r in rows),
            "profile": config.profile,
            "overviews": dg.MetadataValue.json(rows[0]["overviews"] if rows else []),
            "delta_version": version,
        }
    )
    yield _result(COGS_KEY, "cog_valid", checks.outcome_from_problems(problems, f"{len(rows)} COGs valid"), ERROR)
    yield _result(
        COGS_KEY,
        "pixels_match_original",
        checks.outcome_from_problems(
            [f"{band}: pixels differ from the original" for band in mismatches], f"{len(rows)} bands equal"
        ),
        ERROR,
    )


def _cog_paths(
    lakehouse: Lakehouse, store: ObjectStore, scene_id: str, scratch: Path
) -> tuple[dict[str, Path], pa.Table]:
    rows = read_scene_rows(lakehouse, SILVER_COGS, scene_id)
    if rows.num_rows == 0:
        raise dg.Failure(f"scene {scene_id!r} has no COGs in {SILVER_COGS}; materialize silver/cogs first")
    paths = {
        band: fetch(store, key, scratch / "cogs")
        for band, key in zip(rows.column("band").to_pylist(), rows.column("object_key").to_pylist(), strict=True)
    }
    return paths, rows


def product_key(meta: SceneMetadata, name: str) -> str:
    return f"products/{meta.collection}/{meta.scene_id}/{name}"


# --- gold/ndvi ----------------------------------------------------------------------------------------------


@dg.asset(
    key=NDVI_KEY,
    group_name=GROUP,
    kinds={"delta", "s3"},
    partitions_def=SCENE_PARTITIONS,
    deps=[COGS_KEY],
    check_specs=[dg.AssetCheckSpec("ndvi_in_range", asset=NDVI_KEY, description="every NDVI value in [-1, 1]")],
    description="A float32 NDVI COG (nodata NaN) per scene with red and near-infrared bands, from reflectance "
    "(MTL scaling for Landsat); lake/gold/ndvi lists it with its statistics. Other scenes get no row.",
)
def gold_ndvi(
    context: dg.AssetExecutionContext,
    lakehouse: dg.ResourceParam[Lakehouse],
    object_store: dg.ResourceParam[ObjectStore],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    scene_id = checked_scene_id(context.partition_key)
    meta, _ = load_scene_metadata(lakehouse, scene_id)
    red, nir = checks.band_by_common_name(meta, "red"), checks.band_by_common_name(meta, "nir")
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"satlake-ndvi-{scene_id}-") as scratch_dir:
        scratch = Path(scratch_dir)
        outcome = checks.CheckOutcome(True, "no NDVI: the scene has no red and near-infrared bands")
        if red is not None and nir is not None:
            cogs, _ = _cog_paths(lakehouse, object_store, scene_id, scratch)
            key = product_key(meta, "ndvi.tif")
            target = output_path(object_store, key, scratch)
            report = compute_ndvi(
                cogs[band_asset_key(meta, red)],
                cogs[band_asset_key(meta, nir)],
                target,
                red_scale_offset=(red.scale or 1.0, red.offset or 0.0),
                nir_scale_offset=(nir.scale or 1.0, nir.offset or 0.0),
                source_nodata=checks.source_nodata(meta, red),
            )
            outcome = checks.check_ndvi_range(target)
            uri, size, sha256 = publish(object_store, target, key)
            rows.append(
                {"scene_id": scene_id, "object_key": key, "uri": uri, "size_bytes": size, "sha256": sha256,
                 "ndvi_min": report.min, "ndvi_max": report.max, "ndvi_mean": report.mean,
                 "valid_fraction": report.valid_fraction}
            )  # fmt: skip
    version = replace_rows(
        lakehouse, GOLD_NDVI, pa.Table.from_pylist(rows, schema=GOLD_NDVI_SCHEMA), "scene_id", scene_id
    )
    metadata: dict[str, object] = {"delta_version": version, "has_ndvi": bool(rows)}
    if rows:
        metadata.update(uri=rows[0]["uri"], mean=rows[0]["ndvi_mean"] or 0.0, valid=rows[0]["valid_fraction"])
    yield dg.MaterializeResult(metadata=metadata)
    yield _result(NDVI_KEY, "ndvi_in_range", outcome, ERROR)


# --- gold/quicklooks ----------------------------------------------------------------------------------------


@dg.asset(
    key=QUICKLOOKS_KEY,
    group_name=GROUP,
    kinds={"delta", "s3"},
    partitions_def=SCENE_PARTITIONS,
    deps=[COGS_KEY, NDVI_KEY],
    description="A PNG quicklook per scene (longest side 512 px, transparent where no data): true colour when "
    "the scene has red, green and blue, else the NDVI colour-mapped, else its first band in grey.",
)
def gold_quicklooks(
    context: dg.AssetExecutionContext,
    lakehouse: dg.ResourceParam[Lakehouse],
    object_store: dg.ResourceParam[ObjectStore],
) -> dg.MaterializeResult:
    scene_id = checked_scene_id(context.partition_key)
    meta, _ = load_scene_metadata(lakehouse, scene_id)
    with tempfile.TemporaryDirectory(prefix=f"satlake-quicklook-{scene_id}-") as scratch_dir:
        scratch = Path(scratch_dir)
        cogs, _ = _cog_paths(lakehouse, object_store, scene_id, scratch)
        ndvi_rows = read_scene_rows(lakehouse, GOLD_NDVI, scene_id)
        sources: dict[str, Path] = {}
        for name in ("red", "green", "blue"):
            band = checks.band_by_common_name(meta, name)
            if band is not None:
                sources[name] = cogs[band_asset_key(meta, band)]
        kind = "true_color"
        if len(sources) < 3 and ndvi_rows.num_rows:
            sources = {"ndvi": fetch(object_store, ndvi_rows.column("object_key")[0].as_py(), scratch / "ndvi")}
            kind = "ndvi"
        elif len(sources) < 3:
            # One band of no known colour (a Mars albedo map): grey, by giving it as all three channels.
            first = cogs[band_asset_key(meta, meta.bands[0])]
            sources, kind = {"red": first, "green": first, "blue": first}, "grayscale"
        key = product_key(meta, "quicklook.png")
        target = output_path(object_store, key, scratch)
        report = render_quicklook(sources, target, QUICKLOOK_MAX_SIZE, source_nodata=checks.source_nodata(meta))
        uri, size, sha256 = publish(object_store, target, key)
        preview = markdown_image(f"quicklook of {scene_id}", data_uri("image/png", thumbnail_png(target)))
    row = {"scene_id": scene_id, "object_key": key, "uri": uri, "size_bytes": size, "sha256": sha256,
           "kind": kind, "width": report.width, "height": report.height}  # fmt: skip
    version = replace_rows(
        lakehouse, GOLD_QUICKLOOKS, pa.Table.from_pylist([row], schema=GOLD_QUICKLOOKS_SCHEMA), "scene_id", scene_id
    )
    metadata = {"uri": uri, "kind": kind, "size": f"{report.width}x{report.height}", "delta_version": version}
    return dg.MaterializeResult(metadata={**metadata, "quicklook": dg.MetadataValue.md(preview)})


# --- catalog/items ------------------------------------------------------------------------------------------

ITEM_CHECKS = [
    dg.AssetCheckSpec("item_valid_stac", asset=ITEMS_KEY, description="item and collection validate (STAC 1.1)"),
    dg.AssetCheckSpec("asset_hrefs_exist", asset=ITEMS_KEY, description="every asset href names a stored file"),
    dg.AssetCheckSpec("bbox_matches_raster", asset=ITEMS_KEY, description="item bbox equals the COG's bounds"),
]


def _item_assets(lakehouse: Lakehouse, store: ObjectStore, meta: SceneMetadata, raw_prefix: str) -> dict:
    assets: dict[str, AssetRef] = {}
    cogs = read_scene_rows(lakehouse, SILVER_COGS, meta.scene_id)
    for row in cogs.to_pylist():
        assets[row["band"]] = AssetRef(
            href=row["uri"], media_type=MEDIA_TYPE_COG, roles=("data",), title=f"{row['band_name']} ({row['band']})",
            size_bytes=row["size_bytes"], sha256=row["sha256"], band_names=(row["band_name"],),
        )  # fmt: skip
    for row in read_scene_rows(lakehouse, GOLD_NDVI, meta.scene_id).to_pylist():
        assets["ndvi"] = AssetRef(
            href=row["uri"], media_type=MEDIA_TYPE_COG, roles=("data", "ndvi"), title="NDVI",
            size_bytes=row["size_bytes"], sha256=row["sha256"],
        )  # fmt: skip
    for row in read_scene_rows(lakehouse, GOLD_QUICKLOOKS, meta.scene_id).to_pylist():
        assets["thumbnail"] = AssetRef(
            href=row["uri"], media_type=MEDIA_TYPE_PNG, roles=("thumbnail", "overview"),
            title=f"quicklook ({row['kind']})", size_bytes=row["size_bytes"], sha256=row["sha256"],
        )  # fmt: skip
    for original in meta.files:
        if original.name.lower().endswith("_mtl.txt"):
            assets["mtl"] = AssetRef(
                href=store.uri(f"{raw_prefix}/{original.name}"), media_type=MEDIA_TYPE_TEXT, roles=("metadata",),
                title="Landsat MTL metadata", size_bytes=original.size_bytes, sha256=original.sha256,
            )  # fmt: skip
    return assets


@dg.asset(
    key=ITEMS_KEY,
    group_name=GROUP,
    kinds={"delta", "stac"},
    partitions_def=SCENE_PARTITIONS,
    deps=[COGS_KEY, NDVI_KEY, QUICKLOOKS_KEY],
    check_specs=ITEM_CHECKS,
    description="One STAC 1.1 item per scene (eo, proj, raster, file, view/sat where known) linking its COGs, "
    "NDVI and thumbnail; a row in lake/catalog/items (bbox columns, cell key, WKB geometry); and the static "
    "catalog under stac/ rewritten with every collection's extent.",
)
def catalog_items(
    context: dg.AssetExecutionContext,
    lakehouse: dg.ResourceParam[Lakehouse],
    object_store: dg.ResourceParam[ObjectStore],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    scene_id = checked_scene_id(context.partition_key)
    meta, raw_prefix = load_scene_metadata(lakehouse, scene_id)
    item = build_stac_item(meta, _item_assets(lakehouse, object_store, meta, raw_prefix))
    version = replace_rows(lakehouse, CATALOG_ITEMS, catalog_rows([item]), "id", scene_id)
    count, collections = rewrite_static_catalog(lakehouse, object_store, COLLECTION_DESCRIPTIONS)
    context.log.info(f"scene {scene_id}: item in {meta.collection}, catalog has {count} items")
    yield dg.MaterializeResult(
        metadata={
            "collection": meta.collection,
            "bbox": dg.MetadataValue.json(item.get("bbox")),
            "assets": dg.MetadataValue.json(sorted(item["assets"])),
            "catalog_items": count,
            "static_catalog": object_store.uri("stac/catalog.json"),
            "delta_version": version,
        }
    )
    problems = validate_stac_object(item) + [f"collection: {p}" for p in validate_stac_object(
        collections[meta.collection])]  # fmt: skip
    yield _result(ITEMS_KEY, "item_valid_stac", checks.outcome_from_problems(problems, "item validates"), ERROR)
    yield _result(ITEMS_KEY, "asset_hrefs_exist", checks.check_hrefs(item, object_store), ERROR)
    with tempfile.TemporaryDirectory(prefix=f"satlake-bbox-{scene_id}-") as scratch_dir:
        first_cog = read_scene_rows(lakehouse, SILVER_COGS, scene_id).column("object_key")[0].as_py()
        cog = fetch(object_store, first_cog, Path(scratch_dir))
        outcome = checks.check_item_bbox(item, cog, BBOX_TOLERANCE_DEGREES)
    yield _result(ITEMS_KEY, "bbox_matches_raster", outcome, ERROR)


# --- gold/forest_change -------------------------------------------------------------------------------------


def _cloud_mask(meta: SceneMetadata, cogs: dict[str, Path], shape: tuple[int, int] | None) -> np.ndarray | None:
    blue = checks.band_by_common_name(meta, "blue")
    if blue is None:
        return None
    mask = bright_cloud_mask(
        cogs[band_asset_key(meta, blue)], scale=blue.scale or 1e-4, offset=blue.offset or 0.0
    )  # the synthetic scenes and most surface-reflectance products store reflectance x 10000
    return mask if shape is None or mask.shape == shape else None


@dg.asset(
    key=FOREST_CHANGE_KEY,
    group_name=GROUP,
    kinds={"delta"},
    partitions_def=SCENE_PARTITIONS,
    deps=[ITEMS_KEY, NDVI_KEY],
    description="Forest loss polygons (area in hectares, both dates) between a scene and the previous clear "
    f"acquisition (cloud cover <= {CLEAR_SCENE_MAX_CLOUD_PCT:g}%) of the same tile, clouds masked in both; "
    "lake/gold/forest_change keeps them keyed by the later scene.",
)
def gold_forest_change(
    context: dg.AssetExecutionContext,
    lakehouse: dg.ResourceParam[Lakehouse],
    object_store: dg.ResourceParam[ObjectStore],
) -> dg.MaterializeResult:
    scene_id = checked_scene_id(context.partition_key)
    meta, _ = load_scene_metadata(lakehouse, scene_id)
    tile = checks.tile_key(meta)
    catalog = lakehouse.read(CATALOG_ITEMS, filters=[("collection", "=", meta.collection)])
    acquisitions = checks.tile_acquisitions(catalog, tile)
    pair = next((p for p in select_clear_pairs(acquisitions, CLEAR_SCENE_MAX_CLOUD_PCT) if p[1][2] == scene_id), None)
    rows: list[dict] = []
    before_id = change_map = None
    note = "no earlier clear acquisition of this tile, or this scene is not clear"
    after_ndvi = read_scene_rows(lakehouse, GOLD_NDVI, scene_id)
    if pair is not None and after_ndvi.num_rows:
        before_id = pair[0][2]
        before_meta, _ = load_scene_metadata(lakehouse, before_id)
        before_ndvi = read_scene_rows(lakehouse, GOLD_NDVI, before_id)
        with tempfile.TemporaryDirectory(prefix=f"satlake-change-{scene_id}-") as scratch_dir:
            scratch = Path(scratch_dir)
            before_path = fetch(object_store, before_ndvi.column("object_key")[0].as_py(), scratch / "before")
            after_path = fetch(object_store, after_ndvi.column("object_key")[0].as_py(), scratch / "after")
            before_cogs, _ = _cog_paths(lakehouse, object_store, before_id, scratch / "b")
            after_cogs, _ = _cog_paths(lakehouse, object_store, scene_id, scratch / "a")
            with rasterio.open(before_path) as src:
                shape = (src.height, src.width)
            polygons = detect_forest_loss(
                before_path,
                after_path,
                threshold=FOREST_LOSS_NDVI_DROP,
                min_area_ha=FOREST_LOSS_MIN_AREA_HA,
                before_cloud_mask=_cloud_mask(before_meta, before_cogs, None),
                after_cloud_mask=_cloud_mask(meta, after_cogs, shape),
                before_date=before_meta.acquired_at.date() if before_meta.acquired_at else None,
                after_date=meta.acquired_at.date() if meta.acquired_at else None,
            )
            change_map = markdown_image(
                f"NDVI change {before_id} -> {scene_id} (loss red, gain green)",
                data_uri("image/png", change_map_png(before_path, after_path)),
            )
        rows = [
            {"scene_id": scene_id, "before_scene_id": before_id, "collection": meta.collection, "tile": tile,
             "polygon_index": index, "before_date": p.before_date, "after_date": p.after_date, "area_ha": p.area_ha,
             "mean_ndvi_drop": p.mean_ndvi_drop, "pixel_count": p.pixel_count, "crs_epsg": p.crs_epsg,
             "geometry_wkb": p.geometry_wkb, "geometry_lonlat_wkb": p.geometry_lonlat_wkb}
            for index, p in enumerate(polygons)
        ]  # fmt: skip
        note = f"compared with {before_id}: {len(rows)} loss polygons"
    table = pa.Table.from_pylist(rows, schema=GOLD_FOREST_CHANGE_SCHEMA)
    version = replace_rows(lakehouse, GOLD_FOREST_CHANGE, table, "scene_id", scene_id)
    context.log.info(f"scene {scene_id}: {note}")
    maps = {"ndvi_change_map": dg.MetadataValue.md(change_map)} if change_map else {}
    return dg.MaterializeResult(
        metadata={
            **maps,
            "before_scene": before_id or "none",
            "polygons": len(rows),
            "loss_ha": round(sum(r["area_ha"] for r in rows), 3),
            "note": note,
            "delta_version": version,
        }
    )


scene_assets = [raw_scenes, silver_cogs, gold_ndvi, gold_quicklooks, catalog_items, gold_forest_change]
