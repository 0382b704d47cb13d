"""The Mars source's Definitions: the fetching, bronze, photo-catalog and timelapse assets, the dbt models, both
sensors, the jobs and the daily request schedule. Resources (settings, event_log, lakehouse, object stores, dbt)
come from the Definitions they are merged with."""

import dagster as dg

from satlake.mars.assets import raw_mars_manifests, raw_mars_photos, raw_mars_traverses
from satlake.mars.bronze import bronze_mars_manifests, bronze_mars_photos, bronze_mars_waypoints
from satlake.mars.dbt import build_mars_dbt_assets
from satlake.mars.photos import catalog_mars_photos
from satlake.mars.schedules import daily_mars_requests_job, daily_mars_schedule
from satlake.mars.sensors import MARS_JOBS, mars_landing_sensor, mars_requests_sensor
from satlake.mars.timelapses import gold_mars_timelapses
from satlake.settings import Settings


def mars_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[
            raw_mars_manifests,
            raw_mars_photos,
            raw_mars_traverses,
            bronze_mars_manifests,
            bronze_mars_photos,
            bronze_mars_waypoints,
            catalog_mars_photos,
            gold_mars_timelapses,
            build_mars_dbt_assets(settings),
        ],
        jobs=[*MARS_JOBS, daily_mars_requests_job],
        sensors=[mars_requests_sensor, mars_landing_sensor],
        schedules=[daily_mars_schedule],
    )
