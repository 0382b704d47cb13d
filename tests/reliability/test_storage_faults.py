"""Storage faults on an embedded (local directory) lakehouse: a full disk during a Delta write, and two
processes committing to the same Delta table at once. Nothing committed is lost, nothing is half-visible."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from satlake.resources.lakehouse import Lakehouse, TableRef
from tests.reliability.concurrent_writers import assert_concurrent_appends_all_survive, run_two_writers

TABLE = TableRef("raw", "events")
APP = "satlake.ingest/reliability/0"


def rows(count: int, payload_bytes: int = 8, day: str = "2024-01-01", tag: str = "a") -> pa.Table:
    return pa.table(
        {
            "day": pa.array([date.fromisoformat(day)] * count, pa.date32()),
            "tag": pa.array([tag] * count, pa.string()),
            "seq": pa.array(range(count), pa.int64()),
            "payload": pa.array([os.urandom(payload_bytes) for _ in range(count)], pa.binary()),
        }
    )


def assert_table_at(lakehouse: Lakehouse, version: int, row_count: int, next_offset: int) -> None:
    table = lakehouse.open(TABLE)
    assert table is not None and table.version() == version
    assert lakehouse.read(TABLE).num_rows == row_count
    assert lakehouse.transaction_versions(TABLE, [APP]) == {APP: next_offset}


# --- disk full -------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (needs root and mount rights: the sandbox and CI containers have both)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); the RLIMIT_FSIZE test covers it")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_during_a_delta_write_is_a_clear_error_and_the_table_stays_at_its_last_version(
    tiny_filesystem: Path,
) -> None:
    lakehouse = Lakehouse(root_uri=str(tiny_filesystem / "lake"))
    lakehouse.append_exactly_once(TABLE, rows(10), partition_by=["day"], app_transactions={APP: 10})

    with pytest.raises(Exception, match=r"No space left on device") as caught:  # 5 MB into 2 MB
        lakehouse.append_exactly_once(TABLE, rows(50, 100_000), partition_by=["day"], app_transactions={APP: 60})
    assert "os error 28" in str(caught.value)

    assert_table_at(lakehouse, version=0, row_count=10, next_offset=10)  # offsets not advanced: batch re-read
    # The failed write left no orphan data file using the space: the next (small) batch commits.
    assert lakehouse.append_exactly_once(TABLE, rows(5), partition_by=["day"], app_transactions={APP: 15}) == 1
    assert_table_at(lakehouse, version=1, row_count=15, next_offset=15)


FSIZE_WRITER = textwrap.dedent(
    """
    import json, os, resource, signal, sys
    import pyarrow as pa
    from datetime import date
    from satlake.resources.lakehouse import Lakehouse, TableRef
    # Without this, exceeding RLIMIT_FSIZE kills the process (SIGXFSZ) instead of failing the write (EFBIG).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))
    lakehouse = Lakehouse(root_uri=sys.argv[1])
    big = pa.table({"day": pa.array([date(2024, 1, 1)] * 40, pa.date32()), "tag": ["b"] * 40,
                    "seq": pa.array(range(40), pa.int64()), "payload": [os.urandom(100_000) for _ in range(40)]})
    try:
        lakehouse.append_exactly_once(TableRef("raw", "events"), big, partition_by=["day"],
                                      app_transactions={sys.argv[2]: 50})
        print(json.dumps({"error": None}))
    except Exception as error:
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
    """
)


def test_a_file_size_limit_during_a_delta_write_fails_cleanly_and_keeps_the_last_version(tmp_path: Path) -> None:
    """Portable stand-in for a full disk (no mount needed): the writer may not grow any file past 1 MB."""
    lakehouse = Lakehouse(root_uri=str(tmp_path / "lake"))
    lakehouse.append_exactly_once(TABLE, rows(10), partition_by=["day"], app_transactions={APP: 10})
    done = subprocess.run(
        [sys.executable, "-c", FSIZE_WRITER, lakehouse.root_uri, APP],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    error = json.loads(done.stdout.strip().splitlines()[-1])["error"]
    assert error is not None and "File too large" in error, error
    assert_table_at(lakehouse, version=0, row_count=10, next_offset=10)


# --- two writers -----------------------------------------------------------------------------------------


def test_two_processes_appending_to_one_table_lose_no_commit(tmp_path: Path) -> None:
    reports = assert_concurrent_appends_all_survive(Lakehouse(root_uri=str(tmp_path / "lake")), commits=15)
    print(f"append conflicts retried: {[report['conflicts'] for report in reports]}")


def test_two_processes_replacing_one_partition_leave_exactly_one_writers_rows(tmp_path: Path) -> None:
    """Both rewrite the same day: a loser gets CommitFailedError and retries; the day never mixes or doubles."""
    lakehouse = Lakehouse(root_uri=str(tmp_path / "lake"))
    lakehouse.append_exactly_once(TABLE, rows(20, tag="seed"), partition_by=["day"], app_transactions={})
    commits = 8
    reports = run_two_writers(lakehouse.root_uri, "replace", commits)

    table = lakehouse.read(TABLE)
    tags = set(table.column("tag").to_pylist())
    assert table.num_rows == 20 and len(tags) == 1 and tags <= {"a", "b"}, (table.num_rows, tags)
    assert sorted(table.column("seq").to_pylist()) == list(range((commits - 1) * 20, commits * 20))
    history = lakehouse.open(TABLE).history()
    writes = [entry for entry in history if entry.get("operation") in ("WRITE", "DELETE", "CREATE TABLE")]
    assert len(history) == 1 + 2 * commits == len(writes), "every retried commit landed exactly once"
    print(f"replace conflicts retried: {[report['conflicts'] for report in reports]}")
