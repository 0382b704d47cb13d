"""The Mars rover models of satlake's dbt project (``dbt/models/mars``, tag ``mars``) as Dagster assets.

silver/mars_photos, gold/mars_photos_per_sol, gold/mars_drive_per_sol and gold/mars_mission_timeline are small
(thousands of rows per rover) and span every sol, so unlike the telemetry models they are not partitioned: each
run rebuilds them whole (satlake.resources.dbt_tables).
"""

import dagster as dg

from satlake.resources.dbt_tables import FOLLOW_BRONZE, BronzeMissing, bronze_sources, build_whole_table_dbt_assets
from satlake.resources.dbt_tables import require_bronze as _require_bronze
from satlake.resources.lakehouse import Lakehouse, TableRef
from satlake.settings import Settings

MARS_TAG = "mars"  # dbt_project.yml tags every model under models/mars with it
MarsBronzeMissing = BronzeMissing
HOW = "fetch a rover's manifest, photos and traverse"
__all__ = ["FOLLOW_BRONZE", "MARS_TAG", "MarsBronzeMissing", "bronze_sources", "build_mars_dbt_assets",
           "require_bronze"]  # fmt: skip


def require_bronze(lakehouse: Lakehouse, tables: list[TableRef]) -> None:
    """Raise MarsBronzeMissing naming every bronze table of the Mars models not in the lake yet."""
    _require_bronze(lakehouse, tables, models="the Mars models", how=HOW)


def build_mars_dbt_assets(settings: Settings) -> dg.AssetsDefinition:
    """The Mars dbt models: group ``mars``, keys ``<schema>/<model>``, deps on ``bronze/mars_photos``,
    ``bronze/mars_waypoints`` and ``bronze/mars_manifests``, the dbt tests as checks."""
    return build_whole_table_dbt_assets(
        settings, tag=MARS_TAG, name="curated_mars", models_label="the Mars models", how=HOW
    )
