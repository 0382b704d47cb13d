"""Kafka to Delta ingestion, satlake against its Spark peer: the same FlatBuffers events on the same throwaway
4-partition topic, consumed until caught up by satlake's ``ingest_until_caught_up`` (raw Delta table, offsets in
the Delta commit) and by a Spark Structured Streaming query (``local[2]``, Kafka source, FlatBuffers decoded in
the Python workers, appended to a Delta table partitioned by event day), the two interleaved.

    python -m bench.spark_ingest --size small|full --kafka HOST:PORT [--events N] [--rounds R]
    python -m bench.spark_ingest --setup          # only build the Spark virtualenv and download the jars

Spark runs from its own virtualenv (``~/.cache/satlake/bench/spark-venv``, pyspark from the package index) with
the Kafka connector and delta-spark fetched from Maven Central by ``spark.jars.packages`` into an Ivy cache
beside it; the first run builds both, which takes minutes, and later runs reuse them. satlake's environment
and its own pyspark are never touched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    SIZES,
    Measured,
    comparison,
    measurement_row,
    print_table,
    run_command,
    run_isolated,
    write_result,
)
from bench.ingest import BATCH_SIZE, PARTITIONS, SATELLITES, ingest_step, open_event_log, produce, throwaway_topic
from bench.spark_streaming_query import SAMPLE_INTERVAL_S, SPARK_PACKAGES
from satlake.stack.install import InstallToolMissing, kafka_java_home

EVENTS = {"small": 20_000, "full": 1_000_000}
ROUNDS = {"small": 1, "full": 2}
TARGET_RATIO = 3.0
REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_CACHE = Path.home() / ".cache" / "satlake" / "bench"
SPARK_VENV = BENCH_CACHE / "spark-venv"
IVY_HOME = BENCH_CACHE / "ivy"
# Spark 4.0.0 because it is the newest Spark whose Kafka connector resolves completely from Maven Central:
# spark-token-provider-kafka-0-10_2.13, which spark-sql-kafka needs, is missing there for 4.0.1 up to 4.2.0.
# delta-spark 4.0.0 is the Delta release built against Spark 4.0.0.
SPARK_REQUIREMENTS = ("pyspark==4.0.0", "pandas>=2.2,<3", "pyarrow>=18,<27", "numpy>=1.26,<3", "flatbuffers>=24.3,<26")
READY_MARKER = SPARK_VENV / "satlake-bench-ready.json"
SPARK_SYSTEM = "Spark 4.0.0 Structured Streaming"


class SparkUnavailable(RuntimeError):
    """The Spark peer cannot run on this machine: no Java runtime for it, or its virtualenv or jars could not be
    fetched (the package index and Maven Central must be reachable the first time)."""


def spark_python() -> Path:
    return SPARK_VENV / "bin" / "python"


def setup_description() -> dict[str, list[str]]:
    """What a ready virtualenv was built with; any change rebuilds it."""
    return {"requirements": list(SPARK_REQUIREMENTS), "packages": list(SPARK_PACKAGES)}


def spark_is_ready() -> bool:
    return READY_MARKER.is_file() and json.loads(READY_MARKER.read_text()) == setup_description()


def spark_java_home() -> Path:
    """The Java home Spark runs on: the stack's choice for Kafka, the lowest Java >= 17 found, since Spark 4.0 runs
    on 17 and 21 (Trino's JDK may be newer)."""
    try:
        return kafka_java_home()
    except InstallToolMissing as error:
        raise SparkUnavailable(f"Spark 4.0 needs a Java 17 or 21 runtime: {error}") from error


def setup_spark() -> float | None:
    """Build the Spark virtualenv and download the jars unless they are ready; the seconds it took, or None.

    Raises SparkUnavailable, saying what failed, when Java is missing or pip or the jar download fails."""
    spark_java_home()  # before minutes of downloads that could not be used
    if spark_is_ready():
        return None
    started = time.perf_counter()
    print(f"setting up the Spark peer in {SPARK_VENV} (pip) and {IVY_HOME} (jars); the first time takes minutes")
    shutil.rmtree(SPARK_VENV, ignore_errors=True)
    pip_install = [spark_python(), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    try:
        subprocess.run([sys.executable, "-m", "venv", str(SPARK_VENV)], check=True)
        subprocess.run([*map(str, pip_install), *SPARK_REQUIREMENTS], check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        raise SparkUnavailable(
            f"building the Spark virtualenv {SPARK_VENV} with {' '.join(SPARK_REQUIREMENTS)} failed ({error}); "
            "check that pip reaches the package index, then rerun"
        ) from error
    try:
        run_spark_job(["--resolve-only"])
    except RuntimeError as error:
        raise SparkUnavailable(
            f"fetching {', '.join(SPARK_PACKAGES)} from Maven Central into {IVY_HOME} failed: {error}"
        ) from error
    READY_MARKER.write_text(json.dumps(setup_description()))
    return time.perf_counter() - started


def run_spark_job(arguments: list[str]) -> tuple[dict[str, Any], Measured]:
    """Run ``bench.spark_streaming_query`` in the Spark virtualenv; its JSON report and the process's usage."""
    environment = {
        "PYTHONPATH": str(REPO_ROOT),
        # pyspark starts its workers with PYSPARK_PYTHON, else whatever python3 is on PATH (satlake's here).
        "PYSPARK_PYTHON": str(spark_python()),
        "PYSPARK_DRIVER_PYTHON": str(spark_python()),
        "JAVA_HOME": str(spark_java_home()),
    }
    # A SPARK_HOME of another Spark installation would take precedence over the virtualenv's pyspark.
    command = ["env", "-u", "SPARK_HOME", str(spark_python()), "-m", "bench.spark_streaming_query"]
    measured = run_command([*command, "--ivy", str(IVY_HOME), *arguments], environment)
    return json.loads(measured.value.strip().splitlines()[-1]), measured


def data_file_count(table_dir: Path) -> int:
    """Parquet data files of a Delta table (log checkpoints, also Parquet, excluded)."""
    return sum(1 for path in table_dir.rglob("*.parquet") if "_delta_log" not in path.parts)


def commit_count(table_dir: Path) -> int:
    return sum(1 for _ in (table_dir / "_delta_log").glob("*.json"))


def spark_table_summary(table_dir: Path) -> dict[str, int]:
    """Rows, distinct Kafka positions and undecodable events in the Spark peer's table, read with delta-rs."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    table = DeltaTable(str(table_dir)).to_pyarrow_table(columns=["partition", "offset", "decode_error"])
    positions = table.group_by(["partition", "offset"]).aggregate([])
    return {
        "rows": table.num_rows,
        "distinct_positions": positions.num_rows,
        "decode_errors": table.num_rows - pc.count(table.column("decode_error"), mode="only_null").as_py(),
    }


def measure_satlake(bootstrap: str, topic: str, workdir: Path, round_number: int) -> dict[str, Any]:
    lake_root = workdir / f"lake-{round_number}"
    measured = run_isolated(ingest_step, "kafka", bootstrap, str(lake_root), topic)
    table_dir = lake_root / "raw" / "telemetry_events"
    row = measurement_row(
        "satlake", "ingest_until_caught_up -> raw Delta", measured, measured.value["events"], round=round_number
    )
    return row | {
        "batches": measured.value["batches"],
        "commits": commit_count(table_dir),
        "files_written": data_file_count(table_dir),
    }


def measure_spark(bootstrap: str, topic: str, workdir: Path, round_number: int, per_trigger: int) -> dict[str, Any]:
    table_dir = workdir / f"spark-table-{round_number}"
    report, process = run_spark_job(
        [
            "--kafka",
            bootstrap,
            "--topic",
            topic,
            "--table",
            str(table_dir),
            "--checkpoint",
            str(workdir / f"spark-checkpoint-{round_number}"),
            "--max-offsets-per-trigger",
            str(per_trigger),
        ]
    )
    query = Measured(report, report["wall_s"], report["cpu_s"], report["peak_rss_mib"])
    summary = spark_table_summary(table_dir)
    row = measurement_row(
        SPARK_SYSTEM, "Kafka source -> mapInArrow decode -> Delta append", query, report["events"], round=round_number
    )
    return row | {
        "batches": report["batches"],
        "commits": commit_count(table_dir),
        "files_written": data_file_count(table_dir),
        "rows_in_table": summary["rows"],
        "distinct_kafka_positions": summary["distinct_positions"],
        "decode_errors": summary["decode_errors"],
        "batch_s": [round(milliseconds / 1000, 1) for milliseconds in report["batch_ms"]],
        "events_per_s_after_first_batch": steady_rate(report["events"], per_trigger, report["batch_ms"]),
        "jvm_start_s": round(report["startup_s"], 2),
        "process_wall_s": round(process.wall_s, 2),
    }


def steady_rate(events: int, per_trigger: int, batch_ms: list[int]) -> int | None:
    """Events/s once the first micro-batch (JIT warm-up, table creation) is behind; None with one batch."""
    if len(batch_ms) < 2:
        return None
    return round((events - min(events, per_trigger)) / (sum(batch_ms[1:]) / 1000))


def best(rows: list[dict[str, Any]], system: str) -> dict[str, Any]:
    return max((row for row in rows if row["system"] == system), key=lambda row: row["events_per_s"])


def compare(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ours, spark = best(rows, "satlake"), best(rows, SPARK_SYSTEM)
    ratio = ours["events_per_s"] / spark["events_per_s"]
    return [
        comparison(
            "ingest events/s vs Spark Structured Streaming (best round each)",
            ours["events_per_s"],
            spark["events_per_s"],
            f">= {TARGET_RATIO:g}x",
            ratio >= TARGET_RATIO,
        ),
        comparison(
            "CPU-seconds per million events (same rounds)",
            ours["cpu_s_per_million"],
            spark["cpu_s_per_million"],
            "",
            None,
            "lower is better; Spark's covers its JVM and Python workers",
        ),
        comparison(
            "peak resident memory, MiB (same rounds)",
            ours["peak_rss_mib"],
            spark["peak_rss_mib"],
            "",
            None,
            f"Spark's is the sum over its process tree, sampled every {SAMPLE_INTERVAL_S:g} s",
        ),
    ]


def run(bootstrap: str, workdir: Path, events: int, rounds: int, per_trigger: int) -> list[dict[str, Any]]:
    """Produce once, then alternate satlake and Spark over the same topic, each from offset 0 into a new table."""
    rows: list[dict[str, Any]] = []
    with throwaway_topic(bootstrap, "bench.spark") as topic:
        produce_s = produce(open_event_log("kafka", bootstrap), topic, events)
        print(f"produced {events:,} events to {topic} in {produce_s:.1f} s", flush=True)
        for round_number in range(1, rounds + 1):
            for measure in (measure_satlake, measure_spark):
                arguments = (per_trigger,) if measure is measure_spark else ()
                row = measure(bootstrap, topic, workdir, round_number, *arguments)
                print(f"round {round_number}: {row['system']}: {row['events_per_s']:,} events/s", flush=True)
                rows.append(row)
    return rows


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--kafka", help="bootstrap servers of the Kafka broker (a throwaway topic is used)")
    parser.add_argument("--events", type=int, default=None, help="events to produce (default: by --size)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default: by --size)")
    parser.add_argument(
        "--max-offsets-per-trigger", type=int, default=BATCH_SIZE, help="Spark micro-batch size (satlake's batch)"
    )
    parser.add_argument("--setup", action="store_true", help="only build the Spark virtualenv and fetch the jars")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.setup and not args.kafka:
        parser.error("--kafka HOST:PORT is required (both systems read the same Kafka topic)")
    return args


def main(argv: list[str] | None = None) -> Path | None:
    args = parse_arguments(argv)
    setup_s = setup_spark()
    if setup_s is not None:
        print(f"Spark peer set up in {setup_s:.0f} s")
    if args.setup:
        return None
    events = args.events or EVENTS[args.size]
    rounds = args.rounds or ROUNDS[args.size]
    with tempfile.TemporaryDirectory(prefix="satlake-bench-spark-", dir=args.workdir) as scratch:
        rows = run(args.kafka, Path(scratch), events, rounds, args.max_offsets_per_trigger)
    comparisons = compare(rows)
    print_table(rows)
    print()
    print_table(comparisons)
    notes = [
        f"{events} events, {SATELLITES} satellites, 1% faults, {PARTITIONS} partitions; satlake batch {BATCH_SIZE}, "
        f"Spark maxOffsetsPerTrigger {args.max_offsets_per_trigger}, trigger availableNow, local[2]",
        "satlake writes the raw payloads and routes each to its event day; Spark also decodes every field and "
        "writes the decoded columns beside the payload, partitioned by the same event day",
        "Spark's wall, CPU and memory cover the query from start until caught up (JVM start excluded, reported "
        "as jvm_start_s); CPU is its whole process tree: the driver, the JVM and the Python workers",
    ]
    if setup_s is not None:
        notes.append(f"this run first set up the Spark virtualenv and jars in {setup_s:.0f} s")
    data_size = f"{events:,} FlatBuffers events on {PARTITIONS} partitions"
    extra = f"--kafka {args.kafka}" + "".join(
        f" {flag} {value}"
        for flag, value, default in (
            ("--events", args.events, None),
            ("--rounds", args.rounds, None),
            ("--max-offsets-per-trigger", args.max_offsets_per_trigger, BATCH_SIZE),
        )
        if value != default
    )
    path = write_result("spark_ingest", args.size, data_size, rows, comparisons, args.out, notes, extra)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
