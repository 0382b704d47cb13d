"""Sources: named STAC APIs from the settings (and SATLAKE_STAC_SOURCES), bare URLs, the collections each
named source serves, and the band asset keys used when an item does not name its bands."""

from __future__ import annotations

from pathlib import Path

import pytest

from satlake.acquisition.sources import (
    BAND_ROLES,
    SourceError,
    StacSource,
    band_asset_keys,
    check_collections,
    resolve_source,
)
from satlake.settings import Settings, SettingsError


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"SATLAKE_ROOT": str(tmp_path), **env})


def test_named_sources_resolve_to_their_api_roots(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert resolve_source(s, "earth-search") == StacSource(
        "earth-search", "https://earth-search.aws.element84.com/v1", None
    )
    assert resolve_source(s, "planetary-computer") == StacSource(
        "planetary-computer", "https://planetarycomputer.microsoft.com/api/stac/v1", "planetary-computer"
    )
    assert resolve_source(s, "cdse") == StacSource("cdse", "https://stac.dataspace.copernicus.eu/v1", None)


def test_env_adds_and_overrides_sources_and_a_url_of_a_named_source_keeps_its_signing(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        SATLAKE_STAC_SOURCES="replay=http://127.0.0.1:8500/, planetary-computer=http://127.0.0.1:8600/api/stac/v1",
    )
    assert resolve_source(s, "replay") == StacSource("replay", "http://127.0.0.1:8500", None)
    assert resolve_source(s, "earth-search").url == "https://earth-search.aws.element84.com/v1"
    # The replay server stands in for Planetary Computer: tests see the same signing as the live service.
    by_url = resolve_source(s, "http://127.0.0.1:8600/api/stac/v1/")
    assert by_url == StacSource("planetary-computer", "http://127.0.0.1:8600/api/stac/v1", "planetary-computer")


def test_a_bare_url_is_its_own_source(tmp_path: Path) -> None:
    assert resolve_source(settings(tmp_path), "https://stac.example.org/api/") == StacSource(
        "stac.example.org", "https://stac.example.org/api", None
    )
    # Named by host (and port): the name heads the landing keys of what it serves.
    assert resolve_source(settings(tmp_path), "http://127.0.0.1:8123").name == "127.0.0.1-8123"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("sentinel-hub", "unknown source 'sentinel-hub': use one of cdse, earth-search, planetary-computer"),
        ("ftp://example.org/stac", "source 'ftp://example.org/stac' is not an http(s) URL"),
        ("http://", "source 'http://' is not an http(s) URL"),
    ],
)
def test_unknown_sources_are_refused_with_the_choices(tmp_path: Path, given: str, message: str) -> None:
    with pytest.raises(SourceError) as error:
        resolve_source(settings(tmp_path), given)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("replay", "'replay' is not NAME=URL"),
        ("Replay=http://a", "'Replay=http://a' is not NAME=URL"),
        ("replay=file:///tmp/x", "replay='file:///tmp/x' is not an http(s) URL"),
    ],
)
def test_malformed_stac_sources_setting_is_refused(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        settings(tmp_path, SATLAKE_STAC_SOURCES=value)
    assert message in str(error.value)
    assert "SATLAKE_STAC_SOURCES" in str(error.value)


def test_acquisition_settings_defaults_and_overrides(tmp_path: Path) -> None:
    default = settings(tmp_path)
    assert default.aoi_max_area_km2 == 25_000
    assert default.acquisition_topic == "satlake.acquisition-requests"
    assert default.planetary_computer_sas_url == "https://planetarycomputer.microsoft.com/api/sas/v1"
    assert (default.acquisition_timeout_s, default.acquisition_max_retries) == (30, 5)
    assert (default.acquisition_request_budget, default.acquisition_byte_budget) == (2000, 2_000_000_000)
    hash(default)  # a dict-valued setting must not make Settings unhashable
    custom = settings(
        tmp_path,
        SATLAKE_AOI_MAX_AREA_KM2="100.5",
        SATLAKE_PC_SAS_URL="http://127.0.0.1:9/api/sas/v1/",
        SATLAKE_ACQUISITION_TOPIC="t",
        SATLAKE_ACQUISITION_TIMEOUT_S="2.5",
        SATLAKE_ACQUISITION_MAX_RETRIES="1",
        SATLAKE_ACQUISITION_REQUEST_BUDGET="7",
        SATLAKE_ACQUISITION_BYTE_BUDGET="1000",
    )
    assert custom.aoi_max_area_km2 == 100.5
    assert custom.planetary_computer_sas_url == "http://127.0.0.1:9/api/sas/v1"
    assert (custom.acquisition_topic, custom.acquisition_timeout_s, custom.acquisition_max_retries) == ("t", 2.5, 1)
    assert (custom.acquisition_request_budget, custom.acquisition_byte_budget) == (7, 1000)
    with pytest.raises(SettingsError, match="SATLAKE_AOI_MAX_AREA_KM2='-1' must be a finite number above 0"):
        settings(tmp_path, SATLAKE_AOI_MAX_AREA_KM2="-1")


def test_named_sources_accept_only_their_collections_and_urls_accept_any(tmp_path: Path) -> None:
    s = settings(tmp_path, SATLAKE_STAC_SOURCES="mine=http://127.0.0.1:1")
    earth = resolve_source(s, "earth-search")
    assert check_collections(earth, ("sentinel-2-l2a", "landsat-c2-l2")) == ("sentinel-2-l2a", "landsat-c2-l2")
    with pytest.raises(SourceError) as error:
        check_collections(resolve_source(s, "cdse"), ("landsat-c2-l2",))
    assert str(error.value).startswith("source 'cdse' (https://stac.dataspace.copernicus.eu/v1) has no collection "
                                       "'landsat-c2-l2': use one of sentinel-2-l2a")  # fmt: skip
    assert check_collections(resolve_source(s, "https://stac.example.org"), ("naip",)) == ("naip",)
    assert check_collections(resolve_source(s, "mine"), ("anything",)) == ("anything",)
    with pytest.raises(SourceError, match="'bad id' is not a STAC collection id"):
        check_collections(resolve_source(s, "mine"), ("bad id",))


def test_band_asset_keys_follow_each_service(tmp_path: Path) -> None:
    assert band_asset_keys("earth-search", "sentinel-2-l2a") == {
        "blue": "blue", "green": "green", "red": "red", "nir": "nir", "cloud": "scl"}  # fmt: skip
    assert band_asset_keys("earth-search", "landsat-c2-l2") == {
        "blue": "blue", "green": "green", "red": "red", "nir": "nir08", "cloud": "qa_pixel"}  # fmt: skip
    assert band_asset_keys("planetary-computer", "sentinel-2-l2a") == {
        "blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "cloud": "SCL"}  # fmt: skip
    assert band_asset_keys("planetary-computer", "landsat-c2-l2")["nir"] == "nir08"
    assert band_asset_keys("cdse", "sentinel-2-l2a") == {
        "blue": "B02_10m", "green": "B03_10m", "red": "B04_10m", "nir": "B08_10m", "cloud": "SCL_20m"}  # fmt: skip
    assert band_asset_keys("cdse", "landsat-c2-l2") is None
    assert band_asset_keys("url", "sentinel-2-l2a") is None
    # Every table covers every role, and callers get their own copy.
    keys = band_asset_keys("earth-search", "sentinel-2-l2a")
    assert keys is not None and tuple(keys) == BAND_ROLES
    keys["blue"] = "changed"
    assert band_asset_keys("earth-search", "sentinel-2-l2a")["blue"] == "blue"
