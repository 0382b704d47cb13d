"""Delta table lifecycle under micro-batches: N appends of 1,000 telemetry rows through satlake's exactly-once
writer (the table kept open, as ingestion does), per-commit latency, table open time as commits pile up, then what
a one-satellite-one-hour query has to read after each kind of maintenance: delta-rs compaction, Z-ordering on
(satellite_name, event_time), and satlake's clustering (``satlake.resources.table_maintenance``: each day
rewritten sorted, small row groups).

With ``--trino`` each layout is also copied to the stack's object store, registered in its Trino ``lake``
catalog and queried there, and Trino's own count of physical input bytes is recorded (needs ``satlake stack up``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable, WriterProperties

from bench.common import SIZES, comparison, percentile, print_table, run_isolated, write_result
from satlake.resources.lakehouse import Lakehouse, TableRef
from satlake.resources.table_maintenance import (
    DEFAULT_ROW_GROUP_ROWS,
    TELEMETRY_SORT_KEY,
    cluster_date_partitions,
    files_per_date_partition,
)

COMMITS = {"small": 120, "full": 5000}
OPEN_CHECKPOINTS = {"small": (60, 120), "full": (100, 1000, 5000)}
ROWS_PER_COMMIT = 1000
SATELLITES = 20
START = datetime(2026, 1, 1, tzinfo=UTC)
TABLE = TableRef("bench", "telemetry_microbatches")
QUERY_SATELLITE = "sat-007"
# The row-group size of the first Z-order run (kept so the earlier figure stays reproducible).
ZORDER_ROW_GROUP_ROWS = 16_384
MEASURED_COLUMNS = ("temp_c", "battery_charge_pct", "altitude_km", "sensor1")


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
    row_group_bytes = row_groups_read = 0
    for fragment in kept:
        for piece in fragment.split_by_row_group(filter=predicate):
            for group in piece.row_groups:
                meta = fragment.metadata.row_group(group.id)
                row_group_bytes += sum(meta.column(c).total_compressed_size for c in range(meta.num_columns))
                row_groups_read += 1
    matched = dataset.to_table(filter=predicate).num_rows
    return {
        "files_per_partition": {str(day): n for day, n in files_per_date_partition(table).items()},
        "files_total": len(all_fragments),
        "files_read": len(kept),
        "row_groups_total": sum(f.metadata.num_row_groups for f in all_fragments),
        "row_groups_read": row_groups_read,
        "bytes_total": total_bytes,
        "bytes_in_files_read": file_bytes,
        "bytes_in_row_groups_read": row_group_bytes,
        "rows_matched": matched,
    }


# Maintenance steps: top level, so each runs in its own process and reports its own CPU time and peak memory.


def compact_step(uri: str) -> dict[str, Any]:
    metrics = DeltaTable(uri).optimize.compact()
    return {"files_removed": metrics.get("numFilesRemoved"), "files_added": metrics.get("numFilesAdded")}


def z_order_step(uri: str, row_group_rows: int) -> dict[str, Any]:
    metrics = DeltaTable(uri).optimize.z_order(
        list(TELEMETRY_SORT_KEY), writer_properties=WriterProperties(max_row_group_size=row_group_rows)
    )
    return {"files_removed": metrics.get("numFilesRemoved"), "files_added": metrics.get("numFilesAdded")}


def cluster_step(uri: str, row_group_rows: int) -> dict[str, Any]:
    """satlake's clustering of every day of the table, one commit per day."""
    days = list(files_per_date_partition(DeltaTable(uri)))
    reports = cluster_date_partitions(uri, days, sort_by=TELEMETRY_SORT_KEY, row_group_rows=row_group_rows)
    return {"files_removed": sum(r.files_before for r in reports), "files_added": sum(r.files_after for r in reports)}


@dataclass(frozen=True, slots=True)
class Maintenance:
    """One way of maintaining the table, applied to the table at ``table_dir`` (a copy, or the original)."""

    label: str
    table_dir: str
    step: Callable[..., dict[str, Any]]
    args: tuple[Any, ...] = ()


