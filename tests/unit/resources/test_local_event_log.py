"""The embedded event log on real files: offsets, partitioning, durability, crash repair, corruption and
concurrent appenders in separate processes."""

from __future__ import annotations

import itertools
import multiprocessing
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from satlake.resources.event_log import EventLogError, LogRecord, OutgoingRecord
from satlake.resources.local_event_log import (
    COMMIT_FILE,
    CorruptRecordError,
    InvalidTopicError,
    LocalEventLog,
    fair_shares,
    kafka_partition_for_key,
    murmur2,
)

TOPIC = "satlake.telemetry"


def segment_path(directory: Path, topic: str, partition: int, base: int = 0) -> Path:
    return directory / topic / str(partition) / f"{base:020d}.log"


def read_all(event_log: LocalEventLog, topic: str, batch: int = 1000) -> list[LogRecord]:
    """Every record of ``topic``, reading ``batch`` at a time the way a consumer does."""
    offsets: dict[int, int] = {}
    records: list[LogRecord] = []
    while got := event_log.read(topic, offsets, batch, timeout_s=0):
        records.extend(got)
        for record in got:
            offsets[record.partition] = record.offset + 1
    return records


def values(n: int, prefix: str = "event") -> list[OutgoingRecord]:
    return [OutgoingRecord(value=f"{prefix}-{i}".encode()) for i in range(n)]


