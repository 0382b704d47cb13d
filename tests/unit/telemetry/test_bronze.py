"""Bronze decoding and validation: every raw event ends in exactly one of bronze or rejects, with a reason."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from satlake.resources.event_log import LogRecord
from satlake.telemetry.bronze import DUPLICATE_EVENT, STORED_KEY_COLUMNS, build_bronze_partition
from satlake.telemetry.checks import check_keys_not_null_and_unique, check_row_count_reconciliation
from satlake.telemetry.codec import TelemetryReading, encode_event, encode_event_with_builder
from satlake.telemetry.ingest import raw_event_rows
from satlake.telemetry.limits_file import parse_limits
from satlake.telemetry.tables import MEASURES
from satlake.telemetry.validation import default_limits

RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_NS = int(RECEIVED.timestamp() * 1e9)


def reading(name: str = "SAT-001", offset_s: float = -60, **values: float) -> TelemetryReading:
    base = {"temp_c": 20.0, "battery_charge_pct": 80.0, "altitude_km": 550.0, "sensor1": 0.1, "sensor2": 0.2,
            "sensor3": 0.3}  # fmt: skip
    base.update(values)
    return TelemetryReading(name, NOW_NS + int(offset_s * 1e9), **base)  # type: ignore[arg-type]


def raw_rows(payloads: list[bytes]):
    records = [LogRecord("t", 0, i, 0, None, p) for i, p in enumerate(payloads)]
    return raw_event_rows(records, "batch-1", RECEIVED)


def test_good_and_bad_events_are_split_with_readable_reasons() -> None:
    good = encode_event(reading())
    payloads = [
        good,
        b"\xde\xad\xbe\xef" * 3,  # garbage
        good[:20],  # truncated
        encode_event(reading(offset_s=-61, temp_c=500.0)),  # out of limits: a reading, with an alarm
        encode_event(reading(battery_charge_pct=float("nan"))),
        encode_event(reading(name="bad\x07name")),
        encode_event(reading(offset_s=3600)),  # an hour ahead of its arrival
        encode_event(TelemetryReading("SAT-001", 0, 1, 1, 500, 0, 0, 0)),
        good,  # a producer retry
        encode_event(reading(offset_s=-30)),
        encode_event(reading(name="ISS (ZARYA)", offset_s=-60)),  # a name as fleets write them
    ]
    partition = build_bronze_partition(raw_rows(payloads))
    assert partition.rows.column("offset").to_pylist() == [0, 3, 9, 10]
    rejects = dict(zip(partition.rejects.column("offset").to_pylist(), partition.rejects.to_pylist(), strict=True))
    assert sorted(rejects) == [1, 2, 4, 5, 6, 7, 8]
    assert rejects[2]["reason_code"] == "truncated"
    assert rejects[4]["reason_code"] == "non_finite_value" and "battery_charge_pct is NaN" in rejects[4]["reason"]
    assert rejects[5]["reason_code"] == "invalid_satellite_name" and "U+0007" in rejects[5]["reason"]
    assert rejects[6]["reason_code"] == "timestamp_in_future"
    assert rejects[7]["reason_code"] == "timestamp_before_1970"
    assert rejects[8]["reason_code"] == "duplicate_event" and "t[0]@0" in rejects[8]["reason"]
    assert rejects[1]["payload"] == b"\xde\xad\xbe\xef" * 3  # kept exactly as received
    assert all(r["reason"] for r in rejects.values())
    hot = partition.rows.filter(pc.equal(partition.rows.column("offset"), 3)).to_pylist()[0]
    assert (hot["temp_c"], hot["temp_c_alarm"], hot["temp_c_alarm_limit"], hot["alarm_severity"]) == (
        500.0,
        "critical",
        120.0,
        "critical",
    )
    assert partition.rows.column("satellite_name").to_pylist()[-1] == "ISS (ZARYA)"
    assert set(partition.rows.column("limits_version").to_pylist()) == {default_limits().version}


def test_bronze_keeps_nanosecond_time_and_passes_its_checks() -> None:
    event = reading(offset_s=-0.000_001_234)
    raw = raw_rows([encode_event(event), encode_event(reading(offset_s=-1))])
    partition = build_bronze_partition(raw)
    assert partition.rows.column("timestamp_ns").to_pylist()[0] == event.timestamp_ns
    assert partition.rows.column("event_time").to_pylist()[0].microsecond == (event.timestamp_ns // 1000) % 1_000_000
    assert check_keys_not_null_and_unique(partition.rows).passed
    assert check_row_count_reconciliation(raw, partition.rows, partition.rejects).passed


def test_reconciliation_check_names_the_batch_that_lost_rows() -> None:
    raw = raw_rows([encode_event(reading(offset_s=-i)) for i in range(1, 5)])
    partition = build_bronze_partition(raw)
    outcome = check_row_count_reconciliation(raw, partition.rows.slice(0, 3), partition.rejects)
    assert not outcome.passed
    assert outcome.metadata["unreconciled_batches"] == [
        {"batch_id": "batch-1", "consumed": 4, "bronze_rows": 3, "rejected": 0}
    ]


def test_rebuilding_gives_identical_rows() -> None:
    raw = raw_rows([encode_event(reading(offset_s=-i)) for i in range(1, 50)] + [b"junk"])
    first, second = build_bronze_partition(raw), build_bronze_partition(raw)
    assert first.rows.equals(second.rows) and first.rejects.equals(second.rejects)


def mixed_payloads(count: int, seed: int) -> list[bytes]:
    """Good events with every kind of fault mixed in, including exact and key-only duplicates."""
    rng = random.Random(seed)
    payloads: list[bytes] = []
    for i in range(count):
        kind = rng.randrange(12)
        event = reading(name=f"SAT-{rng.randrange(5):03d}", offset_s=-rng.randrange(1, 400))
        if kind == 0 and payloads:
            payloads.append(rng.choice(payloads))  # an exact retry
        elif kind == 1:
            value = rng.choice([500.0, float("nan"), -1e9, float("inf"), 150.0, -0.5, 101.0])
            payloads.append(encode_event(reading(name=f"SAT-{rng.randrange(5):03d}", offset_s=-i - 500,
                                                 **{rng.choice(MEASURES): value})))  # fmt: skip
        elif kind == 2:
            names = ["bad name", "Ünïcode", "", "x" * 70, "   ", "tab\there", "ISS (ZARYA)", "25544", "a\u2028b"]
            payloads.append(encode_event(reading(name=rng.choice(names))))
        elif kind == 3:
            payloads.append(encode_event(event)[: rng.randrange(0, 90)])
        elif kind == 4:
            payloads.append(encode_event_with_builder(event))  # a foreign (non-canonical) layout
        elif kind == 5:
            payloads.append(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120))))
        elif kind == 6:
            payloads.append(encode_event(reading(offset_s=rng.choice([3600, -400 - i]))))
        elif kind == 7:
            bad = bytearray(encode_event(reading(name="SAT-\u00e9t\u00e9")))
            bad[-3] = 0xFF  # a name that is not UTF-8
            payloads.append(bytes(bad))
        else:
            payloads.append(encode_event(event))
    return payloads


# Hard ranges, exclusive ends and overrides for some satellites: the columnar path must agree with the
# reference on every one.
STRICT_LIMITS = parse_limits(
    """
