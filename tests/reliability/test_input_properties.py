"""Property-based tests of every parser that reads outside input: telemetry CSV files, Landsat MTL text, object
keys, catalog search parameters, and bronze decoding. Each either returns a well-formed value or raises its
own documented error with a readable message; nothing crashes, hangs or loses a row."""

from __future__ import annotations

import csv
import io
import math
import tempfile
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from satlake.catalog.search import SearchQuery, parse_bbox, parse_datetime_range
from satlake.resources.event_log import LogRecord
from satlake.resources.object_keys import UnsafeObjectKeyError, validate_object_key
from satlake.scenes.grouping import group_scene_files, scene_id_for_key
from satlake.scenes.mtl import MtlParseError, landsat_metadata_from_mtl, parse_mtl
from satlake.telemetry.bronze import build_bronze_partition
from satlake.telemetry.codec import TelemetryReading, encode_event
from satlake.telemetry.csv_replay import CSV_COLUMNS, CsvFormatError, read_telemetry_csv, replay_csv_directory
from satlake.telemetry.ingest import raw_event_rows

DEADLINE = timedelta(milliseconds=500)
# tmp_path is shared by the examples of one test: each example overwrites the same file, which is what we want.
SHARED_DIR = [HealthCheck.function_scoped_fixture]


# --- telemetry CSV ---------------------------------------------------------------------------------------


def read_all(path: Path, strict: bool) -> list:
    bad_rows: list[CsvFormatError] = []
    rows = list(read_telemetry_csv(path, strict=strict, on_bad_row=bad_rows.append))
    assert all(str(path) in str(error) for error in bad_rows), "a skipped row must name its file"
    return rows


csv_like_text = st.one_of(
    st.text(max_size=400),
    st.lists(
        st.lists(
            st.one_of(st.sampled_from([*CSV_COLUMNS, "nan", "1e999", '"', "", " "]), st.text(max_size=8)), max_size=8
        ),
        max_size=8,
    ).map(lambda rows: "\n".join(",".join(row) for row in rows)),
)


@settings(max_examples=300, deadline=DEADLINE, suppress_health_check=SHARED_DIR)
@given(text=csv_like_text, strict=st.booleans())
@example(text="temp_c,battery_charge_pct,altitude,sensor1,sensor2,sensor3\n1,2,3\x00,4,5,6", strict=True)
@example(text="temp_c,battery_charge_pct,altitude,sensor1,sensor2,sensor3\n" + "9" * 200_000, strict=False)
@example(text='temp_c,battery_charge_pct,altitude,sensor1,sensor2,sensor3\n"1\r2,3,4,5,6', strict=True)
def test_arbitrary_csv_text_reads_or_raises_csv_format_error(tmp_path: Path, text: str, strict: bool) -> None:
    path = tmp_path / "SAT-1.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        rows = read_all(path, strict)
    except CsvFormatError as error:
        assert str(path) in str(error) and error.problem
        return
    assert all(row.satellite_name == "SAT-1" and len(astuple_values(row)) == 6 for row in rows)


@settings(max_examples=150, deadline=DEADLINE, suppress_health_check=SHARED_DIR)
@given(data=st.binary(max_size=300), strict=st.booleans())
def test_arbitrary_bytes_read_or_raise_csv_format_error(tmp_path: Path, data: bytes, strict: bool) -> None:
    path = tmp_path / "SAT-2.csv"
    path.write_bytes(data)
    try:
        read_all(path, strict)
    except CsvFormatError as error:
        assert str(path) in str(error)