# ---- partitioning ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [  # Kafka's UtilsTest.testMurmur2 (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java)
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_kafka_utils_murmur2(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_keyed_records_land_in_the_partition_kafka_would_pick(tmp_path: Path) -> None:
    # Kafka: toPositive(murmur2(key)) % n. toPositive(-973932308) = 1173551340 = 4 * 293387835 + 0 and
    # toPositive(-790332482) = 1357151166 = 4 * 339287791 + 2.
    assert kafka_partition_for_key(b"21", 4) == 0
    assert kafka_partition_for_key(b"foobar", 4) == 2
    event_log = LocalEventLog(tmp_path)
    event_log.create_topic(TOPIC, 4)
    event_log.append(TOPIC, [OutgoingRecord(value=b"a", key=b"21"), OutgoingRecord(value=b"b", key=b"foobar")])
    event_log.append(TOPIC, [OutgoingRecord(value=b"c", key=b"foobar"), OutgoingRecord(value=b"d", key=b"21")])

    placed = {(r.key, r.partition, r.offset, r.value) for r in read_all(event_log, TOPIC)}

    assert placed == {
        (b"21", 0, 0, b"a"),
        (b"21", 0, 1, b"d"),
        (b"foobar", 2, 0, b"b"),
        (b"foobar", 2, 1, b"c"),
    }
    assert event_log.end_offsets(TOPIC) == {0: 2, 1: 0, 2: 2, 3: 0}


def test_unkeyed_records_round_robin_over_partitions(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path)
    event_log.create_topic(TOPIC, 4)
    event_log.append(TOPIC, values(10))
    assert event_log.end_offsets(TOPIC) == {0: 3, 1: 3, 2: 2, 3: 2}


def test_append_to_a_missing_topic_creates_it_with_the_default_partitions(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path, default_partitions=3)
    assert event_log.partitions("new.topic") == []
    assert event_log.end_offsets("new.topic") == {}
    assert event_log.append("new.topic", values(3)) == 3
    assert event_log.partitions("new.topic") == [0, 1, 2]
    event_log.create_topic("new.topic", 8)  # exists already: no change
    assert LocalEventLog(tmp_path).partitions("new.topic") == [0, 1, 2]


# ---- round trip and reading -----------------------------------------------------------------------------


def test_round_trip_keeps_offsets_timestamps_keys_and_values(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path)
    event_log.create_topic(TOPIC, 1)
    before_ms = time.time_ns() // 1_000_000
    event_log.append(
        TOPIC,
        [
            OutgoingRecord(value=b"\x00binary\xff", key=b"sat-1", timestamp_ms=1_700_000_000_123),
            OutgoingRecord(value=b"", key=b""),
            OutgoingRecord(value=b"no key"),
        ],
    )
    after_ms = time.time_ns() // 1_000_000

    first, empty_key, no_key = event_log.read(TOPIC, {}, 10, timeout_s=0)

    assert first == LogRecord(TOPIC, 0, 0, 1_700_000_000_123, b"sat-1", b"\x00binary\xff")
    assert (empty_key.offset, empty_key.key, empty_key.value) == (1, b"", b"")
    assert (no_key.offset, no_key.key, no_key.value) == (2, None, b"no key")
    assert before_ms <= empty_key.timestamp_ms == no_key.timestamp_ms <= after_ms


def test_reads_from_any_offset_across_segments_through_the_sparse_index(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path, segment_bytes=4096, index_interval_bytes=256, fsync=False)
    event_log.create_topic(TOPIC, 1)
    for batch in range(10):
        event_log.append(TOPIC, values(100, prefix=f"batch{batch}"))
    partition_dir = tmp_path / TOPIC / "0"
    assert len(list(partition_dir.glob("*.log"))) > 5, "the test needs several segments"
    assert sum(p.stat().st_size for p in partition_dir.glob("*.index")) > 0, "the test needs index entries"

    for start in [0, 1, 37, 99, 100, 101, 555, 998, 999]:
        got = event_log.read(TOPIC, {0: start}, 50, timeout_s=0)
        expected_offsets = list(range(start, min(start + 50, 1000)))
        assert [r.offset for r in got] == expected_offsets
        assert [r.value for r in got] == [f"batch{o // 100}-{o % 100}".encode() for o in expected_offsets]
    assert event_log.read(TOPIC, {0: 1000}, 50, timeout_s=0) == []


def test_max_records_is_shared_fairly_and_grouped_by_partition(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path)
    event_log.create_topic(TOPIC, 3)
    event_log.append(TOPIC, [OutgoingRecord(value=b"%d" % i, key=b"21") for i in range(100)])  # partition 0
    partition_of_x = kafka_partition_for_key(b"x", 3)
    event_log.append(TOPIC, [OutgoingRecord(value=b"x%d" % i, key=b"x") for i in range(5)])

    got = event_log.read(TOPIC, {}, 20, timeout_s=0)

    assert partition_of_x != 0
    assert [(r.partition, r.offset) for r in got] == [(0, o) for o in range(15)] + [
        (partition_of_x, o) for o in range(5)
    ]
    assert len(event_log.read(TOPIC, {}, 1, timeout_s=0)) == 1
    assert event_log.read(TOPIC, {}, 0, timeout_s=0) == []


def test_fair_shares_give_unused_shares_to_busier_partitions() -> None:
    assert fair_shares({0: 100, 1: 5, 2: 0}, 20) == {0: 15, 1: 5}
    assert fair_shares({0: 10, 1: 10, 2: 10}, 7) == {0: 3, 1: 2, 2: 2}
    assert fair_shares({0: 3, 1: 4}, 100) == {0: 3, 1: 4}


def test_end_offsets_come_from_the_commit_not_from_the_records(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path)
    event_log.create_topic(TOPIC, 2)
    assert event_log.end_offsets(TOPIC) == {0: 0, 1: 0}
    event_log.append(TOPIC, values(7))
    segment = segment_path(tmp_path, TOPIC, 0)
    segment.write_bytes(b"\x00" * segment.stat().st_size)  # records unreadable, commit intact

    assert event_log.end_offsets(TOPIC) == {0: 4, 1: 3}


def test_read_waits_up_to_the_timeout_only_when_there_is_nothing_to_read(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path)
    event_log.create_topic(TOPIC, 1)
    started = time.monotonic()
    assert event_log.read(TOPIC, {}, 10, timeout_s=0.3) == []
    assert time.monotonic() - started >= 0.3
    event_log.append(TOPIC, values(1))
    started = time.monotonic()
    assert len(event_log.read(TOPIC, {}, 10, timeout_s=30)) == 1
    assert time.monotonic() - started < 5


def test_start_offsets_outside_the_log_are_refused(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path)
    event_log.create_topic(TOPIC, 1)
    event_log.append(TOPIC, values(3))
    with pytest.raises(EventLogError, match=r"start offset 4 .* partition 0 is outside the log \(offsets 0..3\)"):
        event_log.read(TOPIC, {0: 4}, 10, timeout_s=0)
    with pytest.raises(EventLogError, match=r"offsets were given for \[7\]"):
        event_log.read(TOPIC, {7: 0}, 10, timeout_s=0)


def test_a_record_the_log_cannot_hold_fails_the_whole_append(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path)
    event_log.create_topic(TOPIC, 1)
    text = "text, not bytes"
    bad = [OutgoingRecord(value=b"ok"), OutgoingRecord(value=text), OutgoingRecord(value=b"ok")]  # type: ignore[arg-type]
    with pytest.raises(EventLogError, match=r"record #1 .* value is str, expected bytes; nothing was appended"):
        event_log.append(TOPIC, bad)
    assert event_log.end_offsets(TOPIC) == {0: 0}
    assert not segment_path(tmp_path, TOPIC, 0).exists()


# ---- durability and crash repair ------------------------------------------------------------------------


def test_records_survive_reopening_and_offsets_continue(tmp_path: Path) -> None:
    first = LocalEventLog(tmp_path)
    first.create_topic(TOPIC, 2)
    first.append(TOPIC, values(6, prefix="first"))
    first.close()

    second = LocalEventLog(tmp_path)
    second.append(TOPIC, values(4, prefix="second"))

    records = read_all(second, TOPIC)
    assert second.end_offsets(TOPIC) == {0: 5, 1: 5}
    for partition in (0, 1):
        mine = [r for r in records if r.partition == partition]
        assert [r.offset for r in mine] == [0, 1, 2, 3, 4]
    assert sorted(r.value for r in records) == sorted(
        [f"first-{i}".encode() for i in range(6)] + [f"second-{i}".encode() for i in range(4)]
    )


def test_a_torn_tail_ends_reads_cleanly_and_the_next_append_truncates_it(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path)
    event_log.create_topic(TOPIC, 1)
    event_log.append(TOPIC, values(10))
    segment = segment_path(tmp_path, TOPIC, 0)
    full_size = segment.stat().st_size
    with segment.open("r+b") as f:
        f.truncate(full_size - 5)  # the last frame loses its last 5 bytes

    reopened = LocalEventLog(tmp_path)
    assert [r.value for r in read_all(reopened, TOPIC)] == [f"event-{i}".encode() for i in range(9)]

    reopened.append(TOPIC, [OutgoingRecord(value=b"after the crash")])

    records = read_all(LocalEventLog(tmp_path), TOPIC)
    assert [r.offset for r in records] == list(range(10))
    assert records[-1].value == b"after the crash"
    assert reopened.end_offsets(TOPIC) == {0: 10}


def test_garbage_after_the_commit_is_invisible_and_cut_by_the_next_append(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path)
    event_log.create_topic(TOPIC, 1)
    event_log.append(TOPIC, values(3))
    segment = segment_path(tmp_path, TOPIC, 0)
    committed_size = segment.stat().st_size
    with segment.open("ab") as f:  # an appender died halfway through its write
        f.write(segment.read_bytes()[:40])

    assert [r.offset for r in read_all(event_log, TOPIC)] == [0, 1, 2]
    event_log.append(TOPIC, [OutgoingRecord(value=b"next")])

    assert [(r.offset, r.value) for r in read_all(event_log, TOPIC)][-2:] == [(2, b"event-2"), (3, b"next")]
    assert segment.stat().st_size == committed_size + 32 + len(b"next")


def test_complete_records_written_before_a_crash_are_kept_by_the_next_append(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path)
    event_log.create_topic(TOPIC, 1)
    event_log.append(TOPIC, values(3))
    commit = tmp_path / TOPIC / "0" / COMMIT_FILE
    commit_before = commit.read_bytes()
    event_log.append(TOPIC, values(2, prefix="written"))
    commit.write_bytes(commit_before)  # the appender died after its write, before its commit

    assert event_log.end_offsets(TOPIC) == {0: 3}
    assert len(read_all(event_log, TOPIC)) == 3  # readers stop at the commit
    event_log.append(TOPIC, [OutgoingRecord(value=b"next")])

    assert [r.value for r in read_all(event_log, TOPIC)][3:] == [b"written-0", b"written-1", b"next"]
    assert event_log.end_offsets(TOPIC) == {0: 6}


def test_a_lost_commit_file_is_rebuilt_from_the_data(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path, segment_bytes=1024, index_interval_bytes=128)
    event_log.create_topic(TOPIC, 1)
    event_log.append(TOPIC, values(200))
    (tmp_path / TOPIC / "0" / COMMIT_FILE).unlink()

    assert event_log.end_offsets(TOPIC) == {0: 200}
    event_log.append(TOPIC, values(1, prefix="more"))
    records = read_all(event_log, TOPIC)
    assert [r.offset for r in records] == list(range(201))
    assert records[-1].value == b"more-0"


def test_a_flipped_byte_raises_an_error_naming_the_file_and_offset(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path)
    event_log.create_topic(TOPIC, 1)
    event_log.append(TOPIC, [OutgoingRecord(value=b"value-%03d" % i) for i in range(10)])
    segment = segment_path(tmp_path, TOPIC, 0)
    frame_size = 32 + len(b"value-000")
    data = bytearray(segment.read_bytes())
    data[5 * frame_size + 32 + 3] ^= 0x01  # one bit of record 5's value
    segment.write_bytes(bytes(data))

    with pytest.raises(CorruptRecordError) as raised:
        read_all(event_log, TOPIC)
    message = str(raised.value)
    assert str(segment) in message
    assert f"offset 5 (byte {5 * frame_size})" in message
    assert "CRC32 mismatch" in message
    assert isinstance(raised.value, EventLogError)
    # The records before it are readable, and so are those after it.
    assert [r.offset for r in event_log.read(TOPIC, {0: 0}, 5, timeout_s=0)] == [0, 1, 2, 3, 4]
    assert [r.value for r in event_log.read(TOPIC, {0: 6}, 2, timeout_s=0)] == [b"value-006", b"value-007"]


# ---- names ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic",
    ["", ".", "..", "../outside", "a/b", "/etc", "x" * 250, "has space", "nul\x00byte", "tópico", "a\\b"],
)
def test_hostile_topic_names_are_rejected_everywhere(tmp_path: Path, topic: str) -> None:
    log_dir = tmp_path / "log"
    event_log = LocalEventLog(log_dir)
    for attempt in (
        lambda: event_log.create_topic(topic, 1),
        lambda: event_log.append(topic, values(1)),
        lambda: event_log.read(topic, {}, 1, timeout_s=0),
        lambda: event_log.end_offsets(topic),
        lambda: event_log.partitions(topic),
    ):
        with pytest.raises(InvalidTopicError, match="invalid topic name"):
            attempt()
    assert [p.name for p in tmp_path.iterdir()] == ["log"]
    assert list(log_dir.iterdir()) == []


