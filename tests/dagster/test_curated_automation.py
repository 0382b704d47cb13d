"""The curated models' automation: closed days follow their upstream at once, the open day once an hour."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from satlake.telemetry.curated import FOLLOW_UPSTREAM_DAYS

# Ticks within the current hour (materializations are recorded at the real time), then one after the next hour.
NOW = datetime.now(UTC).replace(minute=1, second=0, microsecond=0)
TODAY, YESTERDAY = NOW.date().isoformat(), (NOW.date() - timedelta(days=1)).isoformat()
DAYS = dg.DailyPartitionsDefinition(start_date=YESTERDAY, end_offset=1, timezone="UTC")


@dg.asset(partitions_def=DAYS)
def upstream() -> None: ...


@dg.asset(partitions_def=DAYS, deps=[upstream], automation_condition=FOLLOW_UPSTREAM_DAYS)
def curated() -> None: ...


def requested(result: dg.EvaluateAutomationConditionsResult) -> set[str]:
    return set(result.get_requested_partitions(curated.key))


def materialize(instance: dg.DagsterInstance, asset: dg.AssetsDefinition, *days: str) -> None:
    for day in days:
        assert dg.materialize([upstream, curated], selection=[asset], partition_key=day, instance=instance).success


def evaluate(instance: dg.DagsterInstance, at: datetime, previous: dg.EvaluateAutomationConditionsResult | None):
    return dg.evaluate_automation_conditions(
        [upstream, curated], instance, evaluation_time=at, cursor=previous.cursor if previous else None
    )


def test_closed_days_follow_upstream_at_once_and_the_open_day_hourly() -> None:
    instance = dg.DagsterInstance.ephemeral()
    start = evaluate(instance, NOW, None)  # the daemon's first tick only records where it starts
    materialize(instance, upstream, YESTERDAY, TODAY)
    first = evaluate(instance, NOW + timedelta(minutes=1), start)
    assert requested(first) == {YESTERDAY, TODAY}  # never built: both at once

    materialize(instance, curated, YESTERDAY, TODAY)
    built = evaluate(instance, NOW + timedelta(minutes=2), first)
    assert requested(built) == set()
    materialize(instance, upstream, YESTERDAY, TODAY)  # new bronze rows in both days
    second = evaluate(instance, NOW + timedelta(minutes=5), built)
    assert requested(second) == {YESTERDAY}  # the open day waits for the hour

    materialize(instance, curated, YESTERDAY)
    waiting = evaluate(instance, NOW + timedelta(minutes=6), second)
    assert requested(waiting) == set()
    third = evaluate(instance, NOW + timedelta(minutes=59, seconds=30), waiting)
    assert requested(third) == {TODAY}
