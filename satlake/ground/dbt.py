"""The ground segment's dbt models (``dbt/models/ground``, tag ``ground``: gold.alarms) as Dagster assets,
rebuilt whole from bronze.parameters after each bronze run (satlake.resources.dbt_tables)."""

import dagster as dg

from satlake.resources.dbt_tables import build_whole_table_dbt_assets
from satlake.settings import Settings

GROUND_TAG = "ground"


def build_ground_dbt_assets(settings: Settings) -> dg.AssetsDefinition:
    return build_whole_table_dbt_assets(
        settings,
        tag=GROUND_TAG,
        name="curated_ground",
        models_label="the ground segment's models",
        how="register a mission and let its packets reach bronze",
    )
