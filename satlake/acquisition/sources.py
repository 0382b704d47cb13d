"""The STAC APIs satlake acquires from: named sources (from the settings) or a bare URL, the collections each
named source offers, and the asset keys of each band role when an item's assets do not say their band."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from satlake.settings import DEFAULT_STAC_SOURCES, Settings

EARTH_SEARCH = "earth-search"
PLANETARY_COMPUTER = "planetary-computer"
CDSE = "cdse"
# The local replay server of the demo and the tests (satlake.acquisition.stac_replay), named through
# SATLAKE_STAC_SOURCES (replay=http://127.0.0.1:<port>) since its port is chosen when it starts.
REPLAY = "replay"
URL_SOURCE = "url"

# What an acquisition reads of a scene: four reflectance bands and the cloud mask ("cloud" is the SCL band of
# Sentinel-2 or the qa_pixel band of Landsat).
BAND_ROLES = ("blue", "green", "red", "nir", "cloud")

# The collections each named source serves that satlake can use; a URL source, or a name added through
# SATLAKE_STAC_SOURCES, accepts any collection (the API itself answers for unknown ones).
KNOWN_COLLECTIONS: dict[str, frozenset[str]] = {
    EARTH_SEARCH: frozenset({"sentinel-2-l2a", "sentinel-2-c1-l2a", "landsat-c2-l2"}),
    PLANETARY_COMPUTER: frozenset({"sentinel-2-l2a", "landsat-c2-l2"}),
    CDSE: frozenset({"sentinel-2-l2a"}),
    REPLAY: frozenset({"satlake-sim"}),
}

_LANDSAT_KEYS = {"blue": "blue", "green": "green", "red": "red", "nir": "nir08", "cloud": "qa_pixel"}
_EARTH_SEARCH_S2_KEYS = {"blue": "blue", "green": "green", "red": "red", "nir": "nir", "cloud": "scl"}
# Asset keys by (source, collection), used only when an item's assets carry no eo common names.
_BAND_ASSET_KEYS: dict[tuple[str, str], dict[str, str]] = {
    (EARTH_SEARCH, "sentinel-2-l2a"): _EARTH_SEARCH_S2_KEYS,
    (EARTH_SEARCH, "sentinel-2-c1-l2a"): _EARTH_SEARCH_S2_KEYS,
    (EARTH_SEARCH, "landsat-c2-l2"): _LANDSAT_KEYS,
    (PLANETARY_COMPUTER, "sentinel-2-l2a"): {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "cloud": "SCL"},
    (PLANETARY_COMPUTER, "landsat-c2-l2"): _LANDSAT_KEYS,
    (CDSE, "sentinel-2-l2a"): {
        "blue": "B02_10m",
        "green": "B03_10m",
        "red": "B04_10m",
        "nir": "B08_10m",
        "cloud": "SCL_20m",
    },
    # The replay server's items copy Earth Search's asset keys (its default flavour).
    (REPLAY, "satlake-sim"): _EARTH_SEARCH_S2_KEYS,
}

_COLLECTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class SourceError(ValueError):
    """A source or collection satlake cannot acquire from; the message names it and what to use instead."""


@dataclass(frozen=True)
class StacSource:
    """A STAC API to search: its name (the host for a bare URL), API root and how its asset hrefs are signed."""

    name: str
    url: str  # API root, no trailing slash
    signing: str | None  # "planetary-computer" for that source, else None


def _signing_for(name: str) -> str | None:
    # Planetary Computer's blob hrefs need a SAS token; every other known source serves public hrefs.
    return PLANETARY_COMPUTER if name == PLANETARY_COMPUTER else None


def url_source_name(host: str, port: int | None) -> str:
    """The name a bare URL source goes by (its host, and port when one is given): it heads the landing keys."""
    name = re.sub(r"[^a-z0-9.-]+", "-", host.lower()).strip("-.") or URL_SOURCE
    return f"{name}-{port}" if port else name


def resolve_source(settings: Settings, name_or_url: str) -> StacSource:
    """The source named ``name_or_url`` in ``settings.stac_sources``, or a bare http(s) URL as a source.

    A URL equal to a named source's root resolves to that source, so it keeps the source's signing and band
    tables. Raises ``SourceError`` for an unknown name or a URL that is not http(s).
    """
    text = name_or_url.strip()
    if text in settings.stac_sources:
        return StacSource(text, settings.stac_sources[text].rstrip("/"), _signing_for(text))
    parts = urlsplit(text)
    if parts.scheme in ("http", "https") and parts.netloc:
        url = text.rstrip("/")
        for name, root in settings.stac_sources.items():
            if root.rstrip("/") == url:
                return StacSource(name, url, _signing_for(name))
        return StacSource(url_source_name(parts.hostname or URL_SOURCE, parts.port), url, None)
    known = ", ".join(sorted(settings.stac_sources))
    if "://" in text:
        raise SourceError(
            f"source {name_or_url!r} is not an http(s) URL: give a STAC API root such as "
            f"{DEFAULT_STAC_SOURCES[EARTH_SEARCH]}, or one of the named sources ({known})"
        )
    raise SourceError(
        f"unknown source {name_or_url!r}: use one of {known}, a STAC API root URL (http:// or https://), or name "
        "another in SATLAKE_STAC_SOURCES=name=url"
    )


def known_collections(source: StacSource) -> frozenset[str] | None:
    """The collections a named source is known to serve; None when any id is accepted (URLs, added names)."""
    return KNOWN_COLLECTIONS.get(source.name)


def check_collections(source: StacSource, collections: tuple[str, ...]) -> tuple[str, ...]:
    """``collections`` when each is a well-formed id that ``source`` serves, else ``SourceError`` naming it."""
    if not collections:
        raise SourceError("no collection given: name at least one, e.g. --collections sentinel-2-l2a")
    for collection in collections:
        if not _COLLECTION_ID.match(collection):
            raise SourceError(f"collection {collection!r} is not a STAC collection id (letters, digits, '.', '_', '-')")
    known = known_collections(source)
    if known is not None:
        unknown = [c for c in collections if c not in known]
        if unknown:
            raise SourceError(
                f"source {source.name!r} ({source.url}) has no collection {unknown[0]!r}: use one of "
                f"{', '.join(sorted(known))}, or give the API's URL as --source to use any collection it serves"
            )
    return collections


def band_asset_keys(source_name: str, collection: str) -> dict[str, str] | None:
    """Role -> asset key of ``collection`` at a named source (a fresh dict), or None when satlake has no table
    for it; used when an item's assets do not carry ``eo:bands[].common_name`` / ``bands[].eo:common_name``."""
    keys = _BAND_ASSET_KEYS.get((source_name, collection))
    return dict(keys) if keys is not None else None
