"""Two writer processes committing to one Delta table at the same instant (local storage or MinIO)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from satlake.resources.lakehouse import Lakehouse, TableRef

TABLE = TableRef("raw", "events")

CONCURRENT_WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    from datetime import date
    import pyarrow as pa
    from deltalake.exceptions import CommitFailedError
    from satlake.resources.lakehouse import Lakehouse, TableRef
    root, writer, mode, commits, start_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    # Storage options (MinIO credentials) come through the environment, never the command line.
    lakehouse = Lakehouse(root_uri=root, storage_options=json.loads(os.environ.get("WRITER_STORAGE_OPTIONS", "{}")))
    table = TableRef("raw", "events")
    while time.time() < start_at:  # both processes start committing at the same instant
        time.sleep(0.001)
    conflicts = 0
    for commit in range(commits):
        data = pa.table({"day": pa.array([date(2024, 1, 1)] * 20, pa.date32()), "tag": [writer] * 20,
                         "seq": pa.array(range(commit * 20, commit * 20 + 20), pa.int64()),
                         "payload": [os.urandom(8) for _ in range(20)]})
        while True:
            try:
                if mode == "append":
                    lakehouse.append_exactly_once(table, data, partition_by=["day"],
                                                  app_transactions={f"writer/{writer}": (commit + 1) * 20})
                else:
                    lakehouse.replace_date_partitions(table, data, partition_column="day",
                                                      first=date(2024, 1, 1), last=date(2024, 1, 1))
                break
            except CommitFailedError:
                conflicts += 1  # a clean, documented failure: retry the same batch
    print(json.dumps({"writer": writer, "conflicts": conflicts}))
    """
)


def run_two_writers(root: str, mode: str, commits: int, storage_options: Mapping[str, str] | None = None) -> list[dict]:
    """Start writers "a" and "b" (``mode`` "append" or "replace", ``commits`` each); their JSON reports."""
    start_at = time.time() + 3.0  # both interpreters are importing deltalake by then
    environment = {**os.environ, "WRITER_STORAGE_OPTIONS": json.dumps(dict(storage_options or {}))}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_WRITER, root, writer, mode, str(commits), str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for writer in ("a", "b")
    ]
    reports = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=180)
        assert process.returncode == 0, stderr[-2000:]
        reports.append(json.loads(stdout.strip().splitlines()[-1]))
    return reports


def assert_concurrent_appends_all_survive(lakehouse: Lakehouse, commits: int) -> list[dict]:
    """Seed the table, let writers "a" and "b" append ``commits`` times each at once, and check that every
    commit landed once: versions, each writer's rows and its application transaction version."""
    seed = pa.table({"day": pa.array([date(2024, 1, 1)], pa.date32()), "tag": ["seed"],
                     "seq": pa.array([0], pa.int64()), "payload": [b"seed"]})  # fmt: skip
    lakehouse.append_exactly_once(TABLE, seed, partition_by=["day"], app_transactions={})
    reports = run_two_writers(lakehouse.root_uri, "append", commits, lakehouse.storage_options)
    table = lakehouse.read(TABLE)
    delta_table = lakehouse.open(TABLE)
    assert table is not None and delta_table is not None
    assert delta_table.version() == 2 * commits  # version 0 plus every commit of both writers
    for writer in ("a", "b"):
        mine = table.filter(pc.equal(table.column("tag"), writer))
        assert sorted(mine.column("seq").to_pylist()) == list(range(commits * 20)), f"writer {writer} lost rows"
        assert lakehouse.transaction_versions(TABLE, [f"writer/{writer}"]) == {f"writer/{writer}": commits * 20}
    return reports
