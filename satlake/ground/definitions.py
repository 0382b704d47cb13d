"""The ground segment's Definitions: raw/packets, the bronze tables (one partition per mission, a table per
packet type of the missions registered when the definitions load), gold.alarms, the packets sensor and its job.
Resources (event_log, lakehouse, dbt) come from the Definitions they are merged with."""

import logging

import dagster as dg

from satlake.ground.assets import MISSIONS, build_bronze_packets, raw_packets
from satlake.ground.dbt import build_ground_dbt_assets
from satlake.ground.registry import MissionRecord, load_missions
from satlake.ground.sensors import GROUND_JOB, ground_packets_sensor
from satlake.resources import build_resources
from satlake.settings import Settings

log = logging.getLogger(__name__)


def registered_missions(settings: Settings) -> dict[str, MissionRecord]:
    """The missions registered now ({} when the lakehouse cannot be read: the shared assets still load)."""
    try:
        return load_missions(build_resources(settings).lakehouse)
    except Exception as error:  # a stack whose object store is down must not stop the code location loading
        log.warning("the registered missions could not be read (%s); their packet-type assets are left out", error)
        return {}


def ground_definitions(settings: Settings) -> dg.Definitions:
    bronze = build_bronze_packets(registered_missions(settings))
    job = dg.define_asset_job(
        GROUND_JOB,
        selection=dg.AssetSelection.assets(raw_packets, bronze),
        partitions_def=MISSIONS,
        description="Commit a mission's packets from its topic to raw/packets, then decode them to bronze",
    )
    return dg.Definitions(
        assets=[raw_packets, bronze, build_ground_dbt_assets(settings)],
        jobs=[job],
        sensors=[ground_packets_sensor],
    )
