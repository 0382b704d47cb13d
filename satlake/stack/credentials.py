"""The object store's credentials: generated on the first `stack up`, kept in the git-ignored secrets file.

MinIO's root user is the pipeline's S3 identity in a developer stack; the secret never reaches logs or output.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from satlake.settings import Settings, read_secrets_file

ACCESS_KEY_VAR = "SATLAKE_S3_ACCESS_KEY"
SECRET_KEY_VAR = "SATLAKE_S3_SECRET_KEY"


def generate_credentials() -> tuple[str, str]:
    """A MinIO-valid pair: access key of 3..20 characters, secret key of 8..40."""
    return f"satlake{secrets.token_hex(6)}", secrets.token_urlsafe(30)[:40]


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


def ensure_credentials(settings: Settings, secrets_file: Path) -> tuple[str, str]:
    """Credentials from settings (environment or secrets file), else new ones written to ``secrets_file``."""
    if settings.s3_access_key and settings.s3_secret_key:
        return settings.s3_access_key, settings.s3_secret_key
    stored = read_secrets_file(secrets_file)
    if stored.get(ACCESS_KEY_VAR) and stored.get(SECRET_KEY_VAR):
        return stored[ACCESS_KEY_VAR], stored[SECRET_KEY_VAR]
    access_key, secret_key = generate_credentials()
    write_secret_values(secrets_file, {ACCESS_KEY_VAR: access_key, SECRET_KEY_VAR: secret_key})
    return access_key, secret_key
