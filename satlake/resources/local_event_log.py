"""The embedded event log: a durable, append-only, partitioned log of records in a local directory, the
stand-in for Kafka when satlake runs without servers. Several processes may append to it at once.

On-disk layout (all integers little-endian)::

    <directory>/<topic>/topic.json    {"format": 1, "partitions": n}, written last: the topic exists once
                                      this file does
    <topic>/<partition>/.lock         flock'ed by an appender for its whole batch
    <topic>/<partition>/committed     the partition's committed tail: next offset, last segment's base
                                      offset, its byte size, its index size, its last index position
                                      (5 x u64) + CRC32; atomically replaced (rename) after every batch
    <topic>/<partition>/<base:020d>.log    a segment: the frames of the records from offset <base> on
    <topic>/<partition>/<base:020d>.index  sparse index: (offset u64, byte position u64) of the first record
                                           starting at or after every ``index_interval_bytes`` of the segment

A frame is a 32-byte header ``magic u8 (0xA7), attributes u8 (0), reserved u16 (0), crc u32, offset u64,
timestamp_ms i64, key_len i32 (-1: no key), value_len u32`` followed by the key and the value bytes. The CRC32
covers everything after the crc field (offset .. end of value).

Consistency: the log data is the source of truth and the ``committed`` file a cache of its tail. Readers never
go past the committed end, and verify magic, offset sequence and CRC of every record they return. An appender,
under the partition lock, checks that the tail files match the committed sizes; when they do not (a crashed
append left a torn or uncommitted tail, or the tail lost bytes), it rescans the tail from the last verified
point, keeps every complete valid frame, truncates the rest, and only then writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import struct
import time
import zlib
from bisect import bisect_right
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa

from satlake.resources.event_log import EventLog, EventLogError, OutgoingRecord, RecordColumns

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FRAME_MAGIC = 0xA7
# magic, attributes, reserved | crc | offset, timestamp_ms, key_len (-1: no key), value_len
FRAME_PREFIX = struct.Struct("<BBHI")
FRAME_BODY = struct.Struct("<QqiI")
FRAME_HEADER = struct.Struct("<BBHIQqiI")
FRAME_HEADER_SIZE = FRAME_HEADER.size
CRC_START = FRAME_PREFIX.size  # the CRC covers the frame from the offset field to the end of the value
INDEX_ENTRY = struct.Struct("<QQ")
COMMIT_BODY = struct.Struct("<QQQQQ")
CRC32 = struct.Struct("<I")
MAX_VALUE_BYTES = 0xFFFFFFFF
MAX_KEY_BYTES = 0x7FFFFFFF

TOPIC_FILE = "topic.json"
TOPIC_LOCK_FILE = ".topic.lock"
PARTITION_LOCK_FILE = ".lock"
COMMIT_FILE = "committed"
LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_INDEX_INTERVAL_BYTES = 4096
READ_CHUNK_BYTES = 1024 * 1024
POLL_INTERVAL_S = 0.05
MAX_PARTITIONS = 10_000

# Kafka's rule (kafka.common.internals.Topic): legal characters, at most 249 of them, never "." or "..".
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")
_BYTES_LIKE = (bytes, bytearray, memoryview)


class InvalidTopicError(EventLogError, ValueError):
    """A topic name that Kafka would reject (and that could otherwise escape the log directory)."""


def validate_topic_name(topic: str) -> str:
    """Return ``topic`` if Kafka accepts it: 1 to 249 of ``[a-zA-Z0-9._-]``, and not "." or ".."."""
    if not isinstance(topic, str) or not _LEGAL_TOPIC.fullmatch(topic) or topic in {".", ".."}:
        raise InvalidTopicError(
            f"invalid topic name {topic!r}: use 1 to 249 characters from [a-zA-Z0-9._-], and not '.' or '..'"
        )
    return topic


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: the 32-bit murmur2 hash (seed 0x9747b28c) as a signed Java int."""
    mask = 0xFFFFFFFF
    m = 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    whole = length & ~3
    for (k,) in struct.iter_unpack("<I", data[:whole]):
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    remainder = length & 3
    if remainder == 3:
        h ^= data[whole + 2] << 16
    if remainder >= 2:
        h ^= data[whole + 1] << 8
    if remainder >= 1:
        h ^= data[whole]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


