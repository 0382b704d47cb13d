"""What the TCP and HTTP fronts of a collector share: its settings, the missions and stations it accepts
(refreshed from their providers), the publisher that appends envelopes to the log and holds back senders
while the broker is behind, and the Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from satlake.ground.envelope import Envelope
from satlake.ground.frames import FrameDemultiplexer, check_frame_length
from satlake.ground.framing import MAX_PACKET_LENGTH, PacketSplitter, SplitResult
from satlake.resources.event_log import EventLog, OutgoingRecord

log = logging.getLogger("satlake.ground.collector")

MIB = 1024 * 1024
MAX_REASONS_SHOWN = 20


class MissionLike(Protocol):
    """What a collector needs of a mission (``registry.MissionRecord`` has it)."""

    name: str
    topic: str
    apids: tuple[int, ...]


class StationLike(Protocol):
    """What a collector needs of a ground station (``registry.StationRecord`` has it)."""

    name: str

    def accepts(self, token: str, mission: str) -> bool: ...


@dataclass(frozen=True)
class CollectorConfig:
    """How a collector listens and how much it takes in. A port of 0 picks a free port; None turns the front off."""

    host: str = "127.0.0.1"
    tcp_port: int | None = 10016
    http_port: int | None = 8096
    name: str = "col1"
    max_packet_length: int = MAX_PACKET_LENGTH
    max_body_bytes: int = 16 * MIB
    max_inflight_bytes: int = 64 * MIB
    anonymous_station: str | None = None
    anonymous_mission: str | None = None
    refresh_s: float = 30.0
    publish_threads: int = 4
    topic_partitions: int = 4
    retry_after_s: int = 1
    shutdown_grace_s: float = 30.0

    def __post_init__(self) -> None:
        if (self.anonymous_station is None) != (self.anonymous_mission is None):
            raise ValueError("anonymous streams need both a station and a mission (--anonymous-station/-mission)")
        for name in ("max_body_bytes", "max_inflight_bytes", "publish_threads", "topic_partitions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class FrameOptions:
    """The stream carries TM transfer frames of ``length`` bytes (with a CRC when ``fecf``), not bare packets."""

    length: int
    fecf: bool = True

    def __post_init__(self) -> None:
        check_frame_length(self.length, self.fecf)


def stream_splitter(
    mission: MissionLike, frames: FrameOptions | None, max_packet_length: int = MAX_PACKET_LENGTH
) -> PacketSplitter | FrameDemultiplexer:
    """A splitter for one stream of ``mission``'s packets (bare, or inside frames)."""
    apids = tuple(mission.apids) or None
    if frames is None:
        return PacketSplitter(max_packet_length, apids)
    return FrameDemultiplexer(frames.length, frames.fecf, max_packet_length=max_packet_length, known_apids=apids)


def batch_records(result: SplitResult, station: str, received_ns: int) -> list[OutgoingRecord]:
    """The log records of what a piece of stream gave: one envelope per packet and per reject."""
    records = [Envelope.packet(packet, station, received_ns).to_record() for packet in result.packets]
    records += [Envelope.reject(r.data, r.reason, station, received_ns).to_record() for r in result.rejects]
    return records


def reason_category(reason: str) -> str:
    """A reject reason without its numbers: a bounded set of label values for the metrics."""
    return re.sub(r"\d+", "N", reason)


def summarise_reasons(reasons: Iterable[str]) -> dict[str, int]:
    """Rejects counted by reason; past ``MAX_REASONS_SHOWN`` distinct reasons, by reason category."""
    tally = Tally(reasons)
    if len(tally) <= MAX_REASONS_SHOWN:
        return dict(tally)
    return dict(Tally(reason_category(reason) for reason in tally.elements()))


