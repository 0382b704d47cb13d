"""The whole service of `satlake serve` (build_service): which parts it mounts in each mode."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from satlake.serving.server import FEATURES_PATH, build_service
from satlake.settings import Settings


def stack_settings(root: Path, **extra: str) -> Settings:
    return Settings.from_env({"SATLAKE_ROOT": str(root), "SATLAKE_MODE": "stack", "SATLAKE_S3_ACCESS_KEY": "a",
                              "SATLAKE_S3_SECRET_KEY": "b", **extra})  # fmt: skip


def test_a_stack_without_the_serving_databases_password_serves_everything_else(tmp_path: Path) -> None:
    app = build_service(stack_settings(tmp_path), "127.0.0.1")
    assert "not served at /features" in app.state.features_note
    assert "SATLAKE_POSTGRES_PASSWORD" in app.state.features_note
    assert not any(getattr(route, "path", None) == FEATURES_PATH for route in app.routes)
    assert TestClient(app).get("/").status_code == 200


def test_with_the_password_the_features_are_mounted(tmp_path: Path) -> None:
    app = build_service(stack_settings(tmp_path, SATLAKE_POSTGRES_PASSWORD="secret"), "127.0.0.1")
    assert app.state.features_note.endswith(f"at {FEATURES_PATH}")
    assert any(getattr(route, "path", None) == FEATURES_PATH for route in app.routes)


def test_embedded_mode_has_no_features(tmp_path: Path) -> None:
    app = build_service(Settings.from_env({"SATLAKE_ROOT": str(tmp_path)}), "127.0.0.1")
    assert "stack mode only" in app.state.features_note
    assert not any(getattr(route, "path", None) == FEATURES_PATH for route in app.routes)