def remove_unreferenced_files(uri: str) -> None:
    """Delete the files earlier versions referenced (a scratch copy only), so an upload copies one layout."""
    DeltaTable(uri).vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)


class TrinoLayoutProbe:
    """Copies table layouts to the stack's object store, registers each in Trino's ``lake`` catalog in a
    throwaway schema and runs the selective query there; ``close`` removes the schema and every copied file."""

    def __init__(self) -> None:
        import trino
        from pyarrow import fs

        from satlake.resources import s3_storage_options
        from satlake.resources.trino import TrinoLake
        from satlake.settings import Mode, Settings

        settings = Settings.from_env().with_overrides(mode=Mode.STACK)
        options = s3_storage_options(settings)
        endpoint = settings.s3_endpoint
        self.filesystem = fs.S3FileSystem(
            access_key=options["AWS_ACCESS_KEY_ID"],
            secret_key=options["AWS_SECRET_ACCESS_KEY"],
            region=settings.s3_region,
            endpoint_override=endpoint.split("://", 1)[-1],
            scheme="http" if endpoint.startswith("http://") else "https",
        )
        self.schema = f"bench_{uuid.uuid4().hex[:8]}"
        self.prefix = f"{settings.lake_bucket}/bench/{self.schema}"
        self.lake = TrinoLake(settings.trino_host, settings.trino_port, "admin")
        self.lake.ensure_schema(self.schema, f"s3://{self.prefix}")
        self.tables: list[str] = []
        self.cursor = trino.dbapi.connect(
            host=settings.trino_host, port=settings.trino_port, user="admin", catalog="lake", source="satlake-bench"
        ).cursor()

    def measure(self, name: str, local_table_dir: Path, satellite: str, hour_start: datetime) -> dict[str, Any]:
        """Physical input bytes Trino reports for the selective query on a copy of ``local_table_dir``."""
        from pyarrow import fs

        started = time.perf_counter()
        fs.copy_files(
            str(local_table_dir),
            f"{self.prefix}/{name}",
            source_filesystem=fs.LocalFileSystem(),
            destination_filesystem=self.filesystem,
            use_threads=True,
        )
        upload_s = time.perf_counter() - started
        self.lake.register_table(self.schema, name, f"s3://{self.prefix}/{name}")
        self.tables.append(name)
        hour_end = hour_start + timedelta(hours=1)
        sums = ", ".join(f"sum({column})" for column in MEASURED_COLUMNS)
        sql = (
            f'SELECT count(*), {sums} FROM lake."{self.schema}"."{name}" '
            f"WHERE satellite_name = '{satellite}' "
            f"AND event_time >= TIMESTAMP '{hour_start:%Y-%m-%d %H:%M:%S} UTC' "
            f"AND event_time < TIMESTAMP '{hour_end:%Y-%m-%d %H:%M:%S} UTC'"
        )
        runs = []
        for _ in range(2):  # the first run also loads the Delta log; the second shows the steady state
            self.cursor.execute(sql)
            rows_matched = self.cursor.fetchall()[0][0]
            stats = self.cursor.stats
            runs.append((stats["physicalInputBytes"], stats["elapsedTimeMillis"], rows_matched))
        return {
            "trino_physical_input_bytes": runs[-1][0],
            "trino_elapsed_ms": [r[1] for r in runs],
            "trino_rows_matched": runs[-1][2],
            "upload_s": round(upload_s, 1),
        }

    def close(self) -> None:
        for name in self.tables:
            self.lake.unregister_table(self.schema, name)
        self.lake.query(f'DROP SCHEMA IF EXISTS lake."{self.schema}"')
        self.filesystem.delete_dir_contents(self.prefix, missing_dir_ok=True)
        self.filesystem.delete_dir(self.prefix)
        self.lake.close()


