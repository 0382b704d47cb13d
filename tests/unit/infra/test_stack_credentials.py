"""Generated object-store credentials: created once, private to the owner, other secrets kept."""

from __future__ import annotations

import stat
from pathlib import Path

from satlake.settings import Settings
from satlake.stack.credentials import ensure_credentials, generate_credentials, write_secret_values


def test_first_up_generates_and_stores_credentials_then_reuses_them(tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text("# mine\nOTHER_TOKEN=keep-me\nSATLAKE_S3_ACCESS_KEY=\n")
    settings = Settings.from_env({"SATLAKE_ROOT": str(tmp_path)})
    access_key, secret_key = ensure_credentials(settings, secrets_file)
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    text = secrets_file.read_text()
    assert "OTHER_TOKEN=keep-me" in text and "# mine" in text
    assert text.count("SATLAKE_S3_ACCESS_KEY=") == 1
    assert ensure_credentials(settings, secrets_file) == (access_key, secret_key)
    reread = Settings.from_env({"SATLAKE_ROOT": str(tmp_path)})
    assert (reread.s3_access_key, reread.s3_secret_key) == (access_key, secret_key)


def test_credentials_from_the_environment_win_and_are_not_written(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"SATLAKE_ROOT": str(tmp_path), "SATLAKE_S3_ACCESS_KEY": "given", "SATLAKE_S3_SECRET_KEY": "given-secret"}
    )
    assert ensure_credentials(settings, tmp_path / "secrets.env") == ("given", "given-secret")
    assert not (tmp_path / "secrets.env").exists()


def test_generated_credentials_fit_minio_limits_and_differ_each_time() -> None:
    pairs = {generate_credentials() for _ in range(20)}
    assert len(pairs) == 20
    for access_key, secret_key in pairs:
        assert 3 <= len(access_key) <= 20
        assert 8 <= len(secret_key) <= 40


def test_rewrite_keeps_the_file_private(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    write_secret_values(path, {"A": "1"})
    write_secret_values(path, {"B": "2"})
    assert path.read_text() == "A=1\nB=2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
