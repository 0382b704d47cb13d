"""Security on the real stack: the object store's least-privilege keys, Trino's access rules for every role and
schema (including through views, system tables and the REST API), and no credential in any output or log."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from botocore.exceptions import ClientError
from deltalake import DeltaTable, write_deltalake
from minio.error import MinioAdminException

from satlake.resources import s3_storage_options
from satlake.resources.dbt_project import DBT_PROJECT_DIR, dbt_environment
from satlake.resources.trino import TrinoLake, TrinoLakeError
from satlake.settings import Settings, endpoint_environment, read_secrets_file
from satlake.stack.access import ADMIN, OPS, ROLES, SCIENCE, TELEMETRY_SCHEMAS
from satlake.stack.config import SERVERS, StackConfig
from satlake.stack.credentials import (
    ACCESS_KEY_VAR,
    SECRET_KEY_VAR,
    KeyPair,
    StackCredentials,
    generate_credentials,
    require_stack_credentials,
    write_secret_values,
)
from satlake.stack.isolated import free_port_pair
from satlake.stack.lifecycle import install_servers, stack_down, stack_up, wait_until_healthy
from satlake.stack.process import start_detached
from satlake.stack.provision import PIPELINE_POLICY, create_buckets, minio_admin, s3_client
from satlake.stack.servers import prepare_minio, trino_paths

pytestmark = pytest.mark.integration

UID = uuid.uuid4().hex[:8]
ACCESS_DENIED = "AccessDenied"


@pytest.fixture(scope="module")
def credentials(stack: Settings) -> StackCredentials:
    # The session's `stack up` generated every identity into its secrets file (or took them from the environment).
    return require_stack_credentials(stack)


@pytest.fixture(scope="module")
def config(stack: Settings) -> StackConfig:
    return StackConfig.from_settings(stack)


def s3_as(stack: Settings, key: KeyPair) -> Any:
    return s3_client(stack.s3_endpoint, stack.s3_region, key.access_key, key.secret_key)


def s3_error(call: Callable[[], object]) -> str:
    with pytest.raises(ClientError) as refused:
        call()
    return refused.value.response["Error"]["Code"]


def admin_refused(call: Callable[[], object]) -> bool:
    with pytest.raises(MinioAdminException) as refused:
        call()
    return "Status: 403" in str(refused.value)


# --- MinIO: one identity per job --------------------------------------------------------------------------------


def test_the_root_user_is_separate_and_only_it_may_administer(
    stack: Settings, config: StackConfig, credentials: StackCredentials
) -> None:
    identities = (credentials.root, credentials.pipeline, credentials.trino)
    assert len({key.access_key for key in identities}) == 3 and len({key.secret_key for key in identities}) == 3
    assert stack.s3_access_key == credentials.pipeline.access_key
    buckets = {bucket["Name"] for bucket in s3_as(stack, credentials.root).list_buckets()["Buckets"]}
    assert {stack.lake_bucket, stack.landing_bucket} <= buckets
    for key in (credentials.pipeline, credentials.trino):
        admin = minio_admin(config, key)
        assert admin_refused(admin.user_list)
        assert admin_refused(lambda admin=admin: admin.user_add(f"intruder{UID}", "intruder-secret"))
        # No identity may give itself the built-in administrator policy.
        assert admin_refused(lambda admin=admin, key=key: admin.policy_set("consoleAdmin", user=key.access_key))
    info = json.loads(minio_admin(config, credentials.root).user_info(credentials.pipeline.access_key))
    assert (info["policyName"], info["status"]) == (PIPELINE_POLICY, "enabled")


def test_the_pipeline_key_reads_writes_lists_and_deletes_in_the_lake_bucket(
    stack: Settings, credentials: StackCredentials
) -> None:
    s3 = s3_as(stack, credentials.pipeline)
    key = f"it/security/{UID}/object.bin"
    s3.put_object(Bucket=stack.lake_bucket, Key=key, Body=b"lake bytes")
    assert s3.get_object(Bucket=stack.lake_bucket, Key=key)["Body"].read() == b"lake bytes"
    listed = s3.list_objects_v2(Bucket=stack.lake_bucket, Prefix=f"it/security/{UID}/")
    assert [entry["Key"] for entry in listed["Contents"]] == [key]
    s3.delete_object(Bucket=stack.lake_bucket, Key=key)
    assert s3.list_objects_v2(Bucket=stack.lake_bucket, Prefix=f"it/security/{UID}/")["KeyCount"] == 0


def test_the_pipeline_key_may_write_read_list_and_delete_in_the_landing_bucket(
    stack: Settings, credentials: StackCredentials
) -> None:
    # A finished upload would be announced and become a scene run of other tests: an aborted multipart upload
    # needs the same write permission and lands nothing.
    s3 = s3_as(stack, credentials.pipeline)
    key = f"it/security/{UID}/never-landed.tif"
    upload = s3.create_multipart_upload(Bucket=stack.landing_bucket, Key=key)
    s3.upload_part(Bucket=stack.landing_bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"II*\0")
    s3.abort_multipart_upload(Bucket=stack.landing_bucket, Key=key, UploadId=upload["UploadId"])
    assert "KeyCount" in s3.list_objects_v2(Bucket=stack.landing_bucket, Prefix="it/security/")
    # Authorized but absent (404), not refused (403); deleting an absent key succeeds only when allowed.
    assert s3_error(lambda: s3.get_object(Bucket=stack.landing_bucket, Key=key)) == "NoSuchKey"
    s3.delete_object(Bucket=stack.landing_bucket, Key=key)


@pytest.fixture
def third_bucket(stack: Settings, credentials: StackCredentials) -> Iterator[str]:
    root = s3_as(stack, credentials.root)
    bucket = f"satlake-it-other-{UID}"
    root.create_bucket(Bucket=bucket)
    root.put_object(Bucket=bucket, Key="private.txt", Body=b"not the pipeline's")
    yield bucket
    for entry in root.list_objects_v2(Bucket=bucket).get("Contents", []):
        root.delete_object(Bucket=bucket, Key=entry["Key"])
    root.delete_bucket(Bucket=bucket)


def test_the_pipeline_key_cannot_create_buckets_reach_another_bucket_or_reconfigure_its_own(
    stack: Settings, credentials: StackCredentials, third_bucket: str
) -> None:
    s3 = s3_as(stack, credentials.pipeline)
    refused = {
        "create a bucket": lambda: s3.create_bucket(Bucket=f"satlake-it-new-{UID}"),
        "read another bucket": lambda: s3.get_object(Bucket=third_bucket, Key="private.txt"),
        "write another bucket": lambda: s3.put_object(Bucket=third_bucket, Key="planted.txt", Body=b"x"),
        "list another bucket": lambda: s3.list_objects_v2(Bucket=third_bucket),
        "delete in another bucket": lambda: s3.delete_object(Bucket=third_bucket, Key="private.txt"),
        "delete its bucket": lambda: s3.delete_bucket(Bucket=stack.landing_bucket),
        "open its bucket to anyone": lambda: s3.put_bucket_policy(
            Bucket=stack.lake_bucket,
            Policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": ["*"]},
                            "Action": ["s3:GetObject"],
                            "Resource": [f"arn:aws:s3:::{stack.lake_bucket}/*"],
                        }
                    ],
                }
            ),
        ),
        "change the landing notifications": lambda: s3.put_bucket_notification_configuration(
            Bucket=stack.landing_bucket, NotificationConfiguration={}
        ),
    }
    codes = {what: s3_error(call) for what, call in refused.items()}
    assert codes == dict.fromkeys(refused, ACCESS_DENIED)
    # MinIO lists to each key only the buckets its policy opens.
    listings = {name: {b["Name"] for b in s3_as(stack, key).list_buckets()["Buckets"]} for name, key in [
        ("root", credentials.root), ("pipeline", credentials.pipeline), ("trino", credentials.trino)
    ]}  # fmt: skip
    assert {stack.lake_bucket, stack.landing_bucket, third_bucket} <= listings["root"]
    assert listings["pipeline"] == {stack.lake_bucket, stack.landing_bucket}
    assert listings["trino"] == {stack.lake_bucket}
    root = s3_as(stack, credentials.root)
    assert root.get_object(Bucket=third_bucket, Key="private.txt")["Body"].read() == b"not the pipeline's"
    assert [entry["Key"] for entry in root.list_objects_v2(Bucket=third_bucket)["Contents"]] == ["private.txt"]
    assert root.get_bucket_notification_configuration(Bucket=stack.landing_bucket)["QueueConfigurations"]


def test_the_trino_key_reads_the_lake_writes_only_its_metastore_and_never_sees_landing(
    stack: Settings, credentials: StackCredentials
) -> None:
    pipeline, trino = s3_as(stack, credentials.pipeline), s3_as(stack, credentials.trino)
    data_key = f"lake/it/security-{UID}/part-0.parquet"
    pipeline.put_object(Bucket=stack.lake_bucket, Key=data_key, Body=b"data")
    try:
        assert trino.get_object(Bucket=stack.lake_bucket, Key=data_key)["Body"].read() == b"data"
        assert s3_error(lambda: trino.put_object(Bucket=stack.lake_bucket, Key=data_key, Body=b"x")) == ACCESS_DENIED
        assert s3_error(lambda: trino.delete_object(Bucket=stack.lake_bucket, Key=data_key)) == ACCESS_DENIED
    finally:
        pipeline.delete_object(Bucket=stack.lake_bucket, Key=data_key)
    metastore_key = f"metastore/it-security-{UID}/.probe"
    trino.put_object(Bucket=stack.lake_bucket, Key=metastore_key, Body=b"schema")
    trino.delete_object(Bucket=stack.lake_bucket, Key=metastore_key)
    assert s3_error(lambda: trino.list_objects_v2(Bucket=stack.landing_bucket)) == ACCESS_DENIED
    assert s3_error(lambda: trino.get_object(Bucket=stack.landing_bucket, Key="any.tif")) == ACCESS_DENIED


def test_a_stack_whose_root_user_was_the_pipeline_key_upgrades_on_up(stack: Settings, tmp_path: Path) -> None:
    """A MinIO of its own, started as satlake did before the root user was separate, then `stack up`."""
    old = KeyPair(*generate_credentials())
    write_secret_values(tmp_path / "secrets.env", {ACCESS_KEY_VAR: old.access_key, SECRET_KEY_VAR: old.secret_key})
    port = free_port_pair(set())
    settings = Settings.from_env(
        {
            "SATLAKE_MODE": "stack",
            "SATLAKE_ROOT": str(tmp_path),
            "SATLAKE_S3_ENDPOINT": f"http://127.0.0.1:{port}",
            "SATLAKE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "SATLAKE_OBJECT_EVENTS_TOPIC": f"it.security.{UID}",
        }
    )
    config = StackConfig.from_settings(settings)
    try:
        binary = install_servers(config, ["minio"], progress=lambda _message: None).minio_binary
        assert binary is not None
        launch = prepare_minio(config, binary, old)
        before = start_detached(
            launch.command,
            env={**os.environ, **launch.env},
            cwd=launch.cwd,
            log_file=config.log_file("minio"),
            pid_file=config.pid_file("minio"),
        )
        wait_until_healthy(config, "minio", before, progress=lambda _message: None)
        create_buckets(config, old)
        s3_as(settings, old).put_object(Bucket=settings.lake_bucket, Key="before-upgrade", Body=b"kept")

        messages: list[str] = []
        stack_up(settings, servers=["minio"], progress=messages.append)
        assert any(message.startswith(f"minio: restarting (pid {before})") for message in messages), messages
        credentials = require_stack_credentials(settings)
        # The old pair is now the pipeline's key: same data, no root rights; MinIO's root is a new user.
        assert credentials.pipeline == old and credentials.root.access_key != old.access_key
        pipeline = s3_as(settings, old)
        assert pipeline.get_object(Bucket=settings.lake_bucket, Key="before-upgrade")["Body"].read() == b"kept"
        assert s3_error(lambda: pipeline.create_bucket(Bucket=f"satlake-it-new-{UID}")) == ACCESS_DENIED
        assert admin_refused(minio_admin(config, old).user_list)
        info = json.loads(minio_admin(config, credentials.root).user_info(old.access_key))
        assert info["policyName"] == PIPELINE_POLICY
        # A second `up` finds nothing to upgrade.
        messages.clear()
        stack_up(settings, servers=["minio"], progress=messages.append)
        assert any(message.startswith("minio: already running") for message in messages), messages
    finally:
        stack_down(settings, progress=lambda _message: None)


# --- Trino: every role on every schema ----------------------------------------------------------------------------

OPS_READERS = frozenset({ADMIN, OPS})
SCIENCE_READERS = frozenset({ADMIN, SCIENCE})
ADMIN_ONLY = frozenset({ADMIN})


@dataclass(frozen=True)
class RegisteredTables:
    """Tables registered for this module, by (schema, table), with the roles that may read each."""

    readers: dict[tuple[str, str], frozenset[str]]
    optimize_target: tuple[str, str]
    optimize_location: str


def small_table(first_id: int) -> pa.Table:
    return pa.table({"id": pa.array([first_id, first_id + 1], pa.int64()), "note": ["a", "b"]})


@pytest.fixture(scope="module")
def trino(stack: Settings) -> Iterator[TrinoLake]:
    lake = TrinoLake(stack.trino_host, stack.trino_port, user=ADMIN)
    yield lake
    lake.close()


@pytest.fixture(scope="module")
def tables(stack: Settings, trino: TrinoLake) -> RegisteredTables:
    options = s3_storage_options(stack)
    readers: dict[tuple[str, str], frozenset[str]] = {
        **{(schema, f"telemetry_sec_{UID}"): OPS_READERS for schema in TELEMETRY_SCHEMAS},
        ("catalog", f"sec_{UID}"): SCIENCE_READERS,
        ("raw", f"sec_{UID}"): ADMIN_ONLY,  # a table in a schema ops reads, without the telemetry name
        ("bronze", f"sec_{UID}"): OPS_READERS,  # a mission's per-packet-type table: any bronze table but Mars'
        ("bronze", f"mars_roles_{UID}"): SCIENCE_READERS,
    }
    # Science's tables in raw, silver and gold have fixed names: registered unless the pipeline already did
    # (a reused stack may hold real ones), at a location of their own so the pipeline's path is never taken.
    fixed = {("raw", "scenes"): SCIENCE_READERS, ("silver", "cogs"): SCIENCE_READERS, ("gold", "ndvi"): SCIENCE_READERS}
    optimize_target = ("catalog", f"sec_optimize_{UID}")
    locations = {name: f"s3://{stack.lake_bucket}/lake/{name[0]}/{name[1]}" for name in [*readers, optimize_target]}
    for schema, table in fixed:
        locations[(schema, table)] = f"s3://{stack.lake_bucket}/lake/it/security-{UID}/{schema}/{table}"
    for schema in {schema for schema, _ in locations}:
        trino.ensure_schema(schema, f"s3://{stack.lake_bucket}/lake/{schema}")
    for (schema, table), location in locations.items():
        if (schema, table) in fixed and trino.table_exists(schema, table):
            continue
        write_deltalake(location, small_table(0), storage_options=options)
        trino.register_table(schema, table, location)
    # Two files, so OPTIMIZE has something to compact and would have to write.
    write_deltalake(locations[optimize_target], small_table(2), mode="append", storage_options=options)
    return RegisteredTables({**readers, **fixed}, optimize_target, locations[optimize_target])


def denied(trino: TrinoLake, sql: str, user: str) -> str:
    with pytest.raises(TrinoLakeError) as refused:
        trino.query(sql, user=user)
    assert refused.value.error_name == "PERMISSION_DENIED", refused.value
    return str(refused.value)


def test_each_role_reads_exactly_its_tables_in_every_schema(trino: TrinoLake, tables: RegisteredTables) -> None:
    outcomes = {}
    for (schema, table), readers in tables.readers.items():
        sql = f'SELECT count(*) FROM "{schema}"."{table}"'
        expected = trino.query(sql, user=ADMIN)
        for role in ROLES:
            if role in readers:
                outcomes[(schema, table, role)] = trino.query(sql, user=role) == expected
            else:
                message = denied(trino, sql, role)
                outcomes[(schema, table, role)] = message.startswith(
                    f"Access Denied: Cannot select from table lake.{schema}.{table}"
                )
    assert all(outcomes.values()), [name for name, ok in outcomes.items() if not ok]
    # 11 tables across the four telemetry schemas and catalog, each tried by all three roles.
    assert len(outcomes) == len(tables.readers) * len(ROLES) == 33


def test_science_reads_the_mars_tables_of_every_zone_and_ops_none(stack: Settings, trino: TrinoLake) -> None:
    # Tables of this module's own, named as the Mars source names its tables (mars_*), in each zone it writes.
    readers = {(schema, f"mars_sec_{UID}"): SCIENCE_READERS for schema in ("raw", "bronze", "silver", "gold")}
    readers[("gold", f"sec_mars_{UID}")] = ADMIN_ONLY  # "mars" elsewhere in the name grants nothing
    options = s3_storage_options(stack)
    for schema, table in readers:
        location = f"s3://{stack.lake_bucket}/lake/{schema}/{table}"
        trino.ensure_schema(schema, f"s3://{stack.lake_bucket}/lake/{schema}")
        write_deltalake(location, small_table(0), storage_options=options)
        trino.register_table(schema, table, location)
    outcomes = {}
    for (schema, table), allowed in readers.items():
        sql = f'SELECT count(*) FROM "{schema}"."{table}"'
        for role in ROLES:
            if role in allowed:
                outcomes[(schema, table, role)] = trino.query(sql, user=role)[1][0][0] == 2
            else:
                outcomes[(schema, table, role)] = f"Cannot select from table lake.{schema}.{table}" in denied(
                    trino, sql, role
                )
    assert all(outcomes.values()), [name for name, ok in outcomes.items() if not ok]
    assert len(outcomes) == len(readers) * len(ROLES) == 15


@pytest.mark.parametrize("metadata", ["history", "properties"])
def test_delta_metadata_tables_follow_their_tables_rules(
    trino: TrinoLake, tables: RegisteredTables, metadata: str
) -> None:
    for (schema, table), readers in tables.readers.items():
        if table.startswith(("telemetry_sec", "sec_")):
            sql = f'SELECT count(*) FROM "{schema}"."{table}${metadata}"'
            for role in ROLES:
                if role in readers:
                    assert trino.query(sql, user=role)[1][0][0] >= 1
                else:
                    assert f"Cannot select from table lake.{schema}.{table}${metadata}" in denied(trino, sql, role)


def listed(trino: TrinoLake, sql: str, role: str) -> set[tuple[str, str]]:
    return {(schema, table) for schema, table in trino.query(sql, user=role)[1]}


def test_metadata_and_system_tables_list_only_what_a_role_may_read(trino: TrinoLake, tables: RegisteredTables) -> None:
    # Only this module's table names: listing columns or comments of every table in the lake reads every log.
    names = ", ".join(sorted({f"'{table}'" for _, table in tables.readers}))
    listings = {
        "information_schema.tables": f"SELECT table_schema, table_name FROM lake.information_schema.tables "
        f"WHERE table_name IN ({names})",
        "information_schema.columns": f"SELECT DISTINCT table_schema, table_name FROM lake.information_schema.columns "
        f"WHERE table_name IN ({names})",
        "system.jdbc.tables": f"SELECT table_schem, table_name FROM system.jdbc.tables WHERE table_cat = 'lake' "
        f"AND table_name IN ({names})",
        "system.metadata.table_comments": f"SELECT schema_name, table_name FROM system.metadata.table_comments "
        f"WHERE catalog_name = 'lake' AND table_name IN ({names})",
    }
    for role in ROLES:
        readable = {name for name, readers in tables.readers.items() if role in readers}
        hidden = set(tables.readers) - readable
        for listing, sql in listings.items():
            seen = listed(trino, sql, role)
            assert readable <= seen and not hidden & seen, (role, listing, hidden & seen)
        for schema, table in sorted(hidden)[:1]:
            for statement in ("SHOW COLUMNS FROM", "DESCRIBE", "SHOW STATS FOR"):
                denied(trino, f'{statement} "{schema}"."{table}"', role)
        # SHOW CREATE TABLE reveals where the data lives: only admin, even for a table the role reads.
        schema, table = next(iter(sorted(readable)))
        if role == ADMIN:
            assert trino.query(f'SHOW CREATE TABLE "{schema}"."{table}"', user=role)[1]
        else:
            denied(trino, f'SHOW CREATE TABLE "{schema}"."{table}"', role)
            denied(trino, "SELECT count(*) FROM system.runtime.queries", role)
            denied(trino, "SELECT count(*) FROM system.runtime.tasks", role)


@pytest.fixture
def views(trino: TrinoLake) -> Iterator[list[str]]:
    created: list[str] = []
    yield created
    for view in created:
        trino.query(f"DROP VIEW IF EXISTS {view}", user=ADMIN)


def test_views_never_widen_a_roles_access(trino: TrinoLake, tables: RegisteredTables, views: list[str]) -> None:
    telemetry, catalog = f'bronze."telemetry_sec_{UID}"', f'catalog."sec_{UID}"'
    definer_over_telemetry = f'catalog."v_definer_{UID}"'  # science reads everything in catalog by name
    invoker_over_telemetry = f'catalog."v_invoker_{UID}"'
    definer_over_catalog = f'gold."telemetry_v_{UID}"'  # a name ops reads, over a table ops may not
    invoker_over_catalog = f'catalog."v_reader_{UID}"'
    for view, security, source in [
        (definer_over_telemetry, "DEFINER", telemetry),
        (invoker_over_telemetry, "INVOKER", telemetry),
        (definer_over_catalog, "DEFINER", catalog),
        (invoker_over_catalog, "INVOKER", catalog),
    ]:
        trino.query(f"CREATE VIEW {view} SECURITY {security} AS SELECT * FROM {source}", user=ADMIN)
        views.append(view)

    expected = trino.query(f"SELECT count(*) FROM {telemetry}", user=ADMIN)
    assert trino.query(f"SELECT count(*) FROM {definer_over_telemetry}", user=ADMIN) == expected
    # A definer view runs with its owner's rights only if the owner may grant them, and no role may.
    message = denied(trino, f"SELECT count(*) FROM {definer_over_telemetry}", SCIENCE)
    assert f"View owner 'admin' cannot create view that selects from lake.bronze.telemetry_sec_{UID}" in message
    assert "Cannot select from table lake.bronze" in denied(trino, f"SELECT * FROM {invoker_over_telemetry}", SCIENCE)
    assert "cannot create view that selects from lake.catalog" in denied(
        trino, f"SELECT * FROM {definer_over_catalog}", OPS
    )
    # An invoker view over what the reader may read works: views stay useful.
    assert trino.query(f"SELECT count(*) FROM {invoker_over_catalog}", user=SCIENCE) == trino.query(
        f"SELECT count(*) FROM {catalog}", user=ADMIN
    )
    for role in (OPS, SCIENCE):
        assert "Cannot create view" in denied(trino, f'CREATE VIEW catalog."v_{role}_{UID}" AS SELECT 1 AS x', role)


def query_texts_visible_to(stack: Settings, user: str) -> dict[str, str]:
    """Query id -> text of every query Trino's REST API lists to ``user`` (what the web UI and tools show)."""
    request = urllib.request.Request(
        f"http://{stack.trino_host}:{stack.trino_port}/v1/query", headers={"X-Trino-User": user}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return {query["queryId"]: f"{query['session']['user']}: {query['query']}" for query in json.load(response)}


def test_only_admin_sees_other_users_queries(stack: Settings, trino: TrinoLake, tables: RegisteredTables) -> None:
    markers = {role: f"marker-{role}-{UID}" for role in ROLES}
    for role in ROLES:
        trino.query(f"SELECT '{markers[role]}' AS marker", user=role)
    for role in ROLES:
        texts = "\n".join(query_texts_visible_to(stack, role).values())
        for other in ROLES:
            assert (markers[other] in texts) == (other == role or role == ADMIN), (role, other)


def test_no_role_changes_lake_data_through_trino(
    stack: Settings, trino: TrinoLake, tables: RegisteredTables, credentials: StackCredentials
) -> None:
    schema, table = tables.optimize_target
    qualified = f'"{schema}"."{table}"'
    for role in ROLES:
        assert "Cannot insert into table" in denied(trino, f"INSERT INTO {qualified} VALUES (9, 'z')", role)
        assert "Cannot delete from table" in denied(trino, f"DELETE FROM {qualified}", role)
    for role in (OPS, SCIENCE):
        assert "Cannot create table" in denied(trino, f'CREATE TABLE catalog."t_{role}_{UID}" (id bigint)', role)
        assert "Cannot execute procedure" in denied(
            trino, f"CALL lake.system.unregister_table('{schema}', '{table}')", role
        )
        assert "cannot impersonate user admin" in denied(trino, "SET SESSION AUTHORIZATION admin", role)
        assert "Cannot execute function lake.system.table_changes" in denied(
            trino, f"SELECT * FROM TABLE(lake.system.table_changes('bronze', 'telemetry_sec_{UID}', 0))", role
        )
    # Trino's file-based rules cannot refuse `ALTER TABLE … EXECUTE`: Trino's own key refuses the write instead.
    options = s3_storage_options(stack)
    s3 = s3_as(stack, credentials.pipeline)
    prefix = tables.optimize_location.removeprefix(f"s3://{stack.lake_bucket}/") + "/"

    def objects() -> list[str]:
        return sorted(entry["Key"] for entry in s3.list_objects_v2(Bucket=stack.lake_bucket, Prefix=prefix)["Contents"])

    before, version = objects(), DeltaTable(tables.optimize_location, storage_options=options).version()
    for role in (SCIENCE, ADMIN):
        # The refused write surfaces as a writer error (the data file or the commit, whichever comes first).
        with pytest.raises(TrinoLakeError, match=r"(?i)writ"):
            trino.query(f"ALTER TABLE {qualified} EXECUTE optimize", user=role)
    assert DeltaTable(tables.optimize_location, storage_options=options).version() == version
    assert objects() == before


# --- No credential in any output or log ---------------------------------------------------------------------------


def satlake_environment(stack: Settings, credentials: StackCredentials, **overrides: str) -> dict[str, str]:
    """A user's shell for this stack: the pipeline's key exported, the root user only in the secrets file."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SATLAKE_")}
    return {
        **environment,
        "SATLAKE_MODE": "stack",
        "SATLAKE_ROOT": str(stack.root),
        "SATLAKE_SECRETS_FILE": str(stack.secrets_file),
        **endpoint_environment(stack),
        "SATLAKE_S3_ACCESS_KEY": credentials.pipeline.access_key,
        "SATLAKE_S3_SECRET_KEY": credentials.pipeline.secret_key,
        **({"SATLAKE_STACK_DIR": str(stack.stack_dir)} if stack.stack_dir else {}),
        **overrides,
    }


def run(command: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300, check=False)


def satlake(*arguments: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "satlake", "-v", *arguments], environment)


def dbt_show_count(stack: Settings, credentials: StackCredentials, work: Path) -> subprocess.CompletedProcess[str]:
    """dbt in stack mode, configured as the pipeline runs it, counting a Delta table it reads from MinIO, with
    debug logging and its logs and artifacts in ``work``."""
    lake_uri = f"s3://{stack.lake_bucket}/it/security-{UID}/dbt-lake"
    write_deltalake(f"{lake_uri}/bronze/telemetry", small_table(0), storage_options=s3_storage_options(stack))
    settings = stack.with_overrides(root=work)
    (work / "warehouse").mkdir(parents=True)
    environment = {
        **satlake_environment(stack, credentials),
        **dbt_environment(settings, lake_uri),
        "DO_NOT_TRACK": "1",
    }
    inline = "select count(*) as bronze_rows from {{ source('bronze', 'telemetry') }}"
    command = [sys.executable, "-c", "from dbt.cli.main import cli; cli()", "show", "--inline", inline]
    command += ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR), "--target", "stack"]
    command += ["--log-level", "debug", "--log-path", str(work / "dbt-logs"), "--target-path", str(work / "dbt-target")]
    return run(command, environment)


def files_under(*directories: Path) -> list[Path]:
    return [path for directory in directories if directory.is_dir() for path in directory.rglob("*") if path.is_file()]


def test_no_credential_reaches_any_output_or_log(
    stack: Settings, config: StackConfig, credentials: StackCredentials, tables: RegisteredTables, tmp_path: Path
) -> None:
    table = f'catalog."sec_{UID}"'
    environment = satlake_environment(stack, credentials)
    wrong_secret = f"wrong-secret-{uuid.uuid4().hex}"
    count = f"SELECT count(*) AS n FROM {table}"
    runs = {
        "stack up": satlake("stack", "up", environment=environment),
        "query trino": satlake("query", "--engine", "trino", count, environment=environment),
        "query duckdb": satlake("query", "--engine", "duckdb", count, environment=environment),
        "failing query": satlake("query", "--engine", "trino", "SELECT * FROM lake.nowhere.x", environment=environment),
        "wrong secret": satlake(
            "query",
            "--engine",
            "duckdb",
            count,
            environment=satlake_environment(stack, credentials, SATLAKE_S3_SECRET_KEY=wrong_secret),
        ),
        "dbt show": dbt_show_count(stack, credentials, tmp_path),
    }
    exits = {name: completed.returncode for name, completed in runs.items()}
    assert exits == {**dict.fromkeys(runs, 0), "failing query": 2, "wrong secret": 2}, runs
    assert runs["stack up"].stdout.count("already running") == len(SERVERS)  # every server of the stack
    assert runs["query trino"].stdout.split() == runs["query duckdb"].stdout.split() == ["n", "-", "2", "(1", "row)"]
    # dbt really read the Delta table on MinIO with the pipeline's key.
    assert re.search(r"^\| +2 \|$", runs["dbt show"].stdout, re.MULTILINE), runs["dbt show"].stdout[-2000:]

    trino_etc, trino_data = trino_paths(config)
    scanned = files_under(
        config.logs_dir,  # every server's output and the install logs
        trino_data / "var" / "log",  # Trino's HTTP request log
        trino_etc,
        config.server_dir("kafka") / "config",
        tmp_path / "dbt-logs",
        tmp_path / "dbt-target",
        stack.dagster_home,
    )
    names = {path.name for path in scanned}
    assert {"kafka.log", "minio.log", "trino.log", "dbt.log", "run_results.json", "lake.properties"} <= names
    texts = {f"output of {name}": completed.stdout + completed.stderr for name, completed in runs.items()}
    texts |= {str(path): path.read_bytes().decode("utf-8", errors="replace") for path in scanned}
    secrets = {
        "pipeline secret": credentials.pipeline.secret_key,
        "Trino secret": credentials.trino.secret_key,
        "root password": credentials.root.secret_key,
        "a mistyped secret": wrong_secret,
        "PostgreSQL password": read_secrets_file(stack.secrets_file)["SATLAKE_POSTGRES_PASSWORD"],
    }
    leaks = [
        f"{what} in {where}" for where, text in texts.items() for what, secret in secrets.items() if secret in text
    ]
    assert leaks == []