@lru_cache(maxsize=65_536)
def kafka_partition_for_key(key: bytes, partitions: int) -> int:
    """The partition of ``key`` under Kafka's default partitioner (Java; librdkafka ``murmur2_random``)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True, slots=True)
class PartitionTail:
    """The committed end of one partition: where the next record goes and how far readers may read."""

    next_offset: int
    segment_base: int
    segment_size: int
    index_size: int
    last_index_position: int

    def encode(self) -> bytes:
        body = COMMIT_BODY.pack(
            self.next_offset, self.segment_base, self.segment_size, self.index_size, self.last_index_position
        )
        return body + CRC32.pack(zlib.crc32(body))

    @staticmethod
    def decode(data: bytes) -> PartitionTail | None:
        """The tail in ``data``, or None when it is not a complete, CRC-valid commit record."""
        if len(data) != COMMIT_BODY.size + CRC32.size:
            return None
        body = data[: COMMIT_BODY.size]
        if zlib.crc32(body) != CRC32.unpack_from(data, COMMIT_BODY.size)[0]:
            return None
        return PartitionTail(*COMMIT_BODY.unpack(body))


EMPTY_TAIL = PartitionTail(0, 0, 0, 0, 0)


def fair_shares(pending: Mapping[int, int], budget: int) -> dict[int, int]:
    """Split ``budget`` records over partitions with ``pending`` records each, as evenly as they allow
    (a partition with fewer pending records leaves its unused share to the others)."""
    shares = dict.fromkeys(pending, 0)
    active = sorted(p for p, n in pending.items() if n > 0)
    remaining = budget
    while remaining > 0 and active:
        each = max(remaining // len(active), 1)
        still_pending = []
        for partition in active:
            take = min(each, pending[partition] - shares[partition], remaining)
            shares[partition] += take
            remaining -= take
            if shares[partition] < pending[partition]:
                still_pending.append(partition)
            if remaining == 0:
                break
        active = still_pending
    return {p: n for p, n in shares.items() if n > 0}


# ------------------------------------------------------------------------------------------------
# Files of one partition


def segment_name(base_offset: int, suffix: str) -> str:
    return f"{base_offset:020d}{suffix}"


def segment_bases(partition_dir: Path) -> list[int]:
    """Base offsets of the partition's segments, ascending."""
    try:
        names = os.listdir(partition_dir)
    except FileNotFoundError:
        return []
    return sorted(
        int(name[: -len(LOG_SUFFIX)])
        for name in names
        if name.endswith(LOG_SUFFIX) and name[: -len(LOG_SUFFIX)].isdigit()
    )


def file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def read_commit(partition_dir: Path) -> PartitionTail | None:
    try:
        with open(partition_dir / COMMIT_FILE, "rb") as f:
            return PartitionTail.decode(f.read(64))
    except FileNotFoundError:
        return None


