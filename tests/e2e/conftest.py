"""Fixtures shared by the end-to-end tests: one `satlake demo` lakehouse for the tests that only read it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_ui_after_demo import environment

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def demo_lakehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root where `satlake demo` ran (telemetry, the demo's scenes catalogued, COGs and all), made once per
    session for tests that read it and change nothing: the STAC API's validation and the map page."""
    root = tmp_path_factory.mktemp("demo-lakehouse")
    demo = subprocess.run([sys.executable, "-m", "satlake", "demo"], env=environment(root), cwd=REPO,
                          capture_output=True, text=True, timeout=1200, check=False)  # fmt: skip
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    return root
