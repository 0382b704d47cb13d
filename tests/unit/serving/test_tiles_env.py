"""GDAL options for the assets' store: nothing for local files, MinIO's endpoint and keys for ``s3://`` hrefs."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import rasterio

from satlake.serving.tiles import gdal_environment
from satlake.settings import Mode, Settings, SettingsError


def test_embedded_mode_reads_local_files_without_object_store_options(tmp_path: Path) -> None:
    options = gdal_environment(Settings(mode=Mode.EMBEDDED, root=tmp_path))
    assert "session" not in options
    assert not any(key.startswith("AWS_") for key in options)


def test_stack_mode_reaches_minio_path_style_over_plain_http(tmp_path: Path) -> None:
    secret = secrets.token_urlsafe(16)  # made here: no tracked file holds a credential-shaped literal
    settings = Settings(
        mode=Mode.STACK,
        root=tmp_path,
        s3_endpoint="http://127.0.0.1:9100",
        s3_region="eu-central-1",
        s3_access_key="reader",
        s3_secret_key=secret,
    )
    options = gdal_environment(settings)
    assert options["AWS_HTTPS"] == "NO"
    assert options["AWS_VIRTUAL_HOSTING"] == "FALSE"
    credentials = options["session"].get_credential_options()
    assert credentials["AWS_S3_ENDPOINT"] == "127.0.0.1:9100"
    assert credentials["AWS_REGION"] == "eu-central-1"
    assert (credentials["AWS_ACCESS_KEY_ID"], credentials["AWS_SECRET_ACCESS_KEY"]) == ("reader", secret)
    with rasterio.Env(**options) as env:  # rasterio takes the options as they are (no key outside a session)
        assert env.options["AWS_VIRTUAL_HOSTING"] == "FALSE"


def test_stack_mode_over_https_keeps_tls(tmp_path: Path) -> None:
    settings = Settings(
        mode=Mode.STACK, root=tmp_path, s3_endpoint="https://minio.internal", s3_access_key="a", s3_secret_key="b"
    )
    assert gdal_environment(settings)["AWS_HTTPS"] == "YES"


def test_stack_mode_without_credentials_says_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="SATLAKE_S3_ACCESS_KEY"):
        gdal_environment(Settings(mode=Mode.STACK, root=tmp_path))
