"""What the fault tests against the real stack share: a telemetry load published by a producer process, an
ingestion process to kill or starve, exact accounting of events (count and a checksum over satellite, timestamp
and payload), one scene's pipeline run against any S3 endpoint, the checks that no table or catalog references a
missing or partial object, a query to run while Trino restarts, and the figures each test reports (printed, and
kept in the JSON file named by ``SATLAKE_FAULTS_REPORT`` when it is set).

The producer and the ingestion themselves are in ``fault_processes``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import posixpath
import re
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import dagster as dg
import pyarrow as pa

from satlake.catalog.items import sha256_multihash
from satlake.resources import SatlakeResources, build_resources
from satlake.resources.event_log import OutgoingRecord
from satlake.resources.lakehouse import Lakehouse, TableRef
from satlake.resources.object_store import ObjectStore, build_scene_stores
from satlake.resources.trino import TrinoLake
from satlake.scenes.assets import SCENE_KEYS_TAG, catalog_items, gold_ndvi, gold_quicklooks, raw_scenes, silver_cogs
from satlake.scenes.tables import CATALOG_ITEMS, GOLD_NDVI, GOLD_QUICKLOOKS, RAW_SCENES, SILVER_COGS
from satlake.settings import Settings, endpoint_environment
from satlake.stack.lifecycle import stack_up
from satlake.telemetry.codec import decode_event_fields
from satlake.telemetry.tables import RAW_TELEMETRY_EVENTS
from tests.integration.fault_processes import load_records, load_start_ns
from tests.integration.fault_proxy import ReportingProcess

LOAD_SEED = 11
SHA256_MULTIHASH_PREFIX = sha256_multihash("0" * 64)[:-64]  # what file:checksum puts before the hex digest

EventIdentity = tuple[str, int, str]  # (satellite, timestamp_ns, sha256 of the payload)
# Variables of the test process that a helper process may inherit: the binaries cache, not a stack's address.
INHERITED_SATLAKE_VARIABLES = ("SATLAKE_SERVERS_CACHE", "SATLAKE_TRINO_JAVA_HOME")


def process_environment(settings: Settings) -> dict[str, str]:
    """The environment of a helper process (producer, ingestion, MinIO proxy) that reaches the stack, stack home
    and topic of ``settings``, and nothing else: the test process's own SATLAKE_* variables, which may name a
    developer's stack, are left out."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SATLAKE_") or key in INHERITED_SATLAKE_VARIABLES
    }
    environment.update(
        {
            "SATLAKE_MODE": "stack",
            "SATLAKE_ROOT": str(settings.root),
            "SATLAKE_STACK_DIR": str(settings.stack_home),
            "SATLAKE_SECRETS_FILE": str(settings.secrets_file),
            **endpoint_environment(settings),
            "SATLAKE_S3_REGION": settings.s3_region,
            "SATLAKE_S3_ACCESS_KEY": settings.s3_access_key or "",
            "SATLAKE_S3_SECRET_KEY": settings.s3_secret_key or "",
            "SATLAKE_LAKE_BUCKET": settings.lake_bucket,
            "SATLAKE_LANDING_BUCKET": settings.landing_bucket,
            "SATLAKE_TELEMETRY_TOPIC": settings.telemetry_topic,
        }
    )
    return environment


# --- the load and its accounting ----------------------------------------------------------------------------


def event_identity(payload: bytes) -> EventIdentity:
    satellite, timestamp_ns, *_ = decode_event_fields(payload)
    return satellite, timestamp_ns, hashlib.sha256(payload).hexdigest()


