"""Paging tokens: signed with the root's secret (created once, owner-only), bound to their search, refused when
changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from satlake.serving.paging import PageTokenError, PageTokens, load_or_create_secret, search_fingerprint


def test_the_secret_is_created_once_and_readable_by_its_owner_only(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path / "serving")
    assert len(first) == 32 and load_or_create_secret(tmp_path / "serving") == first
    secret_file = tmp_path / "serving" / "page-token.key"
    assert secret_file.stat().st_mode & 0o077 == 0
    assert [path.name for path in (tmp_path / "serving").iterdir()] == ["page-token.key"]


def test_tokens_round_trip_and_refuse_other_searches_keys_and_edits(tmp_path: Path) -> None:
    tokens = PageTokens(load_or_create_secret(tmp_path))
    search = search_fingerprint({"bbox": [1, 2, 3, 4], "path": "/search"})
    token = tokens.encode(20, search)
    assert tokens.decode(token, search) == 20
    with pytest.raises(PageTokenError, match="another search"):
        tokens.decode(token, search_fingerprint({"bbox": [1, 2, 3, 5], "path": "/search"}))
    with pytest.raises(PageTokenError, match="signature"):
        PageTokens(b"x" * 32).decode(token, search)
    with pytest.raises(PageTokenError, match="signature"):
        tokens.decode(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], search)
    for garbage in ("", "%%%", "A" * 600):
        with pytest.raises(PageTokenError):
            tokens.decode(garbage, search)
