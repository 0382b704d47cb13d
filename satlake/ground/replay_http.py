"""Replay through a collector's HTTP front: POSTs of whole packets (or frames), each answered once the log
acknowledged it; 429 waits the Retry-After the collector asked for, 503 and lost connections back off and retry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests

from satlake.ground.collector_core import FrameOptions
from satlake.ground.replay import (
    CHUNK_BYTES,
    MAX_THROTTLED_WAIT_S,
    RETRY_DELAYS_S,
    Pacer,
    Progress,
    ReplayError,
    ReplaySummary,
    check_files,
    pieces,
)

REQUEST_TIMEOUT_S = 120.0


def _retry_after(response: requests.Response, default: float) -> float:
    try:
        return max(float(response.headers.get("Retry-After", default)), 0.0)
    except ValueError:
        return default


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text.strip()[:300]


def post_piece(
    session: requests.Session,
    url: str,
    piece: bytes,
    headers: dict[str, str],
    params: dict[str, str],
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """POST one piece until the collector took it; its JSON answer. ``ReplayError`` when it never will."""
    failures = 0
    throttled_s = 0.0
    while True:
        floor = 0.0
        try:
            response = session.post(url, data=piece, headers=headers, params=params, timeout=REQUEST_TIMEOUT_S)
        except requests.RequestException as error:
            problem = f"{type(error).__name__}: {error}"
        else:
            status = response.status_code
            if status == 200:
                return dict(response.json())
            if status == 429:
                wait = _retry_after(response, 1.0)
                throttled_s += wait
                if throttled_s > MAX_THROTTLED_WAIT_S:
                    raise ReplayError(f"{url} kept answering 429 (the log is behind) for {throttled_s:.0f}s; "
                                      "check the broker and retry later")  # fmt: skip
                sleep(wait)
                continue
            if status == 401:
                station = headers.get("X-Satlake-Station")
                raise ReplayError(f"{url} refused the credentials of station {station!r}: {_message(response)}")
            if status == 404:
                raise ReplayError(f"{url}: {_message(response)} (register the mission first)")
            if status == 413:
                raise ReplayError(f"{url}: {_message(response)}; lower --chunk-bytes")
            if status != 503:
                raise ReplayError(f"{url} answered {status}: {_message(response)}")
            problem = f"503: {_message(response)}"
            floor = _retry_after(response, 0.0)
        if failures >= len(RETRY_DELAYS_S):
            raise ReplayError(f"{url} failed {failures + 1} times; the last time: {problem}")
        sleep(max(floor, RETRY_DELAYS_S[failures]))
        failures += 1


def _add_answer(summary: ReplaySummary, answer: dict[str, Any]) -> None:
    reasons = answer.get("reasons")
    summary.add(
        int(answer.get("accepted", 0)),
        int(answer.get("rejected", 0)),
        {str(k): int(v) for k, v in reasons.items()} if isinstance(reasons, dict) else {},
        int(answer.get("idle", 0)),
    )


def replay_over_http(
    base_url: str,
    files: Sequence[Path],
    *,
    mission: str,
    station: str,
    token: str,
    frames: FrameOptions | None = None,
    rate: float | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplaySummary:
    """POST the files in pieces of whole units of at most ``chunk_bytes``; the summary holds the collector's counts."""
    files = check_files(files)
    url = f"{base_url.rstrip('/')}/v1/missions/{mission}/packets"
    headers = {"Authorization": f"Bearer {token}", "X-Satlake-Station": station,
               "Content-Type": "application/octet-stream"}  # fmt: skip
    params = {} if frames is None else {"frames": "true", "frame_length": str(frames.length),
                                        "fecf": "true" if frames.fecf else "false"}  # fmt: skip
    pacer = Pacer(rate, sleep)
    summary = ReplaySummary()
    started = time.perf_counter()
    with requests.Session() as session:
        for path in files:
            for piece, units in pieces(path, frames, max_bytes=chunk_bytes, max_units=pacer.units_per_piece):
                _add_answer(summary, post_piece(session, url, piece, headers, params, sleep))
                summary.bytes += len(piece)
                if progress is not None:
                    progress(summary.bytes)
                pacer(units)
            summary.files += 1
    summary.seconds = time.perf_counter() - started
    return summary
