"""The Spark peer of the ingestion benchmark: a Structured Streaming query that reads a Kafka topic, decodes the
FlatBuffers events in the Python workers with satlake's own decoder, and appends them to a Delta table
partitioned by event day, until it has caught up (``trigger(availableNow=True)``).

Runs inside the Spark virtualenv that ``bench.spark_ingest`` sets up (pyspark, not satlake's dependencies), with
the repository on PYTHONPATH so the workers import ``satlake.telemetry.codec``. Prints one JSON document: the
events the query read, its wall time from start until caught up, and the CPU time and peak resident memory of
the whole process tree (this interpreter, the JVM, the Python workers) over that span.

    python -m bench.spark_streaming_query --kafka HOST:PORT --topic T --table DIR --checkpoint DIR --ivy DIR
    python -m bench.spark_streaming_query --resolve-only --ivy DIR     # download the jars, run nothing
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SPARK_PACKAGES = ("org.apache.spark:spark-sql-kafka-0-10_2.13:4.0.0", "io.delta:delta-spark_2.13:4.0.0")
NANOS_PER_DAY = 86_400 * 10**9
# Same routing rule as satlake's event_day_hint: an event's own day unless it is stamped beyond this skew.
MAX_CLOCK_SKEW_NS = 5 * 60 * 10**9
DECODED_SCHEMA = (
    "partition int, offset long, kafka_timestamp timestamp, payload binary, satellite_name string, "
    "timestamp_ns long, temp_c double, battery_charge_pct double, altitude_km double, sensor1 double, "
    "sensor2 double, sensor3 double, decode_error string, event_date date"
)
MEASUREMENT_FIELDS = ("temp_c", "battery_charge_pct", "altitude_km", "sensor1", "sensor2", "sensor3")
SAMPLE_INTERVAL_S = 0.5
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def child_pids(pid: int) -> list[int]:
    children: list[int] = []
    try:
        for task in os.scandir(f"/proc/{pid}/task"):
            children += [int(child) for child in Path(task.path, "children").read_text().split()]
    except OSError:  # it exited while we looked
        pass
    return children


def process_usage(pid: int) -> tuple[float, int]:
    """CPU seconds (its own and its reaped children's) and resident bytes of one process; zeros if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0, 0
    # Fields after the command name, which may itself contain spaces and parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return (utime + stime + cutime + cstime) / _CLOCK_TICKS, int(fields[21]) * _PAGE_BYTES


def tree_usage(root: int) -> tuple[float, int]:
    """CPU seconds and resident bytes of ``root`` and all its descendants.

    A descendant that exited counts through its parent's reaped-children time, so nothing is lost as long as
    the tree reaps its children (the JVM and pyspark's worker daemon do)."""
    cpu_s, rss, pending = 0.0, 0, [root]
    while pending:
        pid = pending.pop()
        process_cpu_s, process_rss = process_usage(pid)
        cpu_s += process_cpu_s
        rss += process_rss
        pending += child_pids(pid)
    return cpu_s, rss


class PeakMemorySampler:
    """Samples the resident memory of a process tree in a background thread and keeps the highest sum."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, tree_usage(self.root)[1])
            self._stop.wait(SAMPLE_INTERVAL_S)

    def __enter__(self) -> PeakMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def decode_kafka_batches(batches: Iterator[Any]) -> Iterator[Any]:
    """``mapInArrow`` body, run in the Python workers: Kafka rows in, decoded event rows out.

    Every record yields exactly one row; a payload that does not decode keeps its bytes and gets the decoder's
    reason code in ``decode_error``, with the measurements null."""
    import numpy as np
    import pyarrow as pa

    from satlake.telemetry.codec import decode_event_columns

    for batch in batches:
        rows = batch.num_rows
        decoded = decode_event_columns(batch.column("value").to_pylist())
        found = np.array(decoded.source_index, dtype=np.int64)
        missing = np.ones(rows, dtype=bool)
        missing[found] = False
        names: list[str | None] = [None] * rows
        errors: list[str | None] = [None] * rows
        for index, name in zip(decoded.source_index, decoded.satellite_name, strict=True):
            names[index] = name
        for index, error in decoded.errors:
            errors[index] = error.reason_code
        # The field is unsigned; a value past 2**63 is a negative signed time written into it (before 1970).
        timestamps = np.zeros(rows, dtype=np.int64)
        timestamps[found] = np.array(decoded.timestamp_ns, dtype=np.uint64).view(np.int64)
        received_ns = time.time_ns()
        plausible = ~missing & (timestamps > 0) & (timestamps <= received_ns + MAX_CLOCK_SKEW_NS)
        days = np.where(plausible, timestamps, received_ns) // NANOS_PER_DAY
        columns = {
            "partition": batch.column("partition"),
            "offset": batch.column("offset"),
            "kafka_timestamp": batch.column("timestamp"),
            "payload": batch.column("value"),
            "satellite_name": pa.array(names, pa.string()),
            "timestamp_ns": pa.array(timestamps, mask=missing),
        }
        for field in MEASUREMENT_FIELDS:
            values = np.zeros(rows, dtype=np.float64)
            values[found] = getattr(decoded, field)
            columns[field] = pa.array(values, mask=missing)
        columns["decode_error"] = pa.array(errors, pa.string())
        columns["event_date"] = pa.array(days.astype(np.int32), pa.int32()).cast(pa.date32())
        yield pa.RecordBatch.from_pydict(columns)


def spark_session(ivy_dir: str, extra_conf: list[str]) -> Any:
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master("local[2]")
        .appName("satlake-bench-spark-ingest")
        .config("spark.jars.packages", ",".join(SPARK_PACKAGES))
        .config("spark.jars.ivy", ivy_dir)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        # Delta rebuilds its snapshot with 50 tasks by default, a cluster's setting; 2 cores want 2.
        .config("spark.databricks.delta.snapshotPartitions", "2")
    )
    for setting in extra_conf:
        key, _, value = setting.partition("=")
        builder = builder.config(key, value)
    return builder.getOrCreate()


def run_query(spark: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Start the query, wait until it has read everything available, and report what it did."""
    source = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", args.kafka)
        .option("subscribe", args.topic)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", str(args.max_offsets_per_trigger))
        .load()
        .select("partition", "offset", "timestamp", "value")
    )
    decoded = source.mapInArrow(decode_kafka_batches, DECODED_SCHEMA)
    writer = (
        decoded.writeStream.format("delta")
        .outputMode("append")
        .partitionBy("event_date")
        .option("checkpointLocation", args.checkpoint)
        .trigger(availableNow=True)
    )
    root = os.getpid()
    cpu_before, _ = tree_usage(root)
    with PeakMemorySampler(root) as memory:
        started = time.perf_counter()
        query = writer.start(args.table)
        query.awaitTermination()
        wall_s = time.perf_counter() - started
    cpu_after, _ = tree_usage(root)
    if query.exception() is not None:
        raise RuntimeError(f"the streaming query failed: {query.exception()}")
    batches = [progress for progress in query.recentProgress if progress.numInputRows > 0]
    phases: dict[str, int] = {}
    for progress in batches:
        for phase, milliseconds in progress.durationMs.items():
            phases[phase] = phases.get(phase, 0) + milliseconds
    return {
        "phase_ms": phases,
        "batch_ms": [progress.durationMs["triggerExecution"] for progress in batches],
        "events": sum(progress.numInputRows for progress in batches),
        "batches": len(batches),
        "wall_s": wall_s,
        "cpu_s": cpu_after - cpu_before,
        "peak_rss_mib": round(memory.peak_bytes / 1024**2, 1),
    }


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kafka", help="bootstrap servers")
    parser.add_argument("--topic")
    parser.add_argument("--table", help="directory of the Delta table to append to")
    parser.add_argument("--checkpoint", help="directory of the query's checkpoint")
    parser.add_argument("--ivy", required=True, help="Ivy home where spark.jars.packages caches the jars")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=100_000)
    parser.add_argument("--conf", action="append", default=[], help="another Spark setting, KEY=VALUE")
    parser.add_argument("--resolve-only", action="store_true", help="download the jars and stop")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    started = time.perf_counter()
    spark = spark_session(args.ivy, args.conf)
    spark.sparkContext.setLogLevel("WARN")
    startup_s = time.perf_counter() - started
    try:
        result = {"spark_version": spark.version, "startup_s": startup_s}
        if not args.resolve_only:
            result |= run_query(spark, args)
    finally:
        spark.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
