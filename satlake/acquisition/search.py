"""Searching a STAC API for the items over an area of interest (pystac-client on the polite session, every page
to the end, refusing looping ``next`` links), signing Planetary Computer asset hrefs, and picking each band
role's asset out of an item.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pystac.link import Link
from pystac_client import Client
from pystac_client.conformance import ConformanceClasses
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from satlake.acquisition.sources import BAND_ROLES, PLANETARY_COMPUTER, StacSource, band_asset_keys
from satlake.resources.http import HttpError, PoliteSession

# A token is renewed when it has less than this left, so a long window read never runs on an expired href.
_TOKEN_MARGIN = timedelta(minutes=5)
# Asset keys of the cloud mask when satlake has no table for the source/collection (a bare URL source).
_CLOUD_KEYS = ("scl", "scl_20m", "qa_pixel")
# Common names accepted for a role, best first: Landsat names its only near-infrared band nir08.
_COMMON_NAMES: dict[str, tuple[str, ...]] = {
    "blue": ("blue",),
    "green": ("green",),
    "red": ("red",),
    "nir": ("nir", "nir08"),
}


class SearchError(RuntimeError):
    """A search or a signing request failed; the message names the URL, the status and what to do."""


class MissingBands(SearchError):
    """An item has no usable asset for some band roles."""

    def __init__(self, item_id: str, missing: Sequence[str], present: Sequence[str]) -> None:
        self.item_id = item_id
        self.missing = tuple(missing)
        super().__init__(
            f"item {item_id!r} has no GeoTIFF asset for band role(s) {', '.join(missing)} "
            f"(assets present: {', '.join(present) or 'none'}); skip the item or choose a collection with these bands"
        )


class PoliteStacIO(StacApiIO):
    """pystac-client's IO on a PoliteSession: same budget, retries and counters; remembers every followed link
    so a ``next`` link that repeats (same href, method and body) stops the search instead of looping."""

    def __init__(self, polite: PoliteSession) -> None:
        super().__init__(timeout=polite.timeout_s, max_retries=None)
        self.session.close()
        self.session = polite.requests_session()
        self.polite = polite
        self.followed: set[tuple[str, str, str]] = set()
        self.last_url: str | None = None

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        if isinstance(source, Link):
            link = source.to_dict()
            key = (str(link["href"]), str(link.get("method", "GET")), json.dumps(link.get("body"), sort_keys=True))
            if key in self.followed:
                raise SearchError(
                    f"the search's next link loops: {key[1]} {key[0]} (body {key[2]}) was already followed; "
                    "the API's paging is broken, narrow the search (time range, area) so it fits fewer pages"
                )
            self.followed.add(key)
        return super().read_text(source, *args, **kwargs)

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        self.last_url = f"{(method or 'GET').upper()} {href}"
        try:
            return super().request(href, method=method, headers=headers, parameters=parameters)
        except APIError as error:
            # StacApiIO wraps every exception in APIError; budget and redirect errors keep their own type.
            if isinstance(error.__context__, HttpError):
                raise error.__context__ from None
            raise


def _cloud_parameters(client: Client, cloud_cover_max: float | None) -> dict[str, Any]:
    if cloud_cover_max is None:
        return {}
    if client.conforms_to(ConformanceClasses.QUERY):
        return {"query": {"eo:cloud_cover": {"lte": cloud_cover_max}}}
    if client.conforms_to(ConformanceClasses.FILTER):
        return {
            "filter": {"op": "<=", "args": [{"property": "eo:cloud_cover"}, cloud_cover_max]},
            "filter_lang": "cql2-json",
        }
    return {}  # the API cannot filter: search_items drops cloudy items itself


def _too_cloudy(item: Mapping[str, Any], cloud_cover_max: float | None) -> bool:
    cover = item.get("properties", {}).get("eo:cloud_cover")
    return cloud_cover_max is not None and cover is not None and float(cover) > cloud_cover_max


def search_items(
    source: StacSource,
    geometry: BaseGeometry,
    collections: Sequence[str],
    datetime: str | None,
    cloud_cover_max: float | None,
    session: PoliteSession,
    limit: int = 100,
) -> Iterator[dict[str, Any]]:
    """Items of ``collections`` intersecting ``geometry`` (lon/lat) in ``datetime`` (a STAC interval such as
    ``"2024-05-01/2024-06-01"`` or ``"2024-05-01/.."``), at most ``cloud_cover_max`` % cloudy, as the API sent
    them, every page to the end. An item repeated by the API's paging is yielded once.

    Raises SearchError (unreachable API, HTTP error after retries, malformed JSON, looping next link) and the
    session's BudgetExceeded / RedirectRefused.
    """
    stac_io = PoliteStacIO(session)
    seen: set[str] = set()
    try:
        with warnings.catch_warnings():
            # Conformance is checked below; pystac-client's warnings about it would only repeat that.
            warnings.simplefilter("ignore")
            client = Client.open(source.url, stac_io=stac_io)
            search = client.search(
                collections=list(collections),
                intersects=mapping(geometry),
                datetime=datetime,
                limit=limit,
                **_cloud_parameters(client, cloud_cover_max),
            )
        for page in search.pages_as_dicts():
            for item in page.get("features", []):
                item_id = str(item.get("id"))
                if item_id in seen or _too_cloudy(item, cloud_cover_max):
                    continue
                seen.add(item_id)
                yield item
    except APIError as error:
        status = getattr(error, "status_code", None)
        raise SearchError(
            f"STAC API {source.name} ({source.url}) failed on {stac_io.last_url}: "
            f"{'HTTP ' + str(status) if status else 'no response'}: {str(error)[:300]}; check the collection ids and "
            "the service's status, then retry"
        ) from error
    except json.JSONDecodeError as error:
        raise SearchError(
            f"STAC API {source.name} ({source.url}) answered {stac_io.last_url} with malformed JSON ({error}); "
            "the service is failing, retry later"
        ) from error
    except NotImplementedError as error:  # pystac-client's DoesNotConformTo: no item search at this root
        raise SearchError(
            f"{source.url} does not offer STAC item search ({error}); give the API root, not a catalog or item URL"
        ) from error


# -- signing -----------------------------------------------------------------------------------------------------

HrefSigner = Callable[[str, str], str]  # (href, collection) -> the href to GET


def _unsigned(href: str, collection: str) -> str:
    return href


class PlanetaryComputerSigner:
    """Signs asset hrefs with a SAS token from ``<sas_url>/token/<collection>``, one token per collection,
    cached until shortly before its ``msft:expiry``."""

    def __init__(
        self, sas_url: str, session: PoliteSession, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.sas_url = sas_url.rstrip("/")
        self.session = session
        self._now = now
        self._tokens: dict[str, tuple[str, datetime]] = {}

    def token(self, collection: str) -> str:
        cached = self._tokens.get(collection)
        if cached is not None and cached[1] - self._now() > _TOKEN_MARGIN:
            return cached[0]
        url = f"{self.sas_url}/token/{collection}"
        response = self.session.get(url)
        if response.status_code != 200:
            raise SearchError(
                f"SAS token endpoint {url} answered HTTP {response.status_code}: {response.text[:200]!r}; "
                "check SATLAKE_PC_SAS_URL and the collection id"
            )
        try:
            document = response.json()
            token = str(document["token"])
            expiry = datetime.fromisoformat(str(document["msft:expiry"]).replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError) as error:
            raise SearchError(
                f"SAS token endpoint {url} answered without a usable token and msft:expiry ({error}); "
                "check SATLAKE_PC_SAS_URL points at the token API"
            ) from error
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)
        self._tokens[collection] = (token, expiry)
        return token

    def __call__(self, href: str, collection: str) -> str:
        if {"sig", "se"} & set(parse_qs(urlsplit(href).query)):
            return href  # signed already
        return f"{href}{'&' if urlsplit(href).query else '?'}{self.token(collection)}"


def href_signer(source: StacSource, sas_url: str, session: PoliteSession) -> HrefSigner:
    """The function turning an asset href of ``source`` into one that can be read: Planetary Computer hrefs
    get a SAS token, every other source's hrefs are returned as they are."""
    if source.signing == PLANETARY_COMPUTER:
        return PlanetaryComputerSigner(sas_url, session)
    return _unsigned


