"""Telemetry ingestion: sustained events/s of ``ingest_until_caught_up`` from a 4-partition topic into the raw
Delta table, bronze decode+validate throughput, and the ceiling peer (reading the log with no decoding, no sink).

The embedded event log always runs; with ``--kafka host:port`` the same workload also runs against a Kafka
broker, with a bare confluent-kafka ``consume(num_messages=10000)`` loop as the ceiling.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import (
    SIZES,
    comparison,
    measurement_row,
    print_table,
    run_isolated,
    write_result,
)

EVENTS = {"small": 20_000, "full": 1_000_000}
PARTITIONS = 4
SATELLITES = 20
BATCH_SIZE = 100_000
WORKERS = 2  # satlake ingest --workers: one process per core of the benchmark machine
TARGET_EVENTS_PER_S = 250_000


def produce(event_log: Any, topic: str, events: int) -> float:
    """Append ``events`` simulated events (1 s cadence, 1% faults) to ``topic``; returns the seconds it took."""
    from satlake.telemetry.producer import publish_records, simulate_telemetry

    start_ns = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
    end_ns = start_ns + -(-events // SATELLITES) * 10**9
    started = time.perf_counter()
    records = simulate_telemetry(SATELLITES, start_ns, end_ns, 1.0, fault_rate=0.01, seed=7)
    published = publish_records(event_log, topic, itertools.islice(records, events), batch_size=20_000)
    if published != events:
        raise RuntimeError(f"produced {published} events, expected {events}")
    return time.perf_counter() - started


def open_event_log(kind: str, location: str) -> Any:
    if kind == "local":
        from satlake.resources.local_event_log import LocalEventLog

        return LocalEventLog(Path(location), default_partitions=PARTITIONS, fsync=False)
    from satlake.resources.kafka_event_log import KafkaEventLog

    return KafkaEventLog(location)


@contextmanager
def throwaway_topic(bootstrap: str, prefix: str = "bench.telemetry") -> Iterator[str]:
    """A fresh 4-partition topic ``<prefix>.<random>``, deleted afterwards (the broker may be shared).

    The simulated events carry timestamps from their own past time, which the broker's 7-day retention would
    delete within minutes, while a large run is still producing or reading: the topic stamps records on
    arrival instead, so a topic left behind by an interrupted run still expires.
    """
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    topic = f"{prefix}.{uuid.uuid4().hex[:8]}"
    event_log = open_event_log("kafka", bootstrap)
    event_log.create_topic(topic, PARTITIONS)
    try:
        stamp_on_arrival = ConfigEntry(
            "message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET
        )
        resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[stamp_on_arrival])
        for future in event_log.admin.incremental_alter_configs([resource]).values():
            future.result(timeout=30)
        yield topic
    finally:
        for future in event_log.admin.delete_topics([topic]).values():
            future.result(timeout=30)  # the request is asynchronous: without waiting it may never be sent


def open_log_and_lake(kind: str, location: str, lake_root: str) -> tuple[Any, Any]:
    from satlake.resources.lakehouse import Lakehouse

    return open_event_log(kind, location), Lakehouse(lake_root)


def ingest_step(kind: str, location: str, lake_root: str, topic: str, workers: int = 1) -> dict[str, Any]:
    """satlake's ingestion until caught up (runs in its own process; ``workers`` > 1: one process per share
    of the partitions, as ``satlake ingest --workers``)."""
    from functools import partial

    from satlake.telemetry.ingest import ingest_in_parallel, ingest_until_caught_up

    if workers > 1:
        report = ingest_in_parallel(partial(open_log_and_lake, kind, location, lake_root), topic, workers, BATCH_SIZE)
    else:
        report = ingest_until_caught_up(*open_log_and_lake(kind, location, lake_root), topic, BATCH_SIZE)
    return {"events": report.events, "batches": len(report.batches)}


def read_only_step(kind: str, location: str, topic: str, client_defaults: bool = False) -> dict[str, Any]:
    """Ceiling: read every record of the topic and drop it (no decoding, no sink)."""
    if kind == "kafka":
        return bare_kafka_consume(location, topic, client_defaults)
    return {"events": sum(map(len, topic_columns(open_event_log(kind, location), topic, BATCH_SIZE)))}


def topic_columns(event_log: Any, topic: str, batch_size: int) -> Iterator[Any]:
    """Every record of ``topic`` up to its end offsets at the start, as ``RecordColumns`` batches (each
    partition in offset order)."""
    end = event_log.end_offsets(topic)
    offsets = dict.fromkeys(end, 0)
    while any(offsets[p] < end[p] for p in end):
        records = event_log.read_columns(topic, offsets, batch_size)
        for partition in set(records.partition.tolist()):
            offsets[partition] = int(records.offset[records.partition == partition].max()) + 1
        yield records


def bare_kafka_consume(bootstrap: str, topic: str, client_defaults: bool = False) -> dict[str, Any]:
    """A bare confluent-kafka loop: ``consume(num_messages=10000)`` until every partition's end offset, with
    the consumer settings satlake's reader uses (``client_defaults``: librdkafka's own defaults)."""
    from confluent_kafka import Consumer, TopicPartition

    from satlake.resources.kafka_event_log import CONSUMER_DEFAULTS

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            **({} if client_defaults else CONSUMER_DEFAULTS),
        }
    )
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = list(metadata.topics[topic].partitions)
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    remaining, events = {p for p in partitions if ends[p] > 0}, 0
    while remaining:
        for message in consumer.consume(num_messages=10_000, timeout=1.0):
            if message.error() is not None:
                continue
            events += 1
            if message.offset() + 1 >= ends[message.partition()]:
                remaining.discard(message.partition())
    consumer.close()
    return {"events": events}


def bronze_step(lake_root: str) -> dict[str, Any]:
    """Decode + validate + de-duplicate every raw event into bronze rows (no write), one event day at a time."""
    import pyarrow.dataset as ds

    from satlake.resources.lakehouse import Lakehouse
    from satlake.telemetry.bronze import build_bronze_partition
    from satlake.telemetry.tables import RAW_TELEMETRY_EVENTS

    table = Lakehouse(lake_root).open(RAW_TELEMETRY_EVENTS)
    dataset = table.to_pyarrow_dataset()
    days = sorted(set(dataset.to_table(columns=["event_date"]).column("event_date").to_pylist()))
    rows = rejects = 0
    decode_s = 0.0
    for day in days:
        raw = dataset.to_table(filter=ds.field("event_date") == day)
        started = time.perf_counter()
        partition = build_bronze_partition(raw)
        decode_s += time.perf_counter() - started
        rows += partition.rows.num_rows
        rejects += partition.rejects.num_rows
    return {"events": rows + rejects, "rows": rows, "rejects": rejects, "decode_s": decode_s, "days": len(days)}


def data_files(table_dir: Path) -> int:
    return sum(1 for _ in table_dir.rglob("*.parquet"))


def measure(
    kind: str, location: str, workdir: Path, events: int, label: str, topic: str = "bench.telemetry"
) -> list[dict[str, Any]]:
    produce_s = produce(open_event_log(kind, location), topic, events)
    lake_root = str(workdir / f"lake-{label}")
    rows: list[dict[str, Any]] = []

    def row(system: str, step: str, measured: Any, count: int, extra: dict[str, Any] | None = None) -> dict:
        return {"log": label} | measurement_row(system, step, measured, count, **(extra or {}))

    ceiling = run_isolated(read_only_step, kind, location, topic)
    name = "bare confluent-kafka consume" if kind == "kafka" else "bare LocalEventLog.read_columns"
    rows.append(row(name, "read only, no decode, no sink", ceiling, ceiling.value["events"]))
    if kind == "kafka":
        untuned = run_isolated(read_only_step, kind, location, topic, True)
        rows.append(
            row(
                "bare confluent-kafka consume, librdkafka's default settings",
                "reference: no decode, no sink, fetch.queue.backoff.ms 1000",
                untuned,
                untuned.value["events"],
            )
        )
    for workers in (1, WORKERS):
        lake = lake_root if workers == 1 else f"{lake_root}-{workers}-workers"
        ingest = run_isolated(ingest_step, kind, location, lake, topic, workers)
        rows.append(
            row(
                "satlake" if workers == 1 else f"satlake, {workers} processes",
                "ingest_until_caught_up -> raw Delta" if workers == 1 else "ingest_in_parallel -> raw Delta",
                ingest,
                ingest.value["events"],
                {
                    "batches": ingest.value["batches"],
                    "files_written": data_files(Path(lake) / "raw" / "telemetry_events"),
                },
            )
        )
    bronze = run_isolated(bronze_step, lake_root)
    rows.append(
        row(
            "satlake",
            "build_bronze_partition (decode+validate, incl. raw read)",
            bronze,
            bronze.value["events"],
            {
                "rejects": bronze.value["rejects"],
                "decode_only_events_per_s": round(bronze.value["events"] / bronze.value["decode_s"]),
            },
        )
    )
    rows.append(
        {
            "log": label,
            "system": "producer",
            "step": "simulate+encode+append",
            "events": events,
            "wall_s": round(produce_s, 2),
            "events_per_s": round(events / produce_s),
        }
    )
    return rows


def measure_kafka(bootstrap: str, workdir: Path, events: int) -> list[dict[str, Any]]:
    """The Kafka half, on a throwaway topic that is deleted afterwards (the broker may be shared)."""
    with throwaway_topic(bootstrap) as topic:
        return measure("kafka", bootstrap, workdir, events, "kafka", topic)


def run(
    size: str, workdir: Path, kafka: str | None, events: int | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    events = events or EVENTS[size]
    rows = measure("local", str(workdir / "eventlog"), workdir, events, "embedded")
    notes = [f"{events} events, {SATELLITES} satellites, 1% faults, {PARTITIONS} partitions, batch {BATCH_SIZE}"]
    if kafka:
        try:
            rows += measure_kafka(kafka, workdir, events)
        except Exception as error:  # the broker is optional: record why the Kafka half is missing
            notes.append(f"Kafka half not measured: {type(error).__name__}: {error}")
    comparisons = []
    for label in ("embedded", "kafka"):
        ceiling = next((r for r in rows if r["log"] == label and r["step"].startswith("read only")), None)
        for ours in (r for r in rows if r["log"] == label and r["step"].startswith("ingest")):
            if ceiling is None:
                continue
            comparisons.append(
                comparison(
                    f"{label}: {ours['system']} events/s vs bare read",
                    ours["events_per_s"],
                    ceiling["events_per_s"],
                    ">= 0.5x ceiling; >= 250,000/s",
                    ours["events_per_s"] >= 0.5 * ceiling["events_per_s"]
                    and ours["events_per_s"] >= TARGET_EVENTS_PER_S,
                )
            )
    return rows, comparisons, notes


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--kafka", default=None, help="bootstrap servers of a Kafka broker to also measure")
    parser.add_argument("--events", type=int, default=None, help="events to produce (default: by --size)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="satlake-bench-ingest-", dir=args.workdir) as scratch:
        rows, comparisons, notes = run(args.size, Path(scratch), args.kafka, args.events)
    print_table(rows)
    print()
    print_table(comparisons)
    for note in notes:
        print(note)
    data_size = f"{args.events or EVENTS[args.size]:,} FlatBuffers events on {PARTITIONS} partitions"
    options = [f"--kafka {args.kafka}" if args.kafka else "", f"--events {args.events}" if args.events else ""]
    extra = " ".join(option for option in options if option)
    path = write_result("ingest", args.size, data_size, rows, comparisons, args.out, notes, extra)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
