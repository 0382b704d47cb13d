"""The telemetry maintenance job run in process after the real bronze asset: closed days clustered, rows kept."""

from datetime import UTC, datetime, time

import pyarrow as pa

from satlake.resources.event_log import OutgoingRecord
from satlake.resources.table_maintenance import CLUSTERED_PARTITION_KEY, TELEMETRY_SORT_KEY, files_per_date_partition
from satlake.runner import RANGE_END_TAG, RANGE_START_TAG
from satlake.telemetry.assets import BRONZE_KEY
from satlake.telemetry.codec import TelemetryReading, encode_event
from satlake.telemetry.maintenance import last_closed_day
from satlake.telemetry.tables import BRONZE_TELEMETRY
from tests.dagster.conftest import Pipeline


def build_bronze(pipeline: Pipeline, first: str, last: str) -> None:
    tags = {RANGE_START_TAG: first, RANGE_END_TAG: last} if first != last else {}
    result = pipeline.defs.resolve_job_def("bronze_telemetry_job").execute_in_process(
        instance=pipeline.instance, partition_key=first if first == last else None, tags=tags
    )
    assert result.success


def clustered_days(pipeline: Pipeline) -> list[str]:
    table = pipeline.resources.lakehouse.open(BRONZE_TELEMETRY)
    assert table is not None
    return [c[CLUSTERED_PARTITION_KEY] for c in table.history() if CLUSTERED_PARTITION_KEY in c]


def sorted_rows(pipeline: Pipeline) -> pa.Table:
    rows = pipeline.resources.lakehouse.read(BRONZE_TELEMETRY)
    assert rows is not None
    return rows.sort_by([("satellite_name", "ascending"), ("timestamp_ns", "ascending")])


def test_the_maintenance_job_clusters_closed_bronze_days_once_and_again_after_a_rerun(pipeline: Pipeline) -> None:
    def ingest() -> None:
        job = pipeline.defs.resolve_job_def("ingest_telemetry_job")
        assert job.execute_in_process(instance=pipeline.instance).success

    ingest()
    first, last = pipeline.days[0].isoformat(), pipeline.days[-1].isoformat()
    build_bronze(pipeline, first, last)
    rows_before = sorted_rows(pipeline)
    closed = [d.isoformat() for d in pipeline.days if d <= last_closed_day(datetime.now(UTC))]
    assert closed  # the fixture's telemetry spans 36 hours, so at least its first day has closed
    job = pipeline.defs.resolve_job_def("cluster_telemetry_days_job")

    assert job.execute_in_process(instance=pipeline.instance).success

    assert sorted(clustered_days(pipeline)) == closed  # open days are left for later
    assert sorted_rows(pipeline).equals(rows_before)  # the same rows
    table = pipeline.resources.lakehouse.open(BRONZE_TELEMETRY)
    assert table is not None
    day = pipeline.days[0]
    assert files_per_date_partition(table)[day] == 1
    stored = table.to_pyarrow_dataset(file_pruning_predicate=[("event_date", "=", day.isoformat())]).to_table()
    order = list(zip(*(stored.column(c).to_pylist() for c in TELEMETRY_SORT_KEY), strict=True))
    assert order == sorted(order)  # stored clustered by (satellite, time)
    observations = pipeline.instance.fetch_observations(BRONZE_KEY, limit=10).records
    assert sorted(r.partition_key for r in observations) == closed  # visible on the bronze asset in the UI

    assert job.execute_in_process(instance=pipeline.instance).success
    assert sorted(clustered_days(pipeline)) == closed  # nothing new was written: nothing to do

    # A late event for the first day: its bronze run writes the day again, after its clustering.
    late_time = datetime.combine(pipeline.days[0], time(23, 59, 59), tzinfo=UTC)
    late = TelemetryReading("SAT-LATE", int(late_time.timestamp() * 1e9), 21.0, 55.0, 550.0, 0.1, 0.2, 0.3)
    pipeline.resources.event_log.append(
        pipeline.settings.telemetry_topic, [OutgoingRecord(encode_event(late), key=b"SAT-LATE")]
    )
    ingest()
    build_bronze(pipeline, first, first)
    rows_with_late_event = sorted_rows(pipeline)
    assert rows_with_late_event.num_rows == rows_before.num_rows + 1
    assert job.execute_in_process(instance=pipeline.instance).success
    assert sorted(clustered_days(pipeline)) == sorted([*closed, first])
    assert sorted_rows(pipeline).equals(rows_with_late_event)
