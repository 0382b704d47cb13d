"""Rover x sol partitions: a selection of two rovers' sols runs as one run per rover, in the Dagster UI's backfills
(the daemon splits a single-run backfill into the subset's key ranges) and in ``satlake run`` alike."""

import dagster as dg
import pytest
from dagster._core.definitions.partitions.context import partition_loading_context

from satlake.mars.assets import raw_mars_photos
from satlake.mars.partitions import ROVER_SOL_PARTITIONS, SOL_PARTITIONS, rover_sol_key, rover_sols, sol_ranges
from satlake.mars.timelapses import gold_mars_timelapses
from satlake.runner import run_groups

SOLS = (100, 101, 102, 1000, 1001, 1002)


@pytest.fixture
def instance() -> dg.DagsterInstance:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SOL_PARTITIONS.name, [f"{sol:05d}" for sol in SOLS])
    return instance


def wanted() -> list[str]:
    return [str(rover_sol_key("curiosity", sol)) for sol in (1000, 1001, 1002)] + [
        str(rover_sol_key("perseverance", sol)) for sol in (100, 101, 102)
    ]


def test_a_ui_backfill_of_two_rovers_sol_ranges_is_one_range_per_rover(instance: dg.DagsterInstance) -> None:
    with partition_loading_context(dynamic_partitions_store=instance):
        subset = ROVER_SOL_PARTITIONS.subset_with_partition_keys(wanted())
        ranges = subset.get_partition_key_ranges(ROVER_SOL_PARTITIONS)
    assert sorted((r.start, r.end) for r in ranges) == [
        ("curiosity|01000", "curiosity|01002"),
        ("perseverance|00100", "perseverance|00102"),
    ]
    assert raw_mars_photos.backfill_policy == dg.BackfillPolicy.single_run()


def test_satlake_run_groups_the_same_keys_by_rover_and_never_spans_other_rovers(
    instance: dg.DagsterInstance,
) -> None:
    groups = run_groups(raw_mars_photos, list(reversed(wanted())), instance)
    assert groups == [
        ["curiosity|01000", "curiosity|01001", "curiosity|01002"],
        ["perseverance|00100", "perseverance|00101", "perseverance|00102"],
    ]
    # A gap in the sols is two runs: the range around it would fetch sol 1001 nobody asked for.
    gap = [str(rover_sol_key("curiosity", sol)) for sol in (1000, 1002)]
    assert run_groups(raw_mars_photos, gap, instance) == [["curiosity|01000"], ["curiosity|01002"]]


def test_an_asset_without_a_backfill_policy_runs_once_per_partition(instance: dg.DagsterInstance) -> None:
    assert gold_mars_timelapses.backfill_policy is None
    groups = run_groups(gold_mars_timelapses, ["perseverance", "curiosity"], instance)
    assert groups == [["curiosity"], ["perseverance"]]


def test_partition_keys_read_back_as_rovers_and_sols() -> None:
    assert rover_sols(wanted()) == {"curiosity": [1000, 1001, 1002], "perseverance": [100, 101, 102]}
    assert sol_ranges([1, 2, 3, 7, 9, 10]) == [(1, 3), (7, 7), (9, 10)]
