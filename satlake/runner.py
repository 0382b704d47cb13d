"""``satlake run``: one pass of every sensor and of the automation conditions, executing the runs they
request in this process, until nothing more is requested. Scripts, cron users and tests need no daemon.

Cursors and launched run keys live in the Dagster instance, where the daemon keeps them
(``satlake.instance_state``): ``satlake run``, ``satlake ui`` and a deployment's daemon continue each other's
work and never repeat it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster._core.definitions.partitions.context import partition_loading_context

from satlake.instance_state import AUTOMATION_SENSOR_NAME, SensorStateStore
from satlake.partitions import DAILY_PARTITIONS

log = logging.getLogger(__name__)

# Where an older ``satlake run`` kept its cursors (under DAGSTER_HOME); moved into the instance on first use.
LEGACY_STATE_FILE = "satlake-run-state.json"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
RUN_LOG_LEVEL_VARIABLE = "SATLAKE_RUN_LOG_LEVEL"


def console_log_level() -> str:
    """The level of Dagster's console logger in runs (``SATLAKE_RUN_LOG_LEVEL``, default WARNING).

    Run logs are stored in the instance (and the UI); the CLI sends the console's copy to its log file and
    raises the level to INFO there (``satlake.cli``), so the file holds each step's events."""
    return os.environ.get(RUN_LOG_LEVEL_VARIABLE, "WARNING").upper()


@dataclass
class RunOutcome:
    source: str  # sensor name or "automation"
    description: str
    run_id: str
    success: bool
    seconds: float


@dataclass(frozen=True)
class SectionResult:
    """What a domain's section of the demo ran: whether its runs (and its report) succeeded, the checks that
    failed, and the runs."""

    runs_ok: bool
    failed_checks: list[str] = field(default_factory=list)
    outcomes: list[RunOutcome] = field(default_factory=list)


def check_results(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, tuple[bool, str]]:
    """Latest outcome of every asset check evaluated in these runs: 'asset:check' -> (passed, description)."""
    latest: dict[str, tuple[bool, str]] = {}
    for run_id in run_ids:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data  # type: ignore[union-attr]
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            latest[name] = (evaluation.passed, evaluation.description or "")
    return dict(sorted(latest.items()))


