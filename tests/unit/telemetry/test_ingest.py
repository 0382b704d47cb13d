"""Exactly-once ingestion from the embedded log into raw/telemetry_events, including crashes mid-run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from satlake.resources.event_log import OutgoingRecord
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.local_event_log import LocalEventLog
from satlake.telemetry.codec import TelemetryReading, encode_event
from satlake.telemetry.ingest import (
    committed_offsets,
    event_day_hint,
    ingest_continuously,
    ingest_until_caught_up,
    pending_event_counts,
)
from satlake.telemetry.tables import RAW_TELEMETRY_EVENTS

TOPIC = "satlake.telemetry"
DAY_NS = 86_400 * 10**9


def reading(i: int, base_ns: int) -> TelemetryReading:
    return TelemetryReading(f"SAT-{i % 3:03d}", base_ns + i * 10**9, 20.0, 50.0, 550.0, 0.1, 0.2, 0.3)


def publish(log: LocalEventLog, count: int, base_ns: int, first: int = 0) -> None:
    records = [
        OutgoingRecord(encode_event(reading(i, base_ns)), key=reading(i, base_ns).satellite_name.encode())
        for i in range(first, first + count)
    ]
    log.append(TOPIC, records)


def raw_positions(lakehouse: Lakehouse) -> list[tuple[int, int]]:
    raw = lakehouse.read(RAW_TELEMETRY_EVENTS, columns=["partition", "offset"])
    assert raw is not None
    return sorted(zip(raw.column("partition").to_pylist(), raw.column("offset").to_pylist(), strict=True))


@pytest.fixture
def log_and_lake(tmp_path: Path) -> tuple[LocalEventLog, Lakehouse]:
    log = LocalEventLog(tmp_path / "log", fsync=False)
    log.create_topic(TOPIC, 4)
    return log, Lakehouse(str(tmp_path / "lake"))


def test_every_event_is_ingested_once_in_batches(log_and_lake: tuple[LocalEventLog, Lakehouse]) -> None:
    log, lakehouse = log_and_lake
    publish(log, 2_500, time.time_ns() - DAY_NS)
    assert sum(pending_event_counts(log, lakehouse, TOPIC).values()) == 2_500
    report = ingest_until_caught_up(log, lakehouse, TOPIC, batch_size=700)
    assert report.events == 2_500 and len(report.batches) == 4
    positions = raw_positions(lakehouse)
    assert len(positions) == len(set(positions)) == 2_500
    assert committed_offsets(lakehouse, TOPIC, [0, 1, 2, 3]) == log.end_offsets(TOPIC)
    assert pending_event_counts(log, lakehouse, TOPIC) == dict.fromkeys(range(4), 0)
    # A second run finds nothing; new events are picked up from where the lakehouse stopped.
    assert ingest_until_caught_up(log, lakehouse, TOPIC).events == 0
    publish(log, 300, time.time_ns() - DAY_NS, first=2_500)
    assert ingest_until_caught_up(log, lakehouse, TOPIC).events == 300
    assert len(set(raw_positions(lakehouse))) == 2_800


def test_following_keeps_the_table_open_and_continues_after_commits_made_by_others(
    log_and_lake: tuple[LocalEventLog, Lakehouse],
) -> None:
    log, lakehouse = log_and_lake
    base_ns = time.time_ns() - DAY_NS
    publish(log, 500, base_ns)
    checks = 0

    def should_stop() -> bool:
        nonlocal checks
        checks += 1
        if checks == 2:  # between two passes another ingestion commits 300 events, then 200 more arrive
            publish(log, 300, base_ns, first=500)
            assert ingest_until_caught_up(log, lakehouse, TOPIC).events == 300
            publish(log, 200, base_ns, first=800)
        return checks > 3

    report = ingest_continuously(log, lakehouse, TOPIC, should_stop, batch_size=400, poll_interval_s=0)
    # The kept-open table caught up with the other commit: its offsets were neither read again nor refused.
    assert report.events == 700
    positions = raw_positions(lakehouse)
    assert len(positions) == len(set(positions)) == 1_000
    assert committed_offsets(lakehouse, TOPIC, [0, 1, 2, 3]) == log.end_offsets(TOPIC)


def test_payloads_are_kept_exactly_as_received(log_and_lake: tuple[LocalEventLog, Lakehouse]) -> None:
    log, lakehouse = log_and_lake
    log.append(TOPIC, [OutgoingRecord(b"\x00garbage\xff", key=b"SAT-001")])
    ingest_until_caught_up(log, lakehouse, TOPIC)
    raw = lakehouse.read(RAW_TELEMETRY_EVENTS)
    assert raw is not None and raw.column("payload").to_pylist() == [b"\x00garbage\xff"]
    assert raw.column("key").to_pylist() == [b"SAT-001"]


def test_event_day_hint_uses_the_event_time_else_the_arrival_day() -> None:
    received = 20_000 * DAY_NS + 5
    event = encode_event(reading(0, 19_990 * DAY_NS))
    assert event_day_hint(event, received).toordinal() - event_day_hint(b"junk", received).toordinal() == -10
    future = encode_event(reading(0, received + 2 * DAY_NS))
    assert event_day_hint(future, received) == event_day_hint(b"junk", received)


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from satlake.resources.lakehouse import Lakehouse
    from satlake.resources.local_event_log import LocalEventLog
    from satlake.telemetry.ingest import ingest_until_caught_up

    root, when = sys.argv[1], sys.argv[2]
    def die(*_args):
        os.kill(os.getpid(), signal.SIGKILL)
    lakehouse = Lakehouse(root + "/lake", on_table_written=die if when == "after_commit" else None)
    log = LocalEventLog(root + "/log", fsync=False)
    if when == "mid_batch":
        import satlake.telemetry.ingest as ingest
        original = ingest.raw_event_rows
        def rows_then_die(records, batch_id, received_at):
            table = original(records, batch_id, received_at)
            if ingest.committed_offsets(lakehouse, "satlake.telemetry", [0, 1, 2, 3]) != {0: 0, 1: 0, 2: 0, 3: 0}:
                die()  # second batch: rows built, commit not yet written
            return table
        ingest.raw_event_rows = rows_then_die
    ingest_until_caught_up(log, lakehouse, "satlake.telemetry", batch_size=400)
    """
)


