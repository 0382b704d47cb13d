"""Signed paging tokens of the STAC API: the ``next`` link carries the offset of the next page, bound to the
search it continues and signed with a per-root secret, so a token that was edited, forged or moved to another
search is refused (400) rather than trusted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TOKEN_PARAMETER = "token"
SECRET_FILE_NAME = "page-token.key"
_SECRET_BYTES = 32
_MAX_TOKEN_CHARS = 512


class PageTokenError(ValueError):
    """A paging token that is malformed, not signed by this server, or belongs to another search."""

    parameter = TOKEN_PARAMETER


def search_fingerprint(search: Mapping[str, Any]) -> str:
    """A short digest of the search a page belongs to (everything but the token and the limit)."""
    canonical = json.dumps(search, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def load_or_create_secret(directory: Path) -> bytes:
    """The per-root signing secret under ``directory``, created (readable by the owner only) on first use."""
    path = directory / SECRET_FILE_NAME
    if not path.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        # Written aside and linked into place: two servers starting at once end up with the same, complete secret.
        temporary = directory / f".{SECRET_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_bytes(_SECRET_BYTES).hex() + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another server created it first: use theirs
        finally:
            temporary.unlink()
    return bytes.fromhex(path.read_text().strip())


class PageTokens:
    """Encode and check the tokens of ``next`` links."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a paging secret needs at least 16 bytes")
        self._secret = secret

    def _signature(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:16]

    def encode(self, offset: int, fingerprint: str) -> str:
        """The token of the page starting at ``offset`` of the search with ``fingerprint``."""
        payload = json.dumps({"o": offset, "s": fingerprint}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(self._signature(payload) + payload).decode().rstrip("=")

    def decode(self, token: str, fingerprint: str) -> int:
        """The offset a token points to; :class:`PageTokenError` unless it is this server's token for this search."""
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_CHARS:
            raise PageTokenError("token: not a paging token of this server; follow the 'next' link as given")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            raise PageTokenError("token: not a paging token of this server (not base64url)") from None
        signature, payload = raw[:16], raw[16:]
        if not hmac.compare_digest(signature, self._signature(payload)):
            raise PageTokenError("token: the signature does not match; the token was changed or is not from here")
        content = json.loads(payload)
        if content.get("s") != fingerprint:
            raise PageTokenError("token: it belongs to another search; page with the 'next' link of this search")
        offset = content.get("o")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise PageTokenError("token: its offset is not a page start")
        return offset
