"""The visibility benchmark's smoke size on the real stack: every published event becomes visible in Trino and
gets a latency. No timing is asserted; the figures come from ``python -m bench.visibility --size full``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import visibility
from satlake.settings import Settings, endpoint_environment


def test_every_published_event_becomes_visible_in_trino(
    stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "SATLAKE_MODE": "stack",
        "SATLAKE_ROOT": str(stack.root),
        **endpoint_environment(stack),
    }.items():
        monkeypatch.setenv(name, value)
    out = visibility.main(
        ["--size", "small", "--rate", "2000", "--workdir", str(tmp_path), "--out", str(tmp_path / "r.json")]
    )
    document = json.loads(out.read_text())
    (row,) = document["rows"]
    assert row["events"] == 2000 * visibility.DURATION_S["small"]
    assert row["not_visible_at_the_end"] == 0
    assert 0 < row["p50_s"] <= row["p99_s"] <= row["max_s"]
    assert row["trino_polls"] >= 2
    assert document["comparisons"][0]["metric"] == "visibility p99 s"
