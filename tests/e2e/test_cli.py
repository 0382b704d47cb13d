"""The CLI as a user runs it: the demo (twice), queries, replay of CSV files, and the errors people see."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CSV_DIR = Path(__file__).resolve().parents[1] / "unit" / "telemetry" / "data" / "csv"


def satlake(root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SATLAKE_ROOT": str(root), "SATLAKE_MODE": "embedded"}
    return subprocess.run(
        [sys.executable, "-m", "satlake", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def table_counts(report: str) -> dict[str, int]:
    """The row count of every table the report lists (under "tables (rows):", a line or two per zone:
    ``  zone:   table 12 · table 3,400``)."""
    section = re.search(r"^tables \(rows\):\n((?:  .*\n)+)", report, re.M)
    assert section, report
    counts, zone = {}, ""
    for line in section[1].splitlines():
        starts = re.match(r"^  (\w+):\s+(.*)$", line)
        zone, cells = (starts[1], starts[2]) if starts else (zone, line.strip())
        for cell in cells.split(" · "):
            name, count = cell.rsplit(" ", 1)
            counts[f"{zone}.{name}"] = int(count.replace(",", ""))
    return counts


def assert_readable_report(result: subprocess.CompletedProcess[str]) -> None:
    """Under 100 lines holding the report's sections, nothing but errors on stderr, and the log file it names
    holding what was kept off the terminal: dbt's lines, Dagster's logs, library warnings."""
    lines = result.stdout.splitlines()
    assert len(lines) < 100, result.stdout
    sections = (
        "scenes:",
        "catalog (",
        "scene checks:",
        "forest change",
        "acquisition (AOI demo-forest",
        "Mars (",
        "ground segment (",
        "tables (rows):",
        "telemetry contract:",
        "asset checks:",
        "sample query (duckdb):",
        "demo finished in",
    )
    for section in sections:
        assert any(line.startswith(section) for line in lines), (section, result.stdout)
    assert re.search(r"^  PASS silver/telemetry_clean:\d+ dbt tests: .*not_null \(", result.stdout, re.M)
    assert "Running with dbt" not in result.stdout + result.stderr
    assert "BetaWarning" not in result.stdout + result.stderr
    assert result.stderr == "", result.stderr
    log_path = re.search(r"^full log: (\S+)$", result.stdout, re.M)
    assert log_path, result.stdout
    log = Path(log_path[1]).read_text()
    assert "Running with dbt" in log and re.search(r"\d+ of \d+ PASS not_null_telemetry_clean_", log)
    assert "BetaWarning" in log


@pytest.mark.e2e
def test_verbose_shows_the_logs_on_the_terminal_and_they_always_reach_the_log_file(tmp_path: Path) -> None:
    quiet = satlake(tmp_path, "run")
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert quiet.stderr == "" and "BetaWarning" not in quiet.stdout
    assert "nothing to do" in quiet.stdout
    quiet_log = re.search(r"^full log: (\S+)$", quiet.stdout, re.M)
    assert quiet_log and "BetaWarning" in Path(quiet_log[1]).read_text()
    verbose = satlake(tmp_path, "-v", "run")
    assert verbose.returncode == 0, verbose.stdout + verbose.stderr
    assert "BetaWarning" in verbose.stderr and "nothing to do" in verbose.stdout
    verbose_log = re.search(r"^full log: (\S+)$", verbose.stdout, re.M)
    assert verbose_log and verbose_log[1] != quiet_log[1] and "BetaWarning" in Path(verbose_log[1]).read_text()


@pytest.mark.e2e
def test_demo_runs_end_to_end_and_is_safe_to_run_twice(tmp_path: Path) -> None:
    first = satlake(tmp_path, "demo")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    counts = table_counts(first.stdout)
    expected = {"raw.telemetry_events", "bronze.telemetry", "bronze.telemetry_rejects", "silver.telemetry_clean",
                "gold.telemetry_hourly", "gold.telemetry_daily_health", "gold.telemetry_anomalies"}  # fmt: skip
    assert expected <= set(counts), first.stdout
    assert counts["raw.telemetry_events"] == counts["bronze.telemetry"] + counts["bronze.telemetry_rejects"]
    assert counts["bronze.telemetry_rejects"] > 0  # the demo injects faults
    assert "asset checks:" in first.stdout and " 0 failed" in first.stdout
    # Beside the rejects, the report shows the readings kept with their limit alarms by severity: the injected
    # out-of-limits values are readings with a critical alarm, not rejects.
    kept = re.search(r"readings kept\s+([\d,]+)\s+with a limit alarm: ([\d,]+) \(watch (\d+), warning (\d+), "
                     r"distress (\d+), critical ([\d,]+), severe (\d+)\)", first.stdout)  # fmt: skip
    assert kept, first.stdout
    assert int(kept[1].replace(",", "")) == counts["bronze.telemetry"] and int(kept[6].replace(",", "")) > 0
    assert re.search(r"rejected\s+[\d,]+\s+.*truncated", first.stdout)
    assert "sample query" in first.stdout and "SAT-001" in first.stdout
    # The first tile came through acquisition: its AOI raised an alert for the planted clearing.
    assert counts["catalog.areas_of_interest"] == 1 and counts["gold.forest_change_alerts"] >= 1
    assert re.search(r"^  alert: \d+\.\d+ ha lost between 2024-05-02 and 2024-07-21", first.stdout, re.M)
    # The Mars section fetched two rovers' sols from the replayed API and printed the mission timeline.
    assert counts["silver.mars_photos"] > 0 and counts["gold.mars_mission_timeline"] > 0, first.stdout
    assert counts["bronze.mars_photos"] == counts["silver.mars_photos"], first.stdout
    assert counts["gold.mars_timelapses"] > 0 and counts.get("raw.mars_request_rejects", 0) == 0, first.stdout
    timeline = first.stdout[first.stdout.index("mission timeline (gold.mars_mission_timeline") :]
    assert re.search(r"^\s*curiosity\s+1000\b", timeline, re.M) and re.search(
        r"^\s*perseverance\s+100\b", timeline, re.M
    )
    assert_readable_report(first)

    second = satlake(tmp_path, "demo")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "not producing again" in second.stdout and "requested by an earlier demo run; runs" in second.stdout
    assert table_counts(second.stdout) == counts

    query = satlake(
        tmp_path, "query", "SELECT count(*) AS n, count(DISTINCT satellite_name) AS sats FROM bronze.telemetry"
    )
    assert query.returncode == 0, query.stderr
    assert re.search(rf"\b{counts['bronze.telemetry']}\s+4\b", query.stdout), query.stdout


@pytest.mark.e2e
def test_csv_replay_publishes_every_row_and_run_ingests_them(tmp_path: Path) -> None:
    good = tmp_path / "csv"
    good.mkdir()
    for path in sorted(CSV_DIR.glob("*.csv")):
        if path.read_text().startswith("temp_c,battery_charge_pct,altitude,sensor1,sensor2,sensor3"):
            good.joinpath(path.name).write_text(path.read_text())
    rows = sum(len(p.read_text().strip().splitlines()) - 1 for p in good.glob("*.csv"))
    produced = satlake(tmp_path / "root", "produce", "telemetry", "--from-csv", str(good), "--interval", "1")
    if produced.returncode != 0:
        pytest.fail(produced.stderr)
    assert f"published {rows:,} events" in produced.stdout
    run = satlake(tmp_path / "root", "run")
    assert run.returncode == 0, run.stdout + run.stderr
    count = satlake(tmp_path / "root", "query", "SELECT count(*) FROM raw.telemetry_events")
    assert re.search(rf"^{rows}\s*$", count.stdout, re.M), count.stdout


@pytest.mark.e2e
def test_malformed_csv_is_a_clear_error_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "csv"
    bad.mkdir()
    (bad / "SAT-9.csv").write_text(
        "temp_c,battery_charge_pct,altitude,sensor1,sensor2,sensor3\n1,2,500,0.1,0.2,0.3\n1,x,500,0.1,0.2,0.3\n"
    )
    result = satlake(tmp_path / "root", "produce", "telemetry", "--from-csv", str(bad))
    assert result.returncode == 2
    assert "SAT-9.csv:3" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.e2e
def test_bad_sql_is_refused_with_the_engine_message(tmp_path: Path) -> None:
    result = satlake(tmp_path, "query", "SELEC nonsense")
    assert result.returncode == 2
    assert "duckdb refused the query" in result.stderr and "Traceback" not in result.stderr
