"""A TCP proxy in front of the real MinIO that SIGKILLs it at an exact point of one S3 request.

Clients (delta-rs, boto3) are pointed at the proxy instead of MinIO. Every byte is forwarded unchanged (SigV4
signatures, which cover the Host header, still verify) until the first request whose request line
(``PUT /bucket/key HTTP/1.1``) matches the trigger. Then, at the chosen moment, MinIO is killed with SIGKILL
and that connection is dropped:

- ``mid_body``: once half of the request's body has reached MinIO, so the server dies holding half an object;
- ``after_response``: once MinIO has answered (the object is stored) but before the client sees the answer,
  the worst case for a conditional commit: the write happened and its writer does not know.

From the fault on, the proxy does not listen until MinIO does again, so clients get "connection refused" just as
from a stopped server, then reach the restarted one (the test restarts it) through the same port. A plan may also
only drop the connection and leave MinIO up: the response to a write is lost, nothing else.

The proxy runs in its own process: some delta-rs calls hold the GIL while they wait for the network, so a proxy
thread inside the test process would deadlock with them.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

FaultMoment = Literal["mid_body", "after_response"]
_REQUEST_LINE = re.compile(rb"(?:^|\r\n)((?:GET|PUT|POST|HEAD|DELETE) /\S* HTTP/1\.1)\r\n")
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)\r\n", re.IGNORECASE)
_CONTINUE = re.compile(rb"HTTP/1\.1 100 Continue\r\n\r\n")
# Bytes of a stream kept between reads, so a request line split across two reads is still seen.
_CARRY_BYTES = 4096
# Where ``python -m tests.integration...`` finds the helper modules, wherever pytest was started from.
_REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class FaultPlan:
    """Which request gets the fault (a regex over its request line), when, and whether MinIO is killed then
    (``kill_minio=False``: only that connection is dropped, as by a network blip, and MinIO stays up)."""

    trigger: str
    moment: FaultMoment
    kill_minio: bool = True


# --- inside the proxy process -------------------------------------------------------------------------------


def report_event(**event: Any) -> None:
    print(json.dumps(event), flush=True)


class _Proxy:
    def __init__(self, upstream: tuple[str, int], plan: FaultPlan, fault: Callable[[], None]) -> None:
        self.upstream = upstream
        self.plan = plan
        self.trigger = re.compile(plan.trigger.encode())
        self.fault = fault
        self.port = 0
        self.armed = True
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None

    def listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: MinIO went down
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        connection = _Connection(self, client, upstream)
        threading.Thread(target=connection.pump_responses, daemon=True).start()
        connection.pump_requests()

    def claim(self, request_line: bytes) -> bool:
        """True for the one request that gets the fault (the first to match)."""
        with self.lock:
            if self.armed and self.trigger.search(request_line):
                self.armed = False
                return True
            return False

    def fire(self, request_line: bytes, body_bytes: int | None, content_length: int | None) -> None:
        if self.plan.kill_minio:
            # Refuse connections from now on, as the stopped server itself would, until it listens again.
            listener, self.listener = self.listener, None
            if listener is not None:
                with contextlib.suppress(OSError):
                    listener.shutdown(socket.SHUT_RDWR)
                listener.close()
            self.fault()
            threading.Thread(target=self._listen_when_upstream_is_back, daemon=True).start()
        report_event(
            event="fired",
            request_line=request_line.decode("latin-1"),
            body_bytes_received_by_minio=body_bytes,
            content_length=content_length,
        )

    def _listen_when_upstream_is_back(self) -> None:
        while True:
            try:
                socket.create_connection(self.upstream, timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        self.listen()


class _Connection:
    """One client connection and its twin to MinIO."""

    def __init__(self, proxy: _Proxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.fatal_request: bytes | None = None  # after_response: the request whose answer is never delivered
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def pump_requests(self) -> None:
        carry = b""
        try:
            while not self.closed.is_set():
                data = self.client.recv(65536)
                if not data:
                    return
                window = carry + data
                match = self._triggering_request(window, len(carry))
                if match is None or self.proxy.plan.moment == "after_response":
                    if match is not None:
                        self.fatal_request = match.group(1)
                    self.upstream.sendall(data)
                    carry = window[-_CARRY_BYTES:]
                    continue
                self._forward_half_of_the_body(match, window, data)
                return
        except OSError:
            return
        finally:
            self.close()

    def _forward_half_of_the_body(self, match: re.Match[bytes], window: bytes, data: bytes) -> None:
        """Forward the triggering request's head and half its body, then kill MinIO."""
        while (head_end := window.find(b"\r\n\r\n", match.start())) < 0:
            more = self.client.recv(65536)
            if not more:
                return
            window, data = window + more, data + more
        length_match = _CONTENT_LENGTH.search(window[match.start() : head_end + 2])
        length = int(length_match.group(1)) if length_match else 0
        body_start_in_data = len(data) - (len(window) - (head_end + 4))
        self.upstream.sendall(data[:body_start_in_data])
        pending, budget = data[body_start_in_data:], length // 2
        while len(pending) < budget:
            self.upstream.sendall(pending)
            budget -= len(pending)
            pending = self.client.recv(65536)
            if not pending:
                return
        self.upstream.sendall(pending[:budget])
        self.proxy.fire(match.group(1), length // 2, length)

    def _triggering_request(self, window: bytes, fresh_from: int) -> re.Match[bytes] | None:
        for match in _REQUEST_LINE.finditer(window):
            if match.end() > fresh_from and self.proxy.claim(match.group(1)):
                return match
        return None

    def pump_responses(self) -> None:
        try:
            while not self.closed.is_set():
                data = self.upstream.recv(65536)
                if not data:
                    return
                if self.fatal_request is not None and not _CONTINUE.fullmatch(data):
                    self.proxy.fire(self.fatal_request, None, None)  # MinIO answered; the client never learns
                    return
                self.client.sendall(data)
        except OSError:
            return
        finally:
            self.close()


def main(argv: list[str]) -> int:
    """``python -m tests.integration.fault_proxy HOST:PORT PLAN_JSON``, with the stack's SATLAKE_* environment."""
    from satlake.settings import Settings
    from satlake.stack.lifecycle import stop_server

    host, port = argv[0].rsplit(":", 1)
    plan = FaultPlan(**json.loads(argv[1]))
    settings = Settings.from_env()

    def crash_minio() -> None:
        stop_server(settings, "minio", progress=lambda _message: None, crash=True)

    proxy = _Proxy((host, int(port)), plan, crash_minio)
    proxy.listen()
    report_event(event="listening", port=proxy.port)
    sys.stdin.read()  # serve until the test closes our stdin
    return 0


# --- in the test process ------------------------------------------------------------------------------------


class ReportingProcess:
    """A helper process that reports what happens as JSON lines on its stdout (``{"event": ...}``), read by a
    thread so the test can wait for a report while the process keeps running."""

    def __init__(self, arguments: list[str], environment: Mapping[str, str]) -> None:
        self.arguments = arguments
        self.environment = {**environment, "PYTHONPATH": str(_REPOSITORY_ROOT)}
        self.reports: queue.Queue[dict[str, Any]] = queue.Queue()
        self.pending: list[dict[str, Any]] = []
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> ReportingProcess:
        self.process = subprocess.Popen(
            [sys.executable, *self.arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=self.environment,
        )
        threading.Thread(target=self._read_reports, args=(self.process,), daemon=True).start()
        return self

    def _read_reports(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("{"):
                self.reports.put(json.loads(line))
        self.reports.put({"event": "exited"})

    def wait_for(self, event: str, timeout_s: float) -> dict[str, Any]:
        """The next report named ``event`` (others stay pending for later calls); AssertionError on timeout, or
        when the process exits first."""
        deadline = time.monotonic() + timeout_s
        while True:
            for report in self.pending:
                if report["event"] == event:
                    self.pending.remove(report)
                    return report
            if any(report["event"] == "exited" for report in self.pending):
                raise AssertionError(f"{self.arguments[:2]} exited before reporting {event!r}: {self.pending}")
            try:
                self.pending.append(self.reports.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"{self.arguments[:2]} did not report {event!r} within {timeout_s:.0f}s") from None

    def drain(self) -> list[dict[str, Any]]:
        """Every report received so far and not yet waited for."""
        while True:
            try:
                self.pending.append(self.reports.get_nowait())
            except queue.Empty:
                reports, self.pending = self.pending, []
                return reports

    def finish(self, timeout_s: float = 30.0) -> int:
        """Close the process's stdin (its signal to finish), wait for it and return its exit code."""
        assert self.process is not None and self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> ReportingProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.finish()


class MinioFaultProxy(ReportingProcess):
    """The proxy process, seen from a test: its endpoint, and its report of the fault ("fired")."""

    def __init__(self, minio_endpoint: str, plan: FaultPlan, environment: Mapping[str, str]) -> None:
        upstream = minio_endpoint.split("://", 1)[-1].rstrip("/")
        super().__init__(["-m", "tests.integration.fault_proxy", upstream, json.dumps(plan.__dict__)], environment)
        self.plan = plan
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MinioFaultProxy:
        super().start()
        self.port = self.wait_for("listening", timeout_s=60)["port"]
        return self

    def __enter__(self) -> MinioFaultProxy:
        return self.start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