mission: strict
max_future_skew_s: 60
parameters:
  temp_c: {warning: {min: -40, max: 85}, critical: {min: -100, max_exclusive: 120}, hard: {min: -273.15}}
  battery_charge_pct: {warning: {min: 15}, hard: {min: 0, max: 100}}
  altitude_km: {critical: {min: 160}}
satellites:
  - match: ["SAT-00[13]", "ISS*"]
    parameters:
      temp_c: {warning: {min_exclusive: -20, max: 60}}
      battery_charge_pct: {hard: null, watch: {min: 50}}
""",
    "strict.yaml",
)


@pytest.mark.parametrize("strict", [False, True], ids=["shipped limits", "strict limits"])
@pytest.mark.parametrize("seed", range(6))
def test_columnar_path_matches_the_event_by_event_reference(seed: int, strict: bool) -> None:
    raw = raw_rows(mixed_payloads(400, seed))
    limits = STRICT_LIMITS if strict else None
    columnar = build_bronze_partition(raw, limits=limits)
    reference = build_bronze_partition(raw, limits=limits, columnar=False)
    assert columnar.rows.equals(reference.rows)
    assert columnar.rejects.equals(reference.rejects)
    assert columnar.rows.num_rows + columnar.rejects.num_rows == raw.num_rows
    assert columnar.rows.num_rows > 100 and len(columnar.reject_counts) >= 6


def test_stored_keys_reject_copies_at_other_positions_and_keep_the_same_event() -> None:
    first = raw_rows([encode_event(reading(offset_s=-i)) for i in range(1, 6)])
    stored = build_bronze_partition(first).rows.select(list(STORED_KEY_COLUMNS))
    again = raw_rows([encode_event(reading(offset_s=-i)) for i in range(1, 6)] + [encode_event(reading(offset_s=-9))])
    retried = again.set_column(2, "offset", pa.array([0, 1, 2, 30, 31, 32], pa.int64()))
    partition = build_bronze_partition(retried, lambda low, high: stored)
    # offsets 0-2 are the stored events themselves; 30 and 31 repeat stored keys 4 and 5 at new positions.
    assert partition.rows.column("offset").to_pylist() == [0, 1, 2, 32]
    assert partition.rejects.column("offset").to_pylist() == [30, 31]
    assert set(partition.rejects.column("reason_code").to_pylist()) == {DUPLICATE_EVENT}
    assert "t[0]@3" in partition.rejects.column("reason").to_pylist()[0]


def test_a_hard_limit_makes_a_reject_only_where_the_limits_file_marks_it() -> None:
    payloads = [
        encode_event(reading("SAT-002", battery_charge_pct=120.0)),  # hard for SAT-002
        encode_event(reading("SAT-001", battery_charge_pct=120.0)),  # the override lifts the hard range
        encode_event(reading("SAT-002", offset_s=-2, temp_c=-300.0)),  # below absolute zero
        encode_event(reading("SAT-002", offset_s=-3, temp_c=120.0)),  # the exclusive end: critical, kept
    ]
    shipped = build_bronze_partition(raw_rows(payloads))
    assert shipped.rejects.num_rows == 0  # the shipped limits mark nothing hard: every reading is kept
    assert shipped.rows.column("alarm_severity").to_pylist() == ["critical", "critical", "severe", "warning"]

    strict = build_bronze_partition(raw_rows(payloads), limits=STRICT_LIMITS)
    rejects = strict.rejects.to_pylist()
    assert [(r["offset"], r["reason_code"]) for r in rejects] == [(0, "outside_hard_limit"), (2, "outside_hard_limit")]
    assert "battery_charge_pct=120.0 is outside its hard limit [0..100]" in rejects[0]["reason"]
    assert "strict.yaml" in rejects[0]["reason"]
    assert "temp_c=-300.0 is outside its hard limit [-273.15..+inf)" in rejects[1]["reason"]
    kept = strict.rows.to_pylist()
    assert [r["offset"] for r in kept] == [1, 3]
    # SAT-001's override: battery 120 has no hard range, and no band above (watch only below 50).
    assert (kept[0]["battery_charge_pct_alarm"], kept[0]["alarm_severity"]) == (None, None)
    assert (kept[1]["temp_c_alarm"], kept[1]["temp_c_alarm_limit"]) == ("critical", 120.0)
    assert {r["limits_version"] for r in [*kept, *rejects]} == {STRICT_LIMITS.version}


def test_generator_shaped_values_at_the_range_ends_are_all_readings() -> None:
    ends = [(-1.0, -100.0, 0.0, 160.0), (1.0, 120.0, 100.0, 2000.0)]
    payloads = [
        encode_event(TelemetryReading(f"sat{i}", NOW_NS - (i + 1) * 10**9, t, b, a, s, -s, s))
        for i, (s, t, b, a) in enumerate(ends * 5)
    ]
    partition = build_bronze_partition(raw_rows(payloads))
    assert partition.rejects.num_rows == 0 and partition.rows.num_rows == 10
    assert set(partition.rows.column("alarm_severity").to_pylist()) <= {"warning", None}  # never critical


def test_every_kind_of_event_that_cannot_be_a_reading_is_a_reject_with_its_own_code() -> None:
    from tests.unit.telemetry.test_codec import build_with_flatc_code

    good = encode_event(reading())
    cases = {
        "empty_payload": b"",
        "malformed_flatbuffer": b"\xff" * 40,
        "truncated": good[: len(good) // 2],
        "missing_field:satellite_name": build_with_flatc_code({"timestamp_ns": NOW_NS - 10**9, "temp_c": 1.0}),
        "invalid_satellite_name": encode_event(reading(name="SAT\x00X")),
        "timestamp_before_1970": encode_event(TelemetryReading("SAT-001", 2**64 - 1, 1, 1, 500, 0, 0, 0)),
        "timestamp_in_future": encode_event(reading(offset_s=301)),
        "non_finite_value": encode_event(reading(sensor2=float("-inf"))),
        "outside_hard_limit": encode_event(reading("SAT-002", offset_s=-5, battery_charge_pct=-1.0)),
        "duplicate_event": good,
    }
    payloads = [good, *cases.values()]
    partition = build_bronze_partition(raw_rows(payloads), limits=STRICT_LIMITS)
    assert partition.rows.column("offset").to_pylist() == [0]
    assert partition.rejects.column("reason_code").to_pylist() == list(cases)
    assert partition.reject_counts == dict.fromkeys(sorted(cases), 1)
