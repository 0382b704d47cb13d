"""Smoke runs of the access-layer benchmarks at their small size: ``satlake serve`` and its peers start as real
servers, answer the same requests, and the result JSON holds what docs/benchmarks.md reads. No timing is
asserted; the figures come from ``python -m bench.serving_search --size full`` and ``bench.serving_tiles``."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import catalog_search, serving_search, serving_tiles
from tests.unit.bench.test_bench_smoke import load_result


def test_serving_search_answers_like_stac_fastapi_pgstac(tmp_path: Path) -> None:
    document = load_result(
        serving_search.main(["--size", "small", "--workdir", str(tmp_path), "--out", str(tmp_path / "r.json")]),
        "serving_search",
    )
    ours = [row for row in document["rows"] if row["system"] == serving_search.SATLAKE]
    assert [row["query"] for row in ours] == list(catalog_search.QUERIES)
    assert all(row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"] for row in ours)
    assert all(row["items_returned"] > 0 for row in ours)  # every query finds items at smoke size
    reason = serving_search.peer_unavailable_reason()
    if reason is not None:
        assert any("stac-fastapi-pgstac peer skipped" in note for note in document["notes"])
        pytest.skip(reason)
    peers = {row["query"]: row for row in document["rows"] if row["system"] == serving_search.PGSTAC_API}
    assert {query: row["items_returned"] for query, row in peers.items()} == {
        row["query"]: row["items_returned"] for row in ours
    }
    identical = [c for c in document["comparisons"] if c["metric"].endswith("items identical")]
    assert len(identical) == len(catalog_search.QUERIES) and all(c["met"] is True for c in identical), identical
    p50 = [c for c in document["comparisons"] if c["metric"].endswith("p50 ms")]
    assert all(c["peer"] > 0 and c["met"] in (True, False) for c in p50)


def test_serving_tiles_draw_the_pixels_of_bare_titiler(tmp_path: Path) -> None:
    document = load_result(
        serving_tiles.main(["--size", "small", "--workdir", str(tmp_path), "--out", str(tmp_path / "r.json")]),
        "serving_tiles",
    )
    rows = {row["system"]: row for row in document["rows"]}
    assert set(rows) == {serving_tiles.SATLAKE, serving_tiles.BARE}
    tiles = rows[serving_tiles.SATLAKE]["tiles"]
    assert tiles > 0 and rows[serving_tiles.BARE]["tiles"] == tiles
    for row in rows.values():
        assert row["timed_requests"] == tiles * serving_tiles.REPETITIONS["small"]
        assert row["p50_ms"] > 0 and row["mean_png_kib"] > 0
    comparisons = {c["metric"]: c for c in document["comparisons"]}
    assert comparisons["tiles with identical pixels"] == {
        "metric": "tiles with identical pixels", "ours": tiles, "peer": tiles, "ratio": 1.0,
        "target": "every tile", "met": True, "note": "",
    }  # fmt: skip
    assert comparisons["tile p50 ms"]["met"] in (True, False)