class CollectorMetrics:
    """The collector's Prometheus metrics, in a registry of its own (several collectors may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["mission", "transport"]
        self.packets = Counter("satlake_collector_packets", "Packets published", labels, registry=self.registry)
        self.rejects = Counter(
            "satlake_collector_rejects", "Rejects published", [*labels, "reason"], registry=self.registry
        )
        self.bytes = Counter("satlake_collector_bytes", "Bytes received", labels, registry=self.registry)
        self.idle = Counter("satlake_collector_idle_packets", "Idle packets dropped", labels, registry=self.registry)
        self.auth_failures = Counter(
            "satlake_collector_auth_failures", "Refused credentials", ["transport"], registry=self.registry
        )
        self.throttled = Counter(
            "satlake_collector_throttled", "HTTP requests answered 429 (broker behind)", registry=self.registry
        )
        self.publish_failures = Counter(
            "satlake_collector_publish_failures", "Appends the log refused", registry=self.registry
        )
        self.publish_seconds = Histogram(
            "satlake_collector_publish_seconds",
            "Time from append to the log's acknowledgement",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.inflight = Gauge("satlake_collector_inflight_bytes", "Bytes being published", registry=self.registry)
        self.connections = Gauge("satlake_collector_tcp_connections", "Open TCP streams", registry=self.registry)

    def published(self, mission: str, transport: str, result: SplitResult) -> None:
        self.packets.labels(mission, transport).inc(len(result.packets))
        if result.idle:
            self.idle.labels(mission, transport).inc(result.idle)
        for reject in result.rejects:
            self.rejects.labels(mission, transport, reason_category(reject.reason)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class DirectoryUnavailable(RuntimeError):
    """The missions or stations could not be loaded, and none were loaded before."""


class Directory:
    """The missions and stations a collector accepts, from providers called in a thread: again every
    ``refresh_s``, and at most every ``miss_refresh_s`` when asked for a name it does not know (a mission or
    station registered a moment ago works without restarting the collector)."""

    def __init__(
        self,
        missions: Callable[[], Mapping[str, MissionLike]],
        stations: Callable[[], Mapping[str, StationLike]],
        refresh_s: float = 30.0,
        miss_refresh_s: float = 2.0,
    ) -> None:
        self._providers = (missions, stations)
        self.refresh_s = refresh_s
        self.miss_refresh_s = miss_refresh_s
        self._missions: Mapping[str, MissionLike] = {}
        self._stations: Mapping[str, StationLike] = {}
        self._loaded_at: float | None = None
        self._lock: asyncio.Lock | None = None

    def _load(self) -> tuple[Mapping[str, MissionLike], Mapping[str, StationLike]]:
        return dict(self._providers[0]()), dict(self._providers[1]())

    async def _refresh(self, older_than_s: float) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._loaded_at is not None and time.monotonic() - self._loaded_at < older_than_s:
                return  # another request refreshed it while this one waited
            try:
                self._missions, self._stations = await asyncio.to_thread(self._load)
            except Exception as error:
                log.exception("loading the missions and stations failed; keeping the ones loaded before")
                if self._loaded_at is None:
                    raise DirectoryUnavailable(f"the missions and stations could not be loaded: {error}") from error
                self._loaded_at = time.monotonic() - self.refresh_s + self.miss_refresh_s  # retry soon, not at once
                return
            self._loaded_at = time.monotonic()

    async def lookup(self, mission: str, station: str | None) -> tuple[MissionLike | None, StationLike | None]:
        """The mission and station of these names (None: unknown); ``station=None`` looks up the mission only."""
        if self._loaded_at is None or time.monotonic() - self._loaded_at >= self.refresh_s:
            await self._refresh(0.0)
        if mission not in self._missions or (station is not None and station not in self._stations):
            await self._refresh(self.miss_refresh_s)
        return self._missions.get(mission), self._stations.get(station) if station is not None else None


@dataclass
class Session:
    """One authenticated stream (a TCP connection or an HTTP request) of one station and mission."""

    mission: MissionLike
    station: str
    transport: str
    peer: str
    accepted: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def count(self, result: SplitResult) -> None:
        self.accepted += len(result.packets)
        self.rejected += len(result.rejects)
        self.reasons += [reject.reason for reject in result.rejects]

    def summary(self) -> dict[str, object]:
        return {"accepted": self.accepted, "rejected": self.rejected, "reasons": summarise_reasons(self.reasons)}


class Publisher:
    """Appends batches to the log in a thread pool (the append blocks until the log acknowledged) and keeps
    count of the bytes in flight: HTTP answers 429 past ``max_inflight_bytes``, TCP stops reading."""

    def __init__(self, event_log: EventLog, metrics: CollectorMetrics, config: CollectorConfig) -> None:
        self.event_log = event_log
        self.metrics = metrics
        self.max_inflight_bytes = config.max_inflight_bytes
        self.topic_partitions = config.topic_partitions
        self._executor = ThreadPoolExecutor(config.publish_threads, thread_name_prefix=f"{config.name}-publish")
        self._inflight = 0
        self._batches = 0
        self._changed: asyncio.Condition | None = None
        self._topics: set[str] = set()
        self._topics_lock = threading.Lock()

    @property
    def inflight_bytes(self) -> int:
        return self._inflight

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def try_reserve(self, size: int) -> bool:
        """Count ``size`` bytes as in flight if they fit (a batch always fits when nothing else is in flight)."""
        if self._inflight and self._inflight + size > self.max_inflight_bytes:
            return False
        self._take(size)
        return True

    async def reserve(self, size: int) -> None:
        """Wait until ``size`` bytes fit, then count them as in flight."""
        condition = self._condition()
        async with condition:
            await condition.wait_for(lambda: not self._inflight or self._inflight + size <= self.max_inflight_bytes)
            self._take(size)

    def _take(self, size: int) -> None:
        self._inflight += size
        self._batches += 1
        self.metrics.inflight.set(self._inflight)

    async def release(self, size: int) -> None:
        condition = self._condition()
        async with condition:
            self._inflight -= size
            self._batches -= 1
            self.metrics.inflight.set(self._inflight)
            condition.notify_all()

    async def publish(self, topic: str, records: list[OutgoingRecord]) -> None:
        """Append ``records`` to ``topic``; returns once the log acknowledged them (raises ``EventLogError``)."""
        if not records:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._append, topic, records)

    def _append(self, topic: str, records: list[OutgoingRecord]) -> None:
        if topic not in self._topics:
            with self._topics_lock:
                if topic not in self._topics:
                    self.event_log.create_topic(topic, self.topic_partitions)
                    self._topics.add(topic)
        started = time.perf_counter()
        try:
            self.event_log.append(topic, records)
        except Exception:
            self.metrics.publish_failures.inc()
            raise
        self.metrics.publish_seconds.observe(time.perf_counter() - started)

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no batch is in flight (at most ``timeout_s``); False when some still are."""
        condition = self._condition()
        try:
            async with asyncio.timeout(timeout_s), condition:
                await condition.wait_for(lambda: self._batches == 0)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=True)
