"""Condensing long result lists into lines a person reads: runs grouped by what asked for them, and the
passing dbt tests of an asset folded into one line per asset (failures always keep a line of their own)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class RunResult(Protocol):
    """What the report shows of a Dagster run (``satlake.runner.RunOutcome`` has these)."""

    source: str
    description: str
    run_id: str
    success: bool
    seconds: float


@dataclass(frozen=True)
class RunGroup:
    """Runs of one job (or asset selection) requested by one sensor, automation or backfill."""

    source: str
    job: str
    partitions: tuple[str, ...]
    runs: int
    seconds: float

    def describe(self) -> str:
        where = f" [{', '.join(self.partitions)}]" if self.partitions else ""
        plural = "run" if self.runs == 1 else "runs"
        return f"{self.job}{where} ({self.source}): {self.runs} {plural} ok in {self.seconds:.1f}s"


def _job_and_partition(description: str) -> tuple[str, str | None]:
    if description.endswith("]") and " [" in description:
        job, _, partition = description[:-1].rpartition(" [")
        return job, partition
    return description, None


def group_successful_runs(outcomes: Sequence[RunResult]) -> list[RunGroup]:
    """The successful runs folded by (source, job), in the order they first ran; partitions listed."""
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for outcome in outcomes:
        if outcome.success:
            job, _ = _job_and_partition(outcome.description)
            groups.setdefault((outcome.source, job), []).append(outcome)
    result = []
    for (source, job), runs in groups.items():
        partitions = tuple(p for p in (_job_and_partition(r.description)[1] for r in runs) if p is not None)
        result.append(RunGroup(source, job, partitions, len(runs), sum(r.seconds for r in runs)))
    return result


def _dbt_test_parts(check_name: str, model: str) -> tuple[str, str] | None:
    """``not_null_telemetry_hourly_event_hour`` on model ``telemetry_hourly`` -> (``not_null``, ``event_hour``);
    the accepted values after ``__`` are left out. None for a check that is not named like a dbt test."""
    test, separator, rest = check_name.partition(f"_{model}_")
    if not separator or not test or not rest:
        return None
    return test, rest.split("__")[0] if test == "accepted_values" else rest


def condense_checks(results: Mapping[str, tuple[bool, str]]) -> dict[str, tuple[bool, str]]:
    """Checks keyed ``asset:check`` -> (passed, description), with every passing check that has no description
    and is named like a dbt test of its asset's model folded into one entry per asset:
    ``asset:N dbt tests`` -> (True, ``not_null (a, b), unique_combination_of_columns (a__b)``)."""
    condensed: dict[str, tuple[bool, str]] = {}
    folded: dict[str, dict[str, list[str]]] = {}
    for name, (passed, description) in results.items():
        asset, _, check = name.rpartition(":")
        parts = _dbt_test_parts(check, asset.rpartition("/")[2]) if passed and not description else None
        if parts is None:
            condensed[name] = (passed, description)
        else:
            folded.setdefault(asset, {}).setdefault(parts[0], []).append(parts[1])
    condensed = _fold_same_descriptions(condensed)
    for asset, tests in folded.items():
        count = sum(len(columns) for columns in tests.values())
        text = ", ".join(f"{test} ({', '.join(sorted(columns))})" for test, columns in sorted(tests.items()))
        condensed[f"{asset}:{count} dbt tests"] = (True, text)
    return dict(sorted(condensed.items()))


def _fold_same_descriptions(results: Mapping[str, tuple[bool, str]]) -> dict[str, tuple[bool, str]]:
    """Passing checks that say the same thing share a line: one asset's checks with one description
    (``catalog/items:asset_hrefs_exist, item_valid_stac: 10/10 scenes passed``), then one check of several
    assets with one description (``bronze/telemetry, raw/telemetry_events:schema_unchanged: ...``)."""
    kept: dict[str, tuple[bool, str]] = {}
    by_asset: dict[tuple[str, str], list[str]] = {}
    for name, (passed, description) in results.items():
        asset, _, check = name.rpartition(":")
        if passed and description:
            by_asset.setdefault((asset, description), []).append(check)
        else:
            kept[name] = (passed, description)
    by_check: dict[tuple[str, str], list[str]] = {}
    for (asset, description), checks in by_asset.items():
        if len(checks) > 1:
            kept[f"{asset}:{', '.join(sorted(checks))}"] = (True, description)
        else:
            by_check.setdefault((checks[0], description), []).append(asset)
    for (check, description), assets in by_check.items():
        kept[f"{', '.join(sorted(assets))}:{check}"] = (True, description)
    return kept
