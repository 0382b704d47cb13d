"""The processes of the fault tests that publish and ingest telemetry, kept light to start (no Dagster), since
a test starts and kills many of them: ``python -m tests.integration.fault_processes produce|ingest ...``.

Both report what they do as JSON lines on stdout (see ``fault_proxy.ReportingProcess``) and stop when their
stdin closes. The load is deterministic for a seed and a start time, so a test knows the produced events
without reading Kafka back.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
from collections.abc import Iterator

from satlake.resources.event_log import OutgoingRecord
from satlake.telemetry.ingest import IngestBatch
from satlake.telemetry.producer import simulate_telemetry
from tests.integration.fault_proxy import report_event

# 100 events per second of event time (four satellites, 25 readings a second each), starting two hours ago:
# the events' times, which are also the records' Kafka timestamps, stay inside the broker's retention and
# never run ahead of the clock (LOAD_MAX_EVENTS take 83 minutes of event time).
LOAD_SATELLITES = 4
LOAD_INTERVAL_S = 0.04
LOAD_MAX_EVENTS = 500_000
LOAD_LEAD_S = 2 * 3600
PUBLISH_EVERY_S = 0.1


def load_start_ns() -> int:
    """Where a new load starts in event time (whole seconds, so it passes through argv unchanged)."""
    return (time.time_ns() // 10**9 - LOAD_LEAD_S) * 10**9


def load_records(seed: int, start_ns: int) -> Iterator[OutgoingRecord]:
    """The load's records in publishing order: valid events only, so each has a satellite and a timestamp."""
    end_ns = start_ns + round(LOAD_MAX_EVENTS // LOAD_SATELLITES * LOAD_INTERVAL_S * 10**9)
    return simulate_telemetry(LOAD_SATELLITES, start_ns, end_ns, LOAD_INTERVAL_S, fault_rate=0.0, seed=seed)


def stdin_closed() -> threading.Event:
    """Set once the test closes our stdin: its way of saying "finish"."""
    closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
    return closed


def produce(topic: str, seed: int, start_ns: int, events_per_s: float) -> None:
    """Publish the load at ``events_per_s`` until stdin closes; report the count appended (all acknowledged)."""
    from satlake.resources.kafka_event_log import KafkaEventLog
    from satlake.settings import Settings

    # A long timeout lets the idempotent producer ride out a broker restart instead of failing the append; its
    # client log stays quiet about the refused reconnections meanwhile (a failed append still raises).
    event_log = KafkaEventLog(
        Settings.from_env().kafka_bootstrap,
        client_id="satlake-fault-load",
        request_timeout_s=60,
        producer_config={"log_level": 2},
    )
    stop = stdin_closed()
    records = load_records(seed, start_ns)
    per_tick = max(1, round(events_per_s * PUBLISH_EVERY_S))
    published, started = 0, time.monotonic()
    report_event(event="producing")
    while not stop.is_set():
        published += event_log.append(topic, list(itertools.islice(records, per_tick)))
        time.sleep(max(0.0, started + published / events_per_s - time.monotonic()))
    event_log.close()
    report_event(event="produced", events=published, seconds=round(time.monotonic() - started, 2))


def report_commit(batch: IngestBatch) -> None:
    report_event(event="committed", version=batch.delta_version, events=batch.events)


def ingest(topic: str, batch_size: int) -> None:
    """Ingest ``topic`` batch after batch until stdin closes (or the process is killed), reporting each commit;
    an error is reported and ends the process with exit code 1, as it would fail a Dagster run."""
    from satlake.resources import build_resources
    from satlake.settings import Settings
    from satlake.telemetry.ingest import ingest_until_caught_up

    resources = build_resources(Settings.from_env())
    stop = stdin_closed()
    report_event(event="ready", pid=os.getpid())
    try:
        while not stop.is_set():
            report = ingest_until_caught_up(
                resources.event_log, resources.lakehouse, topic, batch_size=batch_size, progress=report_commit
            )
            if not report.batches:
                time.sleep(0.1)
    except Exception as error:
        report_event(event="failed", error=f"{type(error).__name__}: {error}")
        sys.exit(1)


def main(argv: list[str]) -> int:
    command, topic, *rest = argv
    if command == "produce":
        produce(topic, seed=int(rest[0]), start_ns=int(rest[1]), events_per_s=float(rest[2]))
    elif command == "ingest":
        ingest(topic, batch_size=int(rest[0]))
    else:
        raise SystemExit(
            f"unknown command {command!r}: produce TOPIC SEED START_NS EVENTS_PER_S | ingest TOPIC BATCH_SIZE"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
