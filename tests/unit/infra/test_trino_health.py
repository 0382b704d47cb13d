"""Trino counts as healthy only once it can run a query: started, and with an active node listed."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from satlake.stack.health import trino_health
from tests.unit.infra.http_replay import send_json


class FakeTrino(BaseHTTPRequestHandler):
    """/v1/info and a statement protocol answering the active-node count in two pages."""

    starting = False
    active_nodes = 1

    def _send(self, body: dict) -> None:
        send_json(self, body)

    def do_GET(self) -> None:
        if self.path == "/v1/info":
            self._send({"nodeVersion": {"version": "476"}, "starting": self.starting, "uptime": "1.00s"})
        else:  # the second page of the statement
            columns = [{"name": "_col0", "type": "bigint", "typeSignature": {"rawType": "bigint", "arguments": []}}]
            self._send(
                {
                    "id": "q1",
                    "infoUri": "",
                    "columns": columns,
                    "data": [[self.active_nodes]],
                    "stats": {"state": "FINISHED"},
                }
            )

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        assert self.headers["X-Trino-User"]
        port = self.server.server_address[1]
        next_uri = f"http://127.0.0.1:{port}/v1/statement/queued/1"
        self._send({"id": "q1", "infoUri": "", "nextUri": next_uri, "stats": {"state": "QUEUED"}})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_trino() -> Iterator[tuple[type[FakeTrino], int]]:
    handler = type("Handler", (FakeTrino,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, server.server_address[1]
    server.shutdown()


def test_healthy_once_started_with_an_active_node(fake_trino: tuple[type[FakeTrino], int]) -> None:
    _, port = fake_trino
    healthy, detail = trino_health("127.0.0.1", port)
    assert healthy and detail.endswith("1 active node")


def test_not_healthy_while_starting_or_without_an_active_node(fake_trino: tuple[type[FakeTrino], int]) -> None:
    handler, port = fake_trino
    handler.starting = True
    assert trino_health("127.0.0.1", port) == (False, "Trino 476 is still starting")
    handler.starting, handler.active_nodes = False, 0
    assert trino_health("127.0.0.1", port) == (False, "Trino 476 started, no active node yet")


def test_not_healthy_when_nothing_answers() -> None:
    healthy, detail = trino_health("127.0.0.1", 9, timeout_s=0.5)
    assert not healthy and "/v1/info" in detail
