"""Who may read what: Trino's roles rendered to its file-based access-control rules, and the object store's
identities rendered to MinIO policies.

Roles are Trino groups (from a group file), so a new person gets access by joining a group, not by a new rule.
Lake data has one writer, the pipeline: no Trino role may change it, and Trino's own object-store key could not
even if a rule let it (Trino's file-based control has no rule for ``ALTER TABLE … EXECUTE``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

ADMIN, OPS, SCIENCE = "admin", "ops", "science"
ROLES = (ADMIN, OPS, SCIENCE)

# ops reads the telemetry path (every table named telemetry* in the zones it flows through) and the ground
# segment's: the missions, their packets, the bronze tables of every mission (per packet type, named after the
# mission, so any bronze table but the Mars source's) and the alarms. The stations' token hashes stay admin's.
TELEMETRY_SCHEMAS = ("raw", "bronze", "silver", "gold")
TELEMETRY_TABLE_PATTERN = "telemetry.*"
OPS_TABLES: Mapping[str, tuple[str, ...]] = {
    "catalog": ("missions",),
    "raw": (TELEMETRY_TABLE_PATTERN, "packets"),
    "bronze": ("(?!mars_).*",),
    "silver": (TELEMETRY_TABLE_PATTERN,),
    "gold": (TELEMETRY_TABLE_PATTERN, "alarms"),
}

# science reads the catalog (areas of interest included), the imagery, its acquisition, the products and the
# Mars rover missions (every table named mars_* of any zone); schema -> table patterns ("*" = the whole schema).
MARS_TABLE_PATTERN = "mars_.*"
SCIENCE_TABLES: Mapping[str, tuple[str, ...]] = {
    "catalog": ("*",),
    "raw": ("scenes", "acquisitions", "acquisition_requests", "acquisition_request_rejects", MARS_TABLE_PATTERN),
    "bronze": (MARS_TABLE_PATTERN,),
    "silver": ("cogs", MARS_TABLE_PATTERN),
    "gold": ("ndvi", "quicklooks", "forest_change", "forest_change_alerts", MARS_TABLE_PATTERN),
}

# Users created with the stack: each is a member of the role of the same name.
DEFAULT_MEMBERS: Mapping[str, tuple[str, ...]] = {ADMIN: (ADMIN,), OPS: (OPS,), SCIENCE: (SCIENCE,)}

# No GRANT_SELECT: Trino lets others query a SECURITY DEFINER view only when its owner holds SELECT with grant
# option on what the view reads, so without it no view can widen a role's access; views that others query are
# created SECURITY INVOKER and check the reader's own rights. No INSERT/DELETE/UPDATE: the pipeline owns the data.
ADMIN_TABLE_PRIVILEGES = ["SELECT", "OWNERSHIP"]


def _alternatives(names: tuple[str, ...]) -> str:
    return "|".join(names)


def trino_access_rules(catalog: str = "lake") -> dict[str, object]:
    """Trino system access-control rules (``rules.json``); the first matching rule wins in each section."""
    readers = _alternatives((OPS, SCIENCE))
    table_rules: list[dict[str, object]] = [
        {"group": ADMIN, "privileges": ADMIN_TABLE_PRIVILEGES},
    ]
    for schema, tables in OPS_TABLES.items():
        table_rules.append({"group": OPS, "catalog": catalog, "schema": schema, "table": _alternatives(tables),
                            "privileges": ["SELECT"]})  # fmt: skip
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
        # Without query rules every user may list every query, with its text, on /v1/query: only admin sees
        # and kills other users' queries (everyone always sees and kills their own).
        "queries": [{"group": ADMIN, "allow": ["execute", "kill", "view"]}, {"allow": ["execute"]}],
    }


def trino_access_rules_json(catalog: str = "lake") -> str:
    return json.dumps(trino_access_rules(catalog), indent=2) + "\n"


def trino_group_file(members: Mapping[str, tuple[str, ...]] = DEFAULT_MEMBERS) -> str:
    """Trino's file group provider format: one ``group:user1,user2`` line per role."""
    return "".join(f"{role}:{','.join(users)}\n" for role, users in members.items())


def _bucket_arns(buckets: tuple[str, ...], suffix: str = "") -> list[str]:
    return [f"arn:aws:s3:::{bucket}{suffix}" for bucket in buckets]


def pipeline_policy(lake_bucket: str, landing_bucket: str) -> dict[str, object]:
    """MinIO policy of the pipeline's key: list, read, write and delete objects in its two buckets, nothing else
    (no bucket creation or configuration, no other bucket, no admin API)."""
    buckets = (lake_bucket, landing_bucket)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
                "Resource": _bucket_arns(buckets),
            },
            {
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                "Resource": _bucket_arns(buckets, "/*"),
            },
        ],
    }


def trino_policy(lake_bucket: str, metastore_prefix: str) -> dict[str, object]:
    """MinIO policy of Trino's key: read the lake bucket, write only its file metastore (schemas, table
    registrations, views). A Trino query can therefore never rewrite or delete lake data."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": _bucket_arns((lake_bucket,)),
            },
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": _bucket_arns((lake_bucket,), "/*")},
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                "Resource": _bucket_arns((lake_bucket,), f"/{metastore_prefix}/*"),
            },
        ],
    }
