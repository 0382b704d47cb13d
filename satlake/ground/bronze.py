"""``raw/packets`` to bronze, for one mission: decode every packet not yet decoded with the mission's database,
judge its sequence count, and append

- ``bronze.packets``: one row per packet (header, packet and ground time, station, sequence verdict);
- ``bronze/<mission>_<packet type>``: one row per packet of that type, a column per XTCE parameter (calibrated
  and raw side by side); a newer mission database adds columns, rows written before read them as null;
- ``bronze.parameters``: one row per parameter per packet (the long table for queries across packets), with
  the parameter's alarm verdict from the mission database's limits;
- ``bronze.packet_rejects``: what is no packet, or a packet that cannot be decoded, with the reason;
- ``bronze.packet_sequence_events``: gaps, duplicates, counter repeats and late packets per APID.

Exactly once, as a second hop: every table commits, with its rows, the raw offset (per topic partition) it has
reached, as a Delta application transaction, and skips the rows below it. ``bronze.packets`` is written last:
its position is where the next run starts. A duplicate packet is kept once (in raw, and as an event).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from satlake.ground.decode import PACKET_REJECTS_SCHEMA, decode_batch
from satlake.ground.registry import MissionRecord
from satlake.ground.sequence import DUPLICATE, Previous, SequenceVerdicts, judge_sequence, missing_range
from satlake.ground.tables import (
    BRONZE_PACKET_REJECTS,
    BRONZE_PACKETS,
    BRONZE_PARAMETERS,
    BRONZE_SEQUENCE_EVENTS,
    PACKET,
    RAW_PACKETS,
    SEQUENCE_EVENTS_SCHEMA,
    packet_type_table,
)
from satlake.resources.lakehouse import Lakehouse, TableRef

# Raw records decoded per exactly-once step: the decoder holds about 10 kB per packet while it builds the rows.
CHUNK_ROWS = 20_000
# How far back (in offsets of a topic partition) the last packet of each APID is looked for when a run starts.
SEQUENCE_LOOKBACK = 200_000
_TS = pa.timestamp("us", tz="UTC")


def bronze_app_id(topic: str, partition: int) -> str:
    return f"satlake.bronze_packets/{topic}/{partition}"


@dataclass
class BronzeReport:
    """What one run decoded and wrote."""

    raw_rows: int = 0
    packets: int = 0
    duplicates: int = 0
    rejects: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    parameters: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    missing_packets: int = 0
    unknown_apids: dict[int, int] = field(default_factory=dict)
    alarm_samples: dict[str, int] = field(default_factory=dict)
    positions: dict[int, int] = field(default_factory=dict)
    rejected_only: int = 0  # raw records that gave a reject and no packet row (no valid header, collector rejects)
    unaccounted: int = 0  # raw records that gave neither: always 0 unless the decoder lost one


def positions(lakehouse: Lakehouse, table: TableRef, topic: str, partitions: list[int]) -> dict[int, int]:
    app_ids = {p: bronze_app_id(topic, p) for p in partitions}
    versions = lakehouse.transaction_versions(table, list(app_ids.values())) if app_ids else {}
    return {p: versions.get(app_id) or 0 for p, app_id in app_ids.items()}


def _raw_partitions(lakehouse: Lakehouse, mission: str) -> list[int]:
    rows = lakehouse.read(RAW_PACKETS, filters=[("mission", "=", mission)], columns=["partition"])
    return sorted(set(rows.column("partition").to_pylist())) if rows is not None else []


def pending_raw(lakehouse: Lakehouse, mission: MissionRecord) -> pa.Table | None:
    """The raw rows of ``mission`` bronze has not decoded, in log order (None: nothing to do)."""
    partitions = _raw_partitions(lakehouse, mission.name)
    start = positions(lakehouse, BRONZE_PACKETS, mission.topic, partitions)
    parts = []
    for partition in partitions:
        filters = [("mission", "=", mission.name), ("topic", "=", mission.topic), ("partition", "=", partition),
                   ("offset", ">=", start[partition])]  # fmt: skip
        rows = lakehouse.read(RAW_PACKETS, filters=filters)
        if rows is not None and rows.num_rows:
            parts.append(rows)
    if not parts:
        return None
    return pa.concat_tables(parts).sort_by([("partition", "ascending"), ("offset", "ascending")])


def _previous_state(lakehouse: Lakehouse, mission: MissionRecord, raw: pa.Table) -> dict[int, Previous]:
    """Each APID's last stored packet before this run (in log order), from ``bronze.packets``."""
    if not lakehouse.exists(BRONZE_PACKETS):
        return {}
    state: dict[int, Previous] = {}
    for partition in sorted(set(raw.column("partition").to_pylist())):
        first = pc.min(raw.filter(pc.equal(raw.column("partition"), partition)).column("offset")).as_py()
        rows = lakehouse.read(
            BRONZE_PACKETS,
            filters=[("mission", "=", mission.name), ("topic", "=", mission.topic), ("partition", "=", partition),
                     ("offset", ">=", max(first - SEQUENCE_LOOKBACK, 0)), ("offset", "<", first)],
            columns=["apid", "sequence_count", "packet_time", "offset", "sequence_status"],
        )  # fmt: skip
        if rows is None:
            continue
        for row in rows.sort_by("offset").to_pylist():
            if row["sequence_status"] != "out_of_order":
                state[row["apid"]] = Previous(row["sequence_count"], _micros(row["packet_time"]))
    return state