def events_checksum(identities: Iterable[EventIdentity]) -> str:
    """sha256 over the sorted identities: equal for equal multisets, so a lost or repeated event changes it."""
    digest = hashlib.sha256()
    for satellite, timestamp_ns, payload_sha256 in sorted(identities):
        digest.update(f"{satellite}\0{timestamp_ns}\0{payload_sha256}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class EventAccount:
    """The produced events against the rows of ``raw/telemetry_events`` for one topic."""

    produced: int
    in_lake: int
    distinct_log_positions: int
    lost: int
    duplicated: int
    produced_checksum: str
    lake_checksum: str

    def figures(self) -> dict[str, Any]:
        return {
            "produced": self.produced,
            "in_lake": self.in_lake,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "checksum_equal": self.produced_checksum == self.lake_checksum,
            "checksum": self.lake_checksum[:16],
        }


def account_events(lakehouse: Lakehouse, topic: str, produced: Iterable[OutgoingRecord]) -> EventAccount:
    expected = Counter(event_identity(record.value) for record in produced)
    columns = ["partition", "offset", "payload"]
    rows = lakehouse.read(RAW_TELEMETRY_EVENTS, filters=[("topic", "=", topic)], columns=columns)
    partitions, offsets, payloads = (rows.column(c).to_pylist() if rows is not None else [] for c in columns)
    positions = set(zip(partitions, offsets, strict=True))
    found = Counter(event_identity(payload) for payload in payloads)
    return EventAccount(
        produced=expected.total(),
        in_lake=found.total(),
        distinct_log_positions=len(positions),
        lost=(expected - found).total(),
        duplicated=(found - expected).total(),
        produced_checksum=events_checksum(expected.elements()),
        lake_checksum=events_checksum(found.elements()),
    )


def first_records(start_ns: int, count: int, seed: int = LOAD_SEED) -> list[OutgoingRecord]:
    return list(itertools.islice(load_records(seed, start_ns), count))


def telemetry_topic(stack: Settings, tmp_path: Path, name: str) -> tuple[Settings, SatlakeResources]:
    """Settings and resources for a fresh topic of our own (4 partitions) on the session's stack."""
    topic = f"it.faults.{name}.{uuid.uuid4().hex[:8]}"
    settings = stack.with_overrides(telemetry_topic=topic, root=tmp_path)
    resources = build_resources(settings)
    resources.event_log.create_topic(topic, 4)
    return settings, resources


@dataclass(frozen=True)
class Load:
    """A producer process publishing the deterministic load to one topic, from ``start_ns`` in event time."""

    settings: Settings
    start_ns: int
    process: ReportingProcess

    def produced_records(self, count: int) -> list[OutgoingRecord]:
        return first_records(self.start_ns, count)

    def stop(self, timeout_s: float = 60) -> tuple[int, float]:
        """Stop the producer; (events appended and acknowledged, seconds it produced)."""
        assert self.process.finish(timeout_s) == 0, self.process.drain()
        produced = self.process.wait_for("produced", timeout_s=5)
        return produced["events"], produced["seconds"]


def start_load(settings: Settings, events_per_s: float) -> Load:
    start_ns = load_start_ns()
    arguments = ["-m", "tests.integration.fault_processes", "produce", settings.telemetry_topic, str(LOAD_SEED)]
    process = ReportingProcess([*arguments, str(start_ns), str(events_per_s)], process_environment(settings))
    try:
        process.start().wait_for("producing", timeout_s=60)
    except BaseException:
        process.finish()
        raise
    return Load(settings, start_ns, process)


def ingestion_process(settings: Settings, batch_size: int) -> ReportingProcess:
    """An ingestion process of the settings' topic (not started): it reports "ready", then each "committed"."""
    arguments = ["-m", "tests.integration.fault_processes", "ingest", settings.telemetry_topic, str(batch_size)]
    return ReportingProcess(arguments, process_environment(settings))


def trino_positions(settings: Settings, topic: str) -> tuple[int, int]:
    """(rows, distinct (partition, offset)) of ``topic`` in raw.telemetry_events, as Trino reads the table."""
    trino = TrinoLake(settings.trino_host, settings.trino_port, user="admin")
    try:
        _, rows = trino.query(
            'SELECT count(*), count(DISTINCT (partition, "offset")) FROM raw.telemetry_events WHERE topic = ?', [topic]
        )
    finally:
        trino.close()
    return rows[0]


def batches_in_lake(lakehouse: Lakehouse, topic: str) -> int:
    rows = lakehouse.read(RAW_TELEMETRY_EVENTS, filters=[("topic", "=", topic)], columns=["batch_id"])
    return len(set(rows.column("batch_id").to_pylist())) if rows is not None else 0


# --- servers --------------------------------------------------------------------------------------------------


@contextmanager
def left_running(stack: Settings, server: str) -> Iterator[None]:
    """On the way out of a failed test, start ``server`` again if the test left it stopped, so the tests after
    this one find the session's stack whole."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            stack_up(stack, [server], progress=lambda _message: None)
        raise


def restart(stack: Settings, server: str) -> float:
    """Start a stopped server of the session's stack again; seconds until it is healthy and provisioned."""
    started = time.monotonic()
    stack_up(stack, [server], progress=lambda _message: None)
    return round(time.monotonic() - started, 1)


# --- references to objects ----------------------------------------------------------------------------------


def delta_file_problems(lakehouse: Lakehouse, store: ObjectStore, table: TableRef) -> list[str]:
    """Data files the table's current version references that are missing or of another size than logged."""
    delta_table = lakehouse.open(table)
    if delta_table is None:
        return []
    actions = pa.table(delta_table.get_add_actions(flatten=True)).to_pydict()
    prefix = lakehouse.uri(table).removeprefix(f"s3://{store.bucket}/")
    problems = []
    for path, logged_size in zip(actions["path"], actions["size_bytes"], strict=True):
        key = posixpath.join(prefix, unquote(path))
        stored = store.size(key)
        if stored != logged_size:
            problems.append(
                f"{table}: {key} is {'missing' if stored is None else f'{stored} bytes'}, log says {logged_size}"
            )
    return problems


def object_problems(store: ObjectStore, uri: str, size_bytes: int | None, sha256: str | None) -> list[str]:
    """What is wrong with the object ``uri`` against the size and sha256 recorded for it (nothing: [])."""
    key = store.key_for_uri(uri)
    if key is None:
        return [f"{uri} is outside {store!r}"]
    stored = store.size(key)
    if stored is None:
        return [f"{uri} is referenced but does not exist"]
    if size_bytes is not None and stored != size_bytes:
        return [f"{uri} has {stored} bytes, {size_bytes} recorded"]
    if sha256 is not None and store.sha256(key) != sha256:
        return [f"{uri} does not have the recorded sha256 {sha256[:12]}…"]
    return []


def catalog_reference_problems(lakehouse: Lakehouse, store: ObjectStore, scene_id: str) -> list[str]:
    """Objects the scene's product rows (COGs, NDVI, quicklook) and its catalog item reference that are missing,
    or not whole (another size or sha256 than recorded)."""
    problems: list[str] = []
    for table in SCENE_PRODUCT_TABLES:
        rows = lakehouse.read(table, filters=[("scene_id", "=", scene_id)])
        for row in rows.to_pylist() if rows is not None else []:
            problems += object_problems(store, row["uri"], row["size_bytes"], row["sha256"])
    rows = lakehouse.read(CATALOG_ITEMS, filters=[("id", "=", scene_id)], columns=["item_json"])
    for text in rows.column("item_json").to_pylist() if rows is not None else []:
        for name, asset in json.loads(text)["assets"].items():
            checksum = asset.get("file:checksum")
            sha256 = checksum.removeprefix(SHA256_MULTIHASH_PREFIX) if checksum else None
            problems += [
                f"item {scene_id} asset {name}: {p}"
                for p in object_problems(store, asset["href"], asset.get("file:size"), sha256)
            ]
    return problems


def static_catalog_problems(store: ObjectStore) -> list[str]:
    """Links of the static catalog under ``stac/`` (from catalog.json down to items and their assets) that name
    no object."""
    problems: list[str] = []
    pending = ["stac/catalog.json"] if store.exists("stac/catalog.json") else []  # none written yet
    seen: set[str] = set()
    while pending:
        key = pending.pop()
        if key in seen:
            continue
        seen.add(key)
        if not store.exists(key):
            problems.append(f"static catalog links {key}, which does not exist")
            continue
        document = json.loads(_read_text(store, key))
        base = posixpath.dirname(key)
        for link in document.get("links", []):
            if link.get("rel") in ("child", "item"):
                pending.append(posixpath.normpath(posixpath.join(base, link["href"])))
        for name, asset in document.get("assets", {}).items():
            href = asset["href"]
            target = store.key_for_uri(href) if "://" in href else posixpath.normpath(posixpath.join(base, href))
            if target is None or not store.exists(target):
                problems.append(f"{key}: asset {name} links {href}, which does not exist")
    return problems


def _read_text(store: ObjectStore, key: str) -> str:
    with tempfile.TemporaryDirectory(prefix="satlake-faults-") as scratch:
        return store.get_to_path(key, Path(scratch) / "object").read_text(encoding="utf-8")


# --- one scene's pipeline -------------------------------------------------------------------------------------

SCENE_ASSETS = [raw_scenes, silver_cogs, gold_ndvi, gold_quicklooks, catalog_items]
SCENE_PRODUCT_TABLES = (SILVER_COGS, GOLD_NDVI, GOLD_QUICKLOOKS)


@dataclass
class SceneUnderFault:
    """One scene landed in the lake bucket, and its pipeline run in process against any S3 endpoint."""

    settings: Settings
    scene_id: str
    landing_key: str
    instance: dg.DagsterInstance

    def run(self, s3_endpoint: str) -> dg.ExecuteInProcessResult:
        settings = self.settings.with_overrides(s3_endpoint=s3_endpoint)
        stores = build_scene_stores(settings)
        return dg.materialize(
            SCENE_ASSETS,
            partition_key=self.scene_id,
            instance=self.instance,
            tags={SCENE_KEYS_TAG: json.dumps([self.landing_key])},
            # The landing store is the lake bucket itself: an upload to the real landing bucket would be
            # announced to the scene sensors of other tests.
            resources={
                "lakehouse": build_resources(settings).lakehouse,
                "object_store": stores.lake,
                "landing_store": stores.lake,
            },
            raise_on_error=False,
        )

    def problems(self) -> list[str]:
        """Whatever the scene's tables, its catalog item or the static catalog reference that is missing or not
        whole."""
        lakehouse, store = build_resources(self.settings).lakehouse, build_scene_stores(self.settings).lake
        problems = catalog_reference_problems(lakehouse, store, self.scene_id)
        for table in (RAW_SCENES, *SCENE_PRODUCT_TABLES, CATALOG_ITEMS):
            problems += delta_file_problems(lakehouse, store, table)
        return problems + static_catalog_problems(store)

    def row_counts(self) -> dict[str, int]:
        lakehouse = build_resources(self.settings).lakehouse
        counts = {}
        for table in (RAW_SCENES, *SCENE_PRODUCT_TABLES, CATALOG_ITEMS):
            column = "id" if table == CATALOG_ITEMS else "scene_id"
            rows = lakehouse.read(table, filters=[(column, "=", self.scene_id)], columns=[column])
            counts[table.path] = rows.num_rows if rows is not None else 0
        return counts


def step_failures(result: dg.ExecuteInProcessResult) -> dict[str, list[str]]:
    """The failed steps of a run and their errors: Dagster's message, then each cause in turn."""
    failures = {}
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        messages = []
        while error is not None:
            messages.append(error.message.strip())
            error = error.cause
        failures[event.step_key] = messages
    return failures


# --- a query while Trino restarts -----------------------------------------------------------------------------

QUERY_MARKER = "satlake-fault-test-endless-query"
# 10^12 rows: it runs until Trino goes away. The marker finds it in system.runtime.queries.
ENDLESS_QUERY = (
    f"SELECT count(*) /* {QUERY_MARKER} */ FROM UNNEST(sequence(1, 10000)) a(x) "
    "CROSS JOIN UNNEST(sequence(1, 10000)) b(y) CROSS JOIN UNNEST(sequence(1, 10000)) c(z)"
)


class QueryInThread:
    """``ENDLESS_QUERY`` run by a thread, so a test can stop Trino under it; keeps the error it ends with."""

    def __init__(self, trino: TrinoLake) -> None:
        self.trino = trino
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.trino.query(ENDLESS_QUERY)
        except BaseException as error:
            self.error = error

    def start_and_wait_until_running(self, observer: TrinoLake, timeout_s: float = 60) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        running_sql = (  # this query names the marker too: leave it out
            "SELECT count(*) FROM system.runtime.queries WHERE state = 'RUNNING' AND strpos(query, ?) > 0 "
            "AND strpos(query, 'system.runtime.queries') = 0"
        )
        while observer.query(running_sql, [QUERY_MARKER])[1] == [(0,)]:
            assert time.monotonic() < deadline, f"the query did not start running within {timeout_s:.0f}s"
            assert self.thread.is_alive(), f"the query ended before Trino was stopped: {self.error}"
            time.sleep(0.2)

    def join(self, timeout_s: float) -> None:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"the query still waits {timeout_s:.0f}s after Trino was stopped"
        self.trino.close()


# --- figures ------------------------------------------------------------------------------------------------


def short_error(message: str, limit: int = 300) -> str:
    """An error message on one line, without delta-rs's colour codes and tree marks, for the figures."""
    flat = " ".join(re.sub(r"\x1b\[[0-9;]*m|↳", " ", message).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def report_figures(test: str, **figures: Any) -> dict[str, Any]:
    """Print the figures of one fault test and, when ``SATLAKE_FAULTS_REPORT`` names a file, keep them there."""
    entry = {
        **figures,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(f"[fault figures] {test}: {json.dumps(entry, sort_keys=True)}", flush=True)
    target = os.environ.get("SATLAKE_FAULTS_REPORT")
    if target:
        path = Path(target)
        existing = json.loads(path.read_text()) if path.is_file() else {}
        existing[test] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
    return entry
