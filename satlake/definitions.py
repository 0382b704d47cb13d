"""The one Definitions object: every asset, check, sensor, job and resource of satlake, for the mode the
environment selects (``SATLAKE_MODE``)."""

from __future__ import annotations

import dagster as dg

from satlake.acquisition.definitions import acquisition_definitions
from satlake.automation import automation_condition_sensor
from satlake.ground.definitions import ground_definitions
from satlake.mars.definitions import mars_definitions
from satlake.resources import build_resources
from satlake.resources.dbt_project import build_dbt_resource
from satlake.scenes.definitions import scene_definitions
from satlake.serving.definitions import serving_definitions
from satlake.settings import Settings
from satlake.telemetry.assets import bronze_telemetry, raw_telemetry_events
from satlake.telemetry.curated import build_curated_assets
from satlake.telemetry.maintenance import cluster_telemetry_days_job, cluster_telemetry_days_schedule
from satlake.telemetry.sensors import (
    bronze_days_sensor,
    bronze_telemetry_job,
    ingest_telemetry_job,
    telemetry_events_sensor,
)


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    resources = build_resources(settings)
    telemetry = dg.Definitions(
        assets=[raw_telemetry_events, bronze_telemetry, build_curated_assets(settings)],
        jobs=[ingest_telemetry_job, bronze_telemetry_job, cluster_telemetry_days_job],
        sensors=[telemetry_events_sensor, bronze_days_sensor],
        schedules=[cluster_telemetry_days_schedule],
        resources={**resources.as_dagster_resources(), "dbt": build_dbt_resource(settings)},
    )
    automation = dg.Definitions(sensors=[automation_condition_sensor(settings)])
    return dg.Definitions.merge(
        telemetry,
        scene_definitions(settings),
        acquisition_definitions(),
        mars_definitions(settings),
        ground_definitions(settings),
        serving_definitions(settings),
        automation,
    )


defs = build_definitions()