def astuple_values(row) -> tuple[float, ...]:
    return (row.temp_c, row.battery_charge_pct, row.altitude_km, row.sensor1, row.sensor2, row.sensor3)


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    files=st.dictionaries(
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,10}", fullmatch=True),
        st.lists(st.tuples(*[finite] * 6), min_size=1, max_size=15),
        min_size=1,
        max_size=3,
    )
)
def test_a_valid_csv_directory_round_trips_through_replay_and_decode(files: dict[str, list[tuple]]) -> None:
    """Every value written (at full float precision) comes back through replay and the decoder, in order."""
    assume(len({name.lower() for name in files}) == len(files))  # case-insensitive file systems
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        for name, rows in files.items():
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            writer.writerows([repr(value) for value in row] for row in rows)
            (directory / f"{name}.csv").write_text(buffer.getvalue())
        records = list(replay_csv_directory(directory, interval_s=1.0, start_ns=10**18))
    from satlake.telemetry.codec import decode_event

    decoded: dict[str, list[tuple]] = {}
    for record in records:
        reading = decode_event(record.value)
        assert record.key == reading.satellite_name.encode()
        decoded.setdefault(reading.satellite_name, []).append(astuple_values(reading))
    assert decoded == files
    assert len(records) == sum(len(rows) for rows in files.values())


# --- Landsat MTL -----------------------------------------------------------------------------------------

MTL_KEYS = [
    "DATE_ACQUIRED",
    "SCENE_CENTER_TIME",
    "WRS_PATH",
    "WRS_ROW",
    "CLOUD_COVER",
    "SUN_AZIMUTH",
    "SUN_ELEVATION",
    "SPACECRAFT_ID",
    "SENSOR_ID",
    "COLLECTION_NUMBER",
    "FILE_NAME_BAND_4",
    "REFLECTANCE_MULT_BAND_4",
    "REFLECTANCE_ADD_BAND_4",
    "GROUP",
    "END_GROUP",
]
MTL_VALUES = st.one_of(
    st.sampled_from(
        [
            "2017-08-13",
            '"15:47:15.1234567Z"',
            '"99:99:99Z"',
            '"24:00:00Z"',
            "1e999",
            "-1e999",
            "9" * 5000,
            "0",
            "-1",
            '"LANDSAT_8"',
            '"',
            "L1_METADATA_FILE",
            "2017-02-30",
        ]
    ),
    st.integers().map(str),
    st.floats().map(repr),
    st.text(max_size=12),
)
mtl_lines = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(MTL_KEYS), MTL_VALUES).map(lambda kv: f"{kv[0]} = {kv[1]}"),
        st.sampled_from(["END", "", "GROUP = L1_METADATA_FILE", "END_GROUP = L1_METADATA_FILE"]),
        st.text(max_size=30),
    ),
    max_size=25,
).map("\n".join)


@settings(max_examples=500, deadline=DEADLINE)
@given(st.one_of(st.text(max_size=300), mtl_lines))
@example("DATE_ACQUIRED = 2017-08-13\nWRS_PATH = " + "9" * 5000)  # more digits than int() converts
@example('DATE_ACQUIRED = 2017-08-13\nSCENE_CENTER_TIME = "99:99:99Z"')
@example("DATE_ACQUIRED = 2017-08-13\nWRS_PATH = 1e999\nSUN_AZIMUTH = 1e999")
def test_arbitrary_mtl_text_parses_or_raises_mtl_parse_error(text: str) -> None:
    try:
        parsed = parse_mtl(text)
        fields = landsat_metadata_from_mtl(parsed)
    except MtlParseError as error:
        assert str(error).startswith("MTL ")
        return
    assert isinstance(parsed, dict) and parsed
    assert fields["acquired_at"].tzinfo is UTC
    for key in ("cloud_cover", "cloud_cover_land", "sun_azimuth", "sun_elevation"):
        assert fields[key] is None or math.isfinite(fields[key]), (key, fields[key])


@settings(max_examples=200, deadline=DEADLINE)
@given(mtl=st.one_of(st.text(max_size=200), mtl_lines))
@example(mtl="GROUP = L1\nFILE_NAME_BAND_4 = " + "9" * 5000 + "\nEND_GROUP = L1")
def test_a_hostile_mtl_never_breaks_scene_grouping(mtl: str) -> None:
    """One landed MTL is read by the sensor for every tick: it must become a problem on its scene, never a crash."""
    product = "LC08_L1TP_016037_20170813_20170814_01_RT"
    keys = [f"landing/{product}_MTL.txt", f"landing/{product}_B4.TIF", "landing/other.tif"]
    groups = group_scene_files(keys, read_text=lambda _key: mtl)
    assert {group.scene_id for group in groups} == {product, "other"}
    landsat = next(group for group in groups if group.scene_id == product)
    assert landsat.complete or landsat.missing or landsat.problems