def _known_keys(lakehouse: Lakehouse, mission: MissionRecord, packets: pa.Table) -> set[tuple[int, int, int | None]]:
    """(apid, count, time) of the stored packets on the days this batch's packets belong to."""
    if not lakehouse.exists(BRONZE_PACKETS) or packets.num_rows == 0:
        return set()
    days = pc.unique(packets.column("event_date")).to_pylist()
    rows = lakehouse.read(
        BRONZE_PACKETS,
        filters=[("mission", "=", mission.name), ("event_date", "in", days)],
        columns=["apid", "sequence_count", "packet_time"],
    )
    if rows is None:
        return set()
    return {(r["apid"], r["sequence_count"], _micros(r["packet_time"])) for r in rows.to_pylist()}


def _micros(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1_000_000)


def _keep(table: pa.Table, dropped: set[tuple[int, int]]) -> pa.Table:
    """``table`` without the rows whose (partition, offset) is in ``dropped``."""
    if not dropped or table.num_rows == 0:
        return table
    keys = zip(table.column("partition").to_pylist(), table.column("offset").to_pylist(), strict=True)
    return table.filter(pa.array([key not in dropped for key in keys], pa.bool_()))


def _raw_rejects(raw: pa.Table) -> pa.Table:
    """Reject rows for what the collectors rejected, or what is no envelope, as raw holds it."""
    rejected = raw.filter(pc.not_equal(raw.column("kind"), PACKET))
    ground = rejected.column("ground_time")
    event_date = pc.if_else(pc.is_null(ground), rejected.column("receive_date"), pc.cast(ground, pa.date32()))
    reasons = pc.if_else(pc.is_null(rejected.column("reason")), pa.scalar("not a packet"), rejected.column("reason"))
    columns = {
        "mission": rejected.column("mission"), "topic": rejected.column("topic"),
        "partition": rejected.column("partition"), "offset": rejected.column("offset"),
        "station": rejected.column("station"), "ground_time": ground, "apid": rejected.column("apid"),
        "reason": reasons, "packet": rejected.column("packet"), "event_date": event_date,
    }  # fmt: skip
    return pa.table({f.name: columns[f.name].cast(f.type) for f in PACKET_REJECTS_SCHEMA}, schema=PACKET_REJECTS_SCHEMA)


