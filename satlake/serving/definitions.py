"""The PostGIS serving layer's Definitions: the serving/* assets and the ``postgis`` resource, in stack mode.

Embedded mode has no PostgreSQL, so it gets no serving assets and nothing else changes: ``serving_note`` is the
one line the demo prints about it.
"""

from __future__ import annotations

import dagster as dg

from satlake.resources.postgis import PostgisServing
from satlake.serving.assets import serving_assets
from satlake.serving.postgis import SERVING_TABLES
from satlake.settings import Mode, Settings, SettingsError


def serving_definitions(settings: Settings) -> dg.Definitions:
    """The serving/* assets with their ``postgis`` resource in stack mode; empty Definitions in embedded mode."""
    if settings.mode is not Mode.STACK:
        return dg.Definitions()
    return dg.Definitions(assets=serving_assets, resources={"postgis": PostgisServing.from_settings(settings)})


def serving_note(settings: Settings) -> str:
    """One line on the PostGIS serving layer: skipped (embedded), or where its tables are and their row counts."""
    if settings.mode is not Mode.STACK:
        return "PostGIS serving layer: runs in stack mode only (SATLAKE_MODE=stack); skipped in embedded mode"
    import psycopg
    from psycopg import sql

    postgis = PostgisServing.from_settings(settings)
    counts = []
    try:
        with postgis.connect() as connection:
            for table in SERVING_TABLES:
                exists = connection.execute("SELECT to_regclass(%s)", [f"serving.{table.name}"]).fetchone()
                if exists is None or exists[0] is None:
                    counts.append(f"serving.{table.name} not created yet")
                    continue
                row = connection.execute(sql.SQL("SELECT count(*) FROM {}").format(table.identifier)).fetchone()
                counts.append(f"serving.{table.name} {row[0] if row else 0} rows")
    except (psycopg.Error, SettingsError) as error:
        return f"PostGIS serving layer at {postgis.describe()} is unreachable: {str(error).strip()[:200]}"
    return f"PostGIS serving layer at {postgis.describe()}: {', '.join(counts)}"
