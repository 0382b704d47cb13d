"""Visibility latency on the real stack: from an event's broker timestamp to its row answering a Trino ``SELECT``.

A producer publishes pre-encoded telemetry to a throwaway 4-partition Kafka topic at a steady rate (by default
half the Kafka ingestion rate in ``bench/results/ingest.json``), ``satlake ingest --follow --stack`` commits it to
``raw.telemetry_events`` on MinIO, and this driver asks Trino, as often as Trino answers, which offsets of the
topic are visible. An event's latency is the time of the first answer that includes its offset minus its broker
timestamp (read back from the table afterwards), so the figure includes Trino's own query time.

Needs a running stack (``satlake stack up``; settings from the environment as for every stack command).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS_DIR, SIZES, comparison, percentile, print_table, write_result
from bench.ingest import topic_columns

PARTITIONS = 4
SATELLITES = 20
DURATION_S = {"small": 10, "full": 120}
SMALL_RATE = 5_000
TARGET_P99_S = 15.0
TICK_S = 0.05
DRAIN_S = 120  # how long after the producer's last event the driver keeps polling


def half_measured_rate() -> int | None:
    """Half the Kafka ingestion rate of the last full ``bench.ingest`` run, if there is one."""
    path = RESULTS_DIR / "ingest.json"
    if not path.is_file():
        return None
    rows = json.loads(path.read_text())["rows"]
    rates = [r["events_per_s"] for r in rows if r.get("log") == "kafka" and r["step"].startswith("ingest")]
    return rates[0] // 2 if rates else None


def encoded_events(count: int) -> list[tuple[bytes, bytes]]:
    """``count`` (key, FlatBuffers payload) pairs, encoded before the clock starts."""
    from satlake.telemetry.producer import simulate_telemetry

    start_ns = time.time_ns() - count // SATELLITES * 10**9
    records = simulate_telemetry(SATELLITES, start_ns, time.time_ns(), 1.0, fault_rate=0.0, seed=3)
    return [(r.key or b"", r.value) for r in itertools.islice(records, count)]


def publish_at_rate(bootstrap: str, topic: str, events: list[tuple[bytes, bytes]], rate: int) -> dict[str, Any]:
    """Publish ``events`` at ``rate`` per second, in ticks of ``TICK_S``; returns the rate achieved."""
    from confluent_kafka import Producer

    from satlake.resources.kafka_event_log import PRODUCER_DEFAULTS

    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_DEFAULTS, "linger.ms": 5})
    per_tick = max(1, int(rate * TICK_S))
    started = time.monotonic()
    for tick, first in enumerate(range(0, len(events), per_tick)):
        for key, value in events[first : first + per_tick]:
            while True:
                try:
                    producer.produce(topic, value=value, key=key)
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.poll(0)
        delay = started + (tick + 1) * TICK_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    remaining = producer.flush(60)
    seconds = time.monotonic() - started
    return {"events": len(events) - remaining, "seconds": seconds, "rate": (len(events) - remaining) / seconds}


def visible_offsets(trino: Any, topic: str) -> dict[int, int]:
    _, rows = trino.query(
        'SELECT "partition", max("offset") FROM raw.telemetry_events WHERE topic = ? GROUP BY 1', [topic]
    )
    return {int(partition): int(offset) for partition, offset in rows}


def latencies(polls: list[tuple[float, dict[int, int]]], broker: dict[int, np.ndarray]) -> np.ndarray:
    """Seconds from each event's broker timestamp to the first poll that saw its offset (infinite for an event
    no poll saw: the ingestion fell behind)."""
    result: list[np.ndarray] = []
    seen_at = np.append(np.array([at for at, _ in polls]), np.inf)
    for partition, timestamps_s in broker.items():
        seen_max = np.maximum.accumulate(np.array([offsets.get(partition, -1) for _, offsets in polls]))
        offsets = np.arange(len(timestamps_s))
        first_poll = np.searchsorted(seen_max, offsets, side="left")  # len(polls) if never seen
        result.append(seen_at[first_poll] - timestamps_s)
    return np.concatenate(result)


def finite_or_none(seconds: float) -> float | None:
    return round(seconds, 2) if np.isfinite(seconds) else None


def broker_timestamps(bootstrap: str, topic: str) -> dict[int, np.ndarray]:
    """Each partition's broker timestamps in seconds, by offset, read back from the topic (every published event,
    whether or not the ingestion committed it)."""
    from satlake.resources.kafka_event_log import KafkaEventLog

    with KafkaEventLog(bootstrap, client_id="bench-visibility") as event_log:
        batches = list(topic_columns(event_log, topic, 1_000_000))
    partitions = [records.partition for records in batches]
    timestamps = [records.timestamp_ms for records in batches]
    partition = np.concatenate(partitions) if partitions else np.zeros(0, np.int32)
    seconds = np.concatenate(timestamps) / 1e3 if timestamps else np.zeros(0)
    # read_columns returns each partition in offset order
    return {int(p): seconds[partition == p] for p in np.unique(partition)}


def wait_until_following(log_path: Path, ingestion: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    """Block until the ingestion process has started and made its first pass (it logs "following")."""
    deadline = time.monotonic() + timeout_s
    while "following" not in log_path.read_text():
        if ingestion.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"`satlake ingest --follow` did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.2)
    time.sleep(1.0)


def run(size: str, rate: int, root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    from satlake.resources import build_resources
    from satlake.resources.trino import TrinoLake
    from satlake.settings import Mode, Settings

    settings = Settings.from_env({**os.environ, "SATLAKE_MODE": Mode.STACK.value})
    topic = f"bench.visibility.{uuid.uuid4().hex[:8]}"
    resources = build_resources(settings.with_overrides(telemetry_topic=topic))
    resources.event_log.create_topic(topic, PARTITIONS)
    trino = TrinoLake(settings.trino_host, settings.trino_port, user="admin")
    events = encoded_events(rate * DURATION_S[size])
    environment = {**os.environ, "SATLAKE_MODE": "stack", "SATLAKE_TELEMETRY_TOPIC": topic}
    ingestion = subprocess.Popen(
        [sys.executable, "-m", "satlake", "ingest", "--follow", "--stack"],
        env=environment,
        # Its report (the "following ..." line first) and any error, in one file.
        stdout=(root / "ingest.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    polls: list[tuple[float, dict[int, int]]] = []
    try:
        wait_until_following(root / "ingest.log", ingestion)

        published: dict[str, Any] = {}
        producer = threading.Thread(
            target=lambda: published.update(publish_at_rate(settings.kafka_bootstrap, topic, events, rate))
        )
        producer.start()
        deadline = time.monotonic() + DURATION_S[size] + DRAIN_S
        while time.monotonic() < deadline:
            try:
                offsets = visible_offsets(trino, topic)
            except Exception:  # the table may not be registered yet at the very start
                offsets = {}
            polls.append((time.time(), offsets))
            if not producer.is_alive() and sum(o + 1 for o in offsets.values()) >= published.get("events", -1):
                break
        producer.join()
    finally:
        ingestion.terminate()  # stops after the pass under way; a pass behind a large backlog may take long
        try:
            ingestion.wait(60)
        except subprocess.TimeoutExpired:
            ingestion.kill()  # safe: offsets are committed with the rows
            ingestion.wait()
    broker = broker_timestamps(settings.kafka_bootstrap, topic)
    resources.event_log.admin.delete_topics([topic])
    if sum(len(timestamps) for timestamps in broker.values()) != published["events"]:
        raise RuntimeError(f"{published['events']} events published, {sum(map(len, broker.values()))} in the topic")
    seconds = latencies(polls, broker)
    not_visible = int(np.isinf(seconds).sum())
    poll_gaps = np.diff([at for at, _ in polls])
    row = {
        "system": "satlake ingest --follow -> Trino SELECT",
        "target_rate": rate,
        "achieved_rate": round(published["rate"]),
        "events": published["events"],
        "p50_s": finite_or_none(percentile(list(seconds), 0.5)),
        "p99_s": finite_or_none(percentile(list(seconds), 0.99)),
        "max_s": finite_or_none(float(seconds.max())),
        "not_visible_at_the_end": not_visible,
        "trino_polls": len(polls),
        "median_poll_interval_s": round(float(np.median(poll_gaps)), 2) if len(poll_gaps) else None,
    }
    notes = [
        f"{published['events']} events over {DURATION_S[size]} s on a {PARTITIONS}-partition topic, "
        f"load average at the end {os.getloadavg()[0]:.1f}",
        "latency includes the Trino query that observed the row (a poll as soon as the previous one answered)",
    ]
    if not_visible:
        notes.append(
            f"{not_visible} events were not visible in Trino {DRAIN_S} s after the producer stopped: the ingestion "
            "fell behind this rate; percentiles they reach are reported as null"
        )
    p99 = row["p99_s"]
    met = p99 is not None and p99 < TARGET_P99_S
    return [row], [comparison("visibility p99 s", p99, None, f"< {TARGET_P99_S} s", met)], notes


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--rate", type=int, default=None, help="events/s (default: half the measured maximum)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    rate = args.rate or (SMALL_RATE if args.size == "small" else half_measured_rate())
    if rate is None:
        parser.error("no bench/results/ingest.json to take half the maximum rate from: pass --rate")
    workdir = args.workdir or Path(os.environ.get("TMPDIR", "/tmp")) / f"satlake-visibility-{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True, exist_ok=True)
    rows, comparisons, notes = run(args.size, rate, workdir)
    print_table(rows)
    extra = f"--rate {rate}" if args.rate else ""
    return write_result(
        "visibility", args.size, f"{rows[0]['events']} events at {rate}/s", rows, comparisons, args.out, notes, extra
    )


if __name__ == "__main__":
    main()
