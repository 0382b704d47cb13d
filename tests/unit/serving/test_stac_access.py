"""Access control of the API: roles by API key or bearer token, the anonymous ``public`` list and its defaults
(every collection embedded on loopback; nothing but the landing page in stack mode or on another address), and
denials as 401/403 JSON, never a partial answer; ``get_item`` for the tiles router honours the same rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Request

from satlake.serving.access import access_policy, ensure_api_keys
from satlake.serving.server import get_item
from satlake.settings import Mode, read_secrets_file
from tests.unit.serving.stac_catalog import (
    ALL_IDS,
    ARCTIC,
    COLLECTIONS,
    EARLY_UTM,
    api_client,
    catalogued_root,
    embedded_settings,
    ids,
)

KEYS = {
    "SATLAKE_API_KEY_ADMIN": "admin-key-0123456789abcdef",
    "SATLAKE_API_KEY_SCIENCE": "science-key-0123456789abcdef",
    "SATLAKE_API_KEY_OPS": "ops-key-0123456789abcdef",
}
SCIENCE = {"X-API-Key": KEYS["SATLAKE_API_KEY_SCIENCE"]}
OPS = {"X-API-Key": KEYS["SATLAKE_API_KEY_OPS"]}
ADMIN_BEARER = {"Authorization": f"Bearer {KEYS['SATLAKE_API_KEY_ADMIN']}"}
CATALOG_PATHS = ["/collections", "/search", "/queryables", "/collections/landsat-c2-l2/items",
                 f"/collections/landsat-c2-l2/items/{EARLY_UTM}", "/collections/polar-mosaics"]  # fmt: skip


def tile_probe_router() -> APIRouter:
    """A stand-in for the tiles router: it asks get_item for the item, as tiles_router(get_item) does."""
    router = APIRouter()

    @router.get("/probe/{collection_id}/{item_id}")
    def probe(request: Request, collection_id: str, item_id: str) -> dict[str, Any]:
        return {"id": get_item(request, collection_id, item_id)["id"]}

    return router


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return catalogued_root(tmp_path_factory.mktemp("root"))


def assert_denied(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == ("Unauthorized" if status == 401 else "Forbidden")
    assert "features" not in body and "collections" not in body


def test_embedded_on_loopback_anonymous_reads_every_collection(root: Path) -> None:
    client = api_client(root)
    assert ids(client.get("/search")) == ALL_IDS
    assert sorted(c["id"] for c in client.get("/collections").json()["collections"]) == COLLECTIONS


@pytest.mark.parametrize(("host", "mode"), [("0.0.0.0", Mode.EMBEDDED), ("127.0.0.1", Mode.STACK)])
def test_anonymous_sees_only_the_landing_page_by_default(root: Path, host: str, mode: Mode) -> None:
    client = api_client(root, host=host, mode=mode, environ=KEYS)
    assert client.get("/").json()["type"] == "Catalog"
    assert client.get("/conformance").status_code == 200
    for path in CATALOG_PATHS:
        assert_denied(client.get(path), 401)
    assert_denied(client.post("/search", json={}), 401)
    assert ids(client.get("/search", headers=SCIENCE)) == ALL_IDS


def test_public_list_limits_anonymous_and_ops_and_denials_are_whole(root: Path) -> None:
    client = api_client(root, host="0.0.0.0", environ={**KEYS, "SATLAKE_API_PUBLIC_COLLECTIONS": "polar-mosaics"})
    assert [c["id"] for c in client.get("/collections").json()["collections"]] == ["polar-mosaics"]
    assert ids(client.get("/search")) == [ARCTIC]
    assert_denied(client.get("/search", params={"collections": "polar-mosaics,landsat-c2-l2"}), 401)
    assert_denied(client.post("/search", json={"collections": ["landsat-c2-l2"]}), 401)
    assert_denied(client.get("/collections/landsat-c2-l2"), 401)
    assert_denied(client.get(f"/collections/landsat-c2-l2/items/{EARLY_UTM}"), 401)
    # ops reads telemetry in Trino, not the catalog: it sees the public list, and is refused (403) past it.
    assert ids(client.get("/search", headers=OPS)) == [ARCTIC]
    assert_denied(client.get("/collections/landsat-c2-l2/items", headers=OPS), 403)
    assert ids(client.get("/search", headers=SCIENCE)) == ALL_IDS
    assert ids(client.get("/search", headers=ADMIN_BEARER)) == ALL_IDS


def test_a_wrong_key_is_refused_everywhere(root: Path) -> None:
    client = api_client(root, environ=KEYS)
    for headers in ({"X-API-Key": "guess-0123456789abcdef"}, {"Authorization": "Bearer guess-0123456789abcdef"}):
        response = client.get("/", headers=headers)
        assert_denied(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


def test_keys_and_public_list_come_from_the_secrets_file(root: Path, tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    settings.secrets_file.write_text(
        f"SATLAKE_API_KEY_SCIENCE={KEYS['SATLAKE_API_KEY_SCIENCE']}\nSATLAKE_API_PUBLIC_COLLECTIONS=a, b\n"
    )
    policy = access_policy(settings, "127.0.0.1", environ={})
    assert policy.public == frozenset({"a", "b"})
    assert policy.principal(KEYS["SATLAKE_API_KEY_SCIENCE"]).role == "science"
    assert access_policy(settings, "127.0.0.1", environ={"SATLAKE_API_PUBLIC_COLLECTIONS": "*"}).public is None
    with pytest.raises(ValueError, match="SATLAKE_API_KEY_OPS is shorter than 16"):
        access_policy(settings, "127.0.0.1", environ={"SATLAKE_API_KEY_OPS": "short"})


def test_get_item_for_the_tiles_router_applies_the_same_rules(root: Path) -> None:
    client = api_client(
        root, host="0.0.0.0", environ={**KEYS, "SATLAKE_API_PUBLIC_COLLECTIONS": "polar-mosaics"},
        routers=[tile_probe_router()],
    )  # fmt: skip
    assert client.get(f"/probe/polar-mosaics/{ARCTIC}").json() == {"id": ARCTIC}
    assert_denied(client.get(f"/probe/landsat-c2-l2/{EARLY_UTM}"), 401)
    assert_denied(client.get(f"/probe/landsat-c2-l2/{EARLY_UTM}", headers=OPS), 403)
    assert client.get(f"/probe/landsat-c2-l2/{EARLY_UTM}", headers=SCIENCE).json() == {"id": EARLY_UTM}
    missing = client.get("/probe/landsat-c2-l2/nope", headers=SCIENCE)
    assert missing.status_code == 404 and missing.json()["code"] == "NotFound"


def test_missing_role_keys_are_generated_into_the_secrets_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)
    settings = embedded_settings(tmp_path)
    settings.secrets_file.write_text(f"OTHER=kept\nSATLAKE_API_KEY_OPS={KEYS['SATLAKE_API_KEY_OPS']}\n")
    assert ensure_api_keys(settings) == ["SATLAKE_API_KEY_ADMIN", "SATLAKE_API_KEY_SCIENCE"]
    stored = read_secrets_file(settings.secrets_file)
    assert stored["OTHER"] == "kept" and stored["SATLAKE_API_KEY_OPS"] == KEYS["SATLAKE_API_KEY_OPS"]
    admin, science = stored["SATLAKE_API_KEY_ADMIN"], stored["SATLAKE_API_KEY_SCIENCE"]
    assert len(admin) >= 32 and admin != science
    assert settings.secrets_file.stat().st_mode & 0o077 == 0
    assert ensure_api_keys(settings) == []  # nothing regenerated
    policy = access_policy(settings, "0.0.0.0", environ={})
    assert policy.principal(admin).role == "admin"


def test_browsers_may_send_keys_cross_origin(root: Path) -> None:
    client = api_client(root, host="0.0.0.0", environ=KEYS)
    preflight = client.options(
        "/search",
        headers={"Origin": "https://qgis.example", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "x-api-key"},
    )  # fmt: skip
    assert preflight.status_code == 200
    assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
    answered = client.get("/search", headers={**SCIENCE, "Origin": "https://qgis.example"})
    assert ids(answered) == ALL_IDS and answered.headers["access-control-allow-origin"] == "*"
