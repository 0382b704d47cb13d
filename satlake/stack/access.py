"""Who may read what through Trino: the roles as data, rendered to Trino's file-based access-control rules.

Roles are Trino groups (from a group file), so a new person gets access by joining a group, not by a new rule.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

ADMIN, OPS, SCIENCE = "admin", "ops", "science"
ROLES = (ADMIN, OPS, SCIENCE)

# ops reads the telemetry path: every table named telemetry* in the zones it flows through.
TELEMETRY_SCHEMAS = ("raw", "bronze", "silver", "gold")
TELEMETRY_TABLE_PATTERN = "telemetry.*"

# science reads the catalog and the imagery products; schema -> tables ("*" = the whole schema).
SCIENCE_TABLES: Mapping[str, tuple[str, ...]] = {
    "catalog": ("*",),
    "raw": ("scenes",),
    "silver": ("cogs",),
    "gold": ("ndvi", "quicklooks", "forest_change"),
}

# Users created with the stack: each is a member of the role of the same name.
DEFAULT_MEMBERS: Mapping[str, tuple[str, ...]] = {ADMIN: (ADMIN,), OPS: (OPS,), SCIENCE: (SCIENCE,)}

ALL_TABLE_PRIVILEGES = ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP", "GRANT_SELECT"]


def _alternatives(names: tuple[str, ...]) -> str:
    return "|".join(names)


def trino_access_rules(catalog: str = "lake") -> dict[str, object]:
    """Trino system access-control rules (``rules.json``); the first matching rule wins in each section."""
    readers = _alternatives((OPS, SCIENCE))
    table_rules: list[dict[str, object]] = [
        {"group": ADMIN, "privileges": ALL_TABLE_PRIVILEGES},
        {
            "group": OPS,
            "catalog": catalog,
            "schema": _alternatives(TELEMETRY_SCHEMAS),
            "table": TELEMETRY_TABLE_PATTERN,
            "privileges": ["SELECT"],
        },
    ]
    for schema, tables in SCIENCE_TABLES.items():
        rule: dict[str, object] = {"group": SCIENCE, "catalog": catalog, "schema": schema}
        if tables != ("*",):
            rule["table"] = _alternatives(tables)
        table_rules.append({**rule, "privileges": ["SELECT"]})
    # JDBC/ODBC drivers of BI tools list tables through system.jdbc and system.metadata.
    table_rules.append({"catalog": "system", "schema": "jdbc|metadata", "privileges": ["SELECT"]})
    return {
        "catalogs": [
            {"group": ADMIN, "catalog": ".*", "allow": "all"},
            {"group": readers, "catalog": catalog, "allow": "read-only"},
            {"group": readers, "catalog": "system", "allow": "read-only"},
        ],
        "schemas": [{"group": ADMIN, "owner": True}],
        "tables": table_rules,
        "procedures": [{"group": ADMIN, "privileges": ["EXECUTE", "GRANT_EXECUTE"]}],
    }


def trino_access_rules_json(catalog: str = "lake") -> str:
    return json.dumps(trino_access_rules(catalog), indent=2) + "\n"


def trino_group_file(members: Mapping[str, tuple[str, ...]] = DEFAULT_MEMBERS) -> str:
    """Trino's file group provider format: one ``group:user1,user2`` line per role."""
    return "".join(f"{role}:{','.join(users)}\n" for role, users in members.items())