def query_row(label: str, state: dict[str, Any]) -> dict[str, Any]:
    row = {
        "step": f"one satellite, one hour: {label}",
        "files_per_partition": state["files_per_partition"],
        "files_read": f"{state['files_read']}/{state['files_total']}",
        "row_groups_read": f"{state['row_groups_read']}/{state['row_groups_total']}",
        "bytes_total": state["bytes_total"],
        "bytes_in_files_read": state["bytes_in_files_read"],
        "bytes_in_row_groups_read": state["bytes_in_row_groups_read"],
        "share_read_pct": round(100 * state["bytes_in_row_groups_read"] / state["bytes_total"], 2),
        "rows_matched": state["rows_matched"],
    }
    if "trino_physical_input_bytes" in state:
        row["trino_physical_input_bytes"] = state["trino_physical_input_bytes"]
        row["trino_share_pct"] = round(100 * state["trino_physical_input_bytes"] / state["bytes_total"], 2)
        row["trino_rows_matched"] = state["trino_rows_matched"]
        row["trino_elapsed_ms"] = state["trino_elapsed_ms"]
    return row


def run(
    size: str, workdir: Path, with_trino: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    lakehouse = Lakehouse(str(workdir / "lake"))
    uri = lakehouse.uri(TABLE)
    rng = np.random.default_rng(3)
    latencies: list[float] = []
    open_times: dict[int, float] = {}
    commits = COMMITS[size]
    checkpoints = set(OPEN_CHECKPOINTS[size])
    # One table kept open across the appends, as satlake's ingestion keeps the raw table open.
    writer = lakehouse.exactly_once_writer(TABLE)
    for number in range(commits):
        batch = micro_batch(number, rng)
        started = time.perf_counter()
        writer.append(batch, partition_by=["event_date"], app_transactions={"bench/microbatch": number + 1})
        latencies.append(time.perf_counter() - started)
        if number + 1 in checkpoints:
            open_times[number + 1] = open_seconds(uri)
    checkpoint_files = len(list((Path(uri) / "_delta_log").glob("*.checkpoint*.parquet")))
    # Middle of the data, one satellite, one hour.
    hour = START + timedelta(seconds=commits * (ROWS_PER_COMMIT // SATELLITES) // 2)
    hour = hour.replace(minute=0, second=0)

    # Every kind of maintenance starts from the same micro-batch table, except Z-order after compaction, which
    # continues from the compacted table (as the first measurement did).
    copies = {name: workdir / "copies" / name for name in ("zorder", "cluster16k", "cluster8k")}
    for copy in copies.values():
        shutil.copytree(uri, copy)
    plan = [
        Maintenance("after compact", uri, compact_step),
        Maintenance(
            f"after compact, then z_order ({ZORDER_ROW_GROUP_ROWS:,}-row groups)",
            uri,
            z_order_step,
            (ZORDER_ROW_GROUP_ROWS,),
        ),
        Maintenance(
            f"after z_order alone ({DEFAULT_ROW_GROUP_ROWS:,}-row groups)",
            str(copies["zorder"]),
            z_order_step,
            (DEFAULT_ROW_GROUP_ROWS,),
        ),
        Maintenance(
            f"after satlake clustering ({ZORDER_ROW_GROUP_ROWS:,}-row groups)",
            str(copies["cluster16k"]),
            cluster_step,
            (ZORDER_ROW_GROUP_ROWS,),
        ),
        Maintenance(
            f"after satlake clustering ({DEFAULT_ROW_GROUP_ROWS:,}-row groups, the default)",
            str(copies["cluster8k"]),
            cluster_step,
            (DEFAULT_ROW_GROUP_ROWS,),
        ),
    ]
    probe = TrinoLayoutProbe() if with_trino else None
    try:
        states: list[tuple[str, dict[str, Any]]] = []
        maintenance_rows: list[dict[str, Any]] = []

        def measure_layout(label: str, table_dir: str, number: int) -> None:
            state = selective_query_bytes(DeltaTable(table_dir), QUERY_SATELLITE, hour)
            if probe is not None:
                if number > 0:
                    remove_unreferenced_files(table_dir)
                state.update(probe.measure(f"layout{number}", Path(table_dir), QUERY_SATELLITE, hour))
            states.append((label, state))

        measure_layout("before (micro-batches)", uri, 0)
        for number, maintenance in enumerate(plan, start=1):
            measured = run_isolated(maintenance.step, maintenance.table_dir, *maintenance.args)
            maintenance_rows.append(
                {
                    "step": maintenance.label.removeprefix("after "),
                    "seconds": round(measured.wall_s, 2),
                    "cpu_s": round(measured.cpu_s, 2),
                    "peak_rss_mib": measured.peak_rss_mib,
                    "files_removed": measured.value["files_removed"],
                    "files_added": measured.value["files_added"],
                }
            )
            measure_layout(maintenance.label, maintenance.table_dir, number)
    finally:
        if probe is not None:
            probe.close()

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
        *maintenance_rows,
        *(query_row(label, state) for label, state in states),
    ]
    last_open = open_times[max(open_times)]
    by_label = dict(states)
    zorder_state = by_label[plan[1].label]
    clustered_state = by_label[plan[-1].label]

    def share(state: dict[str, Any]) -> float:
        return state["bytes_in_row_groups_read"] / state["bytes_total"]

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
            "selective query share of bytes after satlake clustering (%)",
            round(100 * share(clustered_state), 2),
            round(100 * share(zorder_state), 2),
            "< 5%",
            share(clustered_state) < 0.05,
            "peer: delta-rs compact then z_order (16,384-row groups)",
        ),
    ]
    if probe is not None:
        before_state = states[0][1]
        trino_share = clustered_state["trino_physical_input_bytes"] / clustered_state["bytes_total"]
        comparisons.append(
            comparison(
                "Trino physical input bytes, selective query, after satlake clustering (%)",
                round(100 * trino_share, 2),
                round(100 * before_state["trino_physical_input_bytes"] / before_state["bytes_total"], 2),
                "< 5%",
                trino_share < 0.05,
                "peer: the same query before any maintenance",
            )
        )
    notes = [
        f"{commits} appends x {ROWS_PER_COMMIT} rows via Lakehouse.exactly_once_writer(...).append (delta-rs, the "
        "table kept open across appends as ingestion does), checkpoint interval 50",
        f"selective query: satellite_name = '{QUERY_SATELLITE}' and event_time in [{hour.isoformat()}, +1h)",
        "bytes read = compressed size of the Parquet row groups whose statistics overlap the predicate, in the files "
        "whose Delta statistics overlap it (what a statistics-aware reader such as DuckDB or Trino fetches)",
        "satlake clustering = satlake.resources.table_maintenance.cluster_date_partitions: each day rewritten sorted "
        f"by {', '.join(TELEMETRY_SORT_KEY)} in one commit per day",
        "no peer system: this workload measures satlake's table layout against the issue's targets",
    ]
    if probe is not None:
        notes.append(
            "Trino: each layout copied (live files only) to the stack's object store, registered in the lake catalog, "
            "queried twice as admin; physical input bytes of the second run (query stats)"
        )
    return rows, comparisons, notes


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=SIZES, default="small", help="small: smoke test; full: the figures")
    parser.add_argument("--trino", action="store_true", help="also measure through the running stack's Trino")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="result JSON (default: bench/results/<name>.json)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="satlake-bench-delta-", dir=args.workdir) as scratch:
        rows, comparisons, notes = run(args.size, Path(scratch), args.trino)
    print_table(rows)
    print()
    print_table(comparisons)
    for note in notes:
        print(note)
    data_size = f"{COMMITS[args.size]:,} commits x {ROWS_PER_COMMIT:,} rows"
    extra = "--trino" if args.trino else ""
    path = write_result("delta_lifecycle", args.size, data_size, rows, comparisons, args.out, notes, extra)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
