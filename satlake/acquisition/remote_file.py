"""The remote file that GDAL reads through rasterio's ``opener=``: every byte comes from an HTTP Range GET on the
polite session, in aligned blocks cached across GDAL's handles plus prefetched ranges, counted and charged to the
byte budget.
"""

from __future__ import annotations

import bisect
import io
import re
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from rasterio.abc import FileContainer

from satlake.resources.http import ByteBudget, HttpError, PoliteSession, TruncatedResponse

__all__ = ["BLOCK_BYTES", "RemoteFile", "RemoteFileContainer", "WindowError"]

# GDAL reads a TIFF header in many small pieces; 16 KiB blocks turn them into a few requests without reading
# much beyond what a window needs (runs of missing blocks are fetched in one request).
BLOCK_BYTES = 16 * 1024
# At most this many cached blocks per file (64 MiB), so a whole-scene AOI does not hold the file in memory.
_MAX_CACHED_BLOCKS = 4096
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


# Defined here rather than in window.py because RemoteFile raises it; window.py re-exports it.
class WindowError(HttpError):
    """The window of a remote raster could not be read or written; the message names the href."""


class RemoteFile:
    """A remote file read by HTTP Range GETs in aligned blocks, cached (LRU) across the handles GDAL opens, plus
    the prefetched ranges of a window's tiles, served first."""

    def __init__(self, href: str, session: PoliteSession, budget: ByteBudget, display_href: str | None = None) -> None:
        self.href = href
        self.shown = display_href or href
        self.session = session
        self.budget = budget
        self.bytes_fetched = 0
        self.requests = 0
        self.etag: str | None = None
        self.error: Exception | None = None  # the first failure, kept because GDAL swallows it
        self._size: int | None = None
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        # Prefetched ranges (start -> bytes), kept apart from the LRU blocks so none is evicted before GDAL reads it.
        self._prefetched: dict[int, bytes] = {}
        self._prefetched_starts: list[int] = []

    @property
    def size(self) -> int:
        if self._size is None:
            self._fetch(0, 0)  # the first block also tells the total size (Content-Range)
        assert self._size is not None
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer at the end of the file): prefetched bytes first, the gaps
        between them from the block cache."""
        try:
            end = min(offset + length, self.size)
            parts = []
            position = offset
            while position < end:
                index = bisect.bisect_right(self._prefetched_starts, position) - 1
                if index >= 0:
                    start = self._prefetched_starts[index]
                    held = self._prefetched[start]
                    if position < start + len(held):
                        stop = min(end, start + len(held))
                        parts.append(held[position - start : stop - start])
                        position = stop
                        continue
                following = self._prefetched_starts[index + 1 : index + 2]
                stop = min(end, following[0]) if following else end
                parts.append(self._read_blocks(position, stop))
                position = stop
            return b"".join(parts)
        except Exception as error:
            if self.error is None:
                self.error = error
            raise

    def prefetch(self, ranges: Sequence[tuple[int, int]], concurrency: int) -> None:
        """Fetch the byte ranges ``[start, end)`` with at most ``concurrency`` requests in flight and hold them
        until ``drop_prefetched``. Called outside GDAL's callbacks, so failures raise here directly."""
        if not ranges:
            return
        self.budget.ensure(sum(end - start for start, end in ranges), f"the window's tiles of {self.shown}")
        before = self.session.requests_made
        first_error: Exception | None = None
        with ThreadPoolExecutor(max_workers=min(concurrency, len(ranges))) as pool:
            futures = [pool.submit(self._get, start, end - 1) for start, end in ranges]
            # Responses are checked and charged here, in this thread, so the budget and the counters of this
            # object need no lock; every response that arrived is charged, even after another one failed.
            for future, (start, end) in zip(futures, ranges, strict=True):
                if future.cancelled():
                    continue
                try:
                    body = self._accept(future.result(), start, end - 1)
                except Exception as error:
                    if first_error is None:
                        first_error = error
                        for pending in futures:
                            pending.cancel()
                    continue
                self._prefetched[start] = body
                bisect.insort(self._prefetched_starts, start)
        self.requests += self.session.requests_made - before
        if first_error is not None:
            raise first_error

    def drop_prefetched(self) -> None:
        self._prefetched.clear()
        self._prefetched_starts.clear()

    def _read_blocks(self, offset: int, end: int) -> bytes:
        """Bytes ``[offset, end)`` from the aligned block cache, fetching missing blocks."""
        first, last = offset // BLOCK_BYTES, (end - 1) // BLOCK_BYTES
        missing = [index for index in range(first, last + 1) if index not in self._blocks]
        # One request per run of consecutive missing blocks.
        run_start = None
        for position, index in enumerate(missing):
            if run_start is None:
                run_start = index
            if position + 1 == len(missing) or missing[position + 1] != index + 1:
                self._fetch(run_start, index)
                run_start = None
        parts = []
        for index in range(first, last + 1):
            block = self._blocks[index]
            self._blocks.move_to_end(index)
            parts.append(block)
        data = b"".join(parts)
        start = offset - first * BLOCK_BYTES
        return data[start : start + (end - offset)]

    def _fetch(self, first_block: int, last_block: int) -> None:
        start = first_block * BLOCK_BYTES
        stop = (last_block + 1) * BLOCK_BYTES - 1
        if self._size is not None:
            stop = min(stop, self._size - 1)
        self.budget.ensure(stop - start + 1, self.shown)
        before = self.session.requests_made
        response = self._get(start, stop)
        self.requests += self.session.requests_made - before
        body = self._accept(response, start, stop)
        for index in range(first_block, last_block + 1):
            offset = index * BLOCK_BYTES - start
            self._blocks[index] = body[offset : offset + BLOCK_BYTES]
        while len(self._blocks) > _MAX_CACHED_BLOCKS:
            self._blocks.popitem(last=False)

    def _get(self, start: int, stop: int) -> requests.Response:
        """One Range GET of bytes ``start..stop``; touches nothing but the (thread-safe) session."""
        return self.session.get(self.href, headers={"Range": f"bytes={start}-{stop}"})

    def _accept(self, response: requests.Response, start: int, stop: int) -> bytes:
        """The body of the answer to ``bytes=start-stop`` once status, range, size and ETag check out; charged to
        the byte budget. Raises WindowError, TruncatedResponse or ByteBudgetExceeded naming the href."""
        body = response.content
        if response.status_code == 404:
            raise WindowError(
                f"asset {self.shown} was not found (HTTP 404); the item lists a file the service no longer has, "
                "search again or skip this item"
            )
        if response.status_code in (401, 403):
            raise WindowError(
                f"asset {self.shown} was refused (HTTP {response.status_code}); the href needs signing or "
                "credentials (Planetary Computer hrefs must be signed through its SAS token endpoint)"
            )
        if response.status_code == 200:
            self.budget.charge(len(body), self.shown)
            raise WindowError(
                f"asset {self.shown} answered a Range request with the whole file (HTTP 200, {len(body)} bytes); "
                "the server does not support range reads, which satlake needs to fetch only the AOI window"
            )
        if response.status_code != 206:
            raise WindowError(
                f"asset {self.shown} answered HTTP {response.status_code} to bytes={start}-{stop}: "
                f"{response.text[:200]!r}"
            )
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
        if not match or match.group(3) == "*":
            raise WindowError(
                f"asset {self.shown} sent a partial response without a usable Content-Range "
                f"({response.headers.get('Content-Range')!r}); the server's range support is broken"
            )
        got_start, got_stop, total = int(match.group(1)), int(match.group(2)), int(match.group(3))
        if self._size is None:
            self._size = total
            stop = min(stop, total - 1)
        elif total != self._size:
            raise WindowError(f"asset {self.shown} changed size during the read ({self._size} -> {total} bytes)")
        etag = response.headers.get("ETag")
        if self.etag is None:
            self.etag = etag
        elif etag is not None and etag != self.etag:
            raise WindowError(f"asset {self.shown} changed during the read (ETag {self.etag} -> {etag}); retry")
        self.budget.charge(len(body), self.shown)
        self.bytes_fetched += len(body)
        if got_start != start or got_stop != stop or len(body) != stop - start + 1:
            raise TruncatedResponse(
                f"asset {self.shown}: asked bytes {start}-{stop}, got {len(body)} bytes for range "
                f"{got_start}-{got_stop}; the transfer was cut short, retry later"
            )
        return body


