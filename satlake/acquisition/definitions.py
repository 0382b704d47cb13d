"""The acquisition path's Definitions: the downloader asset and its request sensor, the per-AOI forest-change
alerts, and the daily request schedule. Resources (settings, event_log, lakehouse, object stores) come from the
telemetry and scene Definitions they are merged with."""

import dagster as dg

from satlake.acquisition.alerts import forest_change_alerts
from satlake.acquisition.assets import raw_acquisitions
from satlake.acquisition.schedules import daily_acquisition_requests_job, daily_acquisition_schedule
from satlake.acquisition.sensors import acquisition_job, acquisition_requests_sensor


def acquisition_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[raw_acquisitions, forest_change_alerts],
        jobs=[acquisition_job, daily_acquisition_requests_job],
        sensors=[acquisition_requests_sensor],
        schedules=[daily_acquisition_schedule],
    )
