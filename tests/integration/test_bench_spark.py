"""Smoke run of the Spark Structured Streaming peer of the ingestion benchmark against the real broker.

The first run on a machine builds the Spark virtualenv and downloads the Kafka connector and delta-spark jars
into ~/.cache/satlake/bench (minutes); later runs reuse them. No timing is asserted: the figures come from
``python -m bench.spark_ingest --size full --kafka HOST:PORT``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from bench import spark_ingest
from bench.ingest import produce
from satlake.resources.event_log import OutgoingRecord
from satlake.settings import Settings
from satlake.telemetry.codec import decode_event_columns

pytestmark = pytest.mark.integration


class PayloadSink:
    """Where ``produce`` publishes when the test only needs the payloads it would send, not a log."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def append(self, topic: str, records: Iterable[OutgoingRecord]) -> int:
        batch = [record.value for record in records]
        self.payloads += batch
        return len(batch)


def undecodable_events(events: int) -> int:
    """How many of the benchmark's events satlake's decoder rejects (the producer is deterministic)."""
    sink = PayloadSink()
    produce(sink, "expected", events)
    return len(decode_event_columns(sink.payloads).errors)


@pytest.fixture(scope="session")
def spark_peer() -> None:
    """The Spark virtualenv and jars, built on first use; the test skips, saying why, where Spark cannot run."""
    try:
        setup_s = spark_ingest.setup_spark()
    except spark_ingest.SparkUnavailable as error:
        pytest.skip(f"the Spark peer cannot run on this machine: {error}")
    if setup_s is not None:
        print(f"Spark peer set up in {setup_s:.0f} s")


# spark_peer before stack: a machine without Java or network skips before starting any server.
def test_spark_peer_decodes_every_event_into_delta(spark_peer: None, stack: Settings, tmp_path: Path) -> None:
    out = tmp_path / "spark_ingest.json"
    argv = ["--size", "small", "--kafka", stack.kafka_bootstrap, "--workdir", str(tmp_path), "--out", str(out)]
    document = json.loads(spark_ingest.main(argv).read_text())

    events = spark_ingest.EVENTS["small"]
    assert document["benchmark"] == "spark_ingest" and document["size"] == "small"
    assert document["command"] == f"python -m bench.spark_ingest --size small --kafka {stack.kafka_bootstrap}"
    satlake = next(row for row in document["rows"] if row["system"] == "satlake")
    spark = next(row for row in document["rows"] if row["system"] == spark_ingest.SPARK_SYSTEM)
    assert satlake["events"] == events and satlake["commits"] >= 1 and satlake["files_written"] >= 1
    # Every Kafka record became exactly one row, and Spark's workers rejected exactly what satlake's decoder does.
    assert spark["events"] == spark["rows_in_table"] == spark["distinct_kafka_positions"] == events
    assert spark["decode_errors"] == undecodable_events(events) > 0
    assert spark["files_written"] >= 1 and spark["cpu_s_per_million"] > 0 and spark["peak_rss_mib"] > 0
    rate = document["comparisons"][0]
    assert rate["ours"] == satlake["events_per_s"] and rate["peer"] == spark["events_per_s"]
    assert rate["met"] == (rate["ratio"] >= spark_ingest.TARGET_RATIO)
