"""Who may read what through the API: the roles of Trino (``admin``, ``ops``, ``science``) proven by an API key
(``X-API-Key``) or a bearer token, and anonymous access limited to a ``public`` collection list.

Keys live in the secrets file (or the environment) as ``SATLAKE_API_KEY_ADMIN``, ``SATLAKE_API_KEY_SCIENCE`` and
``SATLAKE_API_KEY_OPS``; ``satlake serve --stack`` generates the missing ones there. As in Trino, ``admin`` and
``science`` read the whole catalog while ``ops`` reads telemetry only, so through the STAC API it sees what anyone
sees. ``SATLAKE_API_PUBLIC_COLLECTIONS`` lists the collections anonymous requests see (comma-separated, ``*`` for
all, empty for none); unset, it is every collection for an embedded root served on loopback (the files are the
user's own) and none otherwise.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import HTTPException, Request
from starlette.responses import JSONResponse

from satlake.settings import Mode, Settings, read_secrets_file
from satlake.stack.access import ADMIN, OPS, SCIENCE
from satlake.stack.credentials import write_secret_values

ROLE_KEY_SECRETS: Mapping[str, str] = {
    ADMIN: "SATLAKE_API_KEY_ADMIN",
    SCIENCE: "SATLAKE_API_KEY_SCIENCE",
    OPS: "SATLAKE_API_KEY_OPS",
}
PUBLIC_COLLECTIONS_SECRET = "SATLAKE_API_PUBLIC_COLLECTIONS"
# Roles whose Trino rules grant the catalog schema (satlake.stack.access.SCIENCE_TABLES and admin's all).
CATALOG_READER_ROLES = frozenset({ADMIN, SCIENCE})
API_KEY_HEADER = "X-API-Key"
# Paths anyone may reach whatever the policy: the landing page, conformance, the API description and the map
# page itself (whose data requests are checked like any other).
OPEN_PATHS = frozenset({"/", "/conformance", "/api", "/api.html", "/openapi.json", "/docs", "/_mgmt/ping"})
OPEN_PATH_PREFIXES = ("/map", "/docs/")


class AccessDenied(Exception):
    """A request the policy refuses: 401 when no valid credential was given, 403 when the role may not read."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request comes from and which collections it may read (None: every collection)."""

    role: str | None
    collections: frozenset[str] | None

    def may_read(self, collection_id: str) -> bool:
        return self.collections is None or collection_id in self.collections

    @property
    def reads_nothing(self) -> bool:
        return self.collections is not None and not self.collections

    def denial(self, what: str) -> AccessDenied:
        """The refusal of ``what``: 401 for anonymous requests (a key would help), 403 for a role."""
        if self.role is None:
            return AccessDenied(
                401, f"{what} needs an API key: send it as the {API_KEY_HEADER} header or 'Authorization: Bearer'"
            )
        return AccessDenied(403, f"{what} is not readable with the {self.role!r} role")


@dataclass(frozen=True)
class AccessPolicy:
    """Keys by role and the anonymous collection list of one running API."""

    role_keys: Mapping[str, str]  # role -> key
    public: frozenset[str] | None  # None: every collection

    def principal(self, api_key: str | None) -> Principal:
        """The principal an API key (None: anonymous) stands for; :class:`AccessDenied` (401) for an unknown key."""
        if api_key is None:
            return Principal(None, self.public)
        role = next((r for r, key in self.role_keys.items() if hmac.compare_digest(key, api_key)), None)
        if role is None:
            raise AccessDenied(401, "the API key is not valid; ask the administrator for the key of your role")
        return Principal(role, None if role in CATALOG_READER_ROLES else self.public)


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds only to this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _public_collections(text: str | None, settings: Settings, host: str) -> frozenset[str] | None:
    if text is None:
        return None if settings.mode is Mode.EMBEDDED and is_loopback(host) else frozenset()
    names = [name.strip() for name in text.split(",") if name.strip()]
    return None if "*" in names else frozenset(names)


def access_policy(settings: Settings, host: str, environ: Mapping[str, str] | None = None) -> AccessPolicy:
    """The policy for an API of ``settings`` bound to ``host``: keys and the public list from the secrets file,
    overridden by the environment (as Settings.from_env reads them)."""
    merged = {**read_secrets_file(settings.secrets_file), **(os.environ if environ is None else environ)}
    role_keys = {role: merged[name] for role, name in ROLE_KEY_SECRETS.items() if merged.get(name)}
    for role, key in role_keys.items():
        if len(key) < 16:
            raise ValueError(f"{ROLE_KEY_SECRETS[role]} is shorter than 16 characters; use a long random key")
    return AccessPolicy(role_keys, _public_collections(merged.get(PUBLIC_COLLECTIONS_SECRET), settings, host))


def ensure_api_keys(settings: Settings) -> list[str]:
    """Generate the API key of every role that has none in the secrets file (or the environment) and store it
    there, readable by its owner only; the secret names of the keys generated."""
    present = {**read_secrets_file(settings.secrets_file), **os.environ}
    generated = {name: secrets.token_urlsafe(32) for name in ROLE_KEY_SECRETS.values() if not present.get(name)}
    if generated:
        write_secret_values(settings.secrets_file, generated)
    return sorted(generated)


def request_api_key(request: Request) -> str | None:
    """The key a request presents: the X-API-Key header, else an ``Authorization: Bearer`` token."""
    key = request.headers.get(API_KEY_HEADER)
    if key:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def denial_response(error: AccessDenied) -> JSONResponse:
    """The JSON body of a refused request."""
    code = "Unauthorized" if error.status_code == 401 else "Forbidden"
    headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
    return JSONResponse({"code": code, "description": str(error)}, status_code=error.status_code, headers=headers)


def is_open_path(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PATH_PREFIXES)


def request_principal(request: Request) -> Principal:
    """The principal the access middleware attached to ``request``."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise RuntimeError("the access middleware did not run for this request; build the app with build_app")
    return principal


def authorize_collection(request: Request, collection_id: str) -> Principal:
    """For routers beside the STAC API (tiles): raise HTTPException 401/403 unless the request may read
    ``collection_id``."""
    principal = request_principal(request)
    if not principal.may_read(collection_id):
        denial = principal.denial(f"collection {collection_id!r}")
        raise HTTPException(status_code=denial.status_code, detail=str(denial))
    return principal