# -- band selection ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BandAsset:
    """The asset chosen for one band role of an item."""

    role: str
    key: str  # asset key in the item
    href: str  # as the item lists it (unsigned)
    asset: dict[str, Any]  # the asset object as received

    @property
    def description(self) -> str:
        """The band description written into the band file: the role, or scl / qa_pixel for the cloud mask."""
        if self.role != "cloud":
            return self.role
        return "qa_pixel" if "qa" in self.key.lower() else "scl"


def _common_names(asset: Mapping[str, Any]) -> list[str]:
    bands = asset.get("eo:bands") or asset.get("bands") or []
    names = []
    for band in bands if isinstance(bands, list) else []:
        if isinstance(band, Mapping):
            name = band.get("common_name") or band.get("eo:common_name")
            if name:
                names.append(str(name))
    return names


def _is_geotiff(asset: Mapping[str, Any]) -> bool:
    media_type = str(asset.get("type") or "").lower()
    if media_type:
        return "tiff" in media_type
    return urlsplit(str(asset.get("href", ""))).path.lower().endswith((".tif", ".tiff"))


def select_band_assets(
    item: Mapping[str, Any], source: StacSource, roles: Sequence[str] = BAND_ROLES
) -> dict[str, BandAsset]:
    """Role -> asset of ``item`` for each of ``roles``: single-band GeoTIFF assets whose eo common name is the
    role first, the source's asset-key table second (and the usual cloud-mask keys for sources without one).

    Raises MissingBands listing every role without an asset.
    """
    assets: Mapping[str, Mapping[str, Any]] = item.get("assets", {})
    collection = str(item.get("collection") or "")
    table = band_asset_keys(source.name, collection) or {}
    tiffs = {key: asset for key, asset in assets.items() if _is_geotiff(asset) and asset.get("href")}
    chosen: dict[str, BandAsset] = {}
    missing: list[str] = []
    for role in roles:
        key = None
        for name in _COMMON_NAMES.get(role, ()):
            # Single-band assets only: "visual" also names red, green and blue.
            candidates = [k for k, a in tiffs.items() if _common_names(a) == [name]]
            if candidates:
                key = table.get(role) if table.get(role) in candidates else sorted(candidates)[0]
                break
        if key is None and table.get(role) in tiffs:
            key = table[role]
        if key is None and role == "cloud":
            key = next((k for k in tiffs if k.lower() in _CLOUD_KEYS), None)
        if key is None:
            missing.append(role)
            continue
        chosen[role] = BandAsset(role=role, key=key, href=str(tiffs[key]["href"]), asset=dict(tiffs[key]))
    if missing:
        raise MissingBands(str(item.get("id")), missing, sorted(assets))
    return chosen
