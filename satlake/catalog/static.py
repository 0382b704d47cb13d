"""The static STAC catalog on disk: ``stac/catalog.json``, one folder per collection, one per item.

It is a self-contained catalog: every link is relative (root, parent, child, item), so the folder can be
copied or served from anywhere and STAC tools crawl it from ``catalog.json``. Output is deterministic (sorted
keys and ids), so writing the same catalog twice produces identical bytes.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from satlake.catalog.items import MEDIA_TYPE_GEOJSON, MEDIA_TYPE_JSON, build_collection
from satlake.catalog.table import CATALOG_ITEMS
from satlake.catalog.validation import STAC_VERSION
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.object_store import ObjectStore

CATALOG_ID = "satlake"
CATALOG_DESCRIPTION = "Scenes, derived products and Mars rover photos catalogued by satlake."

# Ids become folder and file names; anything else (slashes, "..", control characters) could escape the folder.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_STRUCTURAL_RELS = frozenset({"self", "root", "parent", "child", "item", "collection"})


def _checked_id(kind: str, value: Any) -> str:
    if not isinstance(value, str) or not _SAFE_ID.match(value) or ".." in value:
        raise ValueError(
            f"{kind} id {value!r} cannot be used as a folder name in the static catalog; use letters, "
            "digits, '.', '_' and '-' only (starting with a letter or digit, no '..')"
        )
    return value


def _dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    # Write then rename, so a crawler reading concurrently never sees half a file.
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def _local_path(href: str) -> Path | None:
    """The absolute local path an href names, or None when it is a remote URI or already relative."""
    parsed = urlparse(href)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:  # s3://, https://; a one-letter scheme is a Windows drive
        return None
    path = Path(href)
    return path if path.is_absolute() else None


def relative_asset_href(href: str, item_dir: Path, root_dir: Path) -> str:
    """Asset href as written in the item file: relative when under ``root_dir``, an absolute URI otherwise."""
    local = _local_path(href)
    if local is None:
        return href
    resolved_root = root_dir.resolve()
    resolved = local.resolve()
    if resolved == resolved_root or resolved_root in resolved.parents:
        return Path(os.path.relpath(resolved, item_dir.resolve())).as_posix()
    return resolved.as_uri()


def _extra_links(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(link) for link in obj.get("links", []) if link.get("rel") not in _STRUCTURAL_RELS]


def write_static_catalog(
    root_dir: Path,
    collections: Mapping[str, Mapping[str, Any]],
    items: list[Mapping[str, Any]],
    *,
    catalog_id: str = CATALOG_ID,
    description: str = CATALOG_DESCRIPTION,
) -> Path:
    """Write ``root_dir/stac/...`` and return the path of ``catalog.json``.

    ``collections`` maps collection id to collection dict (items.build_collection); every item must name
    one of them in its ``collection`` field. Asset hrefs under ``root_dir`` become relative to the item file.
    """
    stac_dir = Path(root_dir) / "stac"
    items_by_collection: dict[str, list[Mapping[str, Any]]] = {cid: [] for cid in collections}
    for item in items:
        collection_id = item.get("collection")
        if collection_id not in items_by_collection:
            raise ValueError(
                f"item {item.get('id')!r} names collection {collection_id!r}, which is not among the "
                f"collections given ({sorted(collections)}); pass its collection too"
            )
        items_by_collection[collection_id].append(item)

    catalog_links: list[dict[str, Any]] = [{"rel": "root", "href": "./catalog.json", "type": MEDIA_TYPE_JSON}]
    for collection_id in sorted(collections):
        _checked_id("collection", collection_id)
        collection = copy.deepcopy(dict(collections[collection_id]))
        if collection.get("id") != collection_id:
            raise ValueError(f"collections[{collection_id!r}] has id {collection.get('id')!r}; the two must match")
        collection_dir = stac_dir / collection_id
        collection_links: list[dict[str, Any]] = [
            {"rel": "root", "href": "../catalog.json", "type": MEDIA_TYPE_JSON},
            {"rel": "parent", "href": "../catalog.json", "type": MEDIA_TYPE_JSON},
        ]
        seen_ids: set[str] = set()
        for item in sorted(items_by_collection[collection_id], key=lambda i: str(i.get("id"))):
            item_id = _checked_id("item", item.get("id"))
            if item_id in seen_ids:
                raise ValueError(f"item id {item_id!r} appears twice in collection {collection_id!r}")
            seen_ids.add(item_id)
            _write_item(item, collection_dir / item_id, root_dir)
            collection_links.append({"rel": "item", "href": f"./{item_id}/{item_id}.json", "type": MEDIA_TYPE_GEOJSON})
        collection["links"] = collection_links + _extra_links(collection)
        _write_if_changed(collection_dir / "collection.json", _dumps(collection))
        catalog_links.append(
            {
                "rel": "child",
                "href": f"./{collection_id}/collection.json",
                "type": MEDIA_TYPE_JSON,
                "title": collection.get("title", collection_id),
            }
        )

    catalog = {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": catalog_id,
        "description": description,
        "links": catalog_links,
    }
    catalog_path = stac_dir / "catalog.json"
    _write_if_changed(catalog_path, _dumps(catalog))
    return catalog_path


def _write_item(item: Mapping[str, Any], item_dir: Path, root_dir: Path) -> None:
    written = copy.deepcopy(dict(item))
    written["links"] = [
        {"rel": "root", "href": "../../catalog.json", "type": MEDIA_TYPE_JSON},
        {"rel": "parent", "href": "../collection.json", "type": MEDIA_TYPE_JSON},
        {"rel": "collection", "href": "../collection.json", "type": MEDIA_TYPE_JSON},
        *_extra_links(item),
    ]
    for asset in written.get("assets", {}).values():
        asset["href"] = relative_asset_href(asset["href"], item_dir, Path(root_dir))
    _write_if_changed(item_dir / f"{written['id']}.json", _dumps(written))


def children_before_parents(paths: Iterable[Path]) -> list[Path]:
    """Static-catalog files in upload order: deepest first (items, then collections, then catalog.json), so a
    write that fails part-way leaves every link pointing at a file already there, never at a missing one."""
    return sorted(paths, key=lambda path: (-len(path.parts), path.as_posix()))


def published_description(store: ObjectStore, collection_id: str) -> str | None:
    """The description of ``collection_id`` in the static catalog as last written, if it is there."""
    key = f"stac/{collection_id}/collection.json"
    local = store.local_path(key)
    try:
        if local is not None:
            return json.loads(local.read_text(encoding="utf-8")).get("description")
        if not store.exists(key):
            return None
        with tempfile.TemporaryDirectory(prefix="satlake-stac-") as scratch:
            return json.loads(store.get_to_path(key, Path(scratch) / "collection.json").read_text()).get("description")
    except (OSError, ValueError, AttributeError):
        return None


def rewrite_static_catalog(
    lakehouse: Lakehouse, store: ObjectStore, descriptions: Mapping[str, str] | None = None
) -> tuple[int, dict[str, dict]]:
    """Rewrite ``stac/`` from every row of the catalog table (every domain's items), with collections' extents
    recomputed. A collection is described by ``descriptions`` (the caller's domain knows its own), else by the
    description it was last published with (another domain wrote it), else generically."""
    table = lakehouse.read(CATALOG_ITEMS, columns=["collection", "item_json"])
    items = [json.loads(text) for text in (table.column("item_json").to_pylist() if table is not None else [])]
    by_collection: dict[str, list[dict]] = {}
    for item in items:
        by_collection.setdefault(item["collection"], []).append(item)
    known = descriptions or {}
    collections = {
        cid: build_collection(
            cid, members, known.get(cid) or published_description(store, cid) or f"Items of collection {cid}."
        )
        for cid, members in by_collection.items()
    }
    root = store.local_path("stac/catalog.json")
    if root is not None:
        write_static_catalog(root.parent.parent, collections, items)
    else:
        with tempfile.TemporaryDirectory(prefix="satlake-stac-") as scratch_dir:
            scratch = Path(scratch_dir)
            write_static_catalog(scratch, collections, items)
            for path in children_before_parents((scratch / "stac").rglob("*.json")):
                store.put_file(path, path.relative_to(scratch).as_posix())
    return len(items), collections
