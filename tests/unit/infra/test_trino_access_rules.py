"""The access rules, evaluated the way Trino's file-based access control does (first matching rule wins), and
the object store's policies, evaluated the way MinIO does (an action on a resource is allowed only if a
statement allows it)."""

from __future__ import annotations

import fnmatch
import re

import pytest

from satlake.stack.access import pipeline_policy, trino_access_rules, trino_group_file, trino_policy

RULES = trino_access_rules("lake")
GROUPS = {"admin": {"admin"}, "ops": {"ops"}, "science": {"science"}, "guest": set()}


def matches(rule: dict[str, object], field: str, value: str) -> bool:
    return re.fullmatch(str(rule.get(field, ".*")), value) is not None


def first_rule(section: str, user: str, **names: str) -> dict[str, object] | None:
    for rule in RULES[section]:  # type: ignore[attr-defined]
        group_ok = "group" not in rule or any(re.fullmatch(rule["group"], g) for g in GROUPS[user])
        if group_ok and all(matches(rule, field, value) for field, value in names.items()):
            return rule
    return None


def can_select(user: str, schema: str, table: str, catalog: str = "lake") -> bool:
    catalog_rule = first_rule("catalogs", user, catalog=catalog)
    if catalog_rule is None or catalog_rule["allow"] == "none":
        return False
    table_rule = first_rule("tables", user, catalog=catalog, schema=schema, table=table)
    return table_rule is not None and "SELECT" in table_rule["privileges"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("schema", "table"),
    [
        ("raw", "telemetry_events"),
        ("bronze", "telemetry"),
        ("bronze", "telemetry_rejects"),
        ("silver", "telemetry_clean"),
        ("gold", "telemetry_hourly"),
    ],
)
def test_ops_reads_every_telemetry_table_and_science_none(schema: str, table: str) -> None:
    assert can_select("ops", schema, table)
    assert not can_select("science", schema, table)
    assert can_select("admin", schema, table)


@pytest.mark.parametrize(
    ("schema", "table"),
    [
        ("catalog", "items"),
        ("catalog", "collections"),
        ("raw", "scenes"),
        ("silver", "cogs"),
        ("gold", "ndvi"),
        ("gold", "quicklooks"),
        ("gold", "forest_change"),
    ],
)
def test_science_reads_the_catalog_and_imagery_products_and_ops_none(schema: str, table: str) -> None:
    assert can_select("science", schema, table)
    assert not can_select("ops", schema, table)
    assert can_select("admin", schema, table)


@pytest.mark.parametrize(
    ("schema", "table"),
    [
        ("raw", "mars_requests"),
        ("raw", "mars_responses"),
        ("raw", "mars_photo_files"),
        ("bronze", "mars_photos"),
        ("bronze", "mars_waypoints"),
        ("silver", "mars_photos"),
        ("gold", "mars_photos_per_sol"),
        ("gold", "mars_drive_per_sol"),
        ("gold", "mars_mission_timeline"),
        ("gold", "mars_timelapses"),
    ],
)
def test_science_reads_every_mars_table_and_ops_none(schema: str, table: str) -> None:
    assert can_select("science", schema, table)
    assert not can_select("ops", schema, table)
    assert can_select("admin", schema, table)


def test_science_gets_only_tables_named_mars_underscore_in_the_lake_zones() -> None:
    assert not can_select("science", "bronze", "telemetry")  # science reads nothing else in bronze
    assert not can_select("science", "gold", "marsupials")  # the underscore is part of the pattern
    assert not can_select("science", "gold", "old_mars_photos")  # a whole-name match, not a substring
    assert not can_select("science", "ops", "mars_photos")  # a schema outside the lake's zones
    assert not can_select("science", "gold", "mars_photos", catalog="system")


def test_names_only_resembling_a_role_table_are_not_granted() -> None:
    assert not can_select("ops", "catalog", "telemetry_index")  # right table name, wrong schema
    assert not can_select("science", "gold", "ndvi_backup")  # whole-name match, not a prefix
    assert not can_select("science", "raw", "scenes_tmp")


def test_unknown_users_reach_nothing_and_only_admin_executes_procedures() -> None:
    assert not can_select("guest", "gold", "ndvi")
    assert first_rule("catalogs", "guest", catalog="lake") is None
    assert first_rule("procedures", "admin") is not None
    assert first_rule("procedures", "ops") is None
    assert first_rule("procedures", "science") is None


