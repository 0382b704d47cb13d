"""The scene path's Definitions: assets, checks, sensor and job, plus the object stores they need.

Merged by the lead with the telemetry Definitions, which provide the shared resources (settings, lakehouse,
event_log, query_engine); this adds ``object_store`` (the lake's files) and ``landing_store`` (uploads).
"""

import dagster as dg

from satlake.catalog.maintenance import catalog_search_layout_job, catalog_search_layout_schedule
from satlake.resources.object_store import build_scene_stores
from satlake.scenes.assets import scene_assets
from satlake.scenes.sensors import scene_jobs, scene_sensors
from satlake.settings import Settings


def scene_definitions(settings: Settings) -> dg.Definitions:
    stores = build_scene_stores(settings)
    return dg.Definitions(
        assets=scene_assets,
        jobs=[*scene_jobs, catalog_search_layout_job],
        schedules=[catalog_search_layout_schedule],
        sensors=scene_sensors,
        resources={"object_store": stores.lake, "landing_store": stores.landing},
    )
