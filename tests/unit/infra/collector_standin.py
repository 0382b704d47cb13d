"""A stand-in for `satlake collect` in the stack's unit tests: the same command line, a raw TCP port that records
what each connection sent, and an HTTP port answering ``/healthz`` (200, or 503 once told to fail), ``/stats``
and uploads (each recorded with its ``X-Forwarded-For``). Run as a script, it serves until SIGTERM."""

from __future__ import annotations

import argparse
import json
import socketserver
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _TcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class _HttpServer(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a health check that hangs up before the answer


@dataclass
class Upload:
    path: str
    body: bytes
    forwarded_for: str | None


@dataclass
class StandInCollector:
    name: str
    host: str
    tcp_port: int
    http_port: int
    healthy: bool = True
    streams: list[bytes] = field(default_factory=list)  # one per closed TCP connection
    uploads: list[Upload] = field(default_factory=list)
    _servers: list[socketserver.BaseServer] = field(default_factory=list)

    def start(self) -> StandInCollector:
        collector = self

        class Stream(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                received = bytearray()
                while chunk := self.request.recv(65536):
                    received += chunk
                collector.streams.append(bytes(received))

        class Http(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self, status: int, document: object) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._answer(200 if collector.healthy else 503, {"healthy": collector.healthy})
                elif self.path == "/stats":
                    self._answer(200, {"streams": len(collector.streams), "uploads": len(collector.uploads)})
                else:
                    self._answer(404, {"error": self.path})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                collector.uploads.append(Upload(self.path, body, self.headers.get("X-Forwarded-For")))
                self._answer(200, {"accepted": 1, "collector": collector.name})

        self._servers = [_TcpServer((self.host, self.tcp_port), Stream), _HttpServer((self.host, self.http_port), Http)]
        for server in self._servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["collect"])
    parser.add_argument("--stack", action="store_true")
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--tcp-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    arguments = parser.parse_args(argv)
    StandInCollector(arguments.name, arguments.host, arguments.tcp_port, arguments.http_port).start()
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])