def test_every_legal_kafka_topic_name_is_accepted(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path)
    for topic in ["x" * 249, "a.b_c-D9", "...", "_"]:
        event_log.append(topic, values(1))
        assert sum(event_log.end_offsets(topic).values()) == 1


# ---- concurrency ----------------------------------------------------------------------------------------


def append_from_another_process(directory: str, writer: int, records: int, batch: int, start: Barrier) -> None:
    """Child process: wait for the other writers, then append ``records`` payloads in batches of ``batch``."""
    event_log = LocalEventLog(Path(directory))
    start.wait()
    for first in range(0, records, batch):
        event_log.append(TOPIC, [OutgoingRecord(value=b"w%d-%05d" % (writer, i)) for i in range(first, first + batch)])


def test_four_processes_appending_to_one_partition_get_contiguous_offsets(tmp_path: Path) -> None:
    writers, per_writer, batch = 4, 5000, 100
    event_log = LocalEventLog(tmp_path)
    event_log.create_topic(TOPIC, 1)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(writers)
    processes = [
        context.Process(target=append_from_another_process, args=(str(tmp_path), writer, per_writer, batch, start))
        for writer in range(writers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0

    records = read_all(event_log, TOPIC, batch=3000)

    assert event_log.end_offsets(TOPIC) == {0: writers * per_writer}
    assert [r.offset for r in records] == list(range(writers * per_writer))
    payloads = [r.value for r in records]
    assert sorted(payloads) == sorted(b"w%d-%05d" % (w, i) for w in range(writers) for i in range(per_writer))
    for writer in range(writers):  # each writer's records keep its order
        mine = [p for p in payloads if p.startswith(b"w%d-" % writer)]
        assert mine == sorted(mine)
    writer_switches = sum(a[:2] != b[:2] for a, b in itertools.pairwise(payloads))
    assert writer_switches > writers, "the writers never interleaved: the test proved nothing"


def append_in_small_segments(directory: str, records: int, batch: int) -> None:
    """Child process: one writer rolling 64 KiB segments, so readers race with appends and segment rolls."""
    event_log = LocalEventLog(Path(directory), segment_bytes=64 * 1024, fsync=False)
    for first in range(0, records, batch):
        event_log.append(TOPIC, [OutgoingRecord(value=b"seq-%06d" % i) for i in range(first, first + batch)])


def test_a_reader_racing_an_appender_sees_only_whole_records_in_order(tmp_path: Path) -> None:
    total = 20_000
    event_log = LocalEventLog(tmp_path)
    event_log.create_topic(TOPIC, 1)
    writer = multiprocessing.get_context("spawn").Process(
        target=append_in_small_segments, args=(str(tmp_path), total, 100)
    )
    writer.start()
    seen: list[LogRecord] = []
    reads_during_appends = 0
    deadline = time.monotonic() + 120
    while len(seen) < total and time.monotonic() < deadline:
        got = event_log.read(TOPIC, {0: len(seen)}, 777, timeout_s=0.05)
        reads_during_appends += bool(got) and writer.is_alive()
        seen.extend(got)
    writer.join(timeout=60)

    assert writer.exitcode == 0
    assert [r.offset for r in seen] == list(range(total))
    assert [r.value for r in seen] == [b"seq-%06d" % i for i in range(total)]
    assert reads_during_appends > 1, "the reader never raced the writer: the test proved nothing"
    assert len(list((tmp_path / TOPIC / "0").glob("*.log"))) > 5


def test_sensors_wait_for_no_record_of_the_local_log_which_is_readable_when_append_returns(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path / "log")
    assert event_log.poll_wait(10.0) == 0.0
    event_log.create_topic(TOPIC, 1)
    started = time.monotonic()
    assert event_log.read(TOPIC, {0: 0}, 10, timeout_s=event_log.poll_wait(10.0)) == []
    assert time.monotonic() - started < 5.0  # no 10 s poll on an empty topic
    event_log.append(TOPIC, [OutgoingRecord(value=b"x", key=b"k")])
    (record,) = event_log.read(TOPIC, {0: 0}, 10, timeout_s=event_log.poll_wait(10.0))
    assert record.value == b"x"


def test_reading_some_partitions_ignores_the_offsets_of_the_others(tmp_path: Path) -> None:
    event_log = LocalEventLog(tmp_path, default_partitions=2)
    event_log.create_topic("t", 2)
    event_log.append("t", [OutgoingRecord(b"a", key=b"k1"), OutgoingRecord(b"b", key=b"k2"),
                           OutgoingRecord(b"c", key=b"k3"), OutgoingRecord(b"d", key=b"k4")])  # fmt: skip
    ends = event_log.end_offsets("t")
    read = event_log.read_columns("t", {0: 0, 1: 0}, 10, timeout_s=0, partitions=[1])
    assert set(read.partition.tolist()) <= {1} and len(read) == ends[1]
