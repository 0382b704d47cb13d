"""``satlake produce packets``: replay recorded files of packets (or TM frames) back to back, as a ground
station would deliver them: through a collector over TCP (the AUTH line, then the bytes) or HTTP (POSTs of
whole packets or frames, retried on 429 and 503), or straight into the log as a collector would publish them.

Each file is one stream: its own TCP connection, its own splitter, so a truncated end is not glued to the
next file's start.
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from satlake.ground.collector_core import FrameOptions, batch_records
from satlake.ground.frames import FrameDemultiplexer
from satlake.ground.framing import MAX_PACKET_LENGTH, PacketSplitter, SplitResult
from satlake.resources.event_log import EventLog

READ_BLOCK_BYTES = 4 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024
APPEND_BATCH = 5000
DEFAULT_STATION = "replay"
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0, 10.0)
MAX_THROTTLED_WAIT_S = 300.0

Progress = Callable[[int], None]


class ReplayError(RuntimeError):
    """The replay cannot go on; the message names the file or the collector and what to do."""


@dataclass
class ReplaySummary:
    """What a replay sent and what came of it (the collector's counts when it went through one)."""

    files: int = 0
    bytes: int = 0
    packets: int = 0
    rejects: int = 0
    idle: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, accepted: int, rejected: int, reasons: dict[str, int], idle: int = 0) -> None:
        self.packets += accepted
        self.rejects += rejected
        self.idle += idle
        self.reasons.update(reasons)

    def line(self) -> str:
        """One line: packets, rejects by reason, volume and throughput."""
        rate = self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0
        text = (f"replayed {self.files} file(s), {self.bytes / 1e6:,.2f} MB in {self.seconds:.1f}s ({rate:,.2f} MB/s): "
                f"{self.packets:,} packets, {self.rejects:,} rejects")  # fmt: skip
        if self.idle:
            text += f", {self.idle:,} idle packets dropped"
        if self.reasons:
            text += " (" + "; ".join(f"{count} x {reason}" for reason, count in self.reasons.most_common(5))
            text += f"; {len(self.reasons) - 5} more reasons)" if len(self.reasons) > 5 else ")"
        return text