class _RemoteHandle(io.RawIOBase):
    """One GDAL file handle on a RemoteFile: its own position, the shared block cache."""

    def __init__(self, remote: RemoteFile) -> None:
        super().__init__()
        self._remote = remote
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._position = offset
        elif whence == io.SEEK_CUR:
            self._position += offset
        elif whence == io.SEEK_END:
            self._position = self._remote.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        return self._position

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, self._remote.size - self._position)
        try:
            data = self._remote.read(self._position, size)
        except Exception:
            # An exception crossing GDAL's C++ callbacks can abort the process; a short read makes GDAL fail
            # cleanly, and read_window raises the error RemoteFile kept.
            return b""
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class RemoteFileContainer(FileContainer):
    """The rasterio opener for one remote file: GDAL sees exactly one file, so probes for sidecars cost nothing."""

    def __init__(self, remote: RemoteFile) -> None:
        self._remote = remote

    def open(self, path: str, mode: str = "rb", **kwds: Any) -> _RemoteHandle:
        if path != self._remote.href or "w" in mode or "+" in mode:
            raise FileNotFoundError(path)
        return _RemoteHandle(self._remote)

    def isfile(self, path: str) -> bool:
        return path == self._remote.href

    def isdir(self, path: str) -> bool:
        return False

    def ls(self, path: str) -> list[str]:
        return []

    def mtime(self, path: str) -> int:
        return 0

    def size(self, path: str) -> int:
        if path != self._remote.href:
            raise FileNotFoundError(path)
        return self._remote.size

    def rm(self, path: str) -> None:
        raise PermissionError(f"{path} is read-only")
