"""Replay of telemetry CSV files (one per satellite, the file stem is its name) as timestamped event records.

Format: header ``temp_c,battery_charge_pct,altitude,sensor1,sensor2,sensor3`` (any order, extra columns
ignored), one reading per line, no timestamp: events are stamped as they are sent. A malformed header is
always an error; a malformed row is an error (``strict=True``) or skipped and reported (``strict=False``).
Values that parse as numbers pass through: out-of-limits values land with an alarm, ``nan`` and ``inf`` are
rejected downstream by the validation rules.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from satlake.resources.event_log import OutgoingRecord
from satlake.telemetry.codec import TelemetryReading, encode_event
from satlake.telemetry.validation import SATELLITE_NAME_RULE, satellite_name_from_file_stem, satellite_name_problem

# CSV column -> TelemetryReading field, in the order of the documented header.
CSV_COLUMNS: dict[str, str] = {
    "temp_c": "temp_c",
    "battery_charge_pct": "battery_charge_pct",
    "altitude": "altitude_km",
    "sensor1": "sensor1",
    "sensor2": "sensor2",
    "sensor3": "sensor3",
}
CSV_HEADER = ",".join(CSV_COLUMNS)
_FIX_ROW = "fix or delete that line"


class CsvFormatError(ValueError):
    """A telemetry CSV file cannot be replayed; the message names the file, the line and what to fix."""

    def __init__(self, path: Path, line_number: int | None, problem: str) -> None:
        where = f"{path}:{line_number}" if line_number is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line_number = line_number
        self.problem = problem


@dataclass(frozen=True, slots=True)
class CsvReading:
    """One data row of a telemetry CSV file, without a timestamp (replay stamps it)."""

    satellite_name: str
    line_number: int
    temp_c: float
    battery_charge_pct: float
    altitude_km: float
    sensor1: float
    sensor2: float
    sensor3: float

    def stamped(self, timestamp_ns: int) -> TelemetryReading:
        return TelemetryReading(
            self.satellite_name,
            timestamp_ns,
            self.temp_c,
            self.battery_charge_pct,
            self.altitude_km,
            self.sensor1,
            self.sensor2,
            self.sensor3,
        )


def satellite_name_from_path(path: Path) -> str:
    """The satellite a CSV file belongs to: its stem, percent-escapes decoded (``ISS (ZARYA).csv`` and
    ``ISS%20%28ZARYA%29.csv`` both name ``ISS (ZARYA)``), which must be a usable satellite name."""
    name = satellite_name_from_file_stem(path.stem)
    problem = satellite_name_problem(name)
    if problem is not None:
        raise CsvFormatError(
            path,
            None,
            f"file name stem {path.stem!r} is not a satellite name: it {problem} (a name is {SATELLITE_NAME_RULE}); "
            "rename the file to <satellite name>.csv, for example SAT-001.csv",
        )
    return name


def _column_positions(path: Path, header: list[str]) -> list[int]:
    names = [cell.strip() for cell in header]
    missing = [column for column in CSV_COLUMNS if column not in names]
    if missing:
        looks_like_data = all(_is_number(cell) for cell in names if cell)
        hint = " (line 1 looks like data: the header line is missing)" if looks_like_data else ""
        raise CsvFormatError(
            path, 1, f"header lacks column(s) {', '.join(missing)}{hint}; expected header: {CSV_HEADER}"
        )
    return [names.index(column) for column in CSV_COLUMNS]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_row(path: Path, line_number: int, row: list[str], positions: list[int], width: int) -> list[float]:
    if len(row) != width:
        raise CsvFormatError(
            path, line_number, f"expected {width} values as in the header, found {len(row)}; {_FIX_ROW}"
        )
    values: list[float] = []
    for column, position in zip(CSV_COLUMNS, positions, strict=True):
        text = row[position].strip()
        try:
            values.append(float(text))
        except ValueError:
            problem = "is empty" if not text else f"{text!r} is not a number"
            raise CsvFormatError(path, line_number, f"column {column}: value {problem}; {_FIX_ROW}") from None
    return values


def _text_lines(path: Path, binary_lines: Iterable[bytes]) -> Iterator[str]:
    """Decode line by line, so a byte that is not UTF-8 is reported on its own line."""
    for line_number, raw_line in enumerate(binary_lines, start=1):
        try:
            yield raw_line.decode("utf-8-sig" if line_number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise CsvFormatError(
                path,
                line_number,
                f"the file is not UTF-8 text (byte {error.start + 1} of the line); save it as UTF-8",
            ) from None


def read_telemetry_csv(
    path: Path,
    strict: bool = True,
    on_bad_row: Callable[[CsvFormatError], None] | None = None,
) -> Iterator[CsvReading]:
    """Readings of one telemetry CSV file, in file order.

    Raises ``CsvFormatError`` (naming file and line) for a bad file name, an empty file or a header without
    the six columns. A bad row (wrong number of values, an empty or non-numeric value) raises too when
    ``strict``; otherwise it is skipped and passed to ``on_bad_row``.
    """
    path = Path(path)
    name = satellite_name_from_path(path)
    try:
        with path.open("rb") as file:
            # csv.reader counts physical lines, so quoted newlines still give correct line numbers.
            reader = csv.reader(_text_lines(path, file))
            header = next(reader, None)
            if header is None:
                raise CsvFormatError(path, None, f"the file is empty; it needs the header line {CSV_HEADER}")
            positions = _column_positions(path, header)
            width = len(header)
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                try:
                    values = _parse_row(path, reader.line_num, row, positions, width)
                except CsvFormatError as error:
                    if strict:
                        raise
                    if on_bad_row is not None:
                        on_bad_row(error)
                    continue
                yield CsvReading(name, reader.line_num, *values)
    except csv.Error as error:
        raise CsvFormatError(path, None, f"unreadable CSV: {error}") from None
    except OSError as error:
        raise CsvFormatError(path, None, f"cannot read the file: {error.strerror or error}") from None


def telemetry_csv_files(directory: Path) -> list[Path]:
    """The ``*.csv`` files of ``directory`` in name order; an error naming the directory if there are none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CsvFormatError(directory, None, "is not a directory; pass the folder holding <satellite>.csv files")
    files = sorted(path for path in directory.glob("*.csv") if path.is_file())
    if not files:
        raise CsvFormatError(directory, None, "holds no *.csv files; expected one <satellite name>.csv per satellite")
    for path in files:
        satellite_name_from_path(path)
    return files


