"""Metrics read from the lakehouse and the event log on each scrape: consumed and rejected events, consumer
lag, bytes in each table, scene outcomes and the age of each table's newest partition.

Nothing here is counted in memory: every value is recomputed from the Delta logs (offsets committed with the
rows, add actions' sizes and record counts, partition values), so an exporter restart loses nothing and two
exporters agree.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from satlake.ops import names
from satlake.resources.event_log import EventLog
from satlake.resources.lakehouse import Lakehouse, TableRef
from satlake.scenes.tables import RAW_SCENES, SCENE_REJECTS, SILVER_COGS
from satlake.telemetry.ingest import committed_offsets
from satlake.telemetry.tables import BRONZE_TELEMETRY_REJECTS

log = logging.getLogger(__name__)

ErrorCounter = Callable[[str, Exception], None]

# How old the table metrics may get before a scrape starts reading them again in the background.
TABLE_REFRESH_S = 30.0


def table_name(table: TableRef) -> str:
    """The ``table`` label and the ``asset`` label of a table's metrics: its Dagster asset key path."""
    return f"{table.zone}/{table.name}"


def add_actions(lakehouse: Lakehouse, table: TableRef) -> pa.Table | None:
    """The live data files of ``table`` (path, size, record count, partition values), None if never written."""
    delta_table = lakehouse.open(table)
    if delta_table is None:
        return None
    return pa.table(delta_table.get_add_actions(flatten=True))


def newest_partition_day(actions: pa.Table) -> date | None:
    """The newest value of a date partition column among the live files, None for an unpartitioned table."""
    days = [
        value
        for column in actions.column_names
        if column.startswith("partition.")
        for value in [pc.max(actions.column(column)).as_py()]
        if isinstance(value, date)
    ]
    return max(days) if days else None


def partition_age_seconds(newest: date, now: datetime) -> float:
    """Seconds from the start (00:00 UTC) of the newest daily partition to ``now``."""
    return (now - datetime(newest.year, newest.month, newest.day, tzinfo=UTC)).total_seconds()


def distinct_count(lakehouse: Lakehouse, table: TableRef, column: str) -> int:
    rows = lakehouse.read(table, columns=[column])
    return 0 if rows is None else len(pc.unique(rows.column(column)))


class LakehouseCollector(Collector):
    """Telemetry, table and scene metrics of one lakehouse and its event log, recomputed on every scrape."""

    def __init__(
        self,
        lakehouse: Lakehouse,
        event_log: EventLog,
        topics: list[str],
        on_error: ErrorCounter,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        table_refresh_s: float = TABLE_REFRESH_S,
    ) -> None:
        self.lakehouse = lakehouse
        self.event_log = event_log
        self.topics = topics
        self.on_error = on_error
        self.now = now
        self.table_refresh_s = table_refresh_s
        self._table_metrics: list[Metric] | None = None
        self._table_metrics_at = 0.0
        self._refreshing = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        for section in (self._telemetry, self._tables, self._scenes):
            try:
                yield from section()
            except Exception as error:  # a failing source must not hide the others' metrics
                self.on_error(section.__name__.strip("_"), error)

    def _telemetry(self) -> Iterator[Metric]:
        consumed = CounterMetricFamily(
            names.EVENTS_CONSUMED, "Events committed to raw/telemetry_events, per topic", labels=["topic"]
        )
        rejected = CounterMetricFamily(
            names.EVENTS_REJECTED, "Events written to bronze/telemetry_rejects, per topic", labels=["topic"]
        )
        lag = GaugeMetricFamily(
            names.CONSUMER_LAG,
            "Events in the log not yet committed to the lakehouse (end offset minus committed offset)",
            labels=["topic", "partition"],
        )
        rejects = self.lakehouse.read(BRONZE_TELEMETRY_REJECTS, columns=["topic"])
        for topic in self.topics:
            end = self.event_log.end_offsets(topic)
            done = committed_offsets(self.lakehouse, topic, sorted(end))
            consumed.add_metric([topic], float(sum(done.values())))
            for partition in sorted(end):
                lag.add_metric([topic, str(partition)], float(max(end[partition] - done[partition], 0)))
            count = 0 if rejects is None else int(pc.sum(pc.equal(rejects.column("topic"), topic)).as_py() or 0)
            rejected.add_metric([topic], float(count))
        yield from (consumed, rejected, lag)

    def _tables(self) -> Iterator[Metric]:
        """Every table's bytes and newest partition. Reading them opens every Delta table (tens of ms each in an
        object store), so past the first scrape they are served from the last reading and read again in the
        background once older than ``table_refresh_s``: a scrape stays fast however many tables the domains add
        (Prometheus gives up on a scrape after its interval)."""
        if self._table_metrics is None:
            self._refresh_tables()
        elif time.monotonic() - self._table_metrics_at > self.table_refresh_s and not self._refreshing.locked():
            threading.Thread(target=self._refresh_tables, name="satlake-table-metrics", daemon=True).start()
        yield from self._table_metrics or []

    def _refresh_tables(self) -> None:
        if not self._refreshing.acquire(blocking=False):
            return
        try:
            self._table_metrics = self._read_tables()
            self._table_metrics_at = time.monotonic()
        except Exception as error:  # a failing read keeps the last metrics and is counted
            self.on_error("tables", error)
        finally:
            self._refreshing.release()

    def _read_tables(self) -> list[Metric]:
        written = CounterMetricFamily(
            names.BYTES_WRITTEN, "Bytes in the live data files of each Delta table", labels=["table"]
        )
        age = GaugeMetricFamily(
            names.PARTITION_AGE_SECONDS,
            "Seconds since the start of the newest daily partition of each date-partitioned table",
            labels=["asset"],
        )
        now = self.now()
        for table in self.lakehouse.list_tables():
            actions = add_actions(self.lakehouse, table)
            if actions is None:
                continue
            written.add_metric([table_name(table)], float(pc.sum(actions.column("size_bytes")).as_py() or 0))
            newest = newest_partition_day(actions)
            if newest is not None:
                age.add_metric([table_name(table)], partition_age_seconds(newest, now))
        return [written, age]

    def _scenes(self) -> Iterator[Metric]:
        scenes = CounterMetricFamily(
            names.SCENES,
            "Scenes landed (raw/scenes), converted to COGs (silver/cogs) and quarantined (raw/scene_rejects)",
            labels=["outcome"],
        )
        counts: dict[str, Any] = {
            "landed": distinct_count(self.lakehouse, RAW_SCENES, "scene_id"),
            "converted": distinct_count(self.lakehouse, SILVER_COGS, "scene_id"),
            "quarantined": distinct_count(self.lakehouse, SCENE_REJECTS, "scene_id"),
        }
        for outcome in names.SCENE_OUTCOMES:
            scenes.add_metric([outcome], float(counts[outcome]))
        yield scenes