# --- object keys -----------------------------------------------------------------------------------------

key_text = st.one_of(
    st.text(max_size=80),
    st.lists(
        st.sampled_from(["..", ".", "", "a", "é", "e\u0301", "\x00", "\\", "/", "~", "C:", "%2e%2e", "\u202e", " "]),
        max_size=10,
    ).map("/".join),
    st.text(alphabet="ab/.", max_size=40),
)


@settings(max_examples=800, deadline=DEADLINE)
@given(key_text)
@example("../../etc/passwd")
@example("a/../../b")
@example("scenes/\x00.tif")
@example("/" + "x" * 10)
@example("x" * 1000)
@example("/".join(["y" * 199] * 5))  # 999 characters in five segments: allowed
def test_object_keys_are_nfc_or_refused_and_never_escape_the_root(key: str) -> None:
    root = Path(tempfile.gettempdir(), "satlake-key-root").resolve()
    try:
        safe = validate_object_key(key)
    except UnsafeObjectKeyError as error:
        assert error.rule and error.key == key
        assert "unsafe object key" in str(error) and len(str(error)) < 600, "errors stay readable for huge keys"
        return
    assert safe == unicodedata.normalize("NFC", safe) == unicodedata.normalize("NFC", key)
    assert validate_object_key(safe) == safe
    assert len(safe.encode("utf-8")) <= 1024 and "\x00" not in safe
    joined = Path(root, safe).resolve()
    assert joined != root and joined.is_relative_to(root), (key, joined)
    scene_id = scene_id_for_key(safe)
    assert scene_id and scene_id not in (".", "..") and "/" not in scene_id and "\x00" not in scene_id
    assert Path(root, scene_id).resolve().parent == root


@pytest.mark.parametrize(
    ("key", "rule"),
    [
        ("scenes/../../etc/passwd", "path traversal"),
        ("scenes/a\x00b.tif", "control character"),
        ("x" * 1000, "longer than 255 bytes"),
        ("é" * 600, "the limit is 1024"),
        ("scenes/\u202egpj.tif", "invisible formatting"),
        ("C:/Windows/x.tif", "absolute path"),
        ("scenes\\x.tif", "backslash"),
    ],
)
def test_hostile_object_keys_are_refused_naming_the_rule(key: str, rule: str) -> None:
    with pytest.raises(UnsafeObjectKeyError, match=rule):
        validate_object_key(key)


def test_mixed_unicode_normalisations_name_one_scene() -> None:
    composed, decomposed = "scènes/forêt_été.tif", unicodedata.normalize("NFD", "scènes/forêt_été.tif")
    assert composed != decomposed
    assert validate_object_key(decomposed) == validate_object_key(composed) == composed
    assert scene_id_for_key(decomposed) == scene_id_for_key(composed)
    groups = group_scene_files([composed, decomposed])
    assert len(groups) == 1 and groups[0].problems  # two uploads of one name: flagged, not silently merged


# --- catalog search parameters ---------------------------------------------------------------------------


@settings(max_examples=500, deadline=DEADLINE)
@given(st.one_of(st.text(max_size=60), st.lists(st.sampled_from(["1", "-2.5", "1e999", "nan", ";", "'", ""]),
                                                 max_size=6).map(",".join)))  # fmt: skip
@example("1,2,3,4; DROP TABLE x")
@example("1,2,3,4' OR 1=1 --")
def test_bbox_text_parses_to_a_valid_box_or_a_bbox_error(text: str) -> None:
    try:
        west, south, east, north = parse_bbox(text)
    except ValueError as error:
        assert "bbox" in str(error)
        return
    assert all(math.isfinite(v) for v in (west, south, east, north))
    assert -180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90
    SearchQuery(bbox=(west, south, east, north))


