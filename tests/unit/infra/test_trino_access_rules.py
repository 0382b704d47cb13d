"""The access rules, evaluated the way Trino's file-based access control does (first matching rule wins)."""

from __future__ import annotations

import re

import pytest

from satlake.stack.access import trino_access_rules, trino_group_file

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
