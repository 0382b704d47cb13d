"""Shared pieces of the ground decoding tests: the demo and test mission databases, and packet batches."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

# ccsdspy needs a writable configuration directory at import; never the developer's home.
os.environ.setdefault("ccsdspy_CONFIGDIR", tempfile.mkdtemp(prefix="ccsdspy-test-"))

from satlake.ground.xtce import MissionDatabase, load_mission_database

REPO = Path(__file__).resolve().parents[3]
DEMOSAT_XML = REPO / "satlake" / "ground" / "missions" / "demosat.xml"
FIXTURES = REPO / "tests" / "fixtures" / "ground"
CUBEONE_XML = FIXTURES / "cubeone.xml"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GROUND_TIME = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


@pytest.fixture(scope="session")
def demosat() -> MissionDatabase:
    return load_mission_database(DEMOSAT_XML)


@pytest.fixture(scope="session")
def cubeone() -> MissionDatabase:
    return load_mission_database(CUBEONE_XML)


def packet_batch(packets: Sequence[bytes | None], ground_time: datetime = GROUND_TIME) -> pa.Table:
    """A decoder input batch as bronze hands it over: one row per packet, log offsets 0..n-1."""
    n = len(packets)
    return pa.table(
        {
            "topic": ["satlake.packets.test"] * n,
            "partition": pa.array([0] * n, pa.int32()),
            "offset": pa.array(range(n), pa.int64()),
            "station": ["gs-test"] * n,
            "ground_time": pa.array([ground_time] * n, pa.timestamp("us", tz="UTC")),
            "packet": pa.array(packets, pa.binary()),
        }
    )


@pytest.fixture
def batch_of() -> Callable[..., pa.Table]:
    return packet_batch