@settings(max_examples=500, deadline=DEADLINE)
@given(
    st.one_of(
        st.text(max_size=60),
        st.tuples(
            st.sampled_from(["0001-01-01", "9999-12-31", "2024-02-30", "2024-05-01", "..", ""]),
            st.sampled_from(["", "T00:00:00Z", "T23:59:59.999999999+23:59", "T00:00:00-01:00", "T25:00:00Z"]),
            st.sampled_from(["", "/", "/..", "/2024-06-01", "/0001-01-01T00:00:00+01:00"]),
        ).map("".join),
    )
)
@example("0001-01-01T00:00:00+01:00")  # an offset moving the instant before year 1
@example("9999-12-31T23:59:59-01:00")  # ... or after year 9999
@example("2024-05-01T00:00:00+99:99")  # not an offset
@example("2024-05-01'; DROP TABLE x; --")
def test_datetime_text_parses_to_an_aware_range_or_a_clear_error(text: str) -> None:
    try:
        start, end = parse_datetime_range(text)
    except ValueError as error:
        message = str(error)
        assert "datetime range" in message or "RFC 3339" in message, message
        return
    assert start is not None or end is not None
    for moment in (start, end):
        assert moment is None or (isinstance(moment, datetime) and moment.utcoffset() == timedelta(0))
    assert start is None or end is None or start <= end
    SearchQuery(datetime_range=(start, end))


# --- bronze: nothing lost --------------------------------------------------------------------------------

RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RECEIVED_NS = int(RECEIVED.timestamp() * 1e9)
plausible = st.builds(
    TelemetryReading,
    satellite_name=st.sampled_from(["SAT-1", "SAT-2", "bad name", ""]),
    timestamp_ns=st.one_of(
        st.integers(RECEIVED_NS - 10**13, RECEIVED_NS + 10**12), st.sampled_from([0, 2**63, 2**64 - 1])
    ),
    temp_c=st.one_of(st.just(20.0), st.floats()),
    battery_charge_pct=st.just(50.0),
    altitude_km=st.one_of(st.just(550.0), st.floats()),
    sensor1=st.just(0.5),
    sensor2=st.just(0.5),
    sensor3=st.one_of(st.just(0.5), st.floats()),
)
payloads = st.lists(
    st.one_of(plausible.map(encode_event), st.binary(max_size=80), plausible.map(lambda r: encode_event(r)[:30])),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(payloads, st.randoms(use_true_random=False))
def test_bronze_puts_every_raw_row_in_exactly_one_output_with_a_reason(batch: list[bytes], rng) -> None:
    # Duplicate some payloads (producer retries) so de-duplication is exercised too.
    batch = batch + [rng.choice(batch) for _ in range(len(batch) // 3)] if batch else batch
    records = [LogRecord("satlake.telemetry", index % 3, index, 0, None, value) for index, value in enumerate(batch)]
    partition = build_bronze_partition(raw_event_rows(records, "batch-1", RECEIVED))

    def positions(table) -> list[tuple[int, int]]:
        return list(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist(), strict=True))

    kept, refused = positions(partition.rows), positions(partition.rejects)
    assert sorted(kept + refused) == sorted((r.partition, r.offset) for r in records)
    assert not set(kept) & set(refused)
    assert all(code and reason for code, reason in zip(
        partition.rejects.column("reason_code").to_pylist(), partition.rejects.column("reason").to_pylist(),
        strict=True))  # fmt: skip
    by_position = {(r.partition, r.offset): r.value for r in records}
    for position, payload in zip(refused, partition.rejects.column("payload").to_pylist(), strict=True):
        assert by_position[position] == payload, "a reject keeps its payload exactly as received"
    names = partition.rows.column("satellite_name").to_pylist()
    keys = list(zip(names, partition.rows.column("timestamp_ns").to_pylist(), strict=True))
    assert len(keys) == len(set(keys)), "bronze keeps one row per (satellite, timestamp)"
