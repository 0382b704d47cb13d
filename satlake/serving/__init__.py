"""The access layer: a STAC API over the Delta catalog, tiles of every COG, a map page, and the PostGIS serving
tables (synced from the lakehouse) that GIS tools query."""

import logging

# stac_fastapi.types.core builds a module-level ApiSettings() at import and warns that its title, description and
# version are the defaults; satlake's app passes its own (stac_app.build_stac_api), so that warning is noise.
logging.getLogger("stac_fastapi.types.config").setLevel(logging.ERROR)
