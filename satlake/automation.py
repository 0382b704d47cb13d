"""Automation policy shared by every domain: whether sensors start running when a daemon starts
(``SATLAKE_AUTOMATION``, running by default), and the sensor that evaluates every asset's automation
condition (Dagster leaves its default one stopped; satlake's README promises that the dbt models follow bronze).
"""

from __future__ import annotations

import dagster as dg

from satlake.instance_state import AUTOMATION_SENSOR_NAME
from satlake.settings import Settings


def sensor_default_status(settings: Settings) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if settings.automation_running else dg.DefaultSensorStatus.STOPPED


# Read once, when the domains' sensors are defined (as the definitions are, from the environment).
SENSOR_DEFAULT_STATUS = sensor_default_status(Settings.from_env())

# A scene's follower (a copy, an alert) is made when it is missing (also for the scenes catalogued before the
# follower existed, which `eager()` would skip) and again whenever its upstream partition is rebuilt.
FOLLOW_UPSTREAM_SCENES = (
    (dg.AutomationCondition.missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("follow upstream scenes")


def automation_condition_sensor(settings: Settings) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR_NAME,
        target=dg.AssetSelection.all(),
        default_status=sensor_default_status(settings),
        description="Evaluates every asset's automation condition (the dbt models follow their bronze days).",
    )