def write_commit(partition_dir: Path, tail: PartitionTail) -> None:
    # Rename is atomic, so readers see the old or the new tail, never a mix. It is not fsynced: the segment
    # data is (when fsync is on), and a lost or stale commit file is rebuilt from the data by the next append.
    temporary = partition_dir / (COMMIT_FILE + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, tail.encode())
    finally:
        os.close(fd)
    os.replace(temporary, partition_dir / COMMIT_FILE)


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def append_file(path: Path, data: bytes, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        write_all(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def truncate_file(path: Path, size: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        if os.stat(path).st_size > size:
            os.truncate(path, size)


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``: excludes other processes and other open()s in this one."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def read_index(index_path: Path) -> bytes:
    try:
        with open(index_path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def index_entries(index: bytes) -> list[tuple[int, int]]:
    return list(INDEX_ENTRY.iter_unpack(index[: len(index) - len(index) % INDEX_ENTRY.size]))


def seek_point(index: bytes, base_offset: int, start_offset: int, limit: int) -> tuple[int, int]:
    """(byte position, offset) of the last indexed record at or before ``start_offset`` inside ``limit``
    bytes of the segment; the segment start when there is none."""
    lo, hi = 0, len(index) // INDEX_ENTRY.size
    while lo < hi:  # first entry with offset > start_offset
        mid = (lo + hi) // 2
        if INDEX_ENTRY.unpack_from(index, mid * INDEX_ENTRY.size)[0] <= start_offset:
            lo = mid + 1
        else:
            hi = mid
    for entry in range(lo - 1, -1, -1):
        offset, position = INDEX_ENTRY.unpack_from(index, entry * INDEX_ENTRY.size)
        if position < limit:
            return position, offset
    return 0, base_offset


# ------------------------------------------------------------------------------------------------
# Tail recovery after a crash


@dataclass(slots=True)
class SegmentScan:
    """The valid prefix of a segment from some start point: where it ends and which frames start where."""

    valid_end: int
    next_offset: int
    reached_end_of_file: bool
    # byte position -> offset of the frames found at positions the index names
    frame_offsets: dict[int, int] = field(default_factory=dict)


def scan_segment(log_path: Path, position: int, offset: int, indexed_positions: set[int]) -> SegmentScan:
    """Walk complete, CRC-valid frames with contiguous offsets from ``position`` to the first bad one."""
    try:
        with open(log_path, "rb") as f:
            f.seek(position)
            data = f.read()
    except FileNotFoundError:
        return SegmentScan(position, offset, True)
    view = memoryview(data)
    pos = 0
    found: dict[int, int] = {}
    while pos + FRAME_HEADER_SIZE <= len(data):
        magic, attributes, reserved, crc, frame_offset, _ts, key_len, value_len = FRAME_HEADER.unpack_from(data, pos)
        end = pos + FRAME_HEADER_SIZE + max(key_len, 0) + value_len
        if (
            magic != FRAME_MAGIC
            or attributes
            or reserved
            or frame_offset != offset
            or key_len < -1
            or end > len(data)
            or zlib.crc32(view[pos + CRC_START : end]) != crc
        ):
            break
        if position + pos in indexed_positions:
            found[position + pos] = frame_offset
        offset += 1
        pos = end
    return SegmentScan(position + pos, offset, pos == len(data), found)


def frame_offset_at(log_path: Path, position: int) -> int | None:
    """The offset in the frame header at ``position``, or None when no plausible header is there."""
    try:
        with open(log_path, "rb") as f:
            f.seek(position)
            header = f.read(FRAME_HEADER_SIZE)
    except FileNotFoundError:
        return None
    if len(header) < FRAME_HEADER_SIZE:
        return None
    magic, attributes, reserved, _crc, offset, _ts, _key_len, _value_len = FRAME_HEADER.unpack(header)
    return offset if magic == FRAME_MAGIC and not attributes and not reserved else None


@dataclass(frozen=True, slots=True)
class Recovery:
    """The tail rebuilt from the data, and the cleanup that makes the files match it."""

    tail: PartitionTail
    stale_segments: list[int]


def recover_tail(partition_dir: Path, commit: PartitionTail | None) -> Recovery:
    """Rebuild the committed tail from the segment data (read only; ``apply_recovery`` changes the files).

    Starts at the commit point when the committed segment still holds its committed bytes, else at the last
    index entry that still points at its record, and keeps every complete valid frame after it, across the
    segments rolled after it."""
    bases = segment_bases(partition_dir)
    if not bases:
        # Every segment is gone: keep offsets growing, so consumers never see an offset twice.
        next_offset = 0 if commit is None else commit.next_offset
        return Recovery(PartitionTail(next_offset, next_offset, 0, 0, 0), [])
    if commit is not None and commit.segment_base in bases:
        segment = bases.index(commit.segment_base)
        log_path = partition_dir / segment_name(commit.segment_base, LOG_SUFFIX)
        if file_size(log_path) >= commit.segment_size:
            position, offset = commit.segment_size, commit.next_offset
        else:
            position, offset = last_verified_index_point(partition_dir, commit.segment_base)
    else:
        segment = len(bases) - 1
        position, offset = last_verified_index_point(partition_dir, bases[segment])
    while True:
        base = bases[segment]
        entries = index_entries(read_index(partition_dir / segment_name(base, INDEX_SUFFIX)))
        scan = scan_segment(
            partition_dir / segment_name(base, LOG_SUFFIX),
            position,
            offset,
            {p for _, p in entries if p >= position},
        )
        if scan.reached_end_of_file and segment + 1 < len(bases) and bases[segment + 1] == scan.next_offset:
            segment, position, offset = segment + 1, 0, scan.next_offset
            continue
        break
    kept = 0
    for entry_offset, entry_position in entries:
        if entry_position >= scan.valid_end:
            break
        if entry_position >= position and scan.frame_offsets.get(entry_position) != entry_offset:
            break
        kept += 1
    tail = PartitionTail(
        next_offset=scan.next_offset,
        segment_base=base,
        segment_size=scan.valid_end,
        index_size=kept * INDEX_ENTRY.size,
        last_index_position=entries[kept - 1][1] if kept else 0,
    )
    return Recovery(tail, bases[segment + 1 :])


def last_verified_index_point(partition_dir: Path, base: int) -> tuple[int, int]:
    """(position, offset) of the last index entry of segment ``base`` whose record is still there."""
    log_path = partition_dir / segment_name(base, LOG_SUFFIX)
    size = file_size(log_path)
    for offset, position in reversed(index_entries(read_index(partition_dir / segment_name(base, INDEX_SUFFIX)))):
        if position + FRAME_HEADER_SIZE <= size and frame_offset_at(log_path, position) == offset:
            return position, offset
    return 0, base


def truncate_partition(partition_dir: Path, tail: PartitionTail, stale_segments: Iterable[int]) -> None:
    """Make the files end exactly at ``tail``: drop later segments and bytes past the committed sizes."""
    for base in stale_segments:
        for suffix in (LOG_SUFFIX, INDEX_SUFFIX):
            (partition_dir / segment_name(base, suffix)).unlink(missing_ok=True)
    truncate_file(partition_dir / segment_name(tail.segment_base, LOG_SUFFIX), tail.segment_size)
    truncate_file(partition_dir / segment_name(tail.segment_base, INDEX_SUFFIX), tail.index_size)


# ------------------------------------------------------------------------------------------------
# Encoding


@dataclass(slots=True)
class EncodedChunk:
    """Frames for one segment, ready for a single write, and the sparse index entries that go with them."""

    frames: bytes
    index: bytes
    records: int
    next_offset: int
    segment_size: int
    last_index_position: int


def encode_chunk(
    records: Sequence[OutgoingRecord],
    start: int,
    first_offset: int,
    segment_size: int,
    last_index_position: int,
    default_timestamp_ms: int,
    segment_bytes: int,
    index_interval_bytes: int,
) -> EncodedChunk:
    """Frame ``records[start:]`` from ``first_offset`` on, until the segment reaches ``segment_bytes``."""
    parts: list[bytes] = []
    add = parts.append
    index = bytearray()
    pack_prefix, pack_body, pack_index, crc32 = (
        FRAME_PREFIX.pack,
        FRAME_BODY.pack,
        INDEX_ENTRY.pack,
        zlib.crc32,
    )
    next_index_at = (last_index_position // index_interval_bytes + 1) * index_interval_bytes
    position, offset, i, count = segment_size, first_offset, start, len(records)
    while i < count:
        record = records[i]
        key, value, timestamp_ms = record.key, record.value, record.timestamp_ms
        if timestamp_ms is None:
            timestamp_ms = default_timestamp_ms
        if key is None:
            body = pack_body(offset, timestamp_ms, -1, len(value))
            add(pack_prefix(FRAME_MAGIC, 0, 0, crc32(value, crc32(body))))
            add(body)
            key_len = 0
        else:
            key_len = len(key)
            body = pack_body(offset, timestamp_ms, key_len, len(value))
            add(pack_prefix(FRAME_MAGIC, 0, 0, crc32(value, crc32(key, crc32(body)))))
            add(body)
            add(key)
        add(value)
        if position >= next_index_at:
            index += pack_index(offset, position)
            last_index_position = position
            next_index_at = (position // index_interval_bytes + 1) * index_interval_bytes
        position += FRAME_HEADER_SIZE + key_len + len(value)
        offset += 1
        i += 1
        if position >= segment_bytes:
            break
    return EncodedChunk(b"".join(parts), bytes(index), i - start, offset, position, last_index_position)


def check_record(topic: str, number: int, record: OutgoingRecord) -> None:
    """Reject, before anything is written, a record the frame format cannot hold."""
    value, key, timestamp_ms = record.value, record.key, record.timestamp_ms
    problem = None
    if not isinstance(value, _BYTES_LIKE):
        problem = f"value is {type(value).__name__}, expected bytes"
    elif len(value) > MAX_VALUE_BYTES:
        problem = f"value is {len(value)} bytes, more than {MAX_VALUE_BYTES}"
    elif key is not None and not isinstance(key, _BYTES_LIKE):
        problem = f"key is {type(key).__name__}, expected bytes or None"
    elif key is not None and len(key) > MAX_KEY_BYTES:
        problem = f"key is {len(key)} bytes, more than {MAX_KEY_BYTES}"
    elif timestamp_ms is not None and (not isinstance(timestamp_ms, int) or not -(2**63) <= timestamp_ms < 2**63):
        problem = f"timestamp_ms {timestamp_ms!r} is not a 64-bit integer of milliseconds"
    if problem is not None:
        raise EventLogError(f"cannot append record #{number} to topic {topic!r}: {problem}; nothing was appended")


# ------------------------------------------------------------------------------------------------
# Reading


def header_problem(frame_offset: int, expected_offset: int) -> str:
    if frame_offset != expected_offset:
        return f"bad frame header (it carries offset {frame_offset})"
    return "bad frame header"


class CorruptRecordError(EventLogError):
    """A record inside the committed part of a segment failed its checks (magic, offset sequence, CRC)."""


@dataclass(slots=True)
class PartitionColumns:
    """Records read from one partition, from ``first_offset`` on without gaps, as column lists."""

    partition: int
    first_offset: int
    timestamps: list[int] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)


def concatenate_partitions(topic: str, parts: Sequence[PartitionColumns]) -> RecordColumns:
    """One ``RecordColumns`` of the records of several partitions; offsets and partitions are ranges."""
    counts = [len(part.values) for part in parts]
    return RecordColumns(
        topic=topic,
        partition=np.repeat(np.array([part.partition for part in parts], dtype=np.int32), counts),
        offset=np.concatenate(
            [
                np.arange(part.first_offset, part.first_offset + count, dtype=np.int64)
                for part, count in zip(parts, counts, strict=True)
            ]
            or [np.empty(0, np.int64)]
        ),
        timestamp_ms=np.fromiter((t for part in parts for t in part.timestamps), dtype=np.int64, count=sum(counts)),
        key=pa.array([k for part in parts for k in part.keys], pa.binary()),
        value=pa.array([v for part in parts for v in part.values], pa.binary()),
    )


@dataclass(slots=True)
class SegmentReader:
    """Reads the records of one segment up to a byte limit, in chunks, verifying each one it returns."""

    topic: str
    partition: int
    log_path: Path
    limit: int
    torn_tail_allowed: bool

    def corrupt(self, offset: int, position: int, reason: str) -> CorruptRecordError:
        return CorruptRecordError(
            f"{self.log_path}: the record at offset {offset} (byte {position}) of topic {self.topic!r} "
            f"partition {self.partition} is corrupt: {reason}. The records before it are intact; restore "
            f"this file from a backup, or truncate it to {position} bytes to drop it and all after it."
        )

    def read(
        self, position: int, offset: int, start_offset: int, stop_offset: int, out: PartitionColumns
    ) -> tuple[int, bool]:
        """Append the timestamps, keys and values of records ``start_offset <= offset < stop_offset`` to
        ``out``; returns the next offset and whether the reader may go on (False at a torn tail)."""
        limit = self.limit
        unpack_header, crc32 = FRAME_HEADER.unpack_from, zlib.crc32
        add_timestamp, add_key, add_value = out.timestamps.append, out.keys.append, out.values.append
        with open(self.log_path, "rb") as f:
            f.seek(position)
            data_start, pos = position, 0
            data = f.read(min(READ_CHUNK_BYTES, limit - position))
            while offset < stop_offset:
                view, size = memoryview(data), len(data)
                needed_end = pos + FRAME_HEADER_SIZE
                while offset < stop_offset and needed_end <= size:  # every frame complete in ``data``
                    magic, attributes, reserved, crc, frame_offset, timestamp_ms, key_len, value_len = unpack_header(
                        data, pos
                    )
                    if magic != FRAME_MAGIC or attributes or reserved or key_len < -1 or frame_offset != offset:
                        raise self.corrupt(offset, data_start + pos, header_problem(frame_offset, offset))
                    key_end = needed_end + key_len if key_len > 0 else needed_end
                    frame_end = key_end + value_len
                    if frame_end > size:
                        needed_end = frame_end
                        break
                    if offset >= start_offset:
                        if crc32(view[pos + CRC_START : frame_end]) != crc:
                            raise self.corrupt(offset, data_start + pos, "CRC32 mismatch")
                        add_timestamp(timestamp_ms)
                        add_key(None if key_len < 0 else data[needed_end:key_end])
                        add_value(data[key_end:frame_end])
                    offset += 1
                    pos = frame_end
                    needed_end = pos + FRAME_HEADER_SIZE
                if offset >= stop_offset:
                    break
                # The frame at ``pos`` continues past ``data``: read on, unless it runs past the limit.
                file_position, data_end = data_start + pos, data_start + size
                more = b""
                if data_start + needed_end <= limit:
                    more = f.read(min(max(READ_CHUNK_BYTES, needed_end - size), limit - data_end))
                if not more:
                    if file_position == limit:
                        return offset, True
                    if self.torn_tail_allowed or data_start + needed_end <= limit:  # torn, or cut meanwhile
                        log.warning(
                            "%s: incomplete record at offset %d (byte %d): the partition ends there until "
                            "the next append repairs it",
                            self.log_path, offset, file_position,
                        )  # fmt: skip
                        return offset, False
                    raise self.corrupt(offset, file_position, "its length runs past the committed end")
                data = data[pos:] + more
                data_start, pos = file_position, 0
        return offset, True


# ------------------------------------------------------------------------------------------------
# The log


class LocalEventLog(EventLog):
    """A durable, append-only, partitioned event log in ``directory`` (the module docstring has the format).

    - ``append`` sends a keyed record to the partition Kafka's default partitioner would pick (murmur2), and
      unkeyed records round-robin over the partitions; a missing topic is created with ``default_partitions``.
      Each partition's share of a batch is written with one write under an exclusive ``flock``, fsynced when
      ``fsync`` is on, then committed; batches are atomic per partition, not across partitions.
    - ``read`` splits ``max_records`` fairly over the partitions that have records past ``start_offsets`` and
      returns them grouped by partition (ascending id), in offset order within each. When no partition has
      records it polls until ``timeout_s`` has passed. A corrupt record raises ``CorruptRecordError`` naming
      the file, offset and byte position; a torn tail (a crash mid-append) ends the partition quietly.
    """

    def poll_wait(self, wait_s: float) -> float:
        return 0.0  # an append is committed (readable) before it returns: nothing is in flight

    def __init__(
        self,
        directory: Path | str,
        *,
        default_partitions: int = 4,
        fsync: bool = True,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        index_interval_bytes: int = DEFAULT_INDEX_INTERVAL_BYTES,
    ) -> None:
        for name, number in [
            ("default_partitions", default_partitions),
            ("segment_bytes", segment_bytes),
            ("index_interval_bytes", index_interval_bytes),
        ]:
            if number < 1:
                raise ValueError(f"LocalEventLog: {name} must be at least 1, got {number}")
        self.directory = Path(directory).resolve()
        self.default_partitions = default_partitions
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self.index_interval_bytes = index_interval_bytes
        self._partition_counts: dict[str, int] = {}
        self._round_robin: dict[str, int] = {}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise EventLogError(
                f"cannot create the event log directory {self.directory}: {error}; check the path and its permissions"
            ) from error

    def __repr__(self) -> str:
        return f"LocalEventLog({str(self.directory)!r})"

    # ---- topics ----------------------------------------------------------------------------------

    def topic_dir(self, topic: str) -> Path:
        path = self.directory / validate_topic_name(topic)
        if path.parent != self.directory:  # cannot happen with a valid name; refuse rather than trust it
            raise InvalidTopicError(f"topic {topic!r} resolves outside {self.directory}")
        return path

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.topic_dir(topic) / str(partition)

    def create_topic(self, topic: str, partitions: int) -> None:
        if not isinstance(partitions, int) or not 1 <= partitions <= MAX_PARTITIONS:
            raise EventLogError(
                f"cannot create topic {topic!r} with {partitions!r} partitions: use 1 to {MAX_PARTITIONS}"
            )
        topic_dir = self.topic_dir(topic)
        if (topic_dir / TOPIC_FILE).exists():
            return
        topic_dir.mkdir(exist_ok=True)
        with exclusive_lock(topic_dir / TOPIC_LOCK_FILE):
            if (topic_dir / TOPIC_FILE).exists():
                return
            for partition in range(partitions):
                partition_dir = topic_dir / str(partition)
                partition_dir.mkdir(exist_ok=True)
                if read_commit(partition_dir) is None and not segment_bases(partition_dir):
                    write_commit(partition_dir, EMPTY_TAIL)
            temporary = topic_dir / (TOPIC_FILE + ".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                write_all(fd, json.dumps({"format": FORMAT_VERSION, "partitions": partitions}).encode())
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if self.fsync:
                for partition in range(partitions):
                    fsync_directory(topic_dir / str(partition))
            os.replace(temporary, topic_dir / TOPIC_FILE)
            if self.fsync:
                fsync_directory(topic_dir)
                fsync_directory(self.directory)
        log.info("created topic %r with %d partitions in %s", topic, partitions, self.directory)

    def partition_count(self, topic: str) -> int:
        """Number of partitions of ``topic``, 0 when it does not exist."""
        count = self._partition_counts.get(topic)
        if count is not None:
            return count
        topic_file = self.topic_dir(topic) / TOPIC_FILE
        try:
            metadata = json.loads(topic_file.read_text())
            count = int(metadata["partitions"])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError) as error:
            raise EventLogError(
                f"{topic_file}: unreadable topic metadata ({error}); it should hold "
                '{"format": 1, "partitions": <n>}; fix or restore it'
            ) from error
        self._partition_counts[topic] = count  # partition counts never change, so caching is safe
        return count

    def partitions(self, topic: str) -> list[int]:
        return list(range(self.partition_count(topic)))

    # ---- appending -------------------------------------------------------------------------------

    def append(self, topic: str, records: Iterable[OutgoingRecord]) -> int:
        batch = records if isinstance(records, list) else list(records)
        if not batch:
            validate_topic_name(topic)
            return 0
        count = self.partition_count(topic)
        if count == 0:
            self.create_topic(topic, self.default_partitions)
            count = self.partition_count(topic)
        by_partition: list[list[OutgoingRecord]] = [[] for _ in range(count)]
        round_robin = self._round_robin.get(topic, 0)
        for number, record in enumerate(batch):
            check_record(topic, number, record)
            key = record.key
            if key is None:
                by_partition[round_robin % count].append(record)
                round_robin += 1
            else:
                by_partition[kafka_partition_for_key(bytes(key), count)].append(record)
        self._round_robin[topic] = round_robin
        now_ms = time.time_ns() // 1_000_000
        for partition, partition_records in enumerate(by_partition):
            if partition_records:
                self._append_to_partition(topic, partition, partition_records, now_ms)
        return len(batch)

    def _append_to_partition(self, topic: str, partition: int, records: list[OutgoingRecord], now_ms: int) -> None:
        partition_dir = self.partition_dir(topic, partition)
        partition_dir.mkdir(exist_ok=True)
        with exclusive_lock(partition_dir / PARTITION_LOCK_FILE):
            before = self._tail_for_append(topic, partition, partition_dir)
            try:
                after = self._write_records(partition_dir, before, records, now_ms)
            except BaseException:
                # Leave the partition exactly as committed, so a failed append appends nothing.
                truncate_partition(
                    partition_dir,
                    before,
                    [b for b in segment_bases(partition_dir) if b > before.segment_base],
                )
                raise
            write_commit(partition_dir, after)

    def _write_records(
        self, partition_dir: Path, tail: PartitionTail, records: list[OutgoingRecord], now_ms: int
    ) -> PartitionTail:
        offset, base = tail.next_offset, tail.segment_base
        size, index_size, last_index = tail.segment_size, tail.index_size, tail.last_index_position
        rolled = False
        done = 0
        while done < len(records):
            if size >= self.segment_bytes:
                base, size, index_size, last_index, rolled = offset, 0, 0, 0, True
            chunk = encode_chunk(
                records, done, offset, size, last_index, now_ms, self.segment_bytes, self.index_interval_bytes
            )
            append_file(partition_dir / segment_name(base, LOG_SUFFIX), chunk.frames, self.fsync)
            if chunk.index or size == 0:  # a new segment gets its index file at once, for the directory fsync
                append_file(partition_dir / segment_name(base, INDEX_SUFFIX), chunk.index, self.fsync)
            done += chunk.records
            offset, size, last_index = chunk.next_offset, chunk.segment_size, chunk.last_index_position
            index_size += len(chunk.index)
        if self.fsync and (rolled or tail.segment_size == 0):
            fsync_directory(partition_dir)  # new segment files must survive a crash too
        return PartitionTail(offset, base, size, index_size, last_index)

    def _tail_for_append(self, topic: str, partition: int, partition_dir: Path) -> PartitionTail:
        """The committed tail, after repairing the files when they do not end where the commit says."""
        commit = read_commit(partition_dir)
        bases = segment_bases(partition_dir)
        if (
            commit is not None
            and (not bases or bases[-1] <= commit.segment_base)
            and file_size(partition_dir / segment_name(commit.segment_base, LOG_SUFFIX)) == commit.segment_size
            and file_size(partition_dir / segment_name(commit.segment_base, INDEX_SUFFIX)) == commit.index_size
        ):
            return commit
        recovery = recover_tail(partition_dir, commit)
        tail = recovery.tail
        if commit is None:
            log.warning("%s[%d]: no valid commit file; rebuilt it from the data: %s", topic, partition, tail)
        elif tail.next_offset < commit.next_offset:
            log.warning(
                "%s[%d]: lost records %d..%d (a segment is shorter than committed); appending from %d",
                topic, partition, tail.next_offset, commit.next_offset - 1, tail.next_offset,
            )  # fmt: skip
        else:
            log.warning(
                "%s[%d]: repaired the tail left by an interrupted append: next offset %d -> %d, segment %d "
                "ends at byte %d",
                topic, partition, commit.next_offset, tail.next_offset, tail.segment_base, tail.segment_size,
            )  # fmt: skip
        truncate_partition(partition_dir, tail, recovery.stale_segments)
        if self.fsync:
            for suffix in (LOG_SUFFIX, INDEX_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    fd = os.open(partition_dir / segment_name(tail.segment_base, suffix), os.O_RDWR)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
        write_commit(partition_dir, tail)
        return tail

    # ---- reading ---------------------------------------------------------------------------------

    def committed_tails(self, topic: str) -> dict[int, PartitionTail]:
        """The committed tail of every partition (rebuilt, read only, from the data if a commit is lost)."""
        tails = {}
        for partition in self.partitions(topic):
            partition_dir = self.partition_dir(topic, partition)
            commit = read_commit(partition_dir)
            tails[partition] = commit if commit is not None else recover_tail(partition_dir, None).tail
        return tails

    def end_offsets(self, topic: str) -> dict[int, int]:
        return {partition: tail.next_offset for partition, tail in self.committed_tails(topic).items()}

    def read_columns(
        self,
        topic: str,
        start_offsets: Mapping[int, int],
        max_records: int,
        timeout_s: float = 5.0,
        partitions: Collection[int] | None = None,
    ) -> RecordColumns:
        validate_topic_name(topic)
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            tails = self.committed_tails(topic)
            starts = self._start_offsets(topic, tails, start_offsets)  # offsets of every partition are checked
            if partitions is not None:  # then only the partitions asked for are read (as Kafka does)
                tails = {p: tail for p, tail in tails.items() if p in partitions}
            pending = {p: tails[p].next_offset - starts[p] for p in tails if tails[p].next_offset > starts[p]}
            if pending and max_records > 0:
                parts: list[PartitionColumns] = []
                for partition, quota in sorted(fair_shares(pending, max_records).items()):
                    part = PartitionColumns(partition, starts[partition])
                    self._read_partition(topic, partition, tails[partition], starts[partition], quota, part)
                    parts.append(part)
                return concatenate_partitions(topic, parts)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or max_records <= 0:
                return concatenate_partitions(topic, [])
            time.sleep(min(POLL_INTERVAL_S, remaining))

    def _start_offsets(
        self, topic: str, tails: Mapping[int, PartitionTail], start_offsets: Mapping[int, int]
    ) -> dict[int, int]:
        unknown = sorted(set(start_offsets) - set(tails))
        if unknown:
            raise EventLogError(
                f"topic {topic!r} has partitions {sorted(tails)}, but offsets were given for {unknown}; "
                "pass offsets only for partitions that exist"
            )
        starts = {p: start_offsets.get(p, 0) for p in tails}
        for partition, start in starts.items():
            end = tails[partition].next_offset
            if not isinstance(start, int) or start < 0 or start > end:
                raise EventLogError(
                    f"start offset {start!r} for topic {topic!r} partition {partition} is outside the log "
                    f"(offsets 0..{end}): the log directory {self.directory} was replaced or lost records; "
                    "reset the consumer's offsets for this topic"
                )
        return starts

    def _read_partition(
        self,
        topic: str,
        partition: int,
        tail: PartitionTail,
        start_offset: int,
        quota: int,
        out: PartitionColumns,
    ) -> None:
        partition_dir = self.partition_dir(topic, partition)
        bases = [b for b in segment_bases(partition_dir) if b <= tail.segment_base]
        stop_offset = min(tail.next_offset, start_offset + quota)
        segment = bisect_right(bases, start_offset) - 1
        if segment < 0:
            return  # the segments holding these offsets are gone; the reader sees the log as ending here
        offset = start_offset
        while offset < stop_offset and segment < len(bases):
            base = bases[segment]
            log_path = partition_dir / segment_name(base, LOG_SUFFIX)
            size = file_size(log_path)
            committed_size = tail.segment_size if base == tail.segment_base else size
            limit = min(size, committed_size)
            position, offset_at_position = seek_point(
                read_index(partition_dir / segment_name(base, INDEX_SUFFIX)), base, offset, limit
            )
            reader = SegmentReader(topic, partition, log_path, limit, torn_tail_allowed=size < committed_size)
            next_offset, may_continue = reader.read(position, offset_at_position, offset, stop_offset, out)
            if not may_continue:
                return
            offset = next_offset
            segment += 1
            if offset < stop_offset and segment < len(bases) and bases[segment] != offset:
                raise reader.corrupt(offset, limit, f"the segment ends before the next one (offset {bases[segment]})")