def replay_csv_directory(
    directory: Path,
    interval_s: float,
    start_ns: int | None = None,
    strict: bool = True,
    on_bad_row: Callable[[CsvFormatError], None] | None = None,
) -> Iterator[OutgoingRecord]:
    """Records for every CSV file of ``directory``, interleaved row by row across satellites.

    Row ``r`` of the ``j``-th of ``n`` files is stamped ``start_ns + r * interval + j * interval / n`` (so
    records come in time order, no two alike). ``start_ns`` defaults to the moment that makes the last row
    stamped now: the replay stands for a producer that sent the files in real time and has just finished, so
    no reading lies in the future of its arrival (the contract rejects those beyond the allowed clock skew).
    Every file is read once before the first record is produced, to count its rows; with ``strict`` a
    malformed file stops the replay there, before anything is sent.
    """
    if not interval_s > 0:
        raise ValueError(f"interval_s must be positive, got {interval_s}")
    files = telemetry_csv_files(directory)
    rounds = max(sum(1 for _reading in read_telemetry_csv(path, strict=strict)) for path in files)
    interval_ns = round(interval_s * 1_000_000_000)
    last_offset_ns = (len(files) - 1) * interval_ns // len(files)
    span_ns = max(rounds - 1, 0) * interval_ns + last_offset_ns
    first_ns = start_ns if start_ns is not None else time.time_ns() - span_ns
    readers = [read_telemetry_csv(path, strict=strict, on_bad_row=on_bad_row) for path in files]
    offsets_ns = [index * interval_ns // len(files) for index in range(len(files))]
    round_number = 0
    while readers:
        still_open = []
        for reader, offset_ns in zip(readers, offsets_ns, strict=True):
            row = next(reader, None)
            if row is None:
                continue
            still_open.append((reader, offset_ns))
            timestamp_ns = first_ns + round_number * interval_ns + offset_ns
            yield OutgoingRecord(
                value=encode_event(row.stamped(timestamp_ns)),
                key=row.satellite_name.encode(),
                timestamp_ms=timestamp_ns // 1_000_000,
            )
        readers = [reader for reader, _offset in still_open]
        offsets_ns = [offset for _reader, offset in still_open]
        round_number += 1
