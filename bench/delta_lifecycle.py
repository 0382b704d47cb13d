"""Delta table lifecycle under micro-batches: N appends of 1,000 telemetry rows through satlake's exactly-once
append, per-commit latency, table open time as commits pile up, then compaction and Z-ordering on
(satellite_name, event_time) and what a one-satellite-one-hour query has to read before and after.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable, WriterProperties

from bench.common import comparison, percentile, print_table, size_argument, write_result
from satlake.resources.lakehouse import Lakehouse, TableRef

COMMITS = {"small": 120, "full": 5000}
OPEN_CHECKPOINTS = {"small": (60, 120), "full": (100, 1000, 5000)}
ROWS_PER_COMMIT = 1000
SATELLITES = 20
START = datetime(2026, 1, 1, tzinfo=UTC)
TABLE = TableRef("bench", "telemetry_microbatches")
# Row groups small enough that Parquet statistics can skip inside a day's file after Z-ordering.
ZORDER_ROW_GROUP_ROWS = 16_384


def micro_batch(number: int, rng: np.random.Generator) -> pa.Table:
    """1,000 readings: 20 satellites at 1 Hz for 50 seconds, following on from the previous batch."""
    seconds = number * (ROWS_PER_COMMIT // SATELLITES) + np.repeat(np.arange(ROWS_PER_COMMIT // SATELLITES), SATELLITES)
    event_time = np.datetime64(START.replace(tzinfo=None), "us") + seconds.astype("timedelta64[s]")
    names = np.tile([f"sat-{n:03d}" for n in range(SATELLITES)], ROWS_PER_COMMIT // SATELLITES)
    return pa.table(
        {
            "satellite_name": pa.array(names),
            "event_time": pa.array(event_time, pa.timestamp("us", tz="UTC")),
            "event_date": pa.array(event_time.astype("datetime64[D]"), pa.date32()),
            "temp_c": rng.normal(20, 5, ROWS_PER_COMMIT),
            "battery_charge_pct": rng.uniform(20, 100, ROWS_PER_COMMIT),
            "altitude_km": rng.normal(550, 2, ROWS_PER_COMMIT),
            "sensor1": rng.random(ROWS_PER_COMMIT),
        }
    )


def open_seconds(uri: str, repetitions: int = 5) -> float:
    """Median seconds to open the table at its latest version."""
    times = []
    for _ in range(repetitions):
        started = time.perf_counter()
        DeltaTable(uri).version()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def files_per_partition(table: DeltaTable) -> dict[str, int]:
    counts: dict[str, int] = {}
    for action in pa.table(table.get_add_actions(flatten=True)).to_pylist():
        day = str(action["partition.event_date"])
        counts[day] = counts.get(day, 0) + 1
    return dict(sorted(counts.items()))


def selective_query_bytes(table: DeltaTable, satellite: str, hour_start: datetime) -> dict[str, Any]:
    """What a one-satellite-one-hour query reads: files kept by the table's statistics, and Parquet row groups
    kept inside them (a reader with row-group statistics, as DuckDB and Trino have, reads only those)."""
    dataset = table.to_pyarrow_dataset()
    predicate = (
        (ds.field("satellite_name") == satellite)
        & (ds.field("event_time") >= pa.scalar(hour_start, pa.timestamp("us", tz="UTC")))
        & (ds.field("event_time") < pa.scalar(hour_start + timedelta(hours=1), pa.timestamp("us", tz="UTC")))
    )
    all_fragments = list(dataset.get_fragments())
    total_bytes = sum(f.filesystem.get_file_info(f.path).size for f in all_fragments)
    kept = list(dataset.get_fragments(filter=predicate))
    file_bytes = sum(f.filesystem.get_file_info(f.path).size for f in kept)
    row_group_bytes = 0
    for fragment in kept:
        for piece in fragment.split_by_row_group(filter=predicate):
            for group in piece.row_groups:
                meta = fragment.metadata.row_group(group.id)
                row_group_bytes += sum(meta.column(c).total_compressed_size for c in range(meta.num_columns))
    matched = dataset.to_table(filter=predicate).num_rows
    return {
        "files_total": len(all_fragments),
        "files_read": len(kept),
        "bytes_total": total_bytes,
        "bytes_in_files_read": file_bytes,
        "bytes_in_row_groups_read": row_group_bytes,
        "rows_matched": matched,
    }


def run(size: str, workdir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    lakehouse = Lakehouse(str(workdir / "lake"))
    uri = lakehouse.uri(TABLE)
    rng = np.random.default_rng(3)
    latencies: list[float] = []
    open_times: dict[int, float] = {}
    commits = COMMITS[size]
    checkpoints = set(OPEN_CHECKPOINTS[size])
    for number in range(commits):
        batch = micro_batch(number, rng)
        started = time.perf_counter()
        lakehouse.append_exactly_once(
            TABLE, batch, partition_by=["event_date"], app_transactions={"bench/microbatch": number + 1}
        )
        latencies.append(time.perf_counter() - started)
        if number + 1 in checkpoints:
            open_times[number + 1] = open_seconds(uri)
    table = DeltaTable(uri)
    checkpoint_files = len(
        list((workdir / "lake" / "bench" / "telemetry_microbatches" / "_delta_log").glob("*.checkpoint*.parquet"))
    )
    # Middle of the data, one satellite, one hour.
    hour = START + timedelta(seconds=commits * (ROWS_PER_COMMIT // SATELLITES) // 2)
    hour = hour.replace(minute=0, second=0)
    before = {"files_per_partition": files_per_partition(table), **selective_query_bytes(table, "sat-007", hour)}

    started = time.perf_counter()
    compact_metrics = table.optimize.compact()
    compact_s = time.perf_counter() - started
    table = DeltaTable(uri)
    after_compact = {"files_per_partition": files_per_partition(table), **selective_query_bytes(table, "sat-007", hour)}

    started = time.perf_counter()
    table.optimize.z_order(
        ["satellite_name", "event_time"], writer_properties=WriterProperties(max_row_group_size=ZORDER_ROW_GROUP_ROWS)
    )
    zorder_s = time.perf_counter() - started
    table = DeltaTable(uri)
    after_zorder = {"files_per_partition": files_per_partition(table), **selective_query_bytes(table, "sat-007", hour)}

    rows = [
        {
            "step": "appends",
            "commits": commits,
            "rows": commits * ROWS_PER_COMMIT,
            "commit_p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
            "commit_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
            "commit_max_ms": round(max(latencies) * 1000, 1),
            "commit_p50_first_100_ms": round(percentile(latencies[:100], 0.5) * 1000, 1),
            "commit_p50_last_100_ms": round(percentile(latencies[-100:], 0.5) * 1000, 1),
            "checkpoint_files": checkpoint_files,
        },
        *({"step": "open table", "commits": n, "open_ms": round(s * 1000, 1)} for n, s in sorted(open_times.items())),
        {
            "step": "compact",
            "seconds": round(compact_s, 2),
            "files_removed": compact_metrics.get("numFilesRemoved"),
            "files_added": compact_metrics.get("numFilesAdded"),
        },
        {"step": "z_order", "seconds": round(zorder_s, 2)},
    ]
    for label, state in (("before", before), ("after compact", after_compact), ("after z_order", after_zorder)):
        rows.append(
            {
                "step": f"one satellite, one hour: {label}",
                "files_per_partition": state["files_per_partition"],
                "files_read": f"{state['files_read']}/{state['files_total']}",
                "bytes_total": state["bytes_total"],
                "bytes_in_files_read": state["bytes_in_files_read"],
                "bytes_in_row_groups_read": state["bytes_in_row_groups_read"],
                "share_read_pct": round(100 * state["bytes_in_row_groups_read"] / state["bytes_total"], 2),
                "rows_matched": state["rows_matched"],
            }
        )
    last_open = open_times[max(open_times)]
    zorder_share = after_zorder["bytes_in_row_groups_read"] / after_zorder["bytes_total"]
    comparisons = [
        comparison(f"open table at {max(open_times)} commits (s)", round(last_open, 3), None, "< 1 s", last_open < 1.0),
        comparison(
            f"open at {max(open_times)} / open at {min(open_times)} commits",
            round(last_open / open_times[min(open_times)], 2),
            None,
            "flat (checkpoints)",
            last_open / open_times[min(open_times)] < 3,
        ),
        comparison(
            "selective query share of bytes after z_order (%)",
            round(100 * zorder_share, 2),
            None,
            "< 5%",
            zorder_share < 0.05,
        ),
    ]
    notes = [
        f"{commits} appends x {ROWS_PER_COMMIT} rows via Lakehouse.append_exactly_once (delta-rs), "
        "checkpoint interval 50",
        f"selective query: satellite_name = 'sat-007' and event_time in [{hour.isoformat()}, +1h)",
        "bytes read = compressed size of the Parquet row groups whose statistics overlap the predicate, in the files "
        "whose Delta statistics overlap it (what a statistics-aware reader such as DuckDB or Trino fetches)",
        "no peer: this workload measures satlake's table layout against the issue's targets",
    ]
    return rows, comparisons, notes


def main(argv: list[str] | None = None) -> Path:
    args = size_argument(__doc__ or "", argv)
    with tempfile.TemporaryDirectory(prefix="satlake-bench-delta-", dir=args.workdir) as scratch:
        rows, comparisons, notes = run(args.size, Path(scratch))
    print_table(rows)
    print()
    print_table(comparisons)
    for note in notes:
        print(note)
    data_size = f"{COMMITS[args.size]:,} commits x {ROWS_PER_COMMIT:,} rows"
    path = write_result("delta_lifecycle", args.size, data_size, rows, comparisons, args.out, notes)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
