"""How the Kafka reader accounts for one consumed batch: which records lie before their partition's captured
end, where each partition's position moves, and which partitions are done."""

from __future__ import annotations

import numpy as np

from satlake.resources.kafka_event_log import KafkaEventLog


def settle_one_message_at_a_time(
    partitions: list[int], offsets: list[int], ends: dict[int, int]
) -> tuple[int, dict[int, int], set[int]]:
    kept, positions, pending = 0, {}, set(ends)
    for partition, offset in zip(partitions, offsets, strict=True):
        kept += offset < ends[partition]
        positions[partition] = offset + 1
        if offset + 1 >= ends[partition]:
            pending.discard(partition)
    return kept, positions, pending


def settle(partitions: list[int], offsets: list[int], ends: dict[int, int]) -> tuple[int, dict[int, int], set[int]]:
    pending, positions = set(ends), {}
    kept = KafkaEventLog._settle_batch(
        np.array(partitions, np.int32), np.array(offsets, np.int64), ends, pending, 0, positions
    )
    return kept, positions, pending


def test_runs_of_a_partition_split_by_others_and_records_past_the_end() -> None:
    partitions = [0, 0, 1, 1, 1, 0, 2]
    offsets = [5, 6, 10, 11, 12, 7, 3]
    kept, positions, pending = settle(partitions, offsets, {0: 7, 1: 20, 2: 4})
    assert kept == 6  # offset 7 of partition 0 lies at its end: read ahead, not kept
    assert positions == {0: 8, 1: 13, 2: 4}
    assert pending == {1}


def test_agrees_with_counting_message_by_message_on_random_batches() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        next_offset = {p: int(rng.integers(0, 1000)) for p in range(4)}
        ends = {p: start + int(rng.integers(0, 60)) for p, start in next_offset.items()}
        partitions: list[int] = []
        offsets: list[int] = []
        for _ in range(int(rng.integers(1, 8))):  # runs as librdkafka hands them out
            partition, length = int(rng.integers(0, 4)), int(rng.integers(1, 40))
            partitions += [partition] * length
            offsets += range(next_offset[partition], next_offset[partition] + length)
            next_offset[partition] += length
        assert settle(partitions, offsets, ends) == settle_one_message_at_a_time(partitions, offsets, ends)
