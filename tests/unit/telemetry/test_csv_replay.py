"""CSV replay: reading the per-satellite files, interleaving and stamping them, and errors that name the file
and line."""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import pytest

from satlake.telemetry.codec import TelemetryReading, decode_event
from satlake.telemetry.csv_replay import (
    CSV_HEADER,
    CsvFormatError,
    CsvReading,
    read_telemetry_csv,
    replay_csv_directory,
)

DATA = Path(__file__).parent / "data"
SAMPLES = DATA / "csv"
BAD = DATA / "csv_bad"
START_NS = 1_718_000_000_000_000_000


def csv_rows(path: Path) -> list[list[float]]:
    with path.open(newline="") as file:
        return [[float(value) for value in row] for row in list(csv.reader(file))[1:]]


def test_header_is_the_documented_one() -> None:
    assert CSV_HEADER == "temp_c,battery_charge_pct,altitude,sensor1,sensor2,sensor3"


def test_a_sample_file_reads_as_readings_named_after_the_file() -> None:
    readings = list(read_telemetry_csv(SAMPLES / "SAT-101.csv"))
    assert len(readings) == 20
    assert readings[0] == CsvReading("SAT-101", 2, -6.13, 78.52, 711.335, 0.4039, 0.1757, 0.4476)
    assert [reading.line_number for reading in readings] == list(range(2, 22))
    expected = csv_rows(SAMPLES / "SAT-101.csv")
    assert [
        [r.temp_c, r.battery_charge_pct, r.altitude_km, r.sensor1, r.sensor2, r.sensor3] for r in readings
    ] == expected


