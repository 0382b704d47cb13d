"""Bronze decoding and validation: every raw event ends in exactly one of bronze or rejects, with a reason."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from satlake.resources.event_log import LogRecord
from satlake.telemetry.bronze import DUPLICATE_EVENT, STORED_KEY_COLUMNS, build_bronze_partition
from satlake.telemetry.checks import check_keys_not_null_and_unique, check_row_count_reconciliation
from satlake.telemetry.codec import TelemetryReading, encode_event, encode_event_with_builder
from satlake.telemetry.ingest import raw_event_rows

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
        encode_event(reading(temp_c=500.0)),
        encode_event(reading(battery_charge_pct=float("nan"))),
        encode_event(reading(name="bad name!")),
        encode_event(reading(offset_s=3600)),  # an hour ahead of its arrival
        encode_event(TelemetryReading("SAT-001", 0, 1, 1, 500, 0, 0, 0)),
        good,  # a producer retry
        encode_event(reading(offset_s=-30)),
    ]
    partition = build_bronze_partition(raw_rows(payloads))
    assert partition.rows.num_rows == 2
    assert partition.rows.column("offset").to_pylist() == [0, 9]
    rejects = dict(zip(partition.rejects.column("offset").to_pylist(), partition.rejects.to_pylist(), strict=True))
    assert sorted(rejects) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert rejects[2]["reason_code"] == "truncated"
    assert rejects[3]["reason_code"] == "value_out_of_range" and "temp_c" in rejects[3]["reason"]
    assert "500" in rejects[3]["reason"]
    assert rejects[4]["reason_code"] == "non_finite_value"
    assert rejects[5]["reason_code"] == "invalid_satellite_name"
    assert rejects[6]["reason_code"] == "timestamp_in_future"
    assert rejects[7]["reason_code"] == "timestamp_before_1970"
    assert rejects[8]["reason_code"] == "duplicate_event" and "t[0]@0" in rejects[8]["reason"]
    assert rejects[1]["payload"] == b"\xde\xad\xbe\xef" * 3  # kept exactly as received
    assert all(r["reason"] for r in rejects.values())


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
            payloads.append(encode_event(reading(temp_c=rng.choice([500.0, float("nan"), -1e9]))))
        elif kind == 2:
            payloads.append(encode_event(reading(name=rng.choice(["bad name", "Ünïcode", "", "x" * 70]))))
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


@pytest.mark.parametrize("seed", range(6))
def test_columnar_path_matches_the_event_by_event_reference(seed: int) -> None:
    raw = raw_rows(mixed_payloads(400, seed))
    columnar, reference = build_bronze_partition(raw), build_bronze_partition(raw, columnar=False)
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
