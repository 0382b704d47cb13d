"""The satlake dbt models on a small bronze Delta table: counts, dedup, anomalies, health, reruns."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from satlake.telemetry.limits_file import DEFAULT_LIMITS_PATH, parse_limits
from tests.unit.dbt.dbt_warehouse import MODEL_TABLES, DbtRunFailed, DbtWarehouse, new_warehouse
from tests.unit.dbt.planted_telemetry import (
    DAY_1,
    DAY_2,
    DUPLICATED_READING,
    PLANTED_FAULTS,
    READINGS_PER_DAY,
    SATELLITES,
    SILENT_HOUR,
    at_minute,
    bronze_row,
    planted_bronze_rows,
    write_bronze,
)

CLEAN_READINGS = len(SATELLITES) * 2 * READINGS_PER_DAY - 60  # SAT-B's silent hour; the duplicate counts once


def minute_of(row: dict[str, Any]) -> int:
    return row["event_time"].hour * 60 + row["event_time"].minute


def test_hourly_counts_are_exact(two_day_warehouse: DbtWarehouse) -> None:
    counts = {
        (row["event_date"], row["satellite_name"], row["event_hour"].hour): row["reading_count"]
        for row in two_day_warehouse.rows("gold.telemetry_hourly")
    }
    expected = {
        (day, satellite, hour): 60
        for day in (DAY_1, DAY_2)
        for satellite in SATELLITES
        for hour in range(3)
        if (satellite, day, hour) != SILENT_HOUR
    }
    assert counts == expected


def test_hourly_aggregates_follow_the_readings(two_day_warehouse: DbtWarehouse) -> None:
    hot_hour, first_hour = (
        two_day_warehouse.rows(
            "gold.telemetry_hourly",
            f"satellite_name = 'SAT-A' and event_date = date '{DAY_1}' and hour(event_hour) = {hour}",
        )[0]
        for hour in (1, 0)
    )
    assert hot_hour["temp_c_max"] == 95.0
    assert hot_hour["temp_c_stddev"] > 9  # one 95 degC reading among ~20 degC ones
    assert first_hour["battery_charge_pct_first"] == pytest.approx(90.0)
    assert first_hour["battery_charge_pct_last"] == pytest.approx(90.0 - 0.1 * 59)
    assert first_hour["battery_charge_pct_min"] == pytest.approx(90.0 - 0.1 * 59)


def test_duplicate_reading_is_kept_once_from_the_earliest_log_position(
    two_day_warehouse: DbtWarehouse,
) -> None:
    satellite, day, minute = DUPLICATED_READING
    clean = two_day_warehouse.rows("silver.telemetry_clean")
    assert len(clean) == CLEAN_READINGS
    copies = [r for r in clean if r["satellite_name"] == satellite and r["event_time"] == at_minute(day, minute)]
    assert len(copies) == 1
    kept = copies[0]
    assert (kept["source_partition"], kept["source_offset"], kept["source_batch_id"]) == (0, 900, "batch-2")
    assert kept["copies_received"] == 2
    assert sum(r["copies_received"] for r in clean) == CLEAN_READINGS + 1


def test_anomalies_are_exactly_the_planted_faults(two_day_warehouse: DbtWarehouse) -> None:
    anomalies = two_day_warehouse.rows("gold.telemetry_anomalies")
    found = {(r["satellite_name"], r["event_date"], minute_of(r), r["measure"], r["kind"]) for r in anomalies}
    assert found == {
        ("SAT-A", DAY_1, 90, "temp_c", "range_violation"),
        ("SAT-A", DAY_1, 90, "temp_c", "statistical_outlier"),
        ("SAT-B", DAY_1, 100, "sensor1", "statistical_outlier"),
        ("SAT-C", DAY_1, 135, "sensor2", "statistical_outlier"),
        ("SAT-C", DAY_1, 150, "sensor2", "statistical_outlier"),
        ("SAT-C", DAY_2, 45, "altitude_km", "range_violation"),
        ("SAT-C", DAY_2, 45, "altitude_km", "statistical_outlier"),
    }
    planted_values = {(f.satellite, f.day, f.minute, f.measure): f.value for f in PLANTED_FAULTS}
    for row in anomalies:
        assert (
            row["value"] == planted_values[(row["satellite_name"], row["event_date"], minute_of(row), row["measure"])]
        )

    range_rows = {r["measure"]: r for r in anomalies if r["kind"] == "range_violation"}
    assert (range_rows["temp_c"]["severity"], range_rows["temp_c"]["limit_value"]) == ("warning", 85.0)
    assert range_rows["temp_c"]["reason"] == "temp_c 95.000 is above the warning limit 85.000"
    assert (range_rows["altitude_km"]["severity"], range_rows["altitude_km"]["limit_value"]) == ("critical", 160.0)
    assert range_rows["altitude_km"]["reason"] == "altitude_km 150.000 is below the critical limit 160.000"
    assert {r["severity"] for r in anomalies if r["kind"] == "statistical_outlier"} == {None}

    outliers = {(r["measure"], minute_of(r)): r for r in anomalies if r["kind"] == "statistical_outlier"}
    assert outliers[("sensor2", 135)]["robust_z"] > 5
    assert outliers[("sensor2", 150)]["robust_z"] < -5
    assert outliers[("sensor2", 135)]["expected_value"] == pytest.approx(0.5, abs=0.03)
    sunk = outliers[("altitude_km", 45)]
    assert sunk["robust_z"] < -5
    assert "robust standard deviations below" in sunk["reason"]
    assert "the median of its 11 neighbouring readings" in sunk["reason"]


def test_daily_health_statuses_follow_the_documented_rules(two_day_warehouse: DbtWarehouse) -> None:
    health = {(r["event_date"], r["satellite_name"]): r for r in two_day_warehouse.rows("gold.telemetry_daily_health")}
    assert {key: row["health_status"] for key, row in health.items()} == {
        (DAY_1, "SAT-A"): "degraded",  # 95 degC: a warning alarm
        (DAY_1, "SAT-B"): "ok",  # one transient sensor spike, and a duplicate delivery: not faults of the day
        (DAY_1, "SAT-C"): "degraded",  # two sensor spikes in 180 readings: outlier share above 1 %
        (DAY_2, "SAT-A"): "ok",
        (DAY_2, "SAT-B"): "degraded",  # an hour of silence: 2/3 coverage
        (DAY_2, "SAT-C"): "critical",  # 150 km: a critical alarm
    }
    silent = health[(DAY_2, "SAT-B")]
    assert (silent["reading_count"], silent["expected_reading_count"]) == (120, 180)
    assert silent["median_interval_s"] == 60.0
    assert silent["coverage_ratio"] == pytest.approx(120 / 180)
    assert silent["status_reasons"] == "coverage 66.7% (120 of 180 expected readings)"

    hot = health[(DAY_1, "SAT-A")]
    assert (hot["anomaly_count"], hot["range_violation_count"], hot["statistical_outlier_count"]) == (2, 1, 1)
    assert hot["status_reasons"] == "1 warning limit alarm(s)"  # one outlier in 180 readings is below 1 %
    assert (hot["watch_alarm_count"], hot["warning_alarm_count"], hot["critical_alarm_count"]) == (0, 1, 0)
    sunk = health[(DAY_2, "SAT-C")]
    assert (sunk["critical_alarm_count"], sunk["severe_alarm_count"], sunk["warning_alarm_count"]) == (1, 0, 0)
    assert sunk["status_reasons"] == "1 critical limit alarm(s)"
    assert hot["coverage_ratio"] == 1.0
    assert hot["battery_min_pct"] == pytest.approx(90.0 - 0.1 * 179)
    assert hot["max_depth_of_discharge_pct"] == pytest.approx(100 - (90.0 - 0.1 * 179))
    assert hot["temp_max_c"] == 95.0
    assert health[(DAY_1, "SAT-B")]["status_reasons"] == ""
    assert health[(DAY_1, "SAT-B")]["statistical_outlier_count"] == 1
    spiky = health[(DAY_1, "SAT-C")]
    assert spiky["outlier_share"] == pytest.approx(2 / 180)
    assert spiky["status_reasons"] == "2 statistical outlier(s), 1.1% of readings"


def test_two_day_window_in_one_run_equals_one_run_per_day(two_day_warehouse: DbtWarehouse, tmp_path: Path) -> None:
    day_by_day = new_warehouse(tmp_path, planted_bronze_rows())
    day_by_day.build(DAY_1, DAY_1)
    day_by_day.build(DAY_2, DAY_2)
    assert day_by_day.snapshot() == two_day_warehouse.snapshot()


def test_rerunning_a_window_leaves_identical_tables(rebuildable_warehouse: DbtWarehouse) -> None:
    before = rebuildable_warehouse.snapshot()
    rebuildable_warehouse.build(DAY_2, DAY_2)
    assert rebuildable_warehouse.snapshot() == before


def test_rerunning_a_day_picks_up_late_events_and_leaves_other_days_alone(
    rebuildable_warehouse: DbtWarehouse,
) -> None:
    day_1_before = {t: rebuildable_warehouse.rows(t, f"event_date = date '{DAY_1}'") for t in MODEL_TABLES}
    late = [bronze_row("SAT-A", at_minute(DAY_2, 180 + i), _calm_measures(), partition=7, offset=i) for i in range(10)]
    write_bronze(rebuildable_warehouse.lake_uri, late)

    rebuildable_warehouse.build(DAY_2, DAY_2)

    late_hour = rebuildable_warehouse.rows(
        "gold.telemetry_hourly",
        f"satellite_name = 'SAT-A' and event_date = date '{DAY_2}' and hour(event_hour) = 3",
    )
    assert [row["reading_count"] for row in late_hour] == [10]
    assert len(rebuildable_warehouse.rows("silver.telemetry_clean")) == CLEAN_READINGS + 10
    assert {t: rebuildable_warehouse.rows(t, f"event_date = date '{DAY_1}'") for t in MODEL_TABLES} == day_1_before


def test_rerun_removes_rows_that_no_longer_qualify(rebuildable_warehouse: DbtWarehouse) -> None:
    # Bronze re-judged day 2 under limits with a lower altitude floor (as after a limits file change): the
    # 150 km reading is no alarm any more, and the rebuilt day drops its anomaly row and its critical status.
    looser = parse_limits(
        DEFAULT_LIMITS_PATH.read_text()
        .replace("critical: {min: 160, max: 2000}", "critical: {min: 100, max: 2000}")
        .replace("warning: {min: 300}", "warning: {min: 100}")
    )
    day_2_rows = [r for r in planted_bronze_rows(looser) if r["event_date"] == DAY_2]
    write_bronze(rebuildable_warehouse.lake_uri, day_2_rows, predicate=f"event_date = '{DAY_2}'")
    rebuildable_warehouse.build(DAY_2, DAY_2)
    day_2 = f"event_date = date '{DAY_2}'"
    kinds = [r["kind"] for r in rebuildable_warehouse.rows("gold.telemetry_anomalies", day_2)]
    assert kinds == ["statistical_outlier"]
    health = rebuildable_warehouse.rows("gold.telemetry_daily_health", f"{day_2} and satellite_name = 'SAT-C'")
    assert [row["health_status"] for row in health] == ["ok"]  # was critical; one outlier is below 1 %
    versions = {r["limits_version"] for r in rebuildable_warehouse.rows("silver.telemetry_clean", day_2)}
    assert versions == {looser.version}


def test_window_reads_only_its_own_bronze_partitions(fresh_warehouse: DbtWarehouse) -> None:
    # Losing day 2's files must not matter to a day 1 run: the event_date filter reaches the Delta scan.
    day_2_files = (fresh_warehouse.lake_uri / "bronze" / "telemetry" / f"event_date={DAY_2}").glob("*.parquet")
    for parquet_file in day_2_files:
        parquet_file.unlink()
    fresh_warehouse.build(DAY_1, DAY_1)
    assert len(fresh_warehouse.rows("silver.telemetry_clean")) == len(SATELLITES) * READINGS_PER_DAY


def test_data_tests_catch_a_duplicate_reading_in_the_window(rebuildable_warehouse: DbtWarehouse) -> None:
    with duckdb.connect(str(rebuildable_warehouse.duckdb_path)) as con:
        con.execute(
            "insert into silver.telemetry_clean select * from silver.telemetry_clean "
            f"where event_date = date '{DAY_1}' and satellite_name = 'SAT-A' limit 1"
        )
    with pytest.raises(DbtRunFailed, match=r"unique_combination_of_columns_telemetry_clean.*fail"):
        rebuildable_warehouse.run_dbt("test", DAY_1, DAY_1)


@pytest.mark.parametrize(
    ("min_date", "max_date", "complaint"),
    [
        (None, None, "dbt var 'min_date' is not set"),
        (DAY_2, DAY_1, "max_date must be on or after min_date"),
    ],
)
def test_a_missing_or_empty_window_is_refused_with_instructions(
    fresh_warehouse: DbtWarehouse, min_date: date | None, max_date: date | None, complaint: str
) -> None:
    with pytest.raises(DbtRunFailed, match=complaint):
        fresh_warehouse.build(min_date, max_date)


def _calm_measures() -> dict[str, float]:
    return {
        "temp_c": 20.0,
        "battery_charge_pct": 72.0,
        "altitude_km": 550.0,
        "sensor1": 0.5,
        "sensor2": 0.5,
        "sensor3": 0.5,
    }


def test_planted_data_has_the_shape_the_assertions_assume() -> None:
    rows = planted_bronze_rows()
    assert len(rows) == CLEAN_READINGS + 1
    assert min(r["event_time"] for r in rows) == at_minute(DAY_1, 0)
    assert max(r["event_time"] for r in rows) == at_minute(DAY_2, READINGS_PER_DAY - 1)
    assert all(r["event_time"] - at_minute(r["event_date"], 0) < timedelta(days=1) for r in rows)