def test_replay_interleaves_satellites_row_by_row_with_increasing_nanosecond_times() -> None:
    records = list(replay_csv_directory(SAMPLES, interval_s=10.0, start_ns=START_NS))
    assert len(records) == 20 + 20 + 18
    readings = [decode_event(record.value) for record in records]
    assert [r.satellite_name for r in readings[:6]] == ["SAT-101", "SAT-102", "SAT-103"] * 2
    # SAT-103 has 18 rows: the last two rounds hold the other two satellites only.
    assert [r.satellite_name for r in readings[-4:]] == ["SAT-101", "SAT-102"] * 2
    stamps = [r.timestamp_ns for r in readings]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    step_ns = 10 * 10**9
    assert stamps[:4] == [START_NS, START_NS + step_ns // 3, START_NS + 2 * step_ns // 3, START_NS + step_ns]
    for record, reading in zip(records, readings, strict=True):
        assert record.key == reading.satellite_name.encode()
        assert record.timestamp_ms == reading.timestamp_ns // 1_000_000


def test_replayed_values_are_the_csv_values() -> None:
    readings = [decode_event(r.value) for r in replay_csv_directory(SAMPLES, interval_s=1.0, start_ns=START_NS)]
    for name in ("SAT-101", "SAT-102", "SAT-103"):
        replayed = [r for r in readings if r.satellite_name == name]
        assert [
            [r.temp_c, r.battery_charge_pct, r.altitude_km, r.sensor1, r.sensor2, r.sensor3] for r in replayed
        ] == csv_rows(SAMPLES / f"{name}.csv")


def test_replay_ends_now_by_default_so_no_reading_lies_in_the_future() -> None:
    before = time.time_ns()
    stamps = [decode_event(r.value).timestamp_ns for r in replay_csv_directory(SAMPLES, interval_s=10.0)]
    after = time.time_ns()
    assert max(stamps) <= after and max(stamps) >= before - 10 * 10**9
    assert max(stamps) - min(stamps) >= 10 * 10**9 * (len(stamps) // len(list(SAMPLES.glob("*.csv"))) - 1)


@pytest.mark.parametrize(
    ("relative_path", "line", "problem"),
    [
        ("missing_column/SAT-201.csv", 1, "header lacks column(s) sensor3"),
        ("non_numeric/SAT-202.csv", 7, "column sensor2: value 'n/a' is not a number"),
        ("wrong_column_count/SAT-203.csv", 5, "expected 6 values as in the header, found 5"),
        ("empty_file/SAT-204.csv", None, "the file is empty"),
        ("no_header/SAT-205.csv", 1, "the header line is missing"),
        ("bad_name/SAT%0A206.csv", None, "'SAT%0A206' is not a satellite name: it holds the control character U+000A"),
        ("empty_value/SAT-207.csv", 4, "column altitude: value is empty"),
    ],
)
def test_malformed_files_are_errors_naming_file_line_and_problem(
    relative_path: str, line: int | None, problem: str
) -> None:
    path = BAD / relative_path
    with pytest.raises(CsvFormatError) as raised:
        list(read_telemetry_csv(path))
    message = str(raised.value)
    where = f"{path}:{line}:" if line is not None else f"{path}:"
    assert message.startswith(where), message
    assert problem in message
    assert (raised.value.path, raised.value.line_number) == (path, line)


def test_replay_refuses_a_directory_with_a_malformed_file_before_sending_anything(tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "SAT-101.csv", tmp_path / "SAT-101.csv")
    shutil.copy(BAD / "non_numeric" / "SAT-202.csv", tmp_path / "SAT-202.csv")
    replay = replay_csv_directory(tmp_path, interval_s=1.0, start_ns=START_NS)
    with pytest.raises(CsvFormatError, match=r"SAT-202\.csv:7: column sensor2"):
        next(replay)


def test_non_strict_replay_skips_bad_rows_reports_them_and_keeps_the_rest(tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "SAT-101.csv", tmp_path / "SAT-101.csv")
    shutil.copy(BAD / "non_numeric" / "SAT-202.csv", tmp_path / "SAT-202.csv")
    reported: list[CsvFormatError] = []
    records = list(
        replay_csv_directory(tmp_path, interval_s=1.0, start_ns=START_NS, strict=False, on_bad_row=reported.append)
    )
    names = [decode_event(record.value).satellite_name for record in records]
    assert names.count("SAT-101") == 20 and names.count("SAT-202") == 7
    assert [(error.path.name, error.line_number) for error in reported] == [("SAT-202.csv", 7)]


def test_a_malformed_header_is_an_error_even_when_not_strict() -> None:
    with pytest.raises(CsvFormatError, match="header lacks"):
        list(read_telemetry_csv(BAD / "missing_column" / "SAT-201.csv", strict=False))


def test_directory_errors_name_the_directory(tmp_path: Path) -> None:
    with pytest.raises(CsvFormatError, match=r"holds no \*\.csv files"):
        next(replay_csv_directory(tmp_path, interval_s=1.0))
    with pytest.raises(CsvFormatError, match="is not a directory"):
        next(replay_csv_directory(tmp_path / "missing", interval_s=1.0))
    (tmp_path / "   .csv").write_text(CSV_HEADER + "\n")
    with pytest.raises(CsvFormatError, match="'   ' is not a satellite name: it is only spaces"):
        next(replay_csv_directory(tmp_path, interval_s=1.0))


def test_file_stems_name_satellites_as_fleets_write_them(tmp_path: Path) -> None:
    for stem in ("sat0", "ISS (ZARYA)", "NOAA-20", "25544", "sat%2F..%2F001"):
        (tmp_path / f"{stem}.csv").write_text(CSV_HEADER + "\n1,50,550,0.1,0.2,0.3\n")
    names = {decode_event(record.value).satellite_name for record in replay_csv_directory(tmp_path, interval_s=1.0)}
    assert names == {"sat0", "ISS (ZARYA)", "NOAA-20", "25544", "sat/../001"}


def test_header_order_bom_quotes_blank_lines_and_extra_columns_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "SAT-9.csv"
    path.write_text(
        "\ufeffsensor3, sensor2,sensor1,altitude,battery_charge_pct,temp_c,comment\n"
        '0.3,0.2,0.1,550.0,80.0,21.5,"a, quoted note"\n'
        "\n"
        "0.6,0.5,0.4,551.0,79.0,21.0,\n",
        encoding="utf-8",
    )
    readings = list(read_telemetry_csv(path))
    assert readings == [
        CsvReading("SAT-9", 2, 21.5, 80.0, 550.0, 0.1, 0.2, 0.3),
        CsvReading("SAT-9", 4, 21.0, 79.0, 551.0, 0.4, 0.5, 0.6),
    ]
    assert readings[0].stamped(5) == TelemetryReading("SAT-9", 5, 21.5, 80.0, 550.0, 0.1, 0.2, 0.3)


def test_numbers_outside_the_contract_pass_through_to_validation(tmp_path: Path) -> None:
    path = tmp_path / "SAT-9.csv"
    path.write_text(CSV_HEADER + "\nnan,150,550,0.1,0.2,0.3\n")
    (reading,) = read_telemetry_csv(path)
    assert reading.battery_charge_pct == 150.0 and reading.temp_c != reading.temp_c


def test_a_file_that_is_not_utf8_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "SAT-9.csv"
    path.write_bytes(CSV_HEADER.encode() + b"\n1,2,3,0.1,0.2,0.3\n\xff\xfe,1,1,1,1,1\n")
    with pytest.raises(CsvFormatError, match=r"SAT-9\.csv:3: the file is not UTF-8 text \(byte 1 of the line\)"):
        list(read_telemetry_csv(path))


def test_replay_refuses_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval_s must be positive"):
        next(replay_csv_directory(SAMPLES, interval_s=0.0))