class Pacer:
    """Holds a sender to ``rate`` units (packets or frames) a second; no limit when ``rate`` is None."""

    def __init__(
        self,
        rate: float | None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ReplayError(f"--rate {rate}: give a positive number of packets per second")
        self.rate = rate
        self.sleep = sleep
        self.clock = clock
        self.started = clock()
        self.sent = 0

    @property
    def units_per_piece(self) -> int:
        """How many units to send at once: ten pieces a second when paced."""
        return max(1, int(self.rate / 10)) if self.rate else 1_000_000_000

    def __call__(self, units: int) -> None:
        self.sent += units
        if self.rate:
            delay = self.started + self.sent / self.rate - self.clock()
            if delay > 0:
                self.sleep(delay)


def check_files(files: Sequence[Path]) -> list[Path]:
    missing = [str(path) for path in files if not Path(path).is_file()]
    if missing:
        raise ReplayError(f"no such file: {', '.join(missing)}")
    return [Path(path) for path in files]


def _splitter(
    frames: FrameOptions | None, known_apids: Collection[int] | None, max_packet_length: int
) -> PacketSplitter | FrameDemultiplexer:
    if frames is None:
        return PacketSplitter(max_packet_length, known_apids)
    return FrameDemultiplexer(frames.length, frames.fecf, max_packet_length=max_packet_length, known_apids=known_apids)


def pieces(
    path: Path,
    frames: FrameOptions | None,
    *,
    known_apids: Collection[int] | None = None,
    max_bytes: int = CHUNK_BYTES,
    max_units: int = 1_000_000_000,
    max_packet_length: int = MAX_PACKET_LENGTH,
) -> Iterator[tuple[bytes, int]]:
    """The file's bytes, unchanged, in pieces of whole units (packets, frames, rejected runs) of at most
    ``max_bytes`` (a larger unit goes alone) and ``max_units``: (piece, units in it)."""
    finder = PacketSplitter(max_packet_length, known_apids) if frames is None else None
    buffer = bytearray()
    start = 0  # file offset of buffer[0]
    ends: deque[int] = deque()
    with open(path, "rb") as stream:
        final = False
        while not final:
            block = stream.read(READ_BLOCK_BYTES)
            final = not block
            buffer += block
            end = start + len(buffer)
            if finder is not None:
                ends.extend((finder.finish() if final else finder.feed(block)).ends)
            else:
                assert frames is not None
                last = ends[-1] if ends else start
                ends.extend(range(last + frames.length, end + 1, frames.length))
                if final and (ends[-1] if ends else start) < end:
                    ends.append(end)  # a partial frame at the end of the file
            while ends:
                count = 0
                while count < len(ends) and count < max_units and ends[count] - start <= max_bytes:
                    count += 1
                if count == len(ends) and count < max_units and not final:
                    break  # the piece could take more units: wait for them
                count = max(count, 1)
                cut = ends[count - 1]
                piece = bytes(buffer[: cut - start])
                del buffer[: cut - start]
                start = cut
                for _ in range(count):
                    ends.popleft()
                yield piece, count
    if buffer:
        yield bytes(buffer), 0


def replay_to_log(
    event_log: EventLog,
    topic: str,
    files: Sequence[Path],
    *,
    station: str = DEFAULT_STATION,
    frames: FrameOptions | None = None,
    known_apids: Collection[int] | None = None,
    rate: float | None = None,
    partitions: int = 4,
    max_packet_length: int = MAX_PACKET_LENGTH,
    progress: Progress | None = None,
) -> ReplaySummary:
    """Split the files as a collector would and append the envelopes to ``topic`` (ground time: now)."""
    files = check_files(files)
    event_log.create_topic(topic, partitions)
    pacer = Pacer(rate)
    summary = ReplaySummary()
    started = time.perf_counter()
    for path in files:
        splitter = _splitter(frames, known_apids, max_packet_length)
        for piece, units in pieces(
            path, frames, known_apids=known_apids, max_bytes=CHUNK_BYTES,
            max_units=min(pacer.units_per_piece, APPEND_BATCH), max_packet_length=max_packet_length,
        ):  # fmt: skip
            result = splitter.feed(piece)
            summary.bytes += len(piece)
            _append(event_log, topic, result, station, summary)
            if progress is not None:
                progress(summary.bytes)
            pacer(units)
        _append(event_log, topic, splitter.finish(), station, summary)
        summary.files += 1
    summary.seconds = time.perf_counter() - started
    return summary


def _append(event_log: EventLog, topic: str, result: SplitResult, station: str, summary: ReplaySummary) -> None:
    records = batch_records(result, station, time.time_ns())
    if records:
        event_log.append(topic, records)
    summary.add(len(result.packets), len(result.rejects), Counter(r.reason for r in result.rejects), result.idle)


def parse_via(via: str) -> tuple[str, str, int]:
    """(scheme, host, port) of ``tcp://HOST:PORT`` or ``http://HOST:PORT``."""
    parts = urlsplit(via)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("tcp", "http", "https") or not parts.hostname or port is None:
        raise ReplayError(f"--via {via!r}: use tcp://HOST:PORT or http://HOST:PORT")
    return parts.scheme, parts.hostname, port


def auth_line(station: str, token: str, mission: str, frames: FrameOptions | None) -> bytes:
    line = f"AUTH {station} {token} {mission}"
    if frames is not None:
        line += f" frames={frames.length}" + ("" if frames.fecf else " fecf=0")
    return (line + "\n").encode("ascii")


def replay_over_tcp(
    host: str,
    port: int,
    files: Sequence[Path],
    *,
    mission: str,
    station: str | None = None,
    token: str | None = None,
    frames: FrameOptions | None = None,
    rate: float | None = None,
    progress: Progress | None = None,
    timeout_s: float = 60.0,
) -> ReplaySummary:
    """Send each file over its own connection (with the AUTH line when a token is given) and, when
    authenticated, read the collector's counts once it published everything."""
    files = check_files(files)
    if token is not None and station is None:
        raise ReplayError("--token needs --station")
    pacer = Pacer(rate)
    summary = ReplaySummary()
    started = time.perf_counter()
    for path in files:
        try:
            connection = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as error:
            raise ReplayError(f"cannot connect to the collector at tcp://{host}:{port}: {error}") from error
        with connection, connection.makefile("rb") as answers:
            if token is not None and station is not None:
                connection.sendall(auth_line(station, token, mission, frames))
                _expect_ok(_answer(answers, host, port), host, port, station, mission)
            try:
                for piece, units in pieces(path, frames, max_units=pacer.units_per_piece):
                    connection.sendall(piece)
                    summary.bytes += len(piece)
                    if progress is not None:
                        progress(summary.bytes)
                    pacer(units)
                connection.shutdown(socket.SHUT_WR)
            except OSError as error:
                answer = _answer(answers, host, port, required=False)
                raise ReplayError(f"the collector at tcp://{host}:{port} cut the stream of {path}: "
                                  f"{answer.decode(errors='replace').strip() or error}") from error  # fmt: skip
            answer = _answer(answers, host, port, required=token is not None)
        if answer.startswith(b"ERR "):
            raise ReplayError(f"the collector at tcp://{host}:{port} refused {path}: {answer[4:].decode().strip()}")
        if answer.startswith(b"DONE "):
            counts = json.loads(answer[5:])
            summary.add(counts["accepted"], counts["rejected"], counts.get("reasons", {}))
        summary.files += 1
    summary.seconds = time.perf_counter() - started
    return summary


def _answer(answers: BinaryIO, host: str, port: int, required: bool = True) -> bytes:
    try:
        line = answers.readline()
    except OSError as error:
        if required:
            raise ReplayError(f"no answer from the collector at tcp://{host}:{port}: {error}") from error
        return b""
    if required and not line:
        raise ReplayError(f"the collector at tcp://{host}:{port} closed the connection without an answer")
    return bytes(line)


def _expect_ok(answer: bytes, host: str, port: int, station: str, mission: str) -> None:
    if answer.startswith(b"OK"):
        return
    reason = answer[4:].decode(errors="replace").strip() if answer.startswith(b"ERR ") else repr(answer)
    raise ReplayError(f"the collector at tcp://{host}:{port} refused station {station!r} for mission {mission!r}: "
                      f"{reason}")  # fmt: skip