def test_roles_are_groups_with_a_user_of_the_same_name() -> None:
    assert trino_group_file() == "admin:admin\nops:ops\nscience:science\n"


def table_privileges(user: str, schema: str, table: str) -> list[str]:
    rule = first_rule("tables", user, catalog="lake", schema=schema, table=table)
    return list(rule["privileges"]) if rule else []  # type: ignore[call-overload]


@pytest.mark.parametrize("user", ["admin", "ops", "science"])
def test_no_role_may_grant_select_or_write_lake_data(user: str) -> None:
    # Without GRANT_SELECT a SECURITY DEFINER view cannot be queried by anyone but its owner, so no view widens
    # access; the data has one writer, the pipeline.
    for schema, table in [("bronze", "telemetry"), ("catalog", "items"), ("gold", "ndvi")]:
        privileges = table_privileges(user, schema, table)
        assert not {"GRANT_SELECT", "INSERT", "DELETE", "UPDATE"} & set(privileges), (user, privileges)
    assert ("OWNERSHIP" in table_privileges(user, "catalog", "items")) == (user == "admin")


def test_only_admin_sees_or_kills_other_users_queries() -> None:
    queries = RULES["queries"]
    assert queries[0] == {"group": "admin", "allow": ["execute", "kill", "view"]}
    assert queries[-1] == {"allow": ["execute"]}  # everyone else: run queries, see only their own


def allowed(policy: dict[str, object], action: str, resource: str) -> bool:
    return any(
        statement["Effect"] == "Allow"
        and action in statement["Action"]
        and any(fnmatch.fnmatchcase(resource, pattern) for pattern in statement["Resource"])
        for statement in policy["Statement"]  # type: ignore[attr-defined]
    )


PIPELINE = pipeline_policy("satlake", "satlake-landing")
TRINO = trino_policy("satlake", "metastore")
OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")


@pytest.mark.parametrize("bucket", ["satlake", "satlake-landing"])
def test_the_pipeline_reads_writes_lists_and_deletes_in_its_two_buckets(bucket: str) -> None:
    assert allowed(PIPELINE, "s3:ListBucket", f"arn:aws:s3:::{bucket}")
    for action in OBJECT_ACTIONS:
        assert allowed(PIPELINE, action, f"arn:aws:s3:::{bucket}/lake/bronze/telemetry/part-0.parquet")


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("s3:GetObject", "arn:aws:s3:::other/x"),
        ("s3:PutObject", "arn:aws:s3:::satlake-landing2/x"),  # a name that starts like ours
        ("s3:ListBucket", "arn:aws:s3:::other"),
        ("s3:ListAllMyBuckets", "arn:aws:s3:::*"),
        ("s3:CreateBucket", "arn:aws:s3:::new-bucket"),
        ("s3:DeleteBucket", "arn:aws:s3:::satlake"),
        ("s3:PutBucketPolicy", "arn:aws:s3:::satlake"),
        ("s3:PutBucketNotification", "arn:aws:s3:::satlake-landing"),
        ("admin:CreateUser", "arn:minio:admin:::*"),
    ],
)
def test_the_pipeline_may_do_nothing_else(action: str, resource: str) -> None:
    assert not allowed(PIPELINE, action, resource)


def test_trino_reads_the_lake_and_writes_only_its_metastore() -> None:
    assert allowed(TRINO, "s3:ListBucket", "arn:aws:s3:::satlake")
    assert allowed(TRINO, "s3:GetObject", "arn:aws:s3:::satlake/lake/bronze/telemetry/_delta_log/0.json")
    assert allowed(TRINO, "s3:PutObject", "arn:aws:s3:::satlake/metastore/bronze/telemetry/.trinoSchema")
    assert allowed(TRINO, "s3:DeleteObject", "arn:aws:s3:::satlake/metastore/bronze/telemetry/.trinoSchema")
    for action in ("s3:PutObject", "s3:DeleteObject"):
        assert not allowed(TRINO, action, "arn:aws:s3:::satlake/lake/bronze/telemetry/part-0.parquet")
        assert not allowed(TRINO, action, "arn:aws:s3:::satlake/metastore-copy/x")
    assert not allowed(TRINO, "s3:ListBucket", "arn:aws:s3:::satlake-landing")
    assert not allowed(TRINO, "s3:GetObject", "arn:aws:s3:::satlake-landing/scene.tif")
