"""The Trino client: quoting, table locations, errors when Trino is unreachable, and queries sent again while a
just-started Trino lists no node (against a local server replaying Trino's client protocol)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from satlake.resources.trino import (
    TrinoLake,
    TrinoLakeError,
    location_from_create_table,
    normalize_location,
    quote_identifier,
    quote_literal,
)
from tests.unit.infra.http_replay import send_json

SHOW_CREATE = """CREATE TABLE lake.gold.ndvi (
   scene_id varchar
)
WITH (
   location = 's3://satlake/lake/gold/ndvi''s',
   partitioned_by = ARRAY['scene_id']
)"""


def test_location_is_read_from_show_create_table() -> None:
    assert location_from_create_table(SHOW_CREATE) == "s3://satlake/lake/gold/ndvi's"
    assert location_from_create_table("CREATE TABLE x (a int)") is None


def test_locations_compare_without_trailing_slash_or_s3a() -> None:
    assert normalize_location("s3a://satlake/lake/t/") == "s3://satlake/lake/t"


def test_quoting_escapes_embedded_quotes() -> None:
    assert quote_identifier('we"ird') == '"we""ird"'
    assert quote_literal("it's") == "'it''s'"


def test_unreachable_trino_says_where_it_looked_and_what_to_do() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    lake = TrinoLake("127.0.0.1", closed_port, user="admin", request_timeout_s=5, max_attempts=1)
    with pytest.raises(
        TrinoLakeError, match=rf"cannot reach Trino at http://127.0.0.1:{closed_port}.*satlake stack up"
    ):
        lake.query("SELECT 1")


class ReplayedTrino(ThreadingHTTPServer):
    """Trino's client protocol (POST /v1/statement), replying as a coordinator that has just started: the first
    ``failures`` queries fail with NO_NODES_AVAILABLE exactly as Trino words it, later ones answer one row."""

    def __init__(self, failures: int, error_name: str = "NO_NODES_AVAILABLE") -> None:
        super().__init__(("127.0.0.1", 0), _TrinoHandler)
        self.failures, self.error_name, self.queries = failures, error_name, 0


class _TrinoHandler(BaseHTTPRequestHandler):
    server: ReplayedTrino

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.queries += 1
        query_id = f"20261207_000000_{self.server.queries:05d}_abcde"
        body: dict[str, Any] = {"id": query_id, "infoUri": f"http://127.0.0.1/ui/query.html?{query_id}"}
        if self.server.queries <= self.server.failures:
            body["stats"] = {"state": "FAILED", "queued": False, "scheduled": False}
            body["error"] = {"message": "No nodes available to run query", "errorCode": 65542,
                             "errorName": self.server.error_name, "errorType": "INTERNAL_ERROR",
                             "failureInfo": {"type": "io.trino.spi.TrinoException",
                                             "message": "No nodes available to run query", "suppressed": [],
                                             "stack": []}}  # fmt: skip
        else:
            body["stats"] = {"state": "FINISHED", "queued": False, "scheduled": True}
            body["columns"] = [{"name": "_col0", "type": "bigint",
                                "typeSignature": {"rawType": "bigint", "arguments": []}}]  # fmt: skip
            body["data"] = [[3]]
        send_json(self, body)

    def log_message(self, *_args: object) -> None:
        pass


@contextmanager
def replayed_trino(failures: int, error_name: str = "NO_NODES_AVAILABLE") -> Iterator[ReplayedTrino]:
    server = ReplayedTrino(failures, error_name)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_query_sent_while_trino_lists_no_node_yet_is_sent_again_until_it_answers() -> None:
    with replayed_trino(failures=3) as server:
        lake = TrinoLake("127.0.0.1", server.server_address[1], user="admin", startup_wait_s=30)
        assert lake.query("SELECT count(*) FROM raw.telemetry_events") == (["_col0"], [(3,)])
        assert server.queries == 4


def test_a_trino_that_never_lists_a_node_fails_once_the_wait_is_over() -> None:
    with replayed_trino(failures=100) as server:
        lake = TrinoLake("127.0.0.1", server.server_address[1], user="admin", startup_wait_s=1)
        with pytest.raises(TrinoLakeError, match=r"No nodes available to run query \(Trino NO_NODES_AVAILABLE"):
            lake.query("SELECT 1")
        assert 2 <= server.queries <= 3  # asked at 0 and 0.5 s; a further pause would end after the wait


def test_other_query_errors_are_not_sent_again() -> None:
    with replayed_trino(failures=1, error_name="TABLE_NOT_FOUND") as server:
        lake = TrinoLake("127.0.0.1", server.server_address[1], user="admin", startup_wait_s=30)
        with pytest.raises(TrinoLakeError, match="TABLE_NOT_FOUND"):
            lake.query("SELECT 1")
        assert server.queries == 1
