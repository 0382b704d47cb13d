"""Pure helpers of the Trino client: quoting, table locations, and errors when Trino is unreachable."""

from __future__ import annotations

import socket

import pytest

from satlake.resources.trino import (
    TrinoLake,
    TrinoLakeError,
    location_from_create_table,
    normalize_location,
    quote_identifier,
    quote_literal,
)

SHOW_CREATE = """CREATE TABLE lake.gold.ndvi (
   scene_id varchar
)
WITH (
   location = 's3://satlake/lake/gold/ndvi''s',
   partitioned_by = ARRAY['scene_id']
)"""


def test_location_is_read_from_show_create_table() -> None:
    assert location_from_create_table(SHOW_CREATE) == "s3://satlake/lake/gold/ndvi's"
    assert location_from_create_table("CREATE TABLE x (a int)") is None


def test_locations_compare_without_trailing_slash_or_s3a() -> None:
    assert normalize_location("s3a://satlake/lake/t/") == "s3://satlake/lake/t"


def test_quoting_escapes_embedded_quotes() -> None:
    assert quote_identifier('we"ird') == '"we""ird"'
    assert quote_literal("it's") == "'it''s'"


def test_unreachable_trino_says_where_it_looked_and_what_to_do() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    lake = TrinoLake("127.0.0.1", closed_port, user="admin", request_timeout_s=5, max_attempts=1)
    with pytest.raises(
        TrinoLakeError, match=rf"cannot reach Trino at http://127.0.0.1:{closed_port}.*satlake stack up"
    ):
        lake.query("SELECT 1")
