"""The acquisition path's Delta tables: requests accepted and refused, what each request acquired, and the
forest-change alerts of each area of interest (the AOI table itself is ``aoi_table``)."""

from __future__ import annotations

import pyarrow as pa

from satlake.resources.lakehouse import TableRef
from satlake.resources.request_inbox import RECORD_FIELDS, REJECTS_SCHEMA

ACQUISITION_REQUESTS = TableRef("raw", "acquisition_requests")
ACQUISITION_REJECTS = TableRef("raw", "acquisition_request_rejects")
ACQUISITIONS = TableRef("raw", "acquisitions")
FOREST_CHANGE_ALERTS = TableRef("gold", "forest_change_alerts")

_TS = pa.timestamp("us", tz="UTC")
ACQUISITION_REQUESTS_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("aoi", pa.string(), nullable=False),
        pa.field("request_json", pa.string(), nullable=False, metadata={"doc": "the request as published"}),
        *RECORD_FIELDS,
    ]
)
ACQUISITION_REJECTS_SCHEMA = REJECTS_SCHEMA
ACQUISITIONS_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("aoi", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("collection", pa.string()),
        pa.field("item_id", pa.string(), metadata={"doc": "null for a row about the whole search"}),
        pa.field("item_datetime", _TS),
        pa.field("cloud_cover", pa.float64()),
        pa.field("status", pa.string(), nullable=False, metadata={"doc": "landed, skipped or rejected"}),
        pa.field("reason", pa.string(), metadata={"doc": "why skipped or rejected"}),
        pa.field("scene_id", pa.string(), metadata={"doc": "the scene its files become"}),
        pa.field("landing_prefix", pa.string()),
        pa.field("bands", pa.list_(pa.string())),
        pa.field("bytes_fetched", pa.int64(), nullable=False),
        pa.field("source_bytes", pa.int64(), metadata={"doc": "size of the remote files the windows came from"}),
        pa.field("fingerprint", pa.string(), metadata={"doc": "the band assets' ETags or checksums"}),
        pa.field("item_object_key", pa.string(), metadata={"doc": "the source item JSON, kept as received"}),
        pa.field("item_href", pa.string()),
        pa.field("acquired_at", _TS, nullable=False),
    ]
)
FOREST_CHANGE_ALERTS_SCHEMA = pa.schema(
    [
        pa.field("aoi", pa.string(), nullable=False),
        pa.field("scene_id", pa.string(), nullable=False, metadata={"doc": "the later acquisition"}),
        pa.field("before_scene_id", pa.string(), nullable=False),
        pa.field("polygon_index", pa.int32(), nullable=False),
        pa.field("area_ha", pa.float64(), nullable=False, metadata={"doc": "loss inside the AOI"}),
        pa.field("polygon_area_ha", pa.float64(), nullable=False),
        pa.field("before_date", pa.date32()),
        pa.field("after_date", pa.date32()),
        pa.field("mean_ndvi_drop", pa.float64()),
        pa.field("geometry_lonlat_wkb", pa.binary(), nullable=False, metadata={"doc": "loss inside the AOI"}),
        pa.field("source_items", pa.list_(pa.string()), metadata={"doc": "derived_from hrefs of both scenes"}),
        pa.field("detected_at", _TS, nullable=False),
    ]
)
