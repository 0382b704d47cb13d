"""The object store's three identities: generated once, private to the owner, distinct, and upgraded cleanly
from a stack whose only pair was MinIO's root user."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from satlake.settings import Settings, SettingsError
from satlake.stack.credentials import (
    CREDENTIAL_VARS,
    KeyPair,
    ensure_credentials,
    generate_credentials,
    require_stack_credentials,
    without_credentials,
    write_secret_values,
)

GIVEN = {
    "SATLAKE_MINIO_ROOT_USER": "given-root",
    "SATLAKE_MINIO_ROOT_PASSWORD": "given-root-secret",
    "SATLAKE_S3_ACCESS_KEY": "given-pipeline",
    "SATLAKE_S3_SECRET_KEY": "given-pipeline-secret",
    "SATLAKE_TRINO_S3_ACCESS_KEY": "given-trino",
    "SATLAKE_TRINO_S3_SECRET_KEY": "given-trino-secret",
}


def settings_for(root: Path, **environment: str) -> Settings:
    return Settings.from_env({"SATLAKE_ROOT": str(root), **environment})


def test_first_up_generates_three_distinct_identities_stores_them_and_reuses_them(tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text("# mine\nOTHER_TOKEN=keep-me\nSATLAKE_S3_ACCESS_KEY=\n")
    credentials = ensure_credentials(settings_for(tmp_path), secrets_file)
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    text = secrets_file.read_text()
    assert "OTHER_TOKEN=keep-me" in text and "# mine" in text
    assert all(text.count(f"{name}=") == 1 for name in CREDENTIAL_VARS), text
    pairs = (credentials.root, credentials.pipeline, credentials.trino)
    assert len({pair.access_key for pair in pairs}) == 3 and len({pair.secret_key for pair in pairs}) == 3
    assert ensure_credentials(settings_for(tmp_path), secrets_file) == credentials
    reread = settings_for(tmp_path)
    assert KeyPair(reread.s3_access_key or "", reread.s3_secret_key or "") == credentials.pipeline
    assert require_stack_credentials(reread) == credentials


def test_credentials_from_the_environment_win_and_are_not_written(tmp_path: Path) -> None:
    credentials = ensure_credentials(settings_for(tmp_path, **GIVEN), tmp_path / "secrets.env")
    assert credentials.root == KeyPair("given-root", "given-root-secret")
    assert credentials.pipeline == KeyPair("given-pipeline", "given-pipeline-secret")
    assert credentials.trino == KeyPair("given-trino", "given-trino-secret")
    assert not (tmp_path / "secrets.env").exists()


def test_a_stack_whose_only_pair_was_root_keeps_it_as_the_pipeline_key(tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text("SATLAKE_S3_ACCESS_KEY=old-root\nSATLAKE_S3_SECRET_KEY=old-root-secret\n")
    credentials = ensure_credentials(settings_for(tmp_path), secrets_file)
    # Every process and exported variable using the old pair keeps working; it only loses its root rights.
    assert credentials.pipeline == KeyPair("old-root", "old-root-secret")
    assert credentials.root.access_key not in ("old-root", credentials.trino.access_key)
    old_lines = "SATLAKE_S3_ACCESS_KEY=old-root\nSATLAKE_S3_SECRET_KEY=old-root-secret\n"
    assert secrets_file.read_text().startswith(old_lines)


def test_the_root_user_may_not_share_an_access_key_with_the_pipeline(tmp_path: Path) -> None:
    environment = {**GIVEN, "SATLAKE_MINIO_ROOT_USER": "given-pipeline"}
    with pytest.raises(SettingsError) as refused:
        ensure_credentials(settings_for(tmp_path, **environment), tmp_path / "secrets.env")
    assert "SATLAKE_MINIO_ROOT_USER" in str(refused.value) and "SATLAKE_S3_ACCESS_KEY" in str(refused.value)
    assert "given-root-secret" not in str(refused.value)


def test_provisioning_without_the_root_user_names_what_is_missing_and_where(tmp_path: Path) -> None:
    environment = {key: value for key, value in GIVEN.items() if "ROOT" not in key}
    with pytest.raises(SettingsError) as refused:
        require_stack_credentials(settings_for(tmp_path, **environment))
    message = str(refused.value)
    assert "SATLAKE_MINIO_ROOT_USER, SATLAKE_MINIO_ROOT_PASSWORD" in message
    assert str(tmp_path / "secrets.env") in message and "SATLAKE_S3_ACCESS_KEY" not in message


def test_neither_a_key_pair_nor_settings_show_a_secret_and_servers_inherit_no_credential(tmp_path: Path) -> None:
    pair = KeyPair("visible-key", "hidden-secret")
    assert "hidden-secret" not in repr(pair) and "visible-key" in repr(pair)
    shown = repr(settings_for(tmp_path, **GIVEN))
    secrets = ("given-root-secret", "given-pipeline-secret", "given-trino-secret")
    assert "given-pipeline" in shown and not [secret for secret in secrets if secret in shown]
    others = {"PATH": "/bin", "SATLAKE_ROOT": "/r"}
    assert without_credentials({**GIVEN, **others}) == others


def test_generated_credentials_fit_minio_limits_and_differ_each_time() -> None:
    pairs = {generate_credentials(prefix) for prefix in ("satlake", "minioadm", "trino") for _ in range(10)}
    assert len(pairs) == 30
    for access_key, secret_key in pairs:
        assert 3 <= len(access_key) <= 20
        assert 8 <= len(secret_key) <= 40


def test_rewrite_keeps_the_file_private(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    write_secret_values(path, {"A": "1"})
    write_secret_values(path, {"B": "2"})
    assert path.read_text() == "A=1\nB=2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
