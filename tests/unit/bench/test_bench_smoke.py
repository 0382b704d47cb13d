"""Smoke runs of every benchmark at its small size: each writes a result JSON with the fields docs/benchmarks.md
reads. No timing is asserted; the figures come from ``python -m bench.<name> --size full``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench import catalog_search, cog, delta_lifecycle, ingest, orchestration

DOCUMENT_FIELDS = {
    "benchmark",
    "size",
    "data_size",
    "command",
    "finished_at",
    "machine",
    "rows",
    "comparisons",
    "notes",
}
COMPARISON_FIELDS = {"metric", "ours", "peer", "ratio", "target", "met", "note"}


def load_result(path: Path, name: str) -> dict[str, Any]:
    document = json.loads(path.read_text())
    assert set(document) >= DOCUMENT_FIELDS
    assert document["benchmark"] == name
    assert document["size"] == "small"
    assert document["command"] == f"python -m bench.{name} --size small"
    assert document["machine"]["cpus"] >= 1
    assert document["rows"], "a benchmark must report at least one measurement"
    for row in document["comparisons"]:
        assert set(row) == COMPARISON_FIELDS
    return document


GDAL_PEER_MISSING = "gdal_translate not found: install the GDAL peer with bash bench/peers/install_gdal.sh"


def test_cog_converts_and_compares_with_gdal_when_available(tmp_path: Path) -> None:
    document = load_result(
        cog.main(["--size", "small", "--workdir", str(tmp_path), "--out", str(tmp_path / "r.json")]), "cog"
    )
    systems = {(row["system"], row["scenes"]) for row in document["rows"]}
    assert {("satlake", 1), ("satlake", 2)} <= systems
    assert all(row["mpx_per_s"] > 0 and row["output_mib"] > 0 for row in document["rows"])
    if shutil.which("gdal_translate") is None:
        assert any("GDAL peer skipped" in note for note in document["notes"])
        pytest.skip(GDAL_PEER_MISSING)
    assert ("gdal_translate", 1) in systems
    pixels = {c["metric"]: c for c in document["comparisons"]}
    assert pixels["full-resolution pixels identical"]["met"] is True
    assert pixels["overview levels identical"]["met"] is True  # 2060 px: 1030, 515, 257 as GDAL rounds them


def test_cog_converts_a_four_band_scene_band_by_band_like_gdal(tmp_path: Path) -> None:
    path = cog.main(["--size", "small", "--bands", "4", "--workdir", str(tmp_path), "--out", str(tmp_path / "r.json")])
    document = json.loads(path.read_text())
    assert set(document) >= DOCUMENT_FIELDS
    assert document["command"] == "python -m bench.cog --size small --bands 4"
    assert document["data_size"] == "2060x2060 uint16, 4 bands"
    satlake_one = next(row for row in document["rows"] if (row["system"], row["scenes"]) == ("satlake", 1))
    assert satlake_one["output_mib"] > 0 and satlake_one["mpx_per_s"] > 0
    if shutil.which("gdal_translate") is None:
        pytest.skip(GDAL_PEER_MISSING)
    full_res = next(c for c in document["comparisons"] if c["metric"] == "full-resolution pixels identical")
    assert (full_res["ours"], full_res["peer"], full_res["met"]) == (4.0, 4.0, True)  # every band, both systems
    levels = next(c for c in document["comparisons"] if c["metric"] == "overview levels identical")
    assert (levels["ours"], levels["met"]) == (12.0, True)  # 3 overview levels of each of the 4 bands


def test_ingest_commits_every_event(tmp_path: Path) -> None:
    document = load_result(
        ingest.main(["--size", "small", "--workdir", str(tmp_path), "--out", str(tmp_path / "r.json")]), "ingest"
    )
    by_step = {row["step"].split(" ")[0]: row for row in document["rows"]}
    assert by_step["ingest_until_caught_up"]["events"] == ingest.EVENTS["small"]
    assert by_step["ingest_in_parallel"]["events"] == ingest.EVENTS["small"]
    assert by_step["read"]["events"] == ingest.EVENTS["small"]
    bronze = by_step["build_bronze_partition"]
    assert bronze["events"] == ingest.EVENTS["small"] and 0 < bronze["rejects"] < bronze["events"]


def test_delta_lifecycle_compacts_and_finds_the_hour(tmp_path: Path) -> None:
    document = load_result(
        delta_lifecycle.main(["--size", "small", "--workdir", str(tmp_path), "--out", str(tmp_path / "r.json")]),
        "delta_lifecycle",
    )
    queries = {
        row["step"].removeprefix("one satellite, one hour: "): row
        for row in document["rows"]
        if str(row["step"]).startswith("one satellite, one hour")
    }
    assert len(queries) == 6  # before, and after each of the five kinds of maintenance
    assert {row["rows_matched"] for row in queries.values()} == {3600}  # maintenance never changes the answer
    clustered = queries["after satlake clustering (8,192-row groups, the default)"]
    assert clustered["files_per_partition"] == {"2026-01-01": 1}
    # Sorted by satellite, the query keeps one small row group where compaction alone keeps the whole day.
    assert clustered["share_read_pct"] < queries["after compact"]["share_read_pct"] / 5
    appends = document["rows"][0]
    assert appends["commits"] == delta_lifecycle.COMMITS["small"] and appends["checkpoint_files"] >= 1


def test_catalog_search_answers_every_query_like_pgstac(tmp_path: Path) -> None:
    from bench.peers import pgstac

    document = load_result(
        catalog_search.main(["--size", "small", "--workdir", str(tmp_path), "--out", str(tmp_path / "r.json")]),
        "catalog_search",
    )
    ours = [row for row in document["rows"] if row["system"] == catalog_search.SATLAKE]
    assert [row["query"] for row in ours] == list(catalog_search.QUERIES)
    assert all(row["p50_ms"] > 0 for row in ours) and sum(row["items_returned"] for row in ours) > 0
    identical = [c for c in document["comparisons"] if c["metric"].endswith("items identical")]
    assert all(c["met"] is True for c in identical), identical  # search_sql on DuckDB, and pgstac when it ran
    reason = pgstac.unavailable_reason()
    if reason is not None:
        assert any(note.startswith("pgstac peer skipped") for note in document["notes"])
        pytest.skip(f"pgstac peer not run: {reason} (satlake's answers were checked)")
    theirs = [row for row in document["rows"] if row["system"] == catalog_search.PGSTAC]
    assert [row["items_returned"] for row in theirs] == [row["items_returned"] for row in ours]
    assert sum(c["metric"].endswith("pgstac items identical") for c in identical) == len(catalog_search.QUERIES)


def test_orchestration_backfills_and_reacts_to_a_new_event(tmp_path: Path) -> None:
    document = load_result(
        orchestration.main(["--size", "small", "--workdir", str(tmp_path), "--out", str(tmp_path / "r.json")]),
        "orchestration",
    )
    row = document["rows"][0]
    assert row["days"] == orchestration.DAYS["small"] and row["backfill_ok"] is True
    assert row["event_to_run_start_s"] is not None


def test_orchestration_backfills_one_run_per_partition_through_the_backfill_daemon(tmp_path: Path) -> None:
    # Steps in the run's process keep the smoke size under a minute; the full size runs one process per step.
    arguments = ["--size", "small", "--days", "2", "--modes", "per-partition", "--in-process-steps"]
    path = orchestration.main([*arguments, "--workdir", str(tmp_path), "--out", str(tmp_path / "r.json")])
    document = json.loads(path.read_text())
    assert document["command"] == f"python -m bench.orchestration {' '.join(arguments)}"
    (row,) = document["rows"]
    assert row["steps"] == "one process per run"
    # Dagster's backfill planned one run for each day, and every run succeeded.
    assert (row["runs"], row["partitions_per_run"], row["backfill_status"]) == (2, [1, 1], "COMPLETED_SUCCESS")
    assert row["backfill_ok"] is True and row["with_run_worker_starts_s"] > row["backfill_s"]
