"""The object store's three identities, generated on the first `stack up` and kept in the git-ignored secrets file.

- MinIO's root user: used only to provision (buckets, notifications, users and policies), never by the pipeline.
- The pipeline's key (``SATLAKE_S3_ACCESS_KEY``): reads and writes the lake and landing buckets, nothing else.
- Trino's key: reads the lake bucket and writes only the catalog's metastore prefix.

Besides these, the PostGIS serving database's password (``SATLAKE_POSTGRES_PASSWORD``) is generated and kept
in the same file.

A pair given in the environment wins over the file; a missing pair is generated. Secrets never reach a log or
the output: a key pair's repr shows its access key only.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from satlake.settings import Settings, SettingsError, read_secrets_file

ACCESS_KEY_VAR = "SATLAKE_S3_ACCESS_KEY"
SECRET_KEY_VAR = "SATLAKE_S3_SECRET_KEY"
TRINO_ACCESS_KEY_VAR = "SATLAKE_TRINO_S3_ACCESS_KEY"
TRINO_SECRET_KEY_VAR = "SATLAKE_TRINO_S3_SECRET_KEY"
ROOT_USER_VAR = "SATLAKE_MINIO_ROOT_USER"
ROOT_PASSWORD_VAR = "SATLAKE_MINIO_ROOT_PASSWORD"
POSTGRES_PASSWORD_VAR = "SATLAKE_POSTGRES_PASSWORD"

# Every secret value's variable: stripped from the environment the servers inherit, scanned for in logs.
SECRET_VARS = (SECRET_KEY_VAR, TRINO_SECRET_KEY_VAR, ROOT_PASSWORD_VAR)
CREDENTIAL_VARS = (ACCESS_KEY_VAR, TRINO_ACCESS_KEY_VAR, ROOT_USER_VAR, *SECRET_VARS)
# Each identity's (access key, secret key) variables, and the prefix of its generated access key (at most 8).
IDENTITY_VARS = {
    "root": (ROOT_USER_VAR, ROOT_PASSWORD_VAR),
    "pipeline": (ACCESS_KEY_VAR, SECRET_KEY_VAR),
    "trino": (TRINO_ACCESS_KEY_VAR, TRINO_SECRET_KEY_VAR),
}
GENERATED_PREFIXES = {"root": "minioadm", "pipeline": "satlake", "trino": "trino"}


@dataclass(frozen=True)
class KeyPair:
    """An S3 access key and its secret; the secret is left out of repr so a logged pair leaks nothing."""

    access_key: str
    secret_key: str = field(repr=False)


@dataclass(frozen=True)
class StackCredentials:
    """MinIO's root user (provisioning only), the pipeline's key and Trino's key."""

    root: KeyPair
    pipeline: KeyPair
    trino: KeyPair


def generate_credentials(prefix: str = "satlake") -> tuple[str, str]:
    """A MinIO-valid pair: access key of 3..20 characters (``prefix`` of at most 8), secret key of 8..40."""
    return f"{prefix}{secrets.token_hex(6)}", secrets.token_urlsafe(30)[:40]


def write_secret_values(path: Path, values: dict[str, str]) -> None:
    """Set ``values`` in a KEY=VALUE file readable only by its owner, keeping every other line."""
    kept = [
        line
        for line in (path.read_text().splitlines() if path.is_file() else [])
        if line.split("=", 1)[0].strip().removeprefix("export ").strip() not in values
    ]
    text = "\n".join([*kept, *(f"{key}={value}" for key, value in values.items())]) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(temporary, 0o600)
    temporary.replace(path)


def _pair(values: Mapping[str, str | None], access_var: str, secret_var: str) -> KeyPair | None:
    access_key, secret_key = values.get(access_var), values.get(secret_var)
    return KeyPair(access_key, secret_key) if access_key and secret_key else None


def _check_distinct(credentials: StackCredentials) -> StackCredentials:
    names = {
        ROOT_USER_VAR: credentials.root.access_key,
        ACCESS_KEY_VAR: credentials.pipeline.access_key,
        TRINO_ACCESS_KEY_VAR: credentials.trino.access_key,
    }
    if len(set(names.values())) < len(names):
        raise SettingsError(
            f"{', '.join(names)} must be three different access keys: MinIO refuses a user named like its root "
            "user, and the pipeline and Trino each get only their own buckets. Change or unset the duplicate"
        )
    return credentials


def stored_credentials(settings: Settings) -> dict[str, KeyPair | None]:
    """Each identity's pair as configured (settings: the environment, else the secrets file when they were read;
    then the secrets file as it is now), or None if missing."""
    configured = {
        ROOT_USER_VAR: settings.minio_root_user,
        ROOT_PASSWORD_VAR: settings.minio_root_password,
        ACCESS_KEY_VAR: settings.s3_access_key,
        SECRET_KEY_VAR: settings.s3_secret_key,
        TRINO_ACCESS_KEY_VAR: settings.trino_s3_access_key,
        TRINO_SECRET_KEY_VAR: settings.trino_s3_secret_key,
    }
    in_file = read_secrets_file(settings.secrets_file)
    return {
        identity: _pair(configured, *variables) or _pair(in_file, *variables)
        for identity, variables in IDENTITY_VARS.items()
    }


def require_stack_credentials(settings: Settings) -> StackCredentials:
    """All three pairs, or a SettingsError naming each missing variable and where to set it (Docker's init)."""
    found = stored_credentials(settings)
    missing = [name for identity, pair in found.items() if pair is None for name in IDENTITY_VARS[identity]]
    if missing:
        raise SettingsError(
            f"provisioning the object store needs {', '.join(missing)}: set them in the environment or in "
            f"{settings.secrets_file} (`satlake stack up` generates them there)"
        )
    return _check_distinct(StackCredentials(**found))  # type: ignore[arg-type]


def ensure_credentials(settings: Settings, secrets_file: Path) -> StackCredentials:
    """Every identity's pair from the environment or ``secrets_file``; missing pairs are generated and stored.

    A stack from before the root user was separate has only the pipeline pair in its file: that pair stays the
    pipeline's (every process and exported variable keeps working) and a new root user is generated; `stack up`
    then restarts MinIO once so the old pair loses its root rights.
    """
    found = stored_credentials(settings.with_overrides(secrets_path=secrets_file))
    generated: dict[str, str] = {}
    pairs: dict[str, KeyPair] = {}
    for identity, pair in found.items():
        if pair is None:
            pair = KeyPair(*generate_credentials(GENERATED_PREFIXES[identity]))
            access_var, secret_var = IDENTITY_VARS[identity]
            generated |= {access_var: pair.access_key, secret_var: pair.secret_key}
        pairs[identity] = pair
    credentials = _check_distinct(StackCredentials(**pairs))
    if generated:
        write_secret_values(secrets_file, generated)
    return credentials


def ensure_postgres_password(settings: Settings, secrets_file: Path) -> str:
    """The serving database's password: from the environment or ``secrets_file``, else generated and stored."""
    password = settings.postgres_password or read_secrets_file(secrets_file).get(POSTGRES_PASSWORD_VAR)
    if password:
        return password
    password = secrets.token_urlsafe(24)
    write_secret_values(secrets_file, {POSTGRES_PASSWORD_VAR: password})
    return password


def without_credentials(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` minus every credential variable: a server inherits only the one pair it is given."""
    return {key: value for key, value in environ.items() if key not in (*CREDENTIAL_VARS, POSTGRES_PASSWORD_VAR)}
