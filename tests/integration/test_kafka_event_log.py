"""KafkaEventLog against the real broker: appends, offsets, exact reads, resumption and key partitioning."""

from __future__ import annotations

import time
import uuid

import pytest

from satlake.resources.event_log import OutgoingRecord
from satlake.resources.kafka_event_log import KafkaEventLog
from satlake.settings import Settings

pytestmark = pytest.mark.integration

PARTITIONS = 4


def kafka_murmur2(data: bytes) -> int:
    """Java Kafka's ``Utils.murmur2`` as an unsigned 32-bit value (the default partitioner's key hash)."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    for i in range(len(data) // 4):
        k = int.from_bytes(data[i * 4 : i * 4 + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail, rest = len(data) & ~3, len(data) % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def java_default_partition(key: bytes, partitions: int) -> int:
    return (kafka_murmur2(key) & 0x7FFFFFFF) % partitions


def test_murmur2_matches_kafkas_published_vector() -> None:
    # From Kafka's UtilsTest: murmur2("21") == -973932308 as a Java int.
    assert kafka_murmur2(b"21") == -973932308 & 0xFFFFFFFF


@pytest.fixture
def event_log(stack: Settings) -> KafkaEventLog:
    with KafkaEventLog(stack.kafka_bootstrap, client_id="satlake-it") as log:
        yield log


@pytest.fixture
def topic(event_log: KafkaEventLog) -> str:
    name = f"satlake.it.{uuid.uuid4().hex[:10]}"
    event_log.create_topic(name, PARTITIONS)
    return name


def records(count: int, satellites: int = 7) -> list[OutgoingRecord]:
    return [OutgoingRecord(value=f"event-{i}".encode(), key=f"sat-{i % satellites}".encode()) for i in range(count)]


def test_stack_topics_exist_with_their_partition_counts(stack: Settings, event_log: KafkaEventLog) -> None:
    assert event_log.partitions(stack.telemetry_topic) == list(range(stack.telemetry_partitions))
    assert event_log.partitions(stack.object_events_topic) == [0]


def test_create_topic_is_idempotent_and_unknown_topics_have_no_partitions(event_log: KafkaEventLog, topic: str) -> None:
    event_log.create_topic(topic, PARTITIONS)
    assert event_log.partitions(topic) == [0, 1, 2, 3]
    assert event_log.partitions(f"satlake.it.absent-{uuid.uuid4().hex}") == []
    assert event_log.end_offsets(f"satlake.it.absent-{uuid.uuid4().hex}") == {}


def test_round_trip_reads_exactly_what_was_appended(event_log: KafkaEventLog, topic: str) -> None:
    start = event_log.end_offsets(topic)
    assert start == dict.fromkeys(range(PARTITIONS), 0)
    sent = records(1000)
    assert event_log.append(topic, sent) == 1000

    end = event_log.end_offsets(topic)
    assert sum(end.values()) == 1000

    read = event_log.read(topic, start, max_records=5000)
    assert len(read) == 1000
    assert sorted(r.value for r in read) == sorted(r.value for r in sent)
    for partition in range(PARTITIONS):
        offsets = [r.offset for r in read if r.partition == partition]
        assert offsets == list(range(end[partition]))
    # The default Java partitioner (murmur2) decides where each key goes, so Java producers agree with us.
    for record in read:
        assert record.partition == java_default_partition(record.key, PARTITIONS), record.key
    # Nothing is left to read from the end offsets.
    assert event_log.read(topic, end, max_records=10, timeout_s=1.0) == []


def test_read_resumes_from_mid_offsets_without_loss_or_duplicates(event_log: KafkaEventLog, topic: str) -> None:
    event_log.append(topic, records(600))
    first = event_log.read(topic, {}, max_records=250)
    assert len(first) == 250

    resume_at = {p: 0 for p in range(PARTITIONS)}
    for record in first:
        resume_at[record.partition] = max(resume_at[record.partition], record.offset + 1)
    rest = event_log.read(topic, resume_at, max_records=10_000)

    positions = [(r.partition, r.offset) for r in first + rest]
    assert len(positions) == 600
    assert len(set(positions)) == 600
    assert sorted(r.value for r in first + rest) == sorted(r.value for r in records(600))


def test_records_appended_after_the_read_started_are_left_for_the_next_read(
    event_log: KafkaEventLog, topic: str
) -> None:
    event_log.append(topic, records(40))
    end_before = event_log.end_offsets(topic)
    first = event_log.read(topic, {}, max_records=1000)
    event_log.append(topic, records(10))
    second = event_log.read(topic, end_before, max_records=1000)
    assert len(first) == 40
    assert len(second) == 10


def test_timestamps_are_kept_or_stamped_at_append(event_log: KafkaEventLog, topic: str) -> None:
    explicit = 1_700_000_000_123
    before_ms = int(time.time() * 1000)
    event_log.append(
        topic,
        [
            OutgoingRecord(value=b"explicit", key=b"k", timestamp_ms=explicit),
            OutgoingRecord(value=b"now", key=b"k"),
        ],
    )
    after_ms = int(time.time() * 1000)
    by_value = {r.value: r for r in event_log.read(topic, {}, max_records=10)}
    assert by_value[b"explicit"].timestamp_ms == explicit
    assert before_ms - 1000 <= by_value[b"now"].timestamp_ms <= after_ms + 1000
    assert by_value[b"explicit"].partition == by_value[b"now"].partition
    assert by_value[b"now"].offset == by_value[b"explicit"].offset + 1


def test_unkeyed_records_and_empty_values_round_trip(event_log: KafkaEventLog, topic: str) -> None:
    event_log.append(topic, [OutgoingRecord(value=b""), OutgoingRecord(value=b"\x00\xff" * 1000)])
    read = event_log.read(topic, {}, max_records=10)
    assert sorted(r.value for r in read) == [b"", b"\x00\xff" * 1000]
    assert all(r.key is None for r in read)
