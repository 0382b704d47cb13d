"""The Mars source's Delta tables: requests, every response as received, the typed bronze tables and the
rejects. The dbt models (silver.mars_photos, gold.mars_*) are defined in dbt/models/mars."""

from __future__ import annotations

import pyarrow as pa

from satlake.resources.lakehouse import TableRef
from satlake.resources.request_inbox import RECORD_FIELDS, REJECTS_SCHEMA

MARS_REQUESTS = TableRef("raw", "mars_requests")
MARS_REQUEST_REJECTS = TableRef("raw", "mars_request_rejects")
MARS_RESPONSES = TableRef("raw", "mars_responses")
MARS_MANIFESTS = TableRef("bronze", "mars_manifests")
MARS_PHOTOS = TableRef("bronze", "mars_photos")
MARS_WAYPOINTS = TableRef("bronze", "mars_waypoints")
MARS_REJECTS = TableRef("bronze", "mars_rejects")
MARS_PHOTO_FILES = TableRef("raw", "mars_photo_files")
MARS_TIMELAPSES = TableRef("gold", "mars_timelapses")
MARS_MISSION_TIMELINE = TableRef("gold", "mars_mission_timeline")  # built by dbt (models/mars/gold)

_TS = pa.timestamp("us", tz="UTC")

MARS_REQUESTS_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("rover", pa.string(), nullable=False),
        pa.field("first_sol", pa.int32(), nullable=False),
        pa.field("last_sol", pa.int32(), nullable=False),
        pa.field("request_json", pa.string(), nullable=False, metadata={"doc": "the request as published"}),
        *RECORD_FIELDS,
    ]
)
MARS_REQUEST_REJECTS_SCHEMA = REJECTS_SCHEMA

MARS_RESPONSES_SCHEMA = pa.schema(
    [
        pa.field("response_id", pa.string(), nullable=False),
        pa.field("request_id", pa.string(), metadata={"doc": "the request event, or the run for a UI backfill"}),
        pa.field("kind", pa.string(), nullable=False, metadata={"doc": "manifest, photos or waypoints"}),
        pa.field("rover", pa.string(), nullable=False),
        pa.field("sol", pa.int32()),
        pa.field("page", pa.int32()),
        pa.field("url", pa.string(), nullable=False, metadata={"doc": "the request URL, api_key removed"}),
        pa.field("status", pa.int32(), nullable=False, metadata={"doc": "HTTP status; 0 when none arrived"}),
        pa.field("content_type", pa.string()),
        pa.field("body", pa.binary(), metadata={"doc": "the response body exactly as received"}),
        pa.field("fetched_at", _TS, nullable=False),
        pa.field("object_key", pa.string(), metadata={"doc": "its landing key (under mars-api/)"}),
        pa.field("error", pa.string(), metadata={"doc": "why the response is not usable, when it is not"}),
    ]
)

MARS_MANIFESTS_SCHEMA = pa.schema(
    [
        pa.field("rover_name", pa.string(), nullable=False),
        pa.field("sol", pa.int32(), nullable=False),
        pa.field("earth_date", pa.date32()),
        pa.field("total_photos", pa.int32()),
        pa.field("cameras", pa.list_(pa.string())),
        pa.field("max_sol", pa.int32()),
        pa.field("max_date", pa.date32()),
        pa.field("status", pa.string()),
        pa.field("manifest_total_photos", pa.int64()),
        pa.field("response_id", pa.string(), nullable=False),
        pa.field("fetched_at", _TS, nullable=False),
    ]
)
MARS_PHOTOS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("rover_name", pa.string(), nullable=False),
        pa.field("sol", pa.int32(), nullable=False),
        pa.field("earth_date", pa.date32()),
        pa.field("camera_name", pa.string()),
        pa.field("camera_full_name", pa.string()),
        pa.field("img_src", pa.string(), nullable=False),
        pa.field("rover_shape", pa.string(), metadata={"doc": "the API's short or long rover object"}),
        pa.field("page", pa.int32()),
        pa.field("response_id", pa.string(), nullable=False),
        pa.field("fetched_at", _TS, nullable=False),
    ]
)
MARS_WAYPOINTS_SCHEMA = pa.schema(
    [
        pa.field("rover_name", pa.string(), nullable=False),
        pa.field("mission", pa.string(), nullable=False),
        pa.field("sol", pa.int32(), nullable=False),
        pa.field("site", pa.int32()),
        pa.field("drive", pa.int32()),
        pa.field("lon", pa.float64(), nullable=False, metadata={"doc": "planetocentric, degrees east, on Mars"}),
        pa.field("lat", pa.float64(), nullable=False, metadata={"doc": "planetocentric, degrees, on Mars"}),
        pa.field("elev_geoid_m", pa.float64()),
        pa.field("dist_m", pa.float64(), metadata={"doc": "as published by MMGIS"}),
        pa.field("dist_total_m", pa.float64(), metadata={"doc": "as published by MMGIS"}),
        pa.field("segment_m", pa.float64(), metadata={"doc": "geodesic from the previous waypoint, Mars ellipsoid"}),
        pa.field("crs", pa.string(), nullable=False),
        pa.field("geometry_wkb", pa.binary(), nullable=False, metadata={"doc": "Point(lon lat) in crs"}),
        pa.field("response_id", pa.string(), nullable=False),
        pa.field("fetched_at", _TS, nullable=False),
    ]
)
MARS_REJECTS_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),
        pa.field("rover", pa.string(), nullable=False),
        pa.field("sol", pa.int32()),
        pa.field("response_id", pa.string()),
        pa.field("record", pa.string(), metadata={"doc": "the offending record (JSON text) or response excerpt"}),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("rejected_at", _TS, nullable=False),
    ]
)
MARS_PHOTO_FILES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("rover_name", pa.string(), nullable=False),
        pa.field("sol", pa.int32(), nullable=False),
        pa.field("camera_name", pa.string()),
        pa.field("img_src", pa.string(), nullable=False),
        pa.field("object_key", pa.string(), metadata={"doc": "the photo in the lake store; null if not fetched"}),
        pa.field("size_bytes", pa.int64()),
        pa.field("sha256", pa.string()),
        pa.field("reason", pa.string(), metadata={"doc": "why the photo was not fetched"}),
        pa.field("fetched_at", _TS, nullable=False),
    ]
)
MARS_TIMELAPSES_SCHEMA = pa.schema(
    [
        pa.field("rover_name", pa.string(), nullable=False),
        pa.field("camera_name", pa.string(), nullable=False),
        pa.field("first_sol", pa.int32(), nullable=False),
        pa.field("last_sol", pa.int32(), nullable=False),
        pa.field("frames", pa.int32(), nullable=False),
        pa.field("object_key", pa.string(), nullable=False),
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False, metadata={"doc": "its STAC item in catalog.items"}),
        pa.field("built_at", _TS, nullable=False),
    ]
)
