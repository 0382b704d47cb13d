"""The scene commands of the ``satlake`` CLI: ``put``, ``produce scenes`` and ``search``.

``add_scene_commands(subparsers)`` registers them on the top-level subparsers (``produce scenes`` joins the
existing ``produce`` command when there is one).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satlake.catalog.search import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SearchQuery,
    parse_bbox,
    parse_datetime_range,
    search_catalog_duckdb,
    search_catalog_trino,
)
from satlake.cli_support import CliError, report_for, settings_from_args
from satlake.settings import Mode, Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from satlake.resources import SatlakeResources

SEARCH_COLUMNS = ("id", "collection", "datetime", "platform", "cloud_cover", "body", "bbox")


class DatetimeMisuseError(ValueError):
    """``--datetime`` given with files whose time it cannot set."""


def datetime_sidecars(paths: list[Path], prefix: str, acquired_at: datetime, directory: Path) -> list[Path]:
    """One ``<file>.datetime.json`` sidecar per GeoTIFF in ``paths``, written under ``directory``.

    Raises DatetimeMisuseError naming the files it cannot apply to: Landsat product files (the MTL has the time),
    files of the acquisition layout (tagged by the downloader), non-GeoTIFFs, and sidecars put alongside.
    """
    from satlake.scenes.grouping import is_geotiff_scene_key
    from satlake.scenes.landing import landing_key_for
    from satlake.scenes.sidecar import SIDECAR_SUFFIX, write_sidecar

    others = [str(path) for path in paths if not is_geotiff_scene_key(landing_key_for(path, prefix))]
    if others:
        raise DatetimeMisuseError(
            f"--datetime sets the acquisition time of single GeoTIFF scenes (*.tif, *.tiff), not of {others}: "
            f"put those without --datetime (Landsat products take their time from the MTL; a {SIDECAR_SUFFIX} "
            "sidecar is the alternative to --datetime, not its companion)"
        )
    return [write_sidecar(path, acquired_at, directory / str(n)) for n, path in enumerate(paths)]


def put_files(
    settings: Settings, paths: list[Path], prefix: str = "", say: Any = print, acquired_at: datetime | None = None
) -> int:
    """Upload files to the landing area; in embedded mode also announce them (MinIO does it in stack mode).

    With ``acquired_at``, each file (a GeoTIFF) gets a datetime sidecar (``scenes.sidecar``) that is uploaded
    before it, so whichever announcement a sensor sees first, the scene's run finds the time.
    """
    from satlake.resources import build_resources
    from satlake.resources.object_store import build_scene_stores
    from satlake.scenes.landing import put_scene_files

    stores = build_scene_stores(settings)
    event_log = build_resources(settings).event_log if settings.mode is Mode.EMBEDDED else None
    with tempfile.TemporaryDirectory(prefix="satlake-put-") as scratch:
        sidecars = datetime_sidecars(paths, prefix, acquired_at, Path(scratch)) if acquired_at else []
        stored = put_scene_files(
            [*sidecars, *paths],
            stores.landing,
            event_log,
            settings.object_events_topic,
            prefix=prefix,
            progress=lambda obj: say(f"  put {stores.landing.uri(obj.key)} ({obj.size_bytes:,} bytes)"),
        )
    announced = "announced on " + settings.object_events_topic if event_log else "MinIO announces them"
    say(f"landed {len(stored)} files ({settings.mode.value} mode, {announced}); `satlake run` processes them")
    return len(stored)


def cmd_put(args: argparse.Namespace) -> int:
    from satlake.resources.object_keys import UnsafeObjectKeyError
    from satlake.scenes.sidecar import parse_acquisition_time

    paths = [Path(p) for p in args.files]
    acquired_at = None
    if args.datetime is not None:
        try:
            acquired_at = parse_acquisition_time(args.datetime)
        except ValueError as error:
            raise CliError(f"--datetime: {error}") from error
    try:
        put_files(settings_from_args(args), paths, prefix=args.prefix, say=report_for(args).line,
                  acquired_at=acquired_at)  # fmt: skip
    except (FileNotFoundError, UnsafeObjectKeyError, DatetimeMisuseError) as error:
        raise CliError(str(error)) from error
    return 0


def produce_scene_files(out_dir: Path, tiles: int, size: int, seed: int, mars: bool = True) -> list[Path]:
    """Synthetic scenes of ``tiles`` tiles over the default four dates (and a small Mars raster)."""
    from satlake.scenes.synthetic import make_mars_scene, make_synthetic_scenes

    paths = make_synthetic_scenes(out_dir, tiles=tiles, size=size, seed=seed)
    if mars:
        paths.append(make_mars_scene(out_dir / "sim_mars_gale.tif"))
    return paths


def cmd_produce_scenes(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    report = report_for(args)
    try:
        with tempfile.TemporaryDirectory(prefix="satlake-scenes-") as scratch:
            paths = produce_scene_files(Path(scratch), args.tiles, args.size, args.seed, mars=not args.no_mars)
            report.line(f"produced {len(paths)} synthetic scenes ({args.tiles} tiles x 4 dates, {args.size} px)")
            put_files(settings, paths, prefix=args.prefix, say=report.line)
    except ValueError as error:
        raise CliError(f"cannot produce scenes: {error}") from error
    return 0


NO_CATALOG_MESSAGE = (
    "no scenes catalogued yet (no catalog.items table): run `satlake demo`, or land scenes "
    "(`satlake put FILE...` or `satlake produce scenes`) and then `satlake run`"
)


def _search_embedded(resources: SatlakeResources, query: SearchQuery) -> list[dict[str, Any]] | None:
    """``search_sql`` on DuckDB over the Delta table: a one-shot search, where building ``DeltaCatalogSearch``'s
    index (every row's search columns) would cost more than the scan it saves (docs/benchmarks.md, section 4)."""
    import duckdb

    from satlake.scenes.tables import CATALOG_ITEMS

    delta_table = resources.lakehouse.open(CATALOG_ITEMS)
    if delta_table is None:
        return None
    con = duckdb.connect()
    try:
        con.register("catalog_items", delta_table.to_pyarrow_dataset())
        return search_catalog_duckdb(con, "catalog_items", query)
    finally:
        con.close()


def _search_stack(resources: SatlakeResources, query: SearchQuery) -> list[dict[str, Any]] | None:
    """``search_sql`` through Trino as ``SATLAKE_TRINO_USER``, so its access rules apply to the search."""
    from satlake.resources.query import TrinoQueryEngine
    from satlake.resources.trino import TrinoLakeError
    from satlake.scenes.tables import CATALOG_ITEMS

    engine = resources.query_engine
    if not isinstance(engine, TrinoQueryEngine):
        raise CliError(f"stack mode searches through Trino, but the query engine is {engine.name}")
    user = resources.settings.trino_user
    try:
        return search_catalog_trino(engine.trino, f"{CATALOG_ITEMS.zone}.{CATALOG_ITEMS.name}", query, user=user)
    except TrinoLakeError as error:
        if error.error_name in ("TABLE_NOT_FOUND", "SCHEMA_NOT_FOUND"):
            return None
        raise CliError(f"Trino refused the search as user {user!r}: {error}") from error


# Chosen by mode in one place, like the resources; both run search_sql, so they give the same answers.
CATALOG_SEARCHES: dict[Mode, Callable[[SatlakeResources, SearchQuery], list[dict[str, Any]] | None]] = {
    Mode.EMBEDDED: _search_embedded,
    Mode.STACK: _search_stack,
}


def search_items(settings: Settings, query: SearchQuery) -> list[dict[str, Any]] | None:
    """Catalog items matching ``query``, newest first; None when nothing has been
    catalogued yet (no catalog table)."""
    from satlake.resources import build_resources

    return CATALOG_SEARCHES[settings.mode](build_resources(settings), query)


def format_items(rows: list[dict[str, Any]]) -> str:
    from satlake.resources.query import QueryResult

    def bbox(row: dict[str, Any]) -> str:
        values = [row["bbox_xmin"], row["bbox_ymin"], row["bbox_xmax"], row["bbox_ymax"]]
        return "-" if values[0] is None else ",".join(f"{v:.4f}" for v in values)

    table = [
        (r["id"], r["collection"], r["datetime"].astimezone(UTC).isoformat(), r["platform"] or "-",
         "-" if r["cloud_cover"] is None else f"{r['cloud_cover']:.1f}", r["body"], bbox(r))
        for r in rows
    ]  # fmt: skip
    return QueryResult(columns=list(SEARCH_COLUMNS), rows=table).format_table(max_rows=MAX_LIMIT, max_width=60)


def item_collection(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The found items as a STAC ItemCollection (a GeoJSON FeatureCollection of the stored items), in order."""
    features = [json.loads(row["item_json"]) for row in rows]
    return {"type": "FeatureCollection", "features": features, "numberReturned": len(features)}


def parse_point(text: str) -> tuple[float, float, float, float]:
    """``"LON,LAT"`` as the zero-size bbox that finds the items whose bbox contains the point."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError(f"{len(parts)} part(s)")
        return parse_bbox(",".join(parts + parts))
    except ValueError as error:
        raise ValueError(
            f"point {text!r}: expected LON,LAT in decimal degrees, longitude in [-180, 180] and latitude in "
            f"[-90, 90] (e.g. 13.40,52.52); write --point=LON,LAT when LON is negative ({error})"
        ) from None


def cmd_search(args: argparse.Namespace) -> int:
    try:
        bbox = parse_point(args.point) if args.point else (parse_bbox(args.bbox) if args.bbox else None)
        query = SearchQuery(
            bbox=bbox,
            datetime_range=parse_datetime_range(args.datetime) if args.datetime else None,
            cloud_cover_max=args.cloud_cover_max,
            collections=args.collection or None,
            limit=args.limit,
        )
    except ValueError as error:
        raise CliError(str(error)) from error
    rows = search_items(settings_from_args(args), query)
    report = report_for(args)
    if rows is None:
        report.warning(NO_CATALOG_MESSAGE)
        rows = []
    if args.json:
        sys.stdout.write(json.dumps(item_collection(rows)) + "\n")  # for other tools: exactly JSON, unstyled
    else:
        report.line(format_items(rows))
    return 0


def _produce_subparsers(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    produce = subparsers.choices.get("produce")
    if produce is None:
        produce = subparsers.add_parser("produce", help="publish synthetic or replayed data")
        return produce.add_subparsers(dest="what", required=True)
    for action in produce._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return produce.add_subparsers(dest="what", required=True)


def add_scene_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``put``, ``produce scenes`` and ``search`` on the CLI's top-level subparsers."""
    put = subparsers.add_parser("put", help="land scene files (GeoTIFFs, Landsat band + MTL files)")
    put.add_argument("files", nargs="+", metavar="FILE")
    put.add_argument("--prefix", default="", help="landing folder for the files (default: the top)")
    put.add_argument(
        "--datetime",
        metavar="TIME",
        help="acquisition time of GeoTIFFs that carry none (ISO 8601, e.g. 2024-05-01T10:30:00Z; no zone: UTC), "
        "landed as a FILE.datetime.json sidecar beside each file; it wins over a time tag in the file",
    )
    put.add_argument("--stack", action="store_true", help="upload to MinIO (`satlake stack up`)")
    put.set_defaults(func=cmd_put)

    scenes = _produce_subparsers(subparsers).add_parser(
        "scenes", help="synthetic 4-band UTM scenes of repeated tiles, with clouds and a forest clearing"
    )
    scenes.add_argument("--tiles", type=int, default=2, help="tiles, each imaged on 4 dates (1-4)")
    scenes.add_argument("--size", type=int, default=512, metavar="PX", help="tile width and height in pixels")
    scenes.add_argument("--seed", type=int, default=0)
    scenes.add_argument("--prefix", default="synthetic", help="landing folder (default: synthetic)")
    scenes.add_argument("--no-mars", action="store_true", help="leave out the small Mars raster")
    scenes.add_argument("--stack", action="store_true")
    scenes.set_defaults(func=cmd_produce_scenes, captures_output=True)

    search = subparsers.add_parser(
        "search",
        help="find catalogued scenes by bbox or point, time, cloud cover, collection",
        description="Search catalog/items: DuckDB on the Delta table (embedded), or Trino as SATLAKE_TRINO_USER "
        "(--stack). Prints a table, newest first, or with --json a STAC ItemCollection. Exit code 2 on bad input.",
    )
    where = search.add_mutually_exclusive_group()
    where.add_argument(
        "--bbox",
        metavar="W,S,E,N",
        help="lon/lat box in degrees (W > E crosses 180°); write --bbox=W,S,E,N when W is negative",
    )
    where.add_argument(
        "--point", metavar="LON,LAT", help="items whose bbox contains this point; --point=LON,LAT when LON < 0"
    )
    search.add_argument("--datetime", metavar="A/B", help="RFC 3339 range, e.g. 2024-05-01/2024-06-30 or ../B")
    search.add_argument("--cloud-cover-max", type=float, metavar="N", help="percent; unknown cover never matches")
    search.add_argument("--collection", action="append", metavar="C", help="collection id (repeatable)")
    search.add_argument(
        "--limit", type=int, metavar="N", default=DEFAULT_LIMIT, help=f"1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"
    )
    search.add_argument("--json", action="store_true", help="print a STAC ItemCollection (GeoJSON) for other tools")
    search.add_argument("--stack", action="store_true", help="search through Trino (`satlake stack up`)")
    search.set_defaults(func=cmd_search)
