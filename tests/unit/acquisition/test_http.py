"""The polite session against a scripted local HTTP server: retries and backoff, Retry-After, budgets, redirects,
truncated bodies and the counters."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from satlake.resources.http import (
    BudgetExceeded,
    ByteBudget,
    ByteBudgetExceeded,
    HttpError,
    PoliteSession,
    RedirectRefused,
    RetriesExhausted,
    TruncatedResponse,
    parse_retry_after,
)

# path -> responses served in order (the last one repeats): (status, headers, body)
Script = dict[str, list[tuple[int, dict[str, str], bytes]]]


class _Handler(BaseHTTPRequestHandler):
    script: Script
    hits: list[str]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.hits.append(self.path)
        steps = self.script.get(self.path, [(404, {}, b"not here")])
        status, scripted, body = steps.pop(0) if len(steps) > 1 else steps[0]
        headers = dict(scripted)
        self.send_response(status)
        declared = headers.pop("X-Declare-Length", None)
        self.send_header("Content-Length", declared or str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        if declared:  # a body shorter than declared: close so the client sees the cut
            self.close_connection = True


@pytest.fixture
def server() -> Iterator[tuple[str, Script, list[str]]]:
    script: Script = {}
    hits: list[str] = []
    handler = type("Handler", (_Handler,), {"script": script, "hits": hits})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", script, hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def _session(**kwargs: object) -> tuple[PoliteSession, list[float]]:
    slept: list[float] = []
    return PoliteSession(timeout_s=5, sleep=slept.append, **kwargs), slept  # type: ignore[arg-type]


def test_retries_429_honouring_retry_after_then_succeeds(server: tuple[str, Script, list[str]]) -> None:
    url, script, hits = server
    script["/search"] = [(429, {"Retry-After": "1"}, b""), (429, {"Retry-After": "2"}, b""), (200, {}, b'{"ok": 1}')]
    session, slept = _session()
    response = session.get(f"{url}/search")
    assert response.status_code == 200 and response.json() == {"ok": 1}
    assert slept == [1.0, 2.0]
    assert hits == ["/search"] * 3
    assert session.requests_made == 3 and session.retries == 2


def test_exponential_backoff_without_retry_after_and_last_failure_returned(
    server: tuple[str, Script, list[str]],
) -> None:
    url, script, _ = server
    script["/flaky"] = [(503, {}, b"busy")]
    session, slept = _session(max_retries=3)
    response = session.get(f"{url}/flaky")
    assert response.status_code == 503  # the caller decides what a final 503 means
    assert slept == [0.5, 1.0, 2.0]
    assert session.requests_made == 4


def test_backoff_is_capped() -> None:
    session = PoliteSession(backoff_base_s=0.5, backoff_cap_s=30)
    assert [session._backoff(attempt, None, "u") for attempt in (1, 2, 7, 8, 20)] == [0.5, 1.0, 30, 30, 30]


def test_retry_after_http_date_and_seconds() -> None:
    now = datetime(2024, 5, 2, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Thu, 02 May 2024 10:00:07 GMT", now) == 7.0
    assert parse_retry_after("Thu, 02 May 2024 09:00:00 GMT", now) == 0.0  # in the past: retry now
    assert parse_retry_after("12", now) == 12.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_retry_after_longer_than_the_cap_is_an_error(server: tuple[str, Script, list[str]]) -> None:
    url, script, _ = server
    script["/slow"] = [(503, {"Retry-After": "3600"}, b"")]
    session, slept = _session()
    with pytest.raises(HttpError, match=r"/slow answered 503 with Retry-After 3600s, longer than the 30s"):
        session.get(f"{url}/slow")
    assert slept == []


def test_request_budget_counts_retries_and_stops_the_run(server: tuple[str, Script, list[str]]) -> None:
    url, script, hits = server
    script["/a"] = [(500, {}, b""), (200, {}, b"x")]
    session, _ = _session(request_budget=3)
    session.get(f"{url}/a")  # two requests: one retry
    session.get(f"{url}/a")
    with pytest.raises(BudgetExceeded, match=r"request budget of 3 HTTP requests for this run is spent .*/a"):
        session.get(f"{url}/a")
    assert len(hits) == 3 and session.requests_left == 0


def test_same_host_redirect_followed_and_counted(server: tuple[str, Script, list[str]]) -> None:
    url, script, hits = server
    script["/old"] = [(302, {"Location": "/new"}, b"")]
    script["/new"] = [(200, {}, b"moved here")]
    session, _ = _session()
    response = session.get(f"{url}/old")
    assert response.content == b"moved here"
    assert hits == ["/old", "/new"] and session.requests_made == 2


def test_redirect_to_another_host_is_refused_naming_both(server: tuple[str, Script, list[str]]) -> None:
    url, script, hits = server
    port = url.rsplit(":", 1)[1]
    script["/asset.tif"] = [(302, {"Location": f"http://localhost:{port}/elsewhere.tif"}, b"")]
    session, _ = _session()
    with pytest.raises(RedirectRefused) as caught:
        session.get(f"{url}/asset.tif")
    message = str(caught.value)
    assert f"from host http://127.0.0.1:{port} to another host http://localhost:{port}" in message
    assert hits == ["/asset.tif"]  # never went there


def test_allowed_hosts_refuses_other_hosts(server: tuple[str, Script, list[str]]) -> None:
    url, _, hits = server
    session, _ = _session(allowed_hosts={"example.org"})
    with pytest.raises(HttpError, match=r"host '127.0.0.1' is not one of the allowed hosts \['example.org'\]"):
        session.get(f"{url}/x")
    assert hits == []


def test_truncated_body_is_retried_then_reported(server: tuple[str, Script, list[str]]) -> None:
    url, script, hits = server
    script["/cut"] = [(200, {"X-Declare-Length": "1000"}, b"x" * 400)]
    session, slept = _session(max_retries=2)
    with pytest.raises(TruncatedResponse, match=r"GET .*/cut: the response ended before the length the server"):
        session.get(f"{url}/cut")
    assert len(hits) == 3 and len(slept) == 2


def test_connection_refused_exhausts_retries() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session, slept = _session(max_retries=2)
    with pytest.raises(RetriesExhausted, match=rf"GET http://127.0.0.1:{port}/x failed after 3 attempts"):
        session.get(f"http://127.0.0.1:{port}/x")
    assert slept == [0.5, 1.0]


def test_bytes_received_are_counted(server: tuple[str, Script, list[str]]) -> None:
    url, script, _ = server
    script["/b"] = [(503, {}, b"12345"), (200, {}, b"x" * 1000)]
    session, _ = _session()
    session.get(f"{url}/b")
    assert session.bytes_received == 1005


def test_byte_budget_refuses_before_passing_the_limit() -> None:
    budget = ByteBudget(100)
    budget.ensure(60, "a.tif")
    budget.charge(60, "a.tif")
    with pytest.raises(ByteBudgetExceeded, match=r"byte budget of 100 bytes .* \(60 used, 41 more needed for b.tif\)"):
        budget.ensure(41, "b.tif")
    budget.ensure(40, "b.tif")
    assert budget.used == 60 and budget.left == 40