def _sequence(packets: pa.Table, verdicts: SequenceVerdicts) -> tuple[pa.Table, pa.Table]:
    """Bronze packet rows with their verdict columns (duplicates dropped), and the sequence events."""
    with_status = packets.append_column("sequence_status", pa.array(verdicts.status, pa.string())).append_column(
        "missing_before", pa.array(verdicts.missing_before, pa.int32())
    )
    kept = with_status.filter(pa.array(verdicts.kept, pa.bool_()))
    if not verdicts.events:
        return kept, SEQUENCE_EVENTS_SCHEMA.empty_table()
    indices = pa.array([event.index for event in verdicts.events])
    rows = packets.take(indices)
    events = {
        "mission": rows.column("mission"), "apid": rows.column("apid"), "packet_type": rows.column("packet_type"),
        "kind": pa.array([e.kind for e in verdicts.events]),
        "previous_count": pa.array([e.previous_count for e in verdicts.events], pa.int32()),
        "sequence_count": rows.column("sequence_count"),
        "missing": pa.array([e.missing for e in verdicts.events], pa.int32()),
        "missing_counts": pa.array([missing_range(e) or None for e in verdicts.events], pa.string()),
        "packet_time": rows.column("packet_time"), "ground_time": rows.column("ground_time"),
        "station": rows.column("station"), "topic": rows.column("topic"), "partition": rows.column("partition"),
        "offset": rows.column("offset"), "event_date": rows.column("event_date"),
    }  # fmt: skip
    columns = {f.name: events[f.name].cast(f.type) for f in SEQUENCE_EVENTS_SCHEMA}
    return kept, pa.table(columns, schema=SEQUENCE_EVENTS_SCHEMA)


