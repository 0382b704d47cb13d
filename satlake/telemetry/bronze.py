"""Decoding and validating raw telemetry events into bronze rows and quarantined rejects.

Every raw event ends up in exactly one of the two outputs, so ``raw = bronze + rejects`` holds per batch.

The work is columnar: events in the canonical FlatBuffers layout (nearly all) are decoded and validated for the
whole batch with numpy and Arrow; only the others (foreign layouts, garbage, and readings some rule rejects) go
through the per-event decoder and rules, which write the readable reasons. Both paths give the same answer for
every event; the per-event path is the reference the columnar one is tested against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from satlake.telemetry.codec import EventDecodeError, canonical_event_columns, decode_event_fields
from satlake.telemetry.limits import TelemetryLimits, alarm_columns, hard_limit_breaches
from satlake.telemetry.tables import BRONZE_TELEMETRY_REJECTS_SCHEMA, BRONZE_TELEMETRY_SCHEMA, MEASURES
from satlake.telemetry.validation import (
    Rejection,
    default_limits,
    reject_reason_for_values,
    rejection_from_decode_error,
    satellite_name_problem,
)

DUPLICATE_EVENT = "duplicate_event"
# The columns of stored bronze rows that duplicates are judged against (see ``build_bronze_partition``).
STORED_KEY_COLUMNS = ("satellite_name", "timestamp_ns", "topic", "partition", "offset")
# Given the range of timestamps (inclusive) of the events judged, the stored rows that may share their keys.
StoredKeyLookup = Callable[[int, int], pa.Table]
_LOG_ORDER = [("topic", "ascending"), ("partition", "ascending"), ("offset", "ascending")]
_SIGNED_TIME_LIMIT = 1 << 63


@dataclass(frozen=True)
class BronzePartition:
    rows: pa.Table
    rejects: pa.Table

    @property
    def reject_counts(self) -> dict[str, int]:
        counts = pc.value_counts(self.rejects.column("reason_code")).to_pylist() if self.rejects.num_rows else []
        return dict(sorted((c["values"], c["counts"]) for c in counts))


@dataclass
class _Verdicts:
    """Per raw row (in log order): the decoded fields of accepted rows, or the rejection of the others."""

    accepted: np.ndarray  # row indices, ascending
    names: pa.Array
    timestamps: np.ndarray  # int64
    measures: np.ndarray  # float64 (accepted, 6)
    rejected: dict[int, tuple[Rejection, str | None, int | None]]


def build_bronze_partition(
    raw: pa.Table,
    stored_keys: StoredKeyLookup | None = None,
    *,
    limits: TelemetryLimits | None = None,
    columnar: bool = True,
) -> BronzePartition:
    """Decode, validate, flag and de-duplicate raw events (one day's, or any set) into bronze rows and rejects.

    ``limits`` (default: the shipped ones) decide the alarm columns of every row, the hard ranges whose
    breach makes an event a reject, and the clock skew allowed; their version is written into every row.

    Validation judges each event against the moment it was received, not the moment this runs, so re-running
    a partition months later gives the same answer. Duplicates (same satellite and timestamp, e.g. a producer
    retry) keep the earliest log position; later copies are rejected with a pointer to the kept one.

    ``stored_keys`` (``STORED_KEY_COLUMNS`` of the bronze rows already stored in a range of timestamps) makes
    this incremental: an event
    whose key is stored at another log position is a duplicate of that row; one stored at its own position is
    the same event (a batch being processed again) and is returned as a row. ``columnar=False`` judges every
    event one at a time, the reference the columnar path must match.
    """
    limits = limits or default_limits()
    raw = _in_log_order(raw)
    verdicts = _judge_events(raw, columnar, limits)
    _reject_duplicates(raw, verdicts, stored_keys)
    return BronzePartition(
        rows=_bronze_rows(raw, verdicts, limits), rejects=_reject_rows(raw, verdicts.rejected, limits.version)
    )


def _in_log_order(raw: pa.Table) -> pa.Table:
    """``raw`` sorted by (topic, partition, offset); without a sort when it already is (ingestion writes so)."""
    if raw.num_rows < 2:
        return raw
    topics = raw.column("topic")
    if pc.min_max(topics)["min"] != pc.min_max(topics)["max"]:
        return raw.sort_by(_LOG_ORDER)
    partitions = raw.column("partition").to_numpy()
    offsets = raw.column("offset").to_numpy()
    order = np.lexsort((offsets, partitions))
    if (order[1:] > order[:-1]).all():
        return raw
    return raw.take(pa.array(order))


def _judge_events(raw: pa.Table, columnar: bool, limits: TelemetryLimits) -> _Verdicts:
    payloads = raw.column("payload").combine_chunks()
    received_ns = pc.cast(raw.column("received_at"), pa.int64()).to_numpy() * 1000  # received_at is in µs
    fast = np.zeros(raw.num_rows, dtype=bool)
    names: pa.Array = pa.array([], pa.string())
    timestamps = np.zeros(0, np.int64)
    measures = np.zeros((0, len(MEASURES)))
    if columnar:
        canonical = canonical_event_columns(payloads)
        positions = canonical.positions
        valid = _valid_readings(canonical.satellite_name, canonical.timestamp_ns, canonical.measures,
                                received_ns[positions], limits)  # fmt: skip
        fast[positions[valid]] = True
        names = canonical.satellite_name.filter(pa.array(valid))
        timestamps = canonical.timestamp_ns[valid].view(np.int64)
        measures = canonical.measures[valid]

    rejected: dict[int, tuple[Rejection, str | None, int | None]] = {}
    slow_rows: list[int] = []
    slow_fields: list[tuple] = []
    for i in np.flatnonzero(~fast).tolist():
        try:
            fields = decode_event_fields(payloads[i].as_py())
        except EventDecodeError as error:
            rejected[i] = (rejection_from_decode_error(error), None, None)
            continue
        name, timestamp_ns = fields[0], fields[1]
        rejection = reject_reason_for_values(name, timestamp_ns, fields[2:], now_ns=int(received_ns[i]), limits=limits)
        if rejection is not None:
            rejected[i] = (rejection, name, timestamp_ns if timestamp_ns < _SIGNED_TIME_LIMIT else None)
            continue
        slow_rows.append(i)
        slow_fields.append(fields)

    if not slow_rows:
        return _Verdicts(np.flatnonzero(fast), names, timestamps, measures, rejected)
    # Merge the few accepted slow rows into the columnar ones, keeping log order.
    columns = list(zip(*slow_fields, strict=True))
    accepted = np.concatenate([np.flatnonzero(fast), np.asarray(slow_rows, np.int64)])
    order = np.argsort(accepted, kind="stable")
    all_names = pa.concat_arrays([names, pa.array(columns[0], pa.string())]).take(pa.array(order))
    all_timestamps = np.concatenate([timestamps, np.asarray(columns[1], np.int64)])[order]
    all_measures = np.concatenate([measures, np.asarray(columns[2:], np.float64).T.reshape(-1, len(MEASURES))])
    return _Verdicts(accepted[order], all_names, all_timestamps, all_measures[order], rejected)


def _valid_readings(
    names: pa.Array, timestamps: np.ndarray, measures: np.ndarray, now_ns: np.ndarray, limits: TelemetryLimits
) -> np.ndarray:
    """Which events break no rule of ``validation.reject_reason_for_values`` (the others get its reason).

    A batch names few satellites: each distinct name is judged once, by the same rule the reference uses."""
    encoded = pc.dictionary_encode(names)
    distinct_ok = np.array([satellite_name_problem(name) is None for name in encoded.dictionary.to_pylist()], bool)
    name_ok = distinct_ok[encoded.indices.to_numpy(zero_copy_only=False)] if len(names) else np.zeros(0, bool)
    signed = timestamps.view(np.int64)  # 0 and stamps at or above 2**63 (negative here) are before 1970
    time_ok = (signed > 0) & (signed <= now_ns + limits.max_future_skew_ns)
    values_ok = np.isfinite(measures).all(axis=1) & ~hard_limit_breaches(limits, encoded, measures)
    return name_ok & time_ok & values_ok


def _reject_duplicates(raw: pa.Table, verdicts: _Verdicts, stored_keys: StoredKeyLookup | None) -> None:
    """Move the accepted events whose (satellite, timestamp) is already taken to the rejects, in place.

    Taken means: stored at another log position (``stored_keys``), or held by an earlier event of this set.
    """
    if verdicts.accepted.size == 0:
        return
    keys = pa.table({"satellite_name": verdicts.names, "timestamp_ns": verdicts.timestamps,
                     "row": np.arange(verdicts.accepted.size)})  # fmt: skip
    name_codes = pc.dictionary_encode(verdicts.names).indices.to_numpy(zero_copy_only=False)
    order = np.lexsort((verdicts.timestamps, name_codes))  # stable: equal keys stay in log order
    sorted_codes, sorted_times = name_codes[order], verdicts.timestamps[order]
    repeats = np.zeros(order.size, dtype=bool)
    repeats[1:] = (sorted_codes[1:] == sorted_codes[:-1]) & (sorted_times[1:] == sorted_times[:-1])
    group_head = np.maximum.accumulate(np.where(repeats, 0, np.arange(order.size)))
    # Where each key's first holder points: itself, or the stored row it duplicates.
    reference: dict[int, tuple[str, int, int]] = {}
    stored = None
    if stored_keys is not None:
        stored = stored_keys(int(verdicts.timestamps.min()), int(verdicts.timestamps.max()))
    if stored is not None and stored.num_rows:
        heads = order[~repeats]
        taken = keys.take(pa.array(heads)).join(
            stored.select(list(STORED_KEY_COLUMNS)).cast(
                pa.schema([BRONZE_TELEMETRY_SCHEMA.field(c) for c in STORED_KEY_COLUMNS])
            ),
            keys=["satellite_name", "timestamp_ns"],
            join_type="inner",
            use_threads=False,
        )
        topics, partitions, offsets = (raw.column(c) for c in ("topic", "partition", "offset"))
        for match in taken.to_pylist():
            row = int(verdicts.accepted[match["row"]])
            stored_at = (match["topic"], match["partition"], match["offset"])
            if stored_at != (topics[row].as_py(), partitions[row].as_py(), offsets[row].as_py()):
                reference[match["row"]] = stored_at

    duplicate_rows = {int(order[k]): int(order[group_head[k]]) for k in np.flatnonzero(repeats)}
    dropped = [*reference, *duplicate_rows]
    if not dropped:
        return
    for row in reference:
        _add_duplicate(verdicts, row, reference[row])
    for row, head in duplicate_rows.items():
        head_row = int(verdicts.accepted[head])
        kept = reference.get(head) or tuple(raw.column(c)[head_row].as_py() for c in ("topic", "partition", "offset"))
        _add_duplicate(verdicts, row, kept)
    keep = np.ones(verdicts.accepted.size, dtype=bool)
    keep[dropped] = False
    verdicts.accepted = verdicts.accepted[keep]
    verdicts.names = verdicts.names.filter(pa.array(keep))
    verdicts.timestamps = verdicts.timestamps[keep]
    verdicts.measures = verdicts.measures[keep]


def _add_duplicate(verdicts: _Verdicts, row: int, kept_at: tuple[str, int, int]) -> None:
    name, timestamp_ns = verdicts.names[row].as_py(), int(verdicts.timestamps[row])
    topic, partition, offset = kept_at
    rejection = Rejection(
        DUPLICATE_EVENT,
        f"duplicate of the event at {topic}[{partition}]@{offset} (same satellite {name!r} and timestamp_ns "
        f"{timestamp_ns})",
    )
    verdicts.rejected[int(verdicts.accepted[row])] = (rejection, name, timestamp_ns)


def _bronze_rows(raw: pa.Table, verdicts: _Verdicts, limits: TelemetryLimits) -> pa.Table:
    source = raw.select(["event_date", "topic", "partition", "offset", "batch_id", "received_at"])
    if verdicts.accepted.size != raw.num_rows:  # else every row was accepted, in order
        source = source.take(pa.array(verdicts.accepted, pa.int64()))
    measures = np.ascontiguousarray(verdicts.measures.T)
    timestamp_ns = pa.array(verdicts.timestamps, pa.int64())
    # Microsecond event_time from the exact nanosecond stamp (no float rounding).
    event_time = pc.cast(pc.divide(timestamp_ns, pa.scalar(1000, pa.int64())), pa.timestamp("us", tz="UTC"))
    alarms = alarm_columns(limits, verdicts.names, verdicts.measures)
    data = {
        "satellite_name": verdicts.names,
        "timestamp_ns": timestamp_ns,
        "event_time": event_time,
        "event_date": source.column("event_date"),
        **{measure: pa.array(measures[j], pa.float64()) for j, measure in enumerate(MEASURES)},
        **{c: source.column(c) for c in ("topic", "partition", "offset", "batch_id", "received_at")},
    }
    for j, measure in enumerate(MEASURES):
        data[f"{measure}_alarm"] = alarms.severity_array(j)
        data[f"{measure}_alarm_limit"] = alarms.limit_array(j)
    data["alarm_severity"] = alarms.worst_severity()
    data["limits_version"] = pa.repeat(pa.scalar(limits.version, pa.string()), len(timestamp_ns))
    return pa.table(data, schema=BRONZE_TELEMETRY_SCHEMA)


def _reject_rows(
    raw: pa.Table, rejected: dict[int, tuple[Rejection, str | None, int | None]], limits_version: str
) -> pa.Table:
    rows = sorted(rejected)
    source = raw.take(pa.array(rows, pa.int64()))
    details = [rejected[row] for row in rows]
    data = {
        **{c: source.column(c) for c in ("topic", "partition", "offset")},
        "payload": source.column("payload").cast(pa.binary()),
        "reason_code": pa.array([r.code for r, _, _ in details], pa.string()),
        "reason": pa.array([r.reason for r, _, _ in details], pa.string()),
        "satellite_name": pa.array([name for _, name, _ in details], pa.string()),
        "timestamp_ns": pa.array([stamp for _, _, stamp in details], pa.int64()),
        **{c: source.column(c) for c in ("event_date", "batch_id", "received_at")},
        "limits_version": pa.repeat(pa.scalar(limits_version, pa.string()), len(rows)),
    }
    return pa.table(data, schema=BRONZE_TELEMETRY_REJECTS_SCHEMA)
