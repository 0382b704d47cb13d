"""The sensor and automation state of satlake's code location, kept in the Dagster instance where the daemon
keeps it, so that ``satlake run``, ``satlake ui`` (its daemon) and a deployment's daemon share one state: a
cursor one of them advanced is where the others continue, a run key one of them launched is never launched
again by another.

The daemon finds a sensor's state by its selector (code location, repository, sensor name), which is why
``workspace.yaml`` names the location ``satlake``. Dagster has no public API for reading or writing another
process's instigator state, so this module is the one place that uses its storage classes; everything else
goes through ``SensorStateStore``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import dagster as dg
from dagster._core.definitions.asset_daemon_cursor import AssetDaemonCursor
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.definitions.selector import InstigatorSelector
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteInstigatorOrigin, RemoteRepositoryOrigin
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, SensorInstigatorData
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.asset_daemon import (
    asset_daemon_cursor_from_instigator_serialized_cursor,
    asset_daemon_cursor_to_instigator_serialized_cursor,
)

log = logging.getLogger(__name__)

# workspace.yaml's location_name and the repository name Dagster gives a Definitions object.
LOCATION_NAME = "satlake"
REPOSITORY_NAME = "__repository__"
AUTOMATION_SENSOR_NAME = "default_automation_condition_sensor"


def _origin(sensor_name: str) -> RemoteInstigatorOrigin:
    code_location = InProcessCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(
            executable_path=sys.executable, module_name="satlake.definitions", attribute="defs"
        ),
        location_name=LOCATION_NAME,
    )
    return RemoteInstigatorOrigin(
        repository_origin=RemoteRepositoryOrigin(code_location_origin=code_location, repository_name=REPOSITORY_NAME),
        instigator_name=sensor_name,
    )


def selector_id(sensor_name: str) -> str:
    return InstigatorSelector(location_name=LOCATION_NAME, repository_name=REPOSITORY_NAME, name=sensor_name).get_id()


class SensorStateStore:
    """Cursors and launched run keys of satlake's sensors, read from and written to the instance."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance

    def _state(self, sensor_name: str) -> InstigatorState | None:
        return self.instance.get_instigator_state(_origin(sensor_name).get_id(), selector_id(sensor_name))

    def cursor(self, sensor_name: str) -> str | None:
        state = self._state(sensor_name)
        data = state.instigator_data if state is not None else None
        return data.cursor if isinstance(data, SensorInstigatorData) else None

    def save_cursor(self, sensor_def: dg.SensorDefinition, cursor: str | None) -> None:
        """Record ``cursor`` as the sensor's, ticked now; its status (running, stopped) stays what it was."""
        state = self._state(sensor_def.name)
        data = SensorInstigatorData(
            last_tick_timestamp=time.time(),
            min_interval=sensor_def.minimum_interval_seconds,
            cursor=cursor,
            sensor_type=sensor_def.sensor_type,
        )
        if state is None:
            origin = _origin(sensor_def.name)
            status = InstigatorStatus.DECLARED_IN_CODE  # running or stopped as the code (and settings) say
            self.instance.add_instigator_state(InstigatorState(origin, InstigatorType.SENSOR, status, data))
        else:
            self.instance.update_instigator_state(state.with_data(data))

    def automation_cursor(self) -> AssetDaemonCursor | None:
        serialized = self.cursor(AUTOMATION_SENSOR_NAME)
        return asset_daemon_cursor_from_instigator_serialized_cursor(serialized, None) if serialized else None

    def save_automation_cursor(self, sensor_def: dg.SensorDefinition, cursor: AssetDaemonCursor) -> None:
        self.save_cursor(sensor_def, asset_daemon_cursor_to_instigator_serialized_cursor(cursor))

    def launched(self, sensor_name: str, run_key: str) -> bool:
        """Whether a run with this key was launched for the sensor, by any process (the daemon's own test)."""
        runs = self.instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key}))
        return any(run.tags.get(SENSOR_NAME_TAG) == sensor_name and run.status != dg.DagsterRunStatus.FAILURE
                   for run in runs)  # fmt: skip

    @staticmethod
    def run_tags(sensor_name: str, run_key: str | None) -> dict[str, str]:
        """The tags that make a run launched outside the daemon count as this sensor's (for its run keys)."""
        return {SENSOR_NAME_TAG: sensor_name, **({RUN_KEY_TAG: run_key} if run_key else {})}

    def migrate_state_file(self, path: Path, defs: dg.Definitions) -> bool:
        """Move the cursors of an older ``satlake run`` state file into the instance (once; the file is
        renamed ``*.migrated``). Returns whether there was one."""
        if not path.exists():
            return False
        data = json.loads(path.read_text())
        for name, cursor in (data.get("sensor_cursors") or {}).items():
            if cursor is not None and self.cursor(name) is None and _has_sensor(defs, name):
                self.save_cursor(defs.resolve_sensor_def(name), cursor)
        automation = data.get("automation_cursor")
        if automation and self.cursor(AUTOMATION_SENSOR_NAME) is None and _has_sensor(defs, AUTOMATION_SENSOR_NAME):
            cursor = dg.deserialize_value(automation, AssetDaemonCursor)
            self.save_automation_cursor(defs.resolve_sensor_def(AUTOMATION_SENSOR_NAME), cursor)
        path.rename(path.with_name(path.name + ".migrated"))
        log.info("moved the sensor cursors of %s into the Dagster instance", path)
        return True


def _has_sensor(defs: dg.Definitions, name: str) -> bool:
    return any(sensor.name == name for sensor in defs.sensors or [])
