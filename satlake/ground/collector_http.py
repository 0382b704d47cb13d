"""The HTTP front of a collector: ``POST /v1/missions/{mission}/packets`` (a body of packets back to back, or
of TM frames with ``?frames=true&frame_length=N[&fecf=false]``), ``GET /healthz`` for the load balancer and
``GET /metrics`` for Prometheus.

A POST is answered only once the log acknowledged what it carried, so a station that got a 200 may forget the
bytes: 200 {"accepted", "rejected", "idle", "reasons"}; 400 bad query; 401 bad credentials (nothing is
published); 404 unknown mission; 413 body over the limit; 429 + Retry-After while the broker is behind;
503 + Retry-After when the log refused the append or the missions could not be loaded (retry).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

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

TRANSPORT = "http"
STATION_HEADER = "x-satlake-station"
UNAVAILABLE_RETRY_AFTER_S = 5
_TRUE = ("1", "true", "yes")
_FALSE = ("0", "false", "no")


class BadRequest(ValueError):
    """A query the collector cannot serve; the message says which parameter and why."""


def frame_options(query: Mapping[str, str]) -> FrameOptions | None:
    """The frame options of a POST's query (None: the body is bare packets)."""
    frames = query.get("frames", "false").lower()
    if frames in _FALSE:
        if "frame_length" in query:
            raise BadRequest("frame_length needs frames=true")
        return None
    if frames not in _TRUE:
        raise BadRequest(f"frames={query['frames']!r}: use true or false")
    fecf = query.get("fecf", "true").lower()
    if fecf not in _TRUE + _FALSE:
        raise BadRequest(f"fecf={query['fecf']!r}: use true or false")
    try:
        return FrameOptions(int(query["frame_length"]), fecf in _TRUE)
    except KeyError:
        raise BadRequest("frames=true needs frame_length=<bytes per frame>") from None
    except ValueError as error:
        raise BadRequest(f"frame_length: {error}") from None


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))


class HttpFront:
    """The Starlette application of a collector (``app``)."""

    def __init__(
        self, config: CollectorConfig, directory: Directory, publisher: Publisher, metrics: CollectorMetrics
    ) -> None:
        self.config = config
        self.directory = directory
        self.publisher = publisher
        self.metrics = metrics
        self.app = Starlette(
            routes=[
                Route("/v1/missions/{mission}/packets", self.post_packets, methods=["POST"]),
                Route("/healthz", self.healthz, methods=["GET", "HEAD"]),
                Route("/metrics", self.metrics_page, methods=["GET"]),
            ]
        )

    async def healthz(self, _request: Request) -> Response:
        return PlainTextResponse("ok")

    async def metrics_page(self, _request: Request) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def post_packets(self, request: Request) -> Response:
        peer = f"{request.client.host}:{request.client.port}" if request.client else "?"
        mission_name = request.path_params["mission"]
        try:
            return await self._post(request, mission_name, peer)
        except ClientDisconnect:
            log.info("HTTP POST from %s for %s: the client went away before the body ended", peer, mission_name)
            return _error(400, "the body ended early")
        except Exception as error:
            log.exception("HTTP POST from %s for %s failed", peer, mission_name)
            return _error(500, f"the collector failed on this request: {type(error).__name__}: {error}")

    async def _post(self, request: Request, mission_name: str, peer: str) -> Response:
        station = request.headers.get(STATION_HEADER, "")
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        try:
            frames = frame_options(request.query_params)
        except BadRequest as error:
            return _error(400, str(error))
        try:
            mission, station_record = await self.directory.lookup(mission_name, station)
        except DirectoryUnavailable as error:
            return _error(503, str(error), {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)})
        if mission is None:
            return _error(404, f"unknown mission {mission_name!r}")
        if (
            scheme.lower() != "bearer"
            or not token
            or station_record is None
            or not station_record.accepts(token.strip(), mission_name)
        ):
            self.metrics.auth_failures.labels(TRANSPORT).inc()
            log.warning("HTTP POST from %s for %s refused: bad credentials for station %r", peer, mission_name, station)
            return _error(
                401,
                f"send 'Authorization: Bearer <token>' and '{STATION_HEADER}: <station>' of a station allowed to "
                f"deliver {mission_name!r}",
                {"WWW-Authenticate": 'Bearer realm="satlake"'},
            )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.config.max_body_bytes:
            return self._too_large(int(declared))
        size = int(declared) if declared is not None and declared.isdigit() else 0
        if not self.publisher.try_reserve(size):
            return self._throttled()
        try:
            return await self._receive_and_publish(request, Session(mission, station, TRANSPORT, peer), frames, size)
        finally:
            await self.publisher.release(size)

    def _too_large(self, size: int) -> Response:
        return _error(413, f"a body of {size} bytes is over this collector's limit of {self.config.max_body_bytes}")

    def _throttled(self) -> Response:
        self.metrics.throttled.inc()
        return _error(
            429,
            f"the log is behind ({self.publisher.inflight_bytes} bytes being published); retry later",
            {"Retry-After": str(self.config.retry_after_s)},
        )

    async def _receive_and_publish(
        self, request: Request, session: Session, frames: FrameOptions | None, reserved: int
    ) -> Response:
        splitter = stream_splitter(session.mission, frames, self.config.max_packet_length)
        result = SplitResult()
        received = 0
        received_ns = time.time_ns()
        async for chunk in request.stream():
            received_ns = time.time_ns()
            received += len(chunk)
            if received > self.config.max_body_bytes:
                return self._too_large(received)
            result.extend(splitter.feed(chunk))
        result.extend(splitter.finish())
        self.metrics.bytes.labels(session.mission.name, TRANSPORT).inc(received)
        if received > reserved and not self.publisher.try_reserve(received - reserved):
            return self._throttled()  # a body without Content-Length, found too large to take now
        try:
            records = batch_records(result, session.station, received_ns)
            await self.publisher.publish(session.mission.topic, records)
        except EventLogError as error:
            log.error("HTTP POST from %s (station %s): publishing to %s failed: %s", session.peer, session.station,
                      session.mission.topic, error)  # fmt: skip
            return _error(503, f"the log did not take the packets: {error}", {"Retry-After": "5"})
        finally:
            if received > reserved:
                await self.publisher.release(received - reserved)
        self.metrics.published(session.mission.name, TRANSPORT, result)
        session.count(result)
        return JSONResponse({**session.summary(), "idle": result.idle})
