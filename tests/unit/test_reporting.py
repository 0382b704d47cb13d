"""The reporting layer: condensed runs and checks, the report's rendering, and the capture of everything
else a command's work writes (child processes, warnings, logging) into its log file."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from satlake.reporting import Report, command_log_path
from satlake.reporting.summaries import condense_checks, group_successful_runs

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    source: str
    description: str
    run_id: str
    success: bool
    seconds: float


def test_passing_dbt_tests_fold_into_one_line_per_asset_and_failures_keep_theirs() -> None:
    results = {
        "gold/telemetry_hourly:not_null_telemetry_hourly_event_hour": (True, ""),
        "gold/telemetry_hourly:not_null_telemetry_hourly_satellite_name": (True, ""),
        "gold/telemetry_hourly:unique_combination_of_columns_telemetry_hourly_satellite_name__event_hour": (True, ""),
        "gold/telemetry_hourly:not_null_telemetry_hourly_reading_count": (False, ""),
        "silver/telemetry_clean:accepted_values_telemetry_clean_temp_c_alarm__watch__warning": (True, ""),
        "bronze/telemetry:schema_unchanged": (True, "schema matches the contract"),
    }
    assert condense_checks(results) == {
        "bronze/telemetry:schema_unchanged": (True, "schema matches the contract"),
        "gold/telemetry_hourly:3 dbt tests": (
            True,
            "not_null (event_hour, satellite_name), unique_combination_of_columns (satellite_name__event_hour)",
        ),
        "gold/telemetry_hourly:not_null_telemetry_hourly_reading_count": (False, ""),
        "silver/telemetry_clean:1 dbt tests": (True, "accepted_values (temp_c_alarm)"),
    }


def test_successful_runs_group_by_job_and_source_with_their_partitions() -> None:
    outcomes = [
        Outcome("telemetry_events_sensor", "ingest_telemetry_job", "a1", True, 1.0),
        Outcome("bronze_days_sensor", "bronze_telemetry_job [2026-12-05]", "b1", True, 1.25),
        Outcome("bronze_days_sensor", "bronze_telemetry_job [2026-12-06]", "b2", True, 0.5),
        Outcome("bronze_days_sensor", "bronze_telemetry_job [2026-12-07]", "b3", False, 0.5),
    ]
    assert [group.describe() for group in group_successful_runs(outcomes)] == [
        "ingest_telemetry_job (telemetry_events_sensor): 1 run ok in 1.0s",
        "bronze_telemetry_job [2026-12-05, 2026-12-06] (bronze_days_sensor): 2 runs ok in 1.8s",
    ]


def test_report_prints_runs_checks_and_tables_as_plain_lines_off_a_terminal() -> None:
    out, err = io.StringIO(), io.StringIO()
    report = Report(out, err)
    report.track_runs(
        "runs",
        lambda show: [show(o) or o for o in [Outcome("s", "job [d1]", "0123456789", True, 2.0),
                                            Outcome("s", "job [d2]", "abcdef0123", False, 3.0)]],
    )  # fmt: skip
    failed = report.checks("asset checks", {"a/b:fresh": (True, "1 h old"), "a/b:schema": (False, "column x gone")})
    report.table(["table", "rows"], [("raw.events", 34560), ("bronze.telemetry", 7)])
    report.error("something broke\nin two lines")
    assert failed == ["a/b:schema"]
    assert out.getvalue().splitlines() == [
        "runs: 2 in 0.0s",
        "  ok job [d1] (s): 1 run ok in 2.0s",
        "  run abcdef01 job [d2] (s) FAILED in 3.0s",
        "",
        "asset checks: 1 passed, 1 failed",
        "  PASS a/b:fresh: 1 h old",
        "  FAIL a/b:schema: column x gone",
        "table               rows",
        "raw.events        34,560",
        "bronze.telemetry       7",
    ]
    assert err.getvalue() == "satlake: error: something broke\nin two lines\n"
    assert "\x1b[" not in out.getvalue()  # no colour codes in a pipe or a file


def test_log_path_is_under_the_storage_root_named_by_command_and_time(tmp_path: Path) -> None:
    path = command_log_path(tmp_path, "produce telemetry", datetime(2026, 12, 7, 1, 2, 3, tzinfo=UTC))
    assert path == tmp_path / "logs" / "satlake-produce-telemetry-20261207T010203Z.log"


CAPTURING_SCRIPT = textwrap.dedent(
    """
    import logging, subprocess, sys, warnings
    from pathlib import Path
    from satlake.reporting import Report, capture_output

    with capture_output(Path(sys.argv[1]), verbose=sys.argv[2] == "verbose") as terminal:
        report = Report(terminal.out, terminal.err)
        report.line("the report line")
        print("a print to stdout")
        subprocess.run([sys.executable, "-c", "print('dbt-like child line')"], check=True)
        warnings.warn("a BetaWarning-like warning", UserWarning, stacklevel=1)
        logging.getLogger("dagster.automation_condition_tester").info("an automation log line")
        report.error("an error for the person")
    print("after the capture")
    """
)
CAPTURED = ("a print to stdout", "dbt-like child line", "a BetaWarning-like warning", "an automation log line")


def _run_capturing(tmp_path: Path, mode: str) -> tuple[subprocess.CompletedProcess[str], str]:
    log = tmp_path / "logs" / "run.log"
    result = subprocess.run([sys.executable, "-c", CAPTURING_SCRIPT, str(log), mode], cwd=REPO, capture_output=True,
                            text=True, timeout=60, check=True)  # fmt: skip
    return result, log.read_text()


def test_everything_but_the_report_goes_to_the_log_file(tmp_path: Path) -> None:
    result, log = _run_capturing(tmp_path, "quiet")
    assert result.stdout.splitlines() == ["the report line", "after the capture"]
    assert result.stderr == "satlake: error: an error for the person\n"
    for line in CAPTURED:
        assert line in log
    assert "the report line" not in log


def test_verbose_shows_the_captured_lines_on_the_terminal_too(tmp_path: Path) -> None:
    result, log = _run_capturing(tmp_path, "verbose")
    assert result.stdout.splitlines() == ["the report line", "after the capture"]
    for line in CAPTURED:
        assert line in result.stderr and line in log
    assert "satlake: error: an error for the person" in result.stderr


def test_passing_checks_that_say_the_same_thing_share_a_line_and_failures_never_fold() -> None:
    results = {
        "catalog/items:asset_hrefs_exist": (True, "10/10 scenes passed"),
        "catalog/items:item_valid_stac": (True, "10/10 scenes passed"),
        "catalog/items:bbox_matches_raster": (False, "10/10 scenes passed"),
        "bronze/telemetry:schema_unchanged": (True, "schema matches the contract"),
        "raw/telemetry_events:schema_unchanged": (True, "schema matches the contract"),
        "bronze/telemetry:limit_alarms": (True, "7888 readings, 24 with a limit alarm"),
    }
    assert condense_checks(results) == {
        "bronze/telemetry, raw/telemetry_events:schema_unchanged": (True, "schema matches the contract"),
        "bronze/telemetry:limit_alarms": (True, "7888 readings, 24 with a limit alarm"),
        "catalog/items:asset_hrefs_exist, item_valid_stac": (True, "10/10 scenes passed"),
        "catalog/items:bbox_matches_raster": (False, "10/10 scenes passed"),
    }
