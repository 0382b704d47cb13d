"""The TCP front of a collector: raw space packets back to back (Yamcs' TCP framing), optionally after one line
``AUTH <station> <token> <mission>[ frames=<length>[ fecf=0]]``.

The first byte tells the two apart: 'A' (0x41) can never start a CCSDS version-0 packet (0x00-0x1F). A stream
without the line is taken only when the collector was given an anonymous station and mission (trusted links).
After an accepted line the collector answers ``OK <mission>``; after a refused one ``ERR <reason>`` and closes.
When an authenticated sender closes its side, the collector publishes the rest and answers
``DONE {"accepted": n, "rejected": m, "reasons": {...}}`` before closing. A connection that closes without a
byte (a load balancer's health check) is not worth a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from satlake.ground.collector_core import (
    CollectorConfig,
    CollectorMetrics,
    Directory,
    DirectoryUnavailable,
    FrameOptions,
    Publisher,
    Session,
    batch_records,
    stream_splitter,
)
from satlake.ground.framing import SplitResult
from satlake.resources.event_log import EventLogError

log = logging.getLogger("satlake.ground.collector")

READ_CHUNK_BYTES = 256 * 1024
MAX_AUTH_LINE_BYTES = 1024
AUTH_LINE_TIMEOUT_S = 10.0
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 5.0)
TRANSPORT = "tcp"


class Refused(Exception):
    """The connection is refused; the message is the reason (logged, and sent back as ``ERR <reason>``)."""


def parse_auth_line(line: str) -> tuple[str, str, str, FrameOptions | None]:
    """(station, token, mission, frame options) of an ``AUTH`` line; ``Refused`` when it is malformed."""
    words = line.split()
    if len(words) < 4 or words[0] != "AUTH":
        raise Refused("malformed AUTH line: expected 'AUTH <station> <token> <mission>[ frames=<length>[ fecf=0]]'")
    station, token, mission = words[1:4]
    options: dict[str, str] = {}
    for word in words[4:]:
        name, _, value = word.partition("=")
        if name not in ("frames", "fecf") or not value:
            raise Refused(f"unknown AUTH option {word!r}: use frames=<length> and fecf=0|1")
        options[name] = value
    if "frames" not in options:
        if "fecf" in options:
            raise Refused("fecf= needs frames=<length>")
        return station, token, mission, None
    try:
        frames = FrameOptions(int(options["frames"]), options.get("fecf", "1") not in ("0", "false", "no"))
    except ValueError as error:
        raise Refused(f"bad frames option: {error}") from error
    return station, token, mission, frames


class TcpFront:
    """Serves one TCP connection at a time per task; ``handle`` is the ``asyncio.start_server`` callback."""

    def __init__(
        self,
        config: CollectorConfig,
        directory: Directory,
        publisher: Publisher,
        metrics: CollectorMetrics,
        stopping: asyncio.Event,
    ) -> None:
        self.config = config
        self.directory = directory
        self.publisher = publisher
        self.metrics = metrics
        self.stopping = stopping

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer)
        self.metrics.connections.inc()
        try:
            await self._serve(reader, writer, peer)
        except Refused as refusal:
            log.warning("TCP connection from %s refused: %s", peer, refusal)
            with contextlib.suppress(Exception):
                writer.write(f"ERR {refusal}\n".encode())
                await asyncio.wait_for(writer.drain(), 5.0)
        except (ConnectionError, asyncio.IncompleteReadError) as error:
            log.info("TCP connection from %s ended: %s", peer, error)
        except Exception:
            log.exception("TCP connection from %s failed", peer)
        finally:
            self.metrics.connections.dec()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5.0)

    async def _read(self, reader: asyncio.StreamReader) -> bytes | None:
        """The next chunk; b"" at the end of the stream, None when the collector is stopping."""
        if self.stopping.is_set():
            return None
        read = asyncio.ensure_future(reader.read(READ_CHUNK_BYTES))
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if read.done():
            return read.result()
        read.cancel()
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        first = await self._read(reader)
        received_ns = time.time_ns()
        if not first:
            log.debug("TCP connection from %s closed without data (a health check)", peer)
            return
        authenticated = first[:1] == b"A"
        if authenticated:
            line, first = await self._auth_line(reader, first)
            station, token, mission_name, frames = parse_auth_line(line)
        elif self.config.anonymous_station is not None and self.config.anonymous_mission is not None:
            station, token, mission_name, frames = (
                self.config.anonymous_station,
                "",
                self.config.anonymous_mission,
                None,
            )
        else:
            raise Refused("the stream does not start with an AUTH line and this collector takes no anonymous streams")
        session = await self._session(station, token, mission_name, authenticated, peer)
        if authenticated:
            writer.write(f"OK {mission_name}\n".encode())
            await writer.drain()
        log.info("TCP stream from %s: station %s, mission %s%s", peer, station, mission_name,
                 f", frames of {frames.length} bytes" if frames else "")  # fmt: skip
        splitter = stream_splitter(session.mission, frames, self.config.max_packet_length)
        chunk: bytes | None = first
        if not chunk:  # the first read held only the AUTH line
            chunk = await self._read(reader)
            received_ns = time.time_ns()
        while chunk:
            self.metrics.bytes.labels(mission_name, TRANSPORT).inc(len(chunk))
            await self._publish(session, splitter.feed(chunk), received_ns)
            chunk = await self._read(reader)  # not before the batch is published: TCP holds the sender back
            received_ns = time.time_ns()
        await self._publish(session, splitter.finish(), received_ns)
        log.info("TCP stream from %s (station %s, mission %s) ended: %s", peer, station, mission_name,
                 session.summary())  # fmt: skip
        if authenticated and chunk is not None:
            writer.write(f"DONE {json.dumps(session.summary())}\n".encode())
            await writer.drain()

    async def _auth_line(self, reader: asyncio.StreamReader, first: bytes) -> tuple[str, bytes]:
        """The AUTH line and the bytes after it."""
        buffer = bytearray(first)
        deadline = time.monotonic() + AUTH_LINE_TIMEOUT_S
        while b"\n" not in buffer:
            if len(buffer) > MAX_AUTH_LINE_BYTES:
                raise Refused(f"no end of line in the first {MAX_AUTH_LINE_BYTES} bytes of an AUTH line")
            try:
                more = await asyncio.wait_for(reader.read(MAX_AUTH_LINE_BYTES), max(deadline - time.monotonic(), 0))
            except TimeoutError:
                raise Refused(f"no complete AUTH line within {AUTH_LINE_TIMEOUT_S:.0f}s") from None
            if not more:
                raise Refused("the connection closed inside the AUTH line")
            buffer += more
        line, _, rest = bytes(buffer).partition(b"\n")
        if len(line) > MAX_AUTH_LINE_BYTES:
            raise Refused(f"AUTH line longer than {MAX_AUTH_LINE_BYTES} bytes")
        try:
            return line.decode("ascii").rstrip("\r"), rest
        except UnicodeDecodeError:
            raise Refused("the AUTH line is not ASCII") from None

    async def _session(self, station: str, token: str, mission_name: str, authenticated: bool, peer: str) -> Session:
        try:
            mission, station_record = await self.directory.lookup(mission_name, station if authenticated else None)
        except DirectoryUnavailable as error:
            raise Refused(str(error)) from error
        if mission is None:
            raise Refused(f"unknown mission {mission_name!r}")
        if authenticated and (station_record is None or not station_record.accepts(token, mission_name)):
            self.metrics.auth_failures.labels(TRANSPORT).inc()
            raise Refused(f"station {station!r} is unknown, its token is wrong, or it may not send {mission_name!r}")
        return Session(mission, station, TRANSPORT, peer)

    async def _publish(self, session: Session, result: SplitResult, received_ns: int) -> None:
        """Publish a batch, retrying while the log refuses it: nothing acknowledges a TCP sender, so the
        bytes read are only safe once in the log (the sender waits meanwhile: nothing more is read)."""
        if not result:
            return
        records = batch_records(result, session.station, received_ns)
        size = sum(len(record.value) for record in records)
        await self.publisher.reserve(size)
        try:
            attempt = 0
            while True:
                try:
                    await self.publisher.publish(session.mission.topic, records)
                    break
                except EventLogError as error:
                    if self.stopping.is_set() and attempt > 0:
                        log.error(
                            "collector stopping: %d packets and %d rejects from %s (station %s) are lost: %s",
                            len(result.packets), len(result.rejects), session.peer, session.station, error,
                        )  # fmt: skip
                        raise
                    delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
                    log.warning("publishing to %s failed (%s); retrying in %.1fs, the sender waits",
                                session.mission.topic, error, delay)  # fmt: skip
                    attempt += 1
                    await asyncio.sleep(delay)
        finally:
            await self.publisher.release(size)
        self.metrics.published(session.mission.name, TRANSPORT, result)
        session.count(result)


def _peer(writer: asyncio.StreamWriter) -> str:
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
