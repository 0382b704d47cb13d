"""``satlake collect``: the ground-station collector. One asyncio process serves a raw TCP packet stream front
and an HTTP front at once, splits what arrives into packets and rejects, and appends them, wrapped in envelopes
with the station and the ground receive time, to the mission's topic. It keeps no state between requests, so
several collectors can run side by side (behind HAProxy) against the same log.

``Collector`` runs in the calling event loop (``start_async``/``stop_async``) or in a thread of its own
(``start``/``stop``: tests and the demo); ``run_collector`` runs one until SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import uvicorn

from satlake.ground.collector_core import (
    CollectorConfig,
    CollectorMetrics,
    Directory,
    MissionLike,
    Publisher,
    StationLike,
)
from satlake.ground.collector_http import HttpFront
from satlake.ground.collector_tcp import TcpFront
from satlake.resources.event_log import EventLog

log = logging.getLogger("satlake.ground.collector")

START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class CollectorPorts:
    """The ports a collector listens on (None: that front is off)."""

    host: str
    tcp: int | None
    http: int | None

    def describe(self) -> str:
        fronts = [f"tcp://{self.host}:{self.tcp}" if self.tcp is not None else "",
                  f"http://{self.host}:{self.http}" if self.http is not None else ""]  # fmt: skip
        return " and ".join(front for front in fronts if front)


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the collector decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


class Collector:
    """A collector for ``event_log``, accepting the missions and stations its providers return."""

    def __init__(
        self,
        event_log: EventLog,
        missions: Callable[[], Mapping[str, MissionLike]],
        stations: Callable[[], Mapping[str, StationLike]],
        config: CollectorConfig | None = None,
    ) -> None:
        self.event_log = event_log
        self.config = config or CollectorConfig()
        self.metrics = CollectorMetrics()
        self.directory = Directory(missions, stations, self.config.refresh_s)
        self.publisher = Publisher(event_log, self.metrics, self.config)
        self.ports: CollectorPorts | None = None
        self._stopping: asyncio.Event | None = None
        self._tcp_server: asyncio.Server | None = None
        self._tcp_tasks: set[asyncio.Task[None]] = set()
        self._http: _EmbeddedUvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- in the caller's event loop ----------------------------------------------------------------

    async def start_async(self) -> CollectorPorts:
        """Open the fronts (ports 0: free ports) and return the ports they listen on."""
        config = self.config
        self._stopping = asyncio.Event()
        tcp_port = http_port = None
        if config.tcp_port is not None:
            front = TcpFront(config, self.directory, self.publisher, self.metrics, self._stopping)
            self._tcp_server = await asyncio.start_server(
                lambda r, w: self._track(front.handle(r, w)), sock=_listening_socket(config.host, config.tcp_port)
            )
            tcp_port = self._tcp_server.sockets[0].getsockname()[1]
        if config.http_port is not None:
            http_socket = _listening_socket(config.host, config.http_port)
            http_port = http_socket.getsockname()[1]
            app = HttpFront(config, self.directory, self.publisher, self.metrics).app
            uvicorn_config = uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=int(config.shutdown_grace_s),
            )
            self._http = _EmbeddedUvicorn(uvicorn_config)
            self._http_task = asyncio.create_task(self._http.serve(sockets=[http_socket]))
            while not self._http.started:
                if self._http_task.done():
                    self._http_task.result()  # raises why uvicorn did not start
                    raise RuntimeError(f"the HTTP front on {config.host}:{http_port} stopped while starting")
                await asyncio.sleep(0.01)
        self.ports = CollectorPorts(config.host, tcp_port, http_port)
        log.info("collector %s listening on %s", config.name, self.ports.describe())
        return self.ports

    def _track(self, work: object) -> None:
        task = asyncio.ensure_future(work)  # type: ignore[arg-type]
        self._tcp_tasks.add(task)
        task.add_done_callback(self._tcp_tasks.discard)

    async def stop_async(self) -> None:
        """Stop taking connections, let the open ones publish what they read, then return."""
        grace = self.config.shutdown_grace_s
        if self._stopping is not None:
            self._stopping.set()
        if self._tcp_server is not None:
            self._tcp_server.close()
        if self._http is not None:
            self._http.should_exit = True
        if self._tcp_tasks:
            _done, pending = await asyncio.wait(set(self._tcp_tasks), timeout=grace)
            for task in pending:
                log.error("collector %s: a TCP stream did not finish within %.0fs; cutting it", self.config.name, grace)
                task.cancel()
        if self._http_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._http_task, grace + 5)
        if self._tcp_server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp_server.wait_closed(), 5)
        if not await self.publisher.drain(grace):
            log.error("collector %s: batches still being published after %.0fs", self.config.name, grace)
        await asyncio.to_thread(self.publisher.close)
        log.info("collector %s stopped", self.config.name)

    # ---- in a thread of its own ---------------------------------------------------------------------

    def start(self) -> CollectorPorts:
        """Run the collector in a background thread; returns once it listens."""
        if self._thread is not None:
            raise RuntimeError("this collector is already running")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as error:
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"collector-{self.config.name}", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_S):
            raise RuntimeError(f"collector {self.config.name} did not start within {START_TIMEOUT_S:.0f}s")
        if failure:
            self._thread = None
            raise failure[0]
        assert self.ports is not None
        return self.ports

    def stop(self) -> None:
        """Stop a collector started with ``start`` (in-flight batches are published first)."""
        if self._thread is None or self._loop is None:
            return
        loop = self._loop
        future = asyncio.run_coroutine_threadsafe(self.stop_async(), loop)
        try:
            future.result(timeout=self.config.shutdown_grace_s * 3 + 10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Collector:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def run_collector(
    event_log: EventLog,
    missions: Callable[[], Mapping[str, MissionLike]],
    stations: Callable[[], Mapping[str, StationLike]],
    config: CollectorConfig | None = None,
    *,
    on_ready: Callable[[CollectorPorts], None] | None = None,
) -> None:
    """Run a collector in this thread until SIGINT or SIGTERM, then stop it gracefully."""

    async def main() -> None:
        collector = Collector(event_log, missions, stations, config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        ports = await collector.start_async()
        if on_ready is not None:
            on_ready(ports)
        try:
            await stop.wait()
            log.info("collector %s: stop requested, finishing in-flight publishes", collector.config.name)
        finally:
            await collector.stop_async()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    asyncio.run(main())