def run_failures(instance: dg.DagsterInstance, outcomes: list[RunOutcome]) -> list[str]:
    """For each failed run, its failed steps' errors in full (message and stack), as the UI shows them."""
    failures = []
    for outcome in outcomes:
        if outcome.success or outcome.run_id == "-":
            continue
        for entry in instance.all_logs(outcome.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
            error = entry.dagster_event.event_specific_data.error  # type: ignore[union-attr]
            step = entry.dagster_event.step_key  # type: ignore[union-attr]
            detail = error.to_string() if error is not None else "no error recorded"
            failures.append(f"run {outcome.run_id[:8]} {outcome.description}, step {step} failed:\n{detail}")
    return failures


def quiet_run_logs() -> None:
    """Keep per-step run logs (and dbt's output) off the terminal; they are stored with each run."""
    if console_log_level() != "DEBUG":
        for name in ("dagster", "dagster.builtin"):
            logging.getLogger(name).setLevel(console_log_level())


def dagster_instance(dagster_home: Path) -> dg.DagsterInstance:
    """The persistent instance under the storage root, shared with ``satlake ui`` so runs show in the UI."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    config = dagster_home / "dagster.yaml"
    if not config.exists():
        # One op per pool at a time across runs: each pool guards one set of Delta tables (or dbt's DuckDB
        # file), so concurrent runs queue instead of racing on the same commit.
        # No usage telemetry and no sign-up dialog over the UI: satlake runs offline.
        config.write_text(
            "telemetry:\n  enabled: false\nnux:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1\n"
        )
    return dg.DagsterInstance.get()


def _execute(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    job_name: str | None,
    asset_selection: list[dg.AssetKey] | None,
    partition_key: str | None,
    tags: dict[str, str],
) -> tuple[str, bool, float]:
    started = time.perf_counter()
    job = defs.resolve_job_def(job_name) if job_name else defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        run_config={"loggers": {"console": {"config": {"log_level": console_log_level()}}}},
        instance=instance,
        partition_key=partition_key,
        asset_selection=asset_selection,
        tags=tags,
        raise_on_error=False,
    )
    return result.run_id, result.success, time.perf_counter() - started


def _sensor_pass(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    state: SensorStateStore,
    report: Callable[[RunOutcome], None],
) -> list[RunOutcome]:
    outcomes: list[RunOutcome] = []
    for sensor in defs.sensors or []:
        if sensor.name == AUTOMATION_SENSOR_NAME:
            continue  # evaluated by _automation_pass
        sensor_def = defs.resolve_sensor_def(sensor.name)
        context = dg.build_sensor_context(
            instance=instance,
            cursor=state.cursor(sensor_def.name),
            definitions=defs,
            sensor_name=sensor_def.name,
            resources=defs.resources,
        )
        # Sensors that request runs of dynamic partitions need the instance to resolve them, as in the daemon.
        with partition_loading_context(dynamic_partitions_store=instance):
            data = sensor_def.evaluate_tick(context)
        for partitions_request in data.dynamic_partitions_requests or []:
            if isinstance(partitions_request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(
                    partitions_request.partitions_def_name, list(partitions_request.partition_keys)
                )
        for request in data.run_requests or []:
            if request.run_key and state.launched(sensor_def.name, request.run_key):
                continue  # launched before, by this command or by a daemon
            job_name = request.job_name or sensor_def.job_name
            tags = {**request.tags, **state.run_tags(sensor_def.name, request.run_key)}
            run_id, success, seconds = _execute(
                defs, instance, job_name, list(request.asset_selection or []) or None, request.partition_key, tags
            )
            first, last = request.tags.get(RANGE_START_TAG), request.tags.get(RANGE_END_TAG)
            span = request.partition_key or (f"{first}..{last}" if first and last else None)
            what = job_name + (f" [{span}]" if span else "")
            outcome = RunOutcome(sensor_def.name, what, run_id, success, seconds)
            outcomes.append(outcome)
            report(outcome)
        # Saved after the runs, as the daemon does once their requests are submitted: a crash before this
        # point evaluates the tick again, and the run keys keep it from launching twice.
        if data.cursor is not None:
            state.save_cursor(sensor_def, data.cursor)
    return outcomes


def _automation_pass(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    state: SensorStateStore,
    report: Callable[[RunOutcome], None],
) -> list[RunOutcome]:
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=state.automation_cursor())
    declared = [sensor for sensor in defs.sensors or [] if sensor.name == AUTOMATION_SENSOR_NAME]
    sensor = defs.resolve_sensor_def(AUTOMATION_SENSOR_NAME) if declared else (
        dg.AutomationConditionSensorDefinition(AUTOMATION_SENSOR_NAME, target=dg.AssetSelection.all()))  # fmt: skip
    state.save_automation_cursor(sensor, result.cursor)
    if result.total_requested == 0:
        return []
    asset_graph = defs.resolve_asset_graph()
    # One run per assets definition and set of partitions: a daily range runs as one single-run backfill.
    requested: dict[tuple[dg.AssetKey, ...], set[str | None]] = defaultdict(set)
    by_node: dict[tuple[dg.AssetKey, ...], list[dg.AssetKey]] = defaultdict(list)
    definitions: dict[tuple[dg.AssetKey, ...], dg.AssetsDefinition] = {}
    for key in asset_graph.materializable_asset_keys:
        partitions = result.get_requested_partitions(key)
        if not partitions:
            continue
        assets_def = asset_graph.get(key).assets_def
        node_keys = tuple(sorted(assets_def.keys))
        definitions[node_keys] = assets_def
        by_node[node_keys].append(key)
        requested[node_keys].update(partitions)
    outcomes: list[RunOutcome] = []
    for node_keys, partitions in requested.items():
        keys = sorted(by_node[node_keys])
        named = [p for p in partitions if p is not None]
        for group in run_groups(definitions[node_keys], named, instance) if named else [[]]:
            tags = {RANGE_START_TAG: group[0], RANGE_END_TAG: group[-1]} if len(group) > 1 else {}
            partition_key = group[0] if len(group) == 1 else None
            tags |= state.run_tags(AUTOMATION_SENSOR_NAME, None)
            run_id, success, seconds = _execute(defs, instance, None, keys, partition_key, tags)
            span = f" [{group[0]}..{group[-1]}]" if len(group) > 1 else (f" [{group[0]}]" if group else "")
            outcome = RunOutcome("automation", ", ".join(k.to_user_string() for k in keys) + span, run_id,
                                 success, seconds)  # fmt: skip
            outcomes.append(outcome)
            report(outcome)
    return outcomes


def run_groups(assets_def: dg.AssetsDefinition, keys: list[str], instance: dg.DagsterInstance) -> list[list[str]]:
    """The runs that materialize ``keys`` of ``assets_def``, as the daemon's backfills would: one run per
    partition, unless the asset's backfill policy takes ranges, then one run per stretch of keys that is a
    range of its partitions (at most ``max_partitions_per_run`` long). A set of keys that is not one range
    (two rovers' sols of a rover-by-sol asset, days with a gap) is never run as the range around it."""
    partitions_def = assets_def.partitions_def
    policy = assets_def.backfill_policy
    if partitions_def is None or policy is None or len(keys) == 1:
        return [[key] for key in sorted(keys)]
    with partition_loading_context(dynamic_partitions_store=instance):
        order = partitions_def.get_partition_keys()
        position = {key: index for index, key in enumerate(order)}
        wanted = sorted(keys, key=lambda key: position.get(key, len(order)))
        stretches: list[list[str]] = []
        for key in wanted:
            last = stretches[-1][-1] if stretches else None
            longest = policy.max_partitions_per_run
            if (last is not None and key in position and last in position and position[key] == position[last] + 1
                    and (longest is None or len(stretches[-1]) < longest)):  # fmt: skip
                stretches[-1].append(key)
            else:
                stretches.append([key])
        groups: list[list[str]] = []
        for stretch in stretches:
            in_range = partitions_def.get_partition_keys_in_range(dg.PartitionKeyRange(stretch[0], stretch[-1]))
            groups += [stretch] if list(in_range) == stretch else [[key] for key in stretch]
    return groups


def run_pending_work(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    legacy_state_path: Path | None = None,
    report: Callable[[RunOutcome], None] = lambda _: None,
    max_passes: int = 10,
) -> list[RunOutcome]:
    """Evaluate sensors and automation conditions, run what they request, repeat until quiet.

    ``legacy_state_path``: the state file an older ``satlake run`` kept its cursors in; moved into the
    instance on first use."""
    quiet_run_logs()
    state = SensorStateStore(instance)
    if legacy_state_path is not None:
        state.migrate_state_file(legacy_state_path, defs)
    outcomes: list[RunOutcome] = []
    for _ in range(max_passes):
        new = _sensor_pass(defs, instance, state, report)
        new += _automation_pass(defs, instance, state, report)
        outcomes += new
        if not new:
            break
    return outcomes


def backfill_days(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    days: list[str],
    report: Callable[[RunOutcome], None] = lambda _: None,
) -> list[RunOutcome]:
    """Materialize every daily asset (bronze and the curated models) for ``days`` (first..last) as one run,
    each asset's window in a single invocation (their ``BackfillPolicy.single_run``)."""
    quiet_run_logs()
    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    daily_keys = sorted(k for k in graph.materializable_asset_keys if graph.get(k).partitions_def == DAILY_PARTITIONS)
    tags = {RANGE_START_TAG: days[0], RANGE_END_TAG: days[-1]}
    started = time.perf_counter()
    result = job.execute_in_process(instance=instance, asset_selection=daily_keys, tags=tags, raise_on_error=False)
    outcome = RunOutcome("backfill", f"{len(daily_keys)} daily assets [{days[0]}..{days[-1]}]", result.run_id,
                         result.success, time.perf_counter() - started)  # fmt: skip
    report(outcome)
    return [outcome]