@pytest.mark.parametrize("when", ["after_commit", "mid_batch"])
def test_killed_ingestion_neither_loses_nor_duplicates(tmp_path: Path, when: str) -> None:
    log = LocalEventLog(tmp_path / "log", fsync=False)
    log.create_topic(TOPIC, 4)
    publish(log, 2_000, time.time_ns() - DAY_NS)
    killed = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path), when], check=False)
    assert killed.returncode == -9, "the ingestion process should have been killed"
    lakehouse = Lakehouse(str(tmp_path / "lake"))
    before = len(raw_positions(lakehouse))
    assert 0 < before < 2_000
    ingest_until_caught_up(log, lakehouse, TOPIC, batch_size=400)
    positions = raw_positions(lakehouse)
    assert len(positions) == len(set(positions)) == 2_000


def test_batch_day_hints_match_the_single_event_rule() -> None:
    from satlake.telemetry.ingest import event_day_hints

    received = 20_000 * DAY_NS + 5
    payloads = [
        encode_event(reading(0, 19_990 * DAY_NS)),
        b"junk",
        encode_event(reading(0, received + 2 * DAY_NS)),
        encode_event(TelemetryReading("SAT-001", 0, 1, 1, 500, 0, 0, 0)),
        encode_event(TelemetryReading("SAT-001", 2**64 - 1, 1, 1, 500, 0, 0, 0)),
    ]
    assert event_day_hints(payloads, received).to_pylist() == [event_day_hint(p, received) for p in payloads]


def test_parallel_workers_share_the_partitions_and_ingest_every_event_once(tmp_path: Path) -> None:
    from functools import partial

    from satlake.resources import build_resources
    from satlake.settings import Settings
    from satlake.telemetry.ingest import ingest_in_parallel, log_and_lake_from_settings

    settings = Settings.from_env({"SATLAKE_ROOT": str(tmp_path)})
    resources = build_resources(settings)
    resources.event_log.create_topic(TOPIC, 4)
    publish(resources.event_log, 3_000, time.time_ns() - DAY_NS)  # type: ignore[arg-type]
    open_log_and_lake = partial(log_and_lake_from_settings, settings)
    report = ingest_in_parallel(open_log_and_lake, TOPIC, workers=2, batch_size=400)
    assert report.events == 3_000
    # Each worker committed its own partitions' offsets; together they cover the whole log.
    filled = {p for p, end in resources.event_log.end_offsets(TOPIC).items() if end}
    assert len(filled) >= 2 and {p for batch in report.batches for p in batch.end_offsets} == filled
    positions = raw_positions(resources.lakehouse)
    assert len(positions) == len(set(positions)) == 3_000
    assert committed_offsets(resources.lakehouse, TOPIC, [0, 1, 2, 3]) == resources.event_log.end_offsets(TOPIC)
    assert ingest_in_parallel(open_log_and_lake, TOPIC, workers=2).events == 0
