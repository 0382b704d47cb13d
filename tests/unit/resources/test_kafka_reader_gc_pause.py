"""The Kafka reader pauses Python's cyclic garbage collector while it consumes (every confluent-kafka ``Message``
is a tracked object; see ``_GarbageCollectionPause``), and always gives it back."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Message

from satlake.resources.kafka_event_log import KafkaEventLog, _GarbageCollectionPause


@pytest.fixture(autouse=True)
def collector_left_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_the_collector_is_off_inside_and_back_on_after_even_when_the_read_fails() -> None:
    pause = _GarbageCollectionPause()
    with pause.paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), pause.paused():
        raise RuntimeError("broker gone")
    assert gc.isenabled()


def test_a_collector_someone_else_turned_off_stays_off() -> None:
    gc.disable()
    with _GarbageCollectionPause().paused():
        pass
    assert not gc.isenabled()


def test_readers_in_two_threads_share_one_pause_until_the_last_leaves() -> None:
    pause = _GarbageCollectionPause()
    inside, leave = threading.Event(), threading.Event()

    def other_reader() -> None:
        with pause.paused():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=other_reader)
    with pause.paused():
        thread.start()
        assert inside.wait(5)
    assert not gc.isenabled()  # the other reader is still consuming
    leave.set()
    thread.join(5)
    assert gc.isenabled()


class RecordingConsumer:
    """Hands out real ``Message`` objects, noting whether the collector ran while it was asked."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages
        self.collector_enabled_during_consume: list[bool] = []

    def assign(self, _partitions: Any) -> None:
        pass

    def unassign(self) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        self.collector_enabled_during_consume.append(gc.isenabled())
        batch, self.messages = self.messages[:num_messages], self.messages[num_messages:]
        return batch


def test_read_columns_consumes_with_the_collector_paused_and_restores_it() -> None:
    messages = [
        Message(topic="t", partition=0, offset=n, key=b"sat-1", value=b"payload-%d" % n, timestamp=(1, 1_000 + n))
        for n in range(3)
    ]
    consumer = RecordingConsumer(messages)
    reader = KafkaEventLog("127.0.0.1:1")
    reader._consumer = consumer  # type: ignore[assignment]
    reader.watermarks = lambda topic: {0: (0, 3)}  # type: ignore[method-assign]

    columns = reader.read_columns("t", {0: 0}, max_records=10)

    assert columns.offset.tolist() == [0, 1, 2] and columns.timestamp_ms.tolist() == [1_000, 1_001, 1_002]
    assert columns.value.to_pylist() == [b"payload-0", b"payload-1", b"payload-2"]
    assert consumer.collector_enabled_during_consume == [False]
    assert gc.isenabled()
