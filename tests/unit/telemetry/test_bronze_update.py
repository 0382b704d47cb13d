"""Incremental bronze: each update judges only the raw rows committed since the last one, and a day built in
many updates holds what one rebuild of the day holds."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from satlake.resources.event_log import LogRecord
from satlake.resources.lakehouse import ChangeFeedUnavailable, ExactlyOnceWriter, Lakehouse
from satlake.telemetry.bronze_update import INCREMENTAL, REBUILD, UP_TO_DATE, update_bronze
from satlake.telemetry.checks import check_schema_unchanged
from satlake.telemetry.codec import TelemetryReading, encode_event
from satlake.telemetry.ingest import raw_event_rows
from satlake.telemetry.limits_file import DEFAULT_LIMITS_PATH, parse_limits
from satlake.telemetry.tables import (
    BRONZE_TELEMETRY,
    BRONZE_TELEMETRY_REJECTS,
    BRONZE_TELEMETRY_REJECTS_SCHEMA,
    BRONZE_TELEMETRY_SCHEMA,
    RAW_TELEMETRY_EVENTS,
)
from satlake.telemetry.validation import default_limits

RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = date(2026, 3, 1)
SORT = [("partition", "ascending"), ("offset", "ascending")]


def payload(second: int, satellite: str = "SAT-001", temp_c: float = 20.0) -> bytes:
    stamp = int((RECEIVED - timedelta(hours=1) + timedelta(seconds=second)).timestamp() * 1e9)
    return encode_event(TelemetryReading(satellite, stamp, temp_c, 80.0, 550.0, 0.1, 0.2, 0.3))


class RawLog:
    """Appends batches to the raw table the way ingestion does (exactly once, with the change feed)."""

    def __init__(self, lakehouse: Lakehouse) -> None:
        self.lakehouse = lakehouse
        self.next_offset = 0
        self.batches = 0

    def append(self, payloads: list[bytes]) -> None:
        records = [LogRecord("t", 0, self.next_offset + i, 0, None, p) for i, p in enumerate(payloads)]
        self.next_offset += len(payloads)
        self.batches += 1
        writer = self.lakehouse.exactly_once_writer(RAW_TELEMETRY_EVENTS, change_feed=True)
        writer.append(
            raw_event_rows(records, f"20260301T1200{self.batches:02d}-batch", RECEIVED),
            partition_by=["event_date"],
            app_transactions={"t-0": self.next_offset},
        )


def stored(lakehouse: Lakehouse) -> tuple[pa.Table, pa.Table]:
    rows = lakehouse.read(BRONZE_TELEMETRY)
    rejects = lakehouse.read(BRONZE_TELEMETRY_REJECTS)
    assert rows is not None and rejects is not None
    return rows.sort_by(SORT), rejects.sort_by(SORT)


def built_once(lakehouse: Lakehouse, events: int) -> RawLog:
    """A raw table holding ``events`` good events, with bronze built from them."""
    raw = RawLog(lakehouse)
    raw.append([payload(s) for s in range(events)])
    update_bronze(lakehouse, DAY, DAY)
    return raw


@pytest.fixture
def lakehouse(tmp_path: Path) -> Lakehouse:
    return Lakehouse(str(tmp_path / "lake"))


def test_updates_judge_only_new_rows_and_end_where_a_rebuild_ends(lakehouse: Lakehouse, tmp_path: Path) -> None:
    raw = RawLog(lakehouse)
    raw.append([payload(s) for s in range(10)] + [b"junk"])
    first = update_bronze(lakehouse, DAY, DAY)
    assert first.mode == REBUILD and "no progress marker" in first.reason

    raw.append([payload(s) for s in range(10, 15)] + [payload(3), payload(20, temp_c=float("nan"))])
    second = update_bronze(lakehouse, DAY, DAY)
    assert second.mode == INCREMENTAL and second.raw.num_rows == 7  # the new batch only
    assert second.partition.reject_counts == {"duplicate_event": 1, "non_finite_value": 1}
    duplicate = second.partition.rejects.filter(pa.compute.equal(second.partition.rejects["reason_code"],
                                                                 "duplicate_event"))  # fmt: skip
    assert "t[0]@3 " in duplicate.column("reason")[0].as_py()  # points at the stored copy
    assert update_bronze(lakehouse, DAY, DAY).mode == UP_TO_DATE

    incremental = stored(lakehouse)
    rebuilt = update_bronze(lakehouse, DAY, DAY, rebuild=True)
    assert rebuilt.mode == REBUILD
    assert incremental[0].num_rows == 15 and incremental[1].num_rows == 3
    for built_in_steps, built_at_once in zip(incremental, stored(lakehouse), strict=True):
        assert built_in_steps.drop_columns(["batch_id"]).equals(built_at_once.drop_columns(["batch_id"]))


def test_a_crash_between_the_two_commits_loses_and_duplicates_nothing(
    lakehouse: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = built_once(lakehouse, 5)
    raw.append([payload(s) for s in range(5, 10)] + [b"junk", payload(30, temp_c=float("-inf"))])

    original_append = ExactlyOnceWriter.append

    def crash_on_rejects(self: ExactlyOnceWriter, data: pa.Table, **kwargs: object) -> int:
        if self.table == BRONZE_TELEMETRY_REJECTS:
            raise RuntimeError("killed between the commits")
        return original_append(self, data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ExactlyOnceWriter, "append", crash_on_rejects)
    with pytest.raises(RuntimeError, match="killed"):
        update_bronze(lakehouse, DAY, DAY)
    monkeypatch.setattr(ExactlyOnceWriter, "append", original_append)
    rows, rejects = stored(lakehouse)
    assert rows.num_rows == 10 and rejects.num_rows == 0  # bronze is ahead, rejects behind

    recovered = update_bronze(lakehouse, DAY, DAY)
    assert recovered.mode == INCREMENTAL
    rows, rejects = stored(lakehouse)
    assert rows.num_rows == 10 and rows.column("offset").to_pylist() == list(range(10))
    assert rejects.column("offset").to_pylist() == [10, 11]
    assert update_bronze(lakehouse, DAY, DAY).mode == UP_TO_DATE


def test_a_raw_table_written_without_change_feed_is_followed_without_a_gap(lakehouse: Lakehouse) -> None:
    def append_like_an_older_satlake(offsets: range) -> None:  # no change data feed
        records = [LogRecord("t", 0, i, 0, None, payload(i)) for i in offsets]
        write_deltalake(lakehouse.uri(RAW_TELEMETRY_EVENTS), raw_event_rows(records, "old", RECEIVED),
                        partition_by=["event_date"], mode="append")  # fmt: skip

    append_like_an_older_satlake(range(4))
    update_bronze(lakehouse, DAY, DAY)
    append_like_an_older_satlake(range(4, 6))
    raw = RawLog(lakehouse)
    raw.next_offset = 6
    raw.append([payload(6)])  # this writer turns the feed on, after the older commit
    update = update_bronze(lakehouse, DAY, DAY)
    assert sorted(update.raw.column("offset").to_pylist()) == [4, 5, 6]  # appends are read before the feed too
    assert stored(lakehouse)[0].column("offset").to_pylist() == list(range(7))


def test_when_the_change_feed_cannot_be_read_the_day_is_rebuilt(
    lakehouse: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = built_once(lakehouse, 3)
    raw.append([payload(3)])

    def expired(*args: object, **kwargs: object) -> pa.Table:
        raise ChangeFeedUnavailable("raw/telemetry_events: versions 2..2: the log has expired")

    monkeypatch.setattr(Lakehouse, "read_changes", expired)
    update = update_bronze(lakehouse, DAY, DAY)
    assert update.mode == REBUILD and "log has expired" in update.reason
    assert stored(lakehouse)[0].column("offset").to_pylist() == [0, 1, 2, 3]


def test_a_window_of_days_is_rebuilt_and_marks_every_day(lakehouse: Lakehouse) -> None:
    raw = RawLog(lakehouse)
    raw.append([payload(s) for s in range(3)])
    update = update_bronze(lakehouse, DAY - timedelta(days=1), DAY)
    assert update.mode == REBUILD and update.partition.rows.num_rows == 3
    raw.append([payload(9)])
    assert update_bronze(lakehouse, DAY, DAY).raw.num_rows == 1


def test_a_limits_change_re_judges_the_day_on_its_next_run(lakehouse: Lakehouse) -> None:
    raw = built_once(lakehouse, 5)
    rows, _ = stored(lakehouse)
    assert set(rows.column("temp_c_alarm").to_pylist()) == {None}
    strict = parse_limits(DEFAULT_LIMITS_PATH.read_text().replace("warning: {min: -40, max: 85}", "warning: {max: 15}"))

    update = update_bronze(lakehouse, DAY, DAY, limits=strict)
    assert update.mode == REBUILD and "judged by other limits" in update.reason and strict.version in update.reason
    rows, rejects = stored(lakehouse)
    assert rows.num_rows == 5 and rejects.num_rows == 0
    assert set(rows.column("temp_c_alarm").to_pylist()) == {"warning"}  # 20 degC is above the new warning 15
    assert set(rows.column("limits_version").to_pylist()) == {strict.version}
    assert update_bronze(lakehouse, DAY, DAY, limits=strict).mode == UP_TO_DATE

    raw.append([payload(s) for s in range(5, 8)])  # new rows are judged by the limits in force, incrementally
    assert update_bronze(lakehouse, DAY, DAY, limits=strict).mode == INCREMENTAL
    back = update_bronze(lakehouse, DAY, DAY)  # and going back to the shipped limits re-judges the day again
    assert back.mode == REBUILD
    rows, _ = stored(lakehouse)
    assert rows.num_rows == 8 and set(rows.column("temp_c_alarm").to_pylist()) == {None}


def test_tables_written_before_the_limits_contract_are_rebuilt_with_the_new_columns(lakehouse: Lakehouse) -> None:
    built_once(lakehouse, 5)
    for table, old_columns in ((BRONZE_TELEMETRY, 15), (BRONZE_TELEMETRY_REJECTS, 11)):
        current = lakehouse.read(table)
        assert current is not None
        old = current.select(current.column_names[:old_columns])  # the schema of the previous contract
        assert "limits_version" not in old.column_names
        write_deltalake(lakehouse.uri(table), old, mode="overwrite", schema_mode="overwrite",
                        partition_by=["event_date"])  # fmt: skip

    update = update_bronze(lakehouse, DAY, DAY)
    assert update.mode == REBUILD and "written before the limits contract" in update.reason
    rows, rejects = stored(lakehouse)
    assert rows.num_rows == 5
    for table, expected in ((rows, BRONZE_TELEMETRY_SCHEMA), (rejects, BRONZE_TELEMETRY_REJECTS_SCHEMA)):
        assert check_schema_unchanged(table.schema, expected).passed
    assert set(rows.column("limits_version").to_pylist()) == {default_limits().version}
    assert update_bronze(lakehouse, DAY, DAY).mode == UP_TO_DATE
