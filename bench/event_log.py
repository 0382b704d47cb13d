"""Throughput of the embedded event log: append N records of ~100 bytes in batches, then read them all back.

Run: ``python3 bench/event_log.py [--records 1000000] [--batch 10000] [--partitions 4] [--no-fsync]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from satlake.resources.event_log import OutgoingRecord
from satlake.resources.local_event_log import LocalEventLog

SATELLITES = [f"sat-{n:03d}".encode() for n in range(16)]


def make_batch(start: int, size: int) -> list[OutgoingRecord]:
    """``size`` records of 100-byte values, keyed by one of 16 satellite names."""
    filler = os.urandom(88)
    return [
        OutgoingRecord(value=n.to_bytes(12, "little") + filler, key=SATELLITES[n % len(SATELLITES)])
        for n in range(start, start + size)
    ]


def run(directory: Path, records: int, batch: int, partitions: int, fsync: bool) -> None:
    event_log = LocalEventLog(directory, fsync=fsync)
    event_log.create_topic("bench", partitions)
    batches = [make_batch(start, min(batch, records - start)) for start in range(0, records, batch)]

    started = time.perf_counter()
    for records_batch in batches:
        event_log.append("bench", records_batch)
    append_s = time.perf_counter() - started

    started = time.perf_counter()
    offsets = dict.fromkeys(event_log.partitions("bench"), 0)
    read = 0
    while True:
        got = event_log.read("bench", offsets, batch, timeout_s=0)
        if not got:
            break
        for record in got:
            offsets[record.partition] = record.offset + 1
        read += len(got)
    read_s = time.perf_counter() - started

    size_mb = sum(f.stat().st_size for f in directory.rglob("*.log")) / 1e6
    print(f"records={records} batch={batch} partitions={partitions} fsync={fsync} log={size_mb:.0f} MB")
    print(f"append: {append_s:6.2f} s  {records / append_s:12,.0f} records/s")
    print(f"read:   {read_s:6.2f} s  {read / read_s:12,.0f} records/s  ({read} records)")
    if read != records:
        raise SystemExit(f"read back {read} records, appended {records}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--no-fsync", action="store_true")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="satlake-bench-") as directory:
        run(Path(directory), arguments.records, arguments.batch, arguments.partitions, not arguments.no_fsync)


if __name__ == "__main__":
    main()
