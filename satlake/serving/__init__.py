"""The access layer: a STAC API over the Delta catalog, tiles of every COG, a map page, and the PostGIS serving
tables (synced from the lakehouse) that GIS tools query."""
