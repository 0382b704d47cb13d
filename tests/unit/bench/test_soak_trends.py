"""The soak's pure parts: the default rate read from the ingest results, the trend fit and its verdict, and the
/proc parsing behind the memory and open-file samples."""

from __future__ import annotations

import os
from typing import Any

import pytest

from bench.soak import (
    half_max_ingest_rate,
    judge_trend,
    parent_pid_from_stat,
    process_tree,
    summarise,
    theil_sen_slope,
    tree_usage,
)


def test_the_default_rate_is_half_the_best_satlake_ingest_rate_of_that_log() -> None:
    results = {
        "rows": [
            {"log": "kafka", "system": "bare confluent-kafka consume", "step": "read only", "events_per_s": 180_000},
            {
                "log": "kafka",
                "system": "satlake",
                "step": "ingest_until_caught_up -> raw Delta",
                "events_per_s": 58_481,
            },
            {"log": "embedded", "system": "satlake", "step": "ingest_until_caught_up -> raw", "events_per_s": 61_424},
            {"log": "kafka", "system": "satlake", "step": "build_bronze_partition", "events_per_s": 90_000},
        ]
    }
    assert half_max_ingest_rate(results, "kafka") == 29_240
    assert half_max_ingest_rate(results, "embedded") == 30_712
    with pytest.raises(ValueError, match=r"bench\.ingest"):
        half_max_ingest_rate({"rows": []}, "kafka")


def test_one_outlying_sample_does_not_tilt_the_slope() -> None:
    minutes = [float(m) for m in range(10)]
    flat_with_spike = [500.0] * 10
    flat_with_spike[7] = 5_000.0  # a big run caught mid-way
    assert theil_sen_slope(minutes, flat_with_spike) == 0.0
    assert theil_sen_slope(minutes, [2.0 * m + 1 for m in minutes]) == pytest.approx(2.0)


def test_growth_over_the_second_half_beyond_the_tolerance_fails_and_noise_passes() -> None:
    minutes = [float(m) for m in range(1, 31)]
    leak = [400.0 + 10.0 * m for m in minutes]  # 10 MiB a minute: 140 MiB over minutes 16..30
    noise = [400.0 + (25.0 if m % 2 else -25.0) for m in minutes]
    growing = judge_trend(minutes, leak, absolute=64.0, relative=0.10)
    assert growing["judged"] and growing["passed"] is False and growing["fitted_rise"] == pytest.approx(140.0)
    assert judge_trend(minutes, noise, absolute=64.0, relative=0.10)["passed"] is True
    assert judge_trend(minutes[:4], leak[:4], absolute=64.0, relative=0.10)["judged"] is False


def test_the_parent_pid_is_read_past_a_command_name_with_spaces_and_parentheses() -> None:
    assert parent_pid_from_stat("4242 (odd (name) x) S 17 4242 4242 0 -1") == 17


def test_the_process_tree_holds_children_and_grandchildren_only() -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 11, 20: 1}
    assert sorted(process_tree(10, parents)) == [10, 11, 12]
    usage = tree_usage(os.getpid())
    assert usage.rss_mib > 0 and usage.open_fds > 0 and usage.threads >= 1 and usage.processes >= 1


def recorded_soak(rss_per_minute: float, drained: bool = True) -> dict[str, Any]:
    """A soak document as run_soak records it: 12 one-minute samples of load and one of drain."""
    samples = [
        {"minute": float(m), "phase": "load" if m <= 12 else "drain", "rss_mib": 500.0 + rss_per_minute * m,
         "rss_floor_mib": 450.0 + rss_per_minute * m, "rss_peak_mib": 700.0 + rss_per_minute * m, "open_fds": 60,
         "threads": 30, "processes": 1, "producer_rss_mib": 200.0, "log_backlog": 1_000, "bronze_lag": 0,
         "events_produced": 60_000 * min(m, 12), "events_ingested": 60_000 * min(m, 12) - 1_000,
         "scenes_landed": min(m, 12), "scenes_catalogued": min(m, 12), "runs_ok": 3 * m, "runs_failed": 0,
         "pass_errors": 0, "slowest_bronze_run_s": 1.0, "slowest_curated_run_s": 2.0, "load_average_1m": 1.0}
        for m in range(1, 14)
    ]  # fmt: skip
    return {
        "drained": drained, "aborted": None, "scene_errors": [], "samples": samples,
        "events": {"produced": 720_000, "committed": 720_000, "raw_rows": 720_000, "bronze_rows": 712_800,
                   "reject_rows": 7_200, "reconciled": True},
        "scenes": {"landed": 12, "catalogued": 12, "reconciled": True},
        "checks": {"all_green": True, "failed": 0, "planned_never_evaluated": 0, "never_evaluated": []},
    }  # fmt: skip


def test_a_drained_reconciled_green_soak_without_growth_passes_and_a_leak_fails_it() -> None:
    steady = summarise(recorded_soak(rss_per_minute=0.0))
    assert steady["verdict"]["passed"], steady["verdict"]["reasons"]
    assert steady["events"]["produced_per_s"] == 1_000 and steady["verdict"]["trends_judged"]

    leaking = summarise(recorded_soak(rss_per_minute=20.0))["verdict"]
    assert not leaking["passed"] and not leaking["no_growth"]
    assert any(reason.startswith("growth in rss_peak_mib") for reason in leaking["reasons"])

    stuck = summarise(recorded_soak(rss_per_minute=0.0, drained=False))["verdict"]
    assert not stuck["passed"] and "did not drain" in " ".join(stuck["reasons"])
