from datetime import UTC, date, datetime, timedelta

from satlake.resources.table_maintenance import CLUSTERED_PARTITION_KEY, MAINTENANCE_OPERATION_KEY
from satlake.telemetry.maintenance import BRONZE_WINDOW_KEY, days_to_cluster, last_closed_day

JAN = [date(2026, 1, d) for d in range(1, 8)]


def bronze_write(first: date, last: date) -> dict[str, str]:
    return {"operation": "WRITE", BRONZE_WINDOW_KEY: f"{first}..{last}"}


def clustering(day: date) -> dict[str, str]:
    return {"operation": "WRITE", MAINTENANCE_OPERATION_KEY: "cluster", CLUSTERED_PARTITION_KEY: day.isoformat()}


def test_a_day_ends_and_closes_six_hours_later() -> None:
    assert last_closed_day(datetime(2026, 1, 3, 5, 59, tzinfo=UTC)) == date(2026, 1, 1)
    assert last_closed_day(datetime(2026, 1, 3, 6, 0, tzinfo=UTC)) == date(2026, 1, 2)
    assert last_closed_day(datetime(2026, 1, 3, 7, 0, tzinfo=UTC), closed_after=timedelta(0)) == date(2026, 1, 2)


def test_closed_days_written_since_their_last_clustering_are_clustered() -> None:
    history = [  # newest first
        bronze_write(JAN[6], JAN[6]),  # today: not closed yet
        bronze_write(JAN[1], JAN[1]),  # a late event re-ran day 2 after it was clustered
        clustering(JAN[2]),
        clustering(JAN[1]),
        bronze_write(JAN[0], JAN[4]),  # a backfill of days 1-5
        {"operation": "VACUUM END"},  # commits without satlake metadata are ignored
    ]

    days = days_to_cluster(history, days_with_files=JAN, closed_through=JAN[5])

    assert days == [JAN[0], JAN[1], JAN[3], JAN[4]]


def test_days_without_files_or_beyond_the_history_read_are_left_alone() -> None:
    history = [bronze_write(JAN[0], JAN[4]), clustering(JAN[5])]
    # Day 3's window replacement left it empty; day 6 was clustered; day 7 was never written in this history.
    days_with_files = [JAN[0], JAN[1], JAN[3], JAN[4], JAN[5], JAN[6]]

    assert days_to_cluster(history, days_with_files, closed_through=JAN[6]) == [JAN[0], JAN[1], JAN[3], JAN[4]]
    assert days_to_cluster([], days_with_files, closed_through=JAN[6]) == []
