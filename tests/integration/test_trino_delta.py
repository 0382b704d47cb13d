"""Delta tables written by delta-rs to MinIO, registered in Trino and read back identically; access rules."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pyarrow as pa
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from deltalake import DeltaTable, write_deltalake

from satlake.resources import s3_storage_options
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.trino import TrinoLake, TrinoLakeError
from satlake.settings import Settings
from tests.reliability.concurrent_writers import assert_concurrent_appends_all_survive

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trino(stack: Settings) -> Iterator[TrinoLake]:
    lake = TrinoLake(stack.trino_host, stack.trino_port, user="admin")
    yield lake
    lake.close()


@pytest.fixture(scope="module")
def storage_options(stack: Settings) -> dict[str, str]:
    return s3_storage_options(stack)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def telemetry_batch(first_id: int, rows: int) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(first_id, first_id + rows), pa.int64()),
            "satellite": pa.array([f"sat-{i % 3}" for i in range(rows)], pa.string()),
            "temp_c": pa.array([-20.5 + i * 0.25 for i in range(rows)], pa.float64()),
            "event_date": pa.array([datetime(2024, 5, 1 + i % 2, tzinfo=UTC).date() for i in range(rows)]),
        }
    )


def rows_of(table: pa.Table) -> list[tuple[object, ...]]:
    columns = table.column_names
    return sorted(tuple(row[c] for c in columns) for row in table.to_pylist())


def trino_rows(trino: TrinoLake, schema: str, table: str, user: str = "admin") -> list[tuple[object, ...]]:
    columns, rows = trino.query(
        f'SELECT id, satellite, temp_c, event_date FROM "{schema}"."{table}" ORDER BY id', user=user
    )
    assert columns == ["id", "satellite", "temp_c", "event_date"]
    return sorted(rows)


def register(trino: TrinoLake, stack: Settings, schema: str, table: str, uri: str) -> bool:
    trino.ensure_schema(schema, f"s3://{stack.lake_bucket}/lake/{schema}")
    return trino.register_table(schema, table, uri)


def test_delta_table_reads_identically_through_trino_after_commits_and_a_checkpoint(
    stack: Settings, trino: TrinoLake, storage_options: dict[str, str]
) -> None:
    table = unique("telemetry")
    uri = f"s3://{stack.lake_bucket}/lake/bronze/{table}"
    first = telemetry_batch(0, 50)
    write_deltalake(uri, first, partition_by=["event_date"], storage_options=storage_options)
    assert register(trino, stack, "bronze", table, uri) is True
    assert trino_rows(trino, "bronze", table) == rows_of(first)

    second = telemetry_batch(50, 30)
    write_deltalake(uri, second, mode="append", storage_options=storage_options)
    # A new commit is visible at once: no re-registration and no cache flush needed.
    assert trino_rows(trino, "bronze", table) == rows_of(pa.concat_tables([first, second]))

    delta = DeltaTable(uri, storage_options=storage_options)
    delta.create_checkpoint()
    third = telemetry_batch(80, 5)
    write_deltalake(uri, third, mode="append", storage_options=storage_options)
    expected = rows_of(pa.concat_tables([first, second, third]))
    assert trino_rows(trino, "bronze", table) == expected
    trino.flush_metadata_cache()
    assert trino_rows(trino, "bronze", table) == expected
    assert rows_of(DeltaTable(uri, storage_options=storage_options).to_pyarrow_table()) == expected


def test_register_table_is_idempotent_and_follows_a_moved_table(
    stack: Settings, trino: TrinoLake, storage_options: dict[str, str]
) -> None:
    table = unique("telemetry_moved")
    old_uri = f"s3://{stack.lake_bucket}/lake/silver/{table}"
    new_uri = f"s3://{stack.lake_bucket}/lake/silver/{table}_v2"
    write_deltalake(old_uri, telemetry_batch(0, 3), storage_options=storage_options)
    write_deltalake(new_uri, telemetry_batch(100, 4), storage_options=storage_options)

    assert register(trino, stack, "silver", table, old_uri) is True
    assert trino.register_table("silver", table, old_uri + "/") is False
    assert [row[0] for row in trino_rows(trino, "silver", table)] == [0, 1, 2]

    assert trino.register_table("silver", table, new_uri) is True
    assert trino.table_location("silver", table) == new_uri
    assert [row[0] for row in trino_rows(trino, "silver", table)] == [100, 101, 102, 103]


def ensure_table(trino: TrinoLake, stack: Settings, storage_options: dict[str, str], schema: str, table: str) -> None:
    """Register a small table under a name the access rules know, unless the stack already has that table
    (with SATLAKE_IT_REUSE_STACK=1 it may hold real data, which is left untouched)."""
    trino.ensure_schema(schema, f"s3://{stack.lake_bucket}/lake/{schema}")
    if trino.table_exists(schema, table):
        return
    uri = f"s3://{stack.lake_bucket}/lake/it/{schema}/{unique(table)}"
    write_deltalake(uri, telemetry_batch(0, 2), storage_options=storage_options)
    trino.register_table(schema, table, uri)


def test_roles_see_only_their_tables_with_trinos_own_denial(
    stack: Settings, trino: TrinoLake, storage_options: dict[str, str]
) -> None:
    tables = {
        ("gold", "telemetry_hourly"): "ops",
        ("bronze", unique("telemetry")): "ops",
        ("gold", "ndvi"): "science",
        ("catalog", "items"): "science",
        ("catalog", unique("it")): "science",
    }
    for schema, table in tables:
        ensure_table(trino, stack, storage_options, schema, table)

    for (schema, table), role in tables.items():
        count_sql = f'SELECT count(*) FROM "{schema}"."{table}"'
        assert trino.query(count_sql, user=role) == trino.query(count_sql, user="admin")
        other = "science" if role == "ops" else "ops"
        with pytest.raises(TrinoLakeError) as denied:
            trino.query(count_sql, user=other)
        assert denied.value.error_name == "PERMISSION_DENIED"
        assert str(denied.value).startswith(f"Access Denied: Cannot select from table lake.{schema}.{table}")

    with pytest.raises(TrinoLakeError, match="Access Denied: Cannot execute procedure"):
        trino.query("CALL lake.system.flush_metadata_cache()", user="ops")
    with pytest.raises(TrinoLakeError, match="Access Denied"):
        trino.query("SELECT 1 FROM gold.ndvi", user="someone-else")
    _, science_tables = trino.query("SHOW TABLES FROM gold", user="science")
    assert ("telemetry_hourly",) not in science_tables and ("ndvi",) in science_tables


def test_trino_errors_keep_trinos_message(trino: TrinoLake) -> None:
    with pytest.raises(TrinoLakeError) as failed:
        trino.query("SELECT * FROM lake.nowhere.nothing")
    assert failed.value.error_name == "SCHEMA_NOT_FOUND"
    assert str(failed.value).startswith("line 1:15: Schema 'nowhere' does not exist")


def test_query_binds_parameters(trino: TrinoLake) -> None:
    columns, rows = trino.query("SELECT ? + 1 AS next, ? AS name", parameters=[41, "x'y"])
    assert columns == ["next", "name"]
    assert rows == [(42, "x'y")]


def test_minio_honours_conditional_put_so_concurrent_delta_commits_are_not_lost(
    stack: Settings, storage_options: dict[str, str]
) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=stack.s3_endpoint,
        region_name=stack.s3_region,
        aws_access_key_id=stack.s3_access_key,
        aws_secret_access_key=stack.s3_secret_key,
        config=Config(s3={"addressing_style": "path"}),
    )
    key = f"it/{uuid.uuid4().hex}/00000000000000000001.json"
    client.put_object(Bucket=stack.lake_bucket, Key=key, Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=stack.lake_bucket, Key=key, Body=b"second", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"

    # Two writers that both loaded version 0 each commit an append: the second must land as version 2.
    uri = f"s3://{stack.lake_bucket}/lake/it/{unique('concurrent')}"
    write_deltalake(uri, telemetry_batch(0, 1), storage_options=storage_options)
    writer_a = DeltaTable(uri, storage_options=storage_options)
    writer_b = DeltaTable(uri, storage_options=storage_options)
    write_deltalake(writer_a, telemetry_batch(1, 1), mode="append")
    write_deltalake(writer_b, telemetry_batch(2, 1), mode="append")
    final = DeltaTable(uri, storage_options=storage_options)
    assert final.version() == 2
    assert sorted(final.to_pyarrow_table().column("id").to_pylist()) == [0, 1, 2]


def test_two_processes_appending_to_one_table_on_minio_lose_no_commit(
    stack: Settings, storage_options: dict[str, str]
) -> None:
    """Two writer processes commit to one Delta table on MinIO at the same instant: every commit lands once."""
    lakehouse = Lakehouse(root_uri=f"s3://{stack.lake_bucket}/lake-it/{unique('writers')}",
                          storage_options=storage_options)  # fmt: skip
    reports = assert_concurrent_appends_all_survive(lakehouse, commits=10)
    print(f"append conflicts retried on MinIO: {[report['conflicts'] for report in reports]}")
