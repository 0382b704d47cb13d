"""satlake catalog: STAC items and collections, offline validation, the catalog table, static catalog, search.

Modules: ``items`` (build_stac_item, build_collection), ``validation`` (validate_stac_object), ``table``
(catalog_rows, CATALOG_TABLE_SCHEMA), ``static`` (write_static_catalog), ``search`` (SearchQuery, search_sql),
``search_index`` (DeltaCatalogSearch, an in-memory index for long-lived processes), ``checks`` (pure functions for
the catalog asset checks). All are pure Python with no Dagster import.
"""