def update_bronze_packets(
    lakehouse: Lakehouse,
    mission: MissionRecord,
    *,
    say: Callable[[str], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> BronzeReport:
    """Decode and write everything of ``mission`` in raw that bronze does not hold yet, ``chunk_rows`` raw
    records at a time (each chunk is one exactly-once step: memory stays bounded whatever the backlog)."""
    report = BronzeReport()
    raw = pending_raw(lakehouse, mission)
    if raw is None:
        return report
    state = _previous_state(lakehouse, mission, raw)
    for first in range(0, raw.num_rows, chunk_rows):
        chunk = raw.slice(first, chunk_rows)
        state = _update_chunk(lakehouse, mission, chunk, state, report, say)
        if say and raw.num_rows > chunk_rows:
            say(f"{mission.name}: {min(first + chunk_rows, raw.num_rows)} of {raw.num_rows} raw records decoded")
    return report


def _update_chunk(
    lakehouse: Lakehouse,
    mission: MissionRecord,
    raw: pa.Table,
    state: dict[int, Previous],
    report: BronzeReport,
    say: Callable[[str], None] | None,
) -> dict[int, Previous]:
    """Decode, judge and write one chunk of raw records; adds to ``report``, returns the sequence state after it."""
    following: dict[int, int] = {}
    for partition, offset in zip(raw.column("partition").to_pylist(), raw.column("offset").to_pylist(), strict=True):
        following[partition] = max(following.get(partition, 0), offset + 1)
    packet_rows = raw.filter(pc.equal(raw.column("kind"), PACKET))
    batch = packet_rows.select(["topic", "partition", "offset", "station", "ground_time", "packet"])
    decoded = decode_batch(mission.database, mission.name, batch)
    packets = decoded.packets
    apids, counts = packets.column("apid").to_pylist(), packets.column("sequence_count").to_pylist()
    times = [_micros(t) for t in packets.column("packet_time").to_pylist()]
    verdicts = judge_sequence(apids, counts, times, state, _known_keys(lakehouse, mission, packets))
    bronze_packets, events = _sequence(packets, verdicts)
    duplicates = {
        (p, o)
        for p, o, status in zip(
            packets.column("partition").to_pylist(), packets.column("offset").to_pylist(), verdicts.status, strict=True
        )
        if status == DUPLICATE
    }
    rejects = pa.concat_tables([_raw_rejects(raw), decoded.rejects.cast(PACKET_REJECTS_SCHEMA)])
    parameters = _keep(decoded.parameters, duplicates)
    writes: list[tuple[TableRef, pa.Table, list[str]]] = [
        (packet_type_table(mission.name, name), _keep(rows, duplicates), ["event_date"])
        for name, rows in sorted(decoded.tables.items())
    ]
    writes += [
        (BRONZE_PARAMETERS, parameters, ["mission", "event_date"]),
        (BRONZE_PACKET_REJECTS, rejects, ["mission", "event_date"]),
        (BRONZE_SEQUENCE_EVENTS, events, ["mission", "event_date"]),
        (BRONZE_PACKETS, bronze_packets, ["mission", "event_date"]),  # last: its position is the run's
    ]
    for table, rows, partition_by in writes:
        written = _write(lakehouse, table, rows, mission.topic, following, partition_by, say)
        if table.name.startswith(f"{mission.name}_"):
            report.tables[table.name] = report.tables.get(table.name, 0) + written
    report.raw_rows += raw.num_rows
    report.packets += bronze_packets.num_rows
    report.duplicates += len(duplicates)
    report.rejects += rejects.num_rows
    report.parameters += parameters.num_rows
    _add(report.reject_reasons, _counts(rejects.column("reason")))
    _add(report.events, _counts(events.column("kind")))
    report.missing_packets += int(pc.sum(events.column("missing")).as_py() or 0)
    unknown = packets.filter(pc.and_(pc.is_null(packets.column("packet_type")), pc.is_valid(packets.column("apid"))))
    _add(report.unknown_apids, {int(k): v for k, v in _counts(unknown.column("apid")).items()})
    _add(report.alarm_samples, _counts(parameters.column("alarm_severity").drop_null()))
    report.positions.update(following)
    rejected_only, unaccounted = _reconcile(raw, packets, rejects)
    report.rejected_only += rejected_only
    report.unaccounted += unaccounted
    return verdicts.state


def _add(total: dict, counts: dict) -> None:
    for key, count in counts.items():
        total[key] = total.get(key, 0) + count


def _keys(table: pa.Table) -> set[tuple[int, int]]:
    return set(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist(), strict=True))


def _reconcile(raw: pa.Table, packets: pa.Table, rejects: pa.Table) -> tuple[int, int]:
    """(records with only a reject row, records with neither a packet nor a reject row)."""
    packet_keys, reject_keys = _keys(packets), _keys(rejects)
    raw_keys = _keys(raw)
    return len(reject_keys - packet_keys), len(raw_keys - packet_keys - reject_keys)


def _counts(column: pa.ChunkedArray | pa.Array) -> dict:
    if len(column) == 0:
        return {}
    return {row["values"]: row["counts"] for row in pc.value_counts(column).to_pylist() if row["values"] is not None}


def _write(
    lakehouse: Lakehouse,
    table: TableRef,
    rows: pa.Table,
    topic: str,
    following: dict[int, int],
    partition_by: list[str],
    say: Callable[[str], None] | None,
) -> int:
    """Append the rows at or after ``table``'s own position, advancing it to ``following``; returns rows written."""
    writer = lakehouse.exactly_once_writer(table)
    app_ids = {p: bronze_app_id(topic, p) for p in following}
    done = writer.transaction_versions(list(app_ids.values()))
    start = {p: done[app_ids[p]] or 0 for p in following}
    if rows.num_rows:
        floor = np.array([start.get(p, 0) for p in rows.column("partition").to_pylist()], dtype=np.int64)
        rows = rows.filter(pa.array(rows.column("offset").to_numpy() >= floor))
    if all(start[p] >= following[p] for p in following):
        return 0  # a run that died after this table's commit: already there
    writer.append(
        rows,
        partition_by=partition_by,
        app_transactions={app_ids[p]: o for p, o in following.items()},
        commit_metadata={"satlake.topic": topic},
        evolve_schema=True,
    )
    if say:
        say(f"{table}: {rows.num_rows} rows")
    return rows.num_rows
