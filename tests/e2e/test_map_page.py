"""The map page (/map of `satlake serve`) as a user meets it, in a real headless Chromium driven over the DevTools
protocol, against the real service (`build_service`: STAC API, titiler tiles, map page) over the demo's lakehouse:
the page lists the search's items (every page of it) and draws their Earth footprints over the offline basemap,
never draws the Mars scene, re-runs the search when the dates or the cloud ceiling change, selects an item from
the list or by a click on its footprint, draws its titiler tiles (true colour, NDVI), works with a role's key on a
closed service, and loads nothing from outside this machine. Screenshots go to docs/images/map*.png."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from websockets.sync.client import ClientConnection, connect

from satlake.serving.access import PUBLIC_COLLECTIONS_SECRET, ROLE_KEY_SECRETS
from satlake.serving.map_page import INSTALL_COMMAND, MAP_DIR, PAGE_FILES, map_router, missing_vendor_files
from satlake.serving.server import build_service
from satlake.settings import Settings
from satlake.stack.access import SCIENCE
from tests.e2e.test_ui_after_demo import environment
from tests.unit.serving.stac_catalog import served

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "images"
SELECTED = "sim_t01_20240502"  # a clear synthetic scene with red, green, blue and NDVI assets (a whole tile)
MARS = "sim_mars_gale"
WINDOW = (1400, 900)
SCIENCE_KEY = "map-page-test-science-key"


@dataclass
class Service:
    url: str
    root: Path


@dataclass
class Browser:
    """One page of a headless Chromium over the DevTools protocol, recording every request the page makes."""

    connection: ClientConnection
    session: str
    requests: list[str] = field(default_factory=list)
    responses: dict[str, int] = field(default_factory=dict)
    console_errors: list[str] = field(default_factory=list)
    next_id: int = 0

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = "") -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session or self.session
        self.connection.send(json.dumps(message))
        while True:
            reply = json.loads(self.connection.recv(timeout=60))
            if reply.get("id") == self.next_id:
                assert "error" not in reply, (method, reply["error"])
                return reply.get("result", {})
            self._record(reply)

    def _record(self, event: dict[str, Any]) -> None:
        params = event.get("params", {})
        if event.get("method") == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif event.get("method") == "Network.responseReceived":
            self.responses[params["response"]["url"]] = params["response"]["status"]
        elif event.get("method") == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.console_errors.append(json.dumps(params.get("args"))[:500])
        elif event.get("method") == "Runtime.exceptionThrown":
            self.console_errors.append(json.dumps(params.get("exceptionDetails"))[:500])

    def evaluate(self, expression: str, strict: bool = True) -> Any:
        """The value of a JavaScript expression in the page (None if it throws and not ``strict``)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            assert not strict, (expression, result["exceptionDetails"])
            return None
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60, what: str = "") -> Any:
        """The value of ``expression`` once truthy, polling while recording the page's events."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression, strict=False)  # the document may still be loading
            if value:
                return value
            time.sleep(0.25)
        status = self.evaluate("document.getElementById('status').textContent", strict=False)
        pytest.fail(f"the page did not show {what or expression} within {timeout} s (status: {status!r}, "
                    f"console errors: {self.console_errors})")  # fmt: skip

    def navigate(self, url: str) -> None:
        """Open ``url`` and wait for its document; the responses recorded from then on are this page's (the
        requests recorded are every page's)."""
        self.evaluate("window.leftBehind = true", strict=False)  # gone once the new document is loaded
        self.send("Page.navigate", {"url": url})
        self.wait_for("!window.leftBehind && document.readyState === 'complete'", what=f"{url} loaded")
        self.responses.clear()

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"]))


@pytest.fixture(scope="module")
def demo_root(demo_lakehouse: Path) -> Path:
    """The session's `satlake demo` root: the demo's scenes catalogued, COGs and all."""
    if missing_vendor_files():
        pytest.skip(f"the map page's libraries are not installed: {INSTALL_COMMAND}")
    return demo_lakehouse


def service_app(root: Path, host: str = "127.0.0.1") -> FastAPI:
    """The whole service of `satlake serve` over ``root`` (STAC API, tiles, map page), for a server bound to
    ``host``."""
    return build_service(Settings.from_env(environment(root)), host)


@pytest.fixture(scope="module")
def service(demo_root: Path) -> Iterator[Service]:
    """The service as `satlake serve` runs it on loopback over the demo's root (every collection is public)."""
    with served(service_app(demo_root)) as url:
        yield Service(url, demo_root)


@pytest.fixture(scope="module")
def keyed_service(demo_root: Path) -> Iterator[Service]:
    """The service as bound to a public address: anonymous requests read nothing, the science key everything."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ROLE_KEY_SECRETS[SCIENCE], SCIENCE_KEY)
        patch.delenv(PUBLIC_COLLECTIONS_SECRET, raising=False)
        app = service_app(demo_root, host="0.0.0.0")
    with served(app) as url:
        yield Service(url, demo_root)


def launch_chromium(profile: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("Debian's chromium is not installed (bash infra/install_chromium.sh)")
    # No name resolves but loopback's, so nothing could leave the machine even if the page tried (it is also
    # checked from the requests recorded below).
    return subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", f"--user-data-dir={profile}",
         f"--window-size={WINDOW[0]},{WINDOW[1]}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = launch_chromium(profile)
    try:
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
        while not port_file.is_file() or len(port_file.read_text().splitlines()) < 2:
            assert process.poll() is None and time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.2)
        port, path = port_file.read_text().splitlines()[:2]
        with connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=30) as connection:
            page = Browser(connection, session="")
            target = page.send("Target.createTarget", {"url": "about:blank"}, session=None)["targetId"]
            page.session = page.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                     session=None)["sessionId"]  # fmt: skip
            for domain in ("Network", "Page", "Runtime"):
                page.send(f"{domain}.enable")
            page.send("Emulation.setDeviceMetricsOverride",
                      {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False})  # fmt: skip
            yield page
    finally:
        process.terminate()
        process.wait(timeout=30)


def count(browser: Browser, selector: str) -> int:
    return browser.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length")


def items_listed(browser: Browser) -> list[dict[str, str]]:
    return browser.evaluate(
        "[...document.querySelectorAll('#items li')].map(li => ({id: li.dataset.itemId, "
        "collection: li.dataset.collection, offEarth: li.dataset.offEarth || '', text: li.textContent}))"
    )


def catalogued(service: Service, key: str | None = None) -> dict[str, dict[str, Any]]:
    """Every item of the service, from its own STAC search (what the page should show)."""
    headers = {"content-type": "application/json", **({"X-API-Key": key} if key else {})}
    request = urllib.request.Request(f"{service.url}/search", data=json.dumps({"limit": 1000}).encode(),
                                     headers=headers)  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        return {item["id"]: item for item in json.loads(response.read())["features"]}


def wait_ready(browser: Browser, condition: Callable[[], bool] | None = None) -> None:
    browser.wait_for("document.body.dataset.state === 'ready'", what="a finished search")
    if condition is not None:
        deadline = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < deadline, "the page did not settle"
            time.sleep(0.25)


def test_the_page_lists_every_item_and_draws_only_the_earth_footprints(service: Service, browser: Browser) -> None:
    items = catalogued(service)
    # 10 with the real Landsat scene the demo lands when ../shared/data/landsat8 is beside the checkout, else 9.
    assert MARS in items and SELECTED in items and len(items) >= 9
    browser.navigate(f"{service.url}/map")
    wait_ready(browser)

    listed = items_listed(browser)
    assert sorted(entry["id"] for entry in listed) == sorted(items)
    off_earth = [entry for entry in listed if entry["offEarth"]]
    # The synthetic Mars scene and the demo's rover photos and timelapses: every item of another body, no other.
    mars_items = sorted(i for i, item in items.items() if item["properties"].get("ssys:targets") == ["mars"])
    assert MARS in mars_items and sorted(entry["id"] for entry in off_earth) == mars_items
    assert "not drawn on the Earth map" in off_earth[0]["text"] and "mars" in off_earth[0]["text"].lower()
    # One footprint per Earth item, as SVG paths over the basemap drawn on a canvas.
    earth = len(items) - len(mars_items)
    assert count(browser, "path.footprint") == earth
    browser.wait_for("document.body.dataset.basemap === 'drawn'", what="the basemap")
    assert count(browser, ".leaflet-basemap-pane canvas") == 1
    assert f"{earth} drawn on the map" in browser.evaluate("document.getElementById('status').textContent")
    browser.screenshot(SCREENSHOTS / "map-search.png")
    assert (SCREENSHOTS / "map-search.png").stat().st_size > 20_000


def test_the_page_follows_the_next_links_of_the_search(service: Service, browser: Browser) -> None:
    before = len(browser.requests)
    browser.navigate(f"{service.url}/map?limit=3")
    wait_ready(browser)
    assert sorted(entry["id"] for entry in items_listed(browser)) == sorted(catalogued(service))
    searches = [url for url in browser.requests[before:] if urlparse(url).path == "/search"]
    assert len(searches) == -(-len(catalogued(service)) // 3)  # 3 items a page


def test_the_cloud_filter_re_runs_the_search(service: Service, browser: Browser) -> None:
    items = catalogued(service)
    covers = {i: item["properties"].get("eo:cloud_cover") for i, item in items.items()}
    clear = sorted(i for i, cover in covers.items() if cover is not None and cover <= 5)
    assert 0 < len(clear) < len(items) - 1
    browser.navigate(f"{service.url}/map")
    wait_ready(browser)
    browser.evaluate(
        "const slider = document.getElementById('cloud-max'); slider.value = 5;"
        "slider.dispatchEvent(new Event('change'))"
    )
    wait_ready(browser, lambda: len(items_listed(browser)) == len(clear))
    assert sorted(entry["id"] for entry in items_listed(browser)) == clear
    assert count(browser, "path.footprint") == len(clear)


def test_the_date_range_re_runs_the_search(service: Service, browser: Browser) -> None:
    in_may = sorted(
        i
        for i, item in catalogued(service).items()
        if (item["properties"]["datetime"] or item["properties"]["start_datetime"]).startswith("2024-05")
    )
    assert len(in_may) == 2
    browser.navigate(f"{service.url}/map")
    wait_ready(browser)
    browser.evaluate(
        "document.getElementById('date-from').value = '2024-05-01';"
        "const to = document.getElementById('date-to'); to.value = '2024-05-31';"
        "to.dispatchEvent(new Event('change'))"
    )
    wait_ready(browser, lambda: len(items_listed(browser)) == len(in_may))
    assert sorted(entry["id"] for entry in items_listed(browser)) == in_may
    assert count(browser, "path.footprint") == len(in_may)


# Every tile of the view loaded (Leaflet's "load" event of the item's tile layer).
TILES_LOADED = "document.body.dataset.tiles === 'loaded'"
# The mean colour of the drawn pixels of the selected item's loaded tiles (read back through a canvas).
TILE_COLOUR = """(() => {
  const sum = [0, 0, 0]; let n = 0;
  for (const tile of document.querySelectorAll('.item-tiles img.leaflet-tile-loaded')) {
    const canvas = document.createElement('canvas');
    canvas.width = tile.naturalWidth; canvas.height = tile.naturalHeight;
    const context = canvas.getContext('2d'); context.drawImage(tile, 0, 0);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4) if (data[i + 3] > 0) { sum[0] += data[i]; sum[1] += data[i + 1];
                                                                    sum[2] += data[i + 2]; n += 1; }
  }
  return n ? {r: sum[0] / n, g: sum[1] / n, b: sum[2] / n, n} : null;
})()"""


def test_clicking_a_footprint_on_the_map_selects_its_item(service: Service, browser: Browser) -> None:
    browser.navigate(f"{service.url}/map?from=2024-05-02&to=2024-05-02")
    wait_ready(browser)
    # Tile 0's scene was acquired for the demo's area of interest: its id carries its window's digest.
    listed = sorted(entry["id"] for entry in items_listed(browser))
    assert len(listed) == 2 and listed[0].startswith("sim_t00_20240502-") and listed[1] == "sim_t01_20240502"
    target = "sim_t01_20240502"
    box = browser.evaluate(
        f"(() => {{ const r = document.querySelector('path.footprint[data-item-id={json.dumps(target)}]')"
        ".getBoundingClientRect(); return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()"
    )
    for kind in ("mousePressed", "mouseReleased"):  # a real click of the mouse, where the footprint is drawn
        browser.send("Input.dispatchMouseEvent", {"type": kind, "x": box["x"], "y": box["y"], "button": "left",
                                                  "clickCount": 1})  # fmt: skip
    browser.wait_for(f"document.body.dataset.selected === {json.dumps(target)}", what="the clicked item selected")
    assert browser.evaluate("document.querySelector('#items li.selected').dataset.itemId") == target


def test_the_ndvi_rendering_draws_the_forest_green(service: Service, browser: Browser) -> None:
    browser.navigate(f"{service.url}/map?item={SELECTED}&render=ndvi")
    wait_ready(browser)
    browser.wait_for(TILES_LOADED, timeout=90, what="the NDVI tiles")
    tiles = {url: status for url, status in browser.responses.items() if "render=ndvi" in url and "/tiles/" in url}
    assert tiles and set(tiles.values()) == {200}, tiles
    colour = browser.evaluate(TILE_COLOUR)
    # The synthetic scene is mostly forest: NDVI's red-yellow-green colour map draws it green.
    assert colour is not None and colour["n"] > 10_000 and colour["g"] > colour["r"] and colour["g"] > colour["b"]


def test_selecting_an_item_shows_its_properties_and_draws_its_tiles(service: Service, browser: Browser) -> None:
    browser.navigate(f"{service.url}/map")
    wait_ready(browser)
    browser.evaluate(f"document.querySelector('#items li[data-item-id={json.dumps(SELECTED)}]').click()")
    browser.wait_for(TILES_LOADED, timeout=90, what="the selected item's tiles")
    assert count(browser, ".item-tiles img.leaflet-tile-loaded") >= 1
    assert browser.evaluate("document.body.dataset.tileErrors || '0'") == "0"
    tiles = {url: status for url, status in browser.responses.items() if "/tiles/WebMercatorQuad/" in url}
    assert tiles and set(tiles.values()) == {200}, tiles
    assert all(f"/items/{SELECTED}/" in url and "render=truecolor" in url for url in tiles)
    colour = browser.evaluate(TILE_COLOUR)
    assert colour is not None and colour["n"] > 10_000
    properties = browser.evaluate("document.getElementById('properties').textContent")
    assert "eo:cloud_cover" in properties and "satlake-sim" in properties and "2024-05-02" in properties
    assert browser.evaluate("document.getElementById('details-title').textContent") == SELECTED
    browser.wait_for("!document.getElementById('quicklook').hidden", what="the quicklook")
    time.sleep(1)  # the last tiles fade in
    browser.screenshot(SCREENSHOTS / "map.png")
    assert (SCREENSHOTS / "map.png").stat().st_size > 50_000


def test_a_quick_second_selection_leaves_only_its_own_tiles(service: Service, browser: Browser) -> None:
    browser.navigate(f"{service.url}/map")
    wait_ready(browser)
    first, second = "sim_t01_20240830", SELECTED
    browser.evaluate(
        f"document.querySelector('#items li[data-item-id={json.dumps(first)}]').click();"
        f"document.querySelector('#items li[data-item-id={json.dumps(second)}]').click()"
    )
    browser.wait_for(TILES_LOADED, timeout=90, what="the second item's tiles")
    time.sleep(2)  # room for the first item's TileJSON to arrive late
    assert count(browser, ".item-tiles") == 1
    sources = browser.evaluate("[...document.querySelectorAll('.item-tiles img')].map(tile => tile.src)")
    assert sources and all(f"/items/{second}/" in source for source in sources)
    assert browser.evaluate("document.getElementById('details-title').textContent") == second


def test_the_mars_item_is_listed_and_never_drawn_on_earth(service: Service, browser: Browser) -> None:
    browser.navigate(f"{service.url}/map?item={MARS}")
    wait_ready(browser)
    browser.wait_for(f"document.body.dataset.selected === {json.dumps(MARS)}", what="the Mars item selected")
    note = browser.wait_for("document.getElementById('details-note').textContent", what="the Mars note")
    assert "never drawn on the Earth map" in note
    # Its quicklook is titiler's preview in its own CRS, beside the map.
    assert browser.evaluate("document.getElementById('quicklook').hidden") is False
    browser.screenshot(SCREENSHOTS / "map-mars.png")
    assert count(browser, ".item-tiles") == 0
    assert not any(f"/items/{MARS}/tiles/" in url or f"/items/{MARS}/WebMercatorQuad" in url
                   for url in browser.requests)  # fmt: skip


def test_with_a_role_key_the_page_searches_and_tiles_a_closed_service(keyed_service: Service, browser: Browser) -> None:
    browser.navigate(f"{keyed_service.url}/map")
    browser.wait_for("document.body.dataset.state === 'error'", what="the anonymous search refused")
    status = browser.evaluate("document.getElementById('status').textContent")
    assert "401" in status and "API key" in status and count(browser, "#items li") == 0

    browser.evaluate(
        f"document.getElementById('api-key').value = {json.dumps(SCIENCE_KEY)};"
        "document.getElementById('search-button').click()"
    )
    total = len(catalogued(keyed_service, key=SCIENCE_KEY))
    wait_ready(browser, lambda: len(items_listed(browser)) == total)
    browser.evaluate(f"document.querySelector('#items li[data-item-id={json.dumps(SELECTED)}]').click()")
    # Tiles fetched with the key's header and shown from blob: URLs (an <img> cannot send a header).
    browser.wait_for(TILES_LOADED, timeout=90,
                     what="the selected item's tiles, fetched with the key")  # fmt: skip
    assert browser.evaluate(
        "[...document.querySelectorAll('.item-tiles img.leaflet-tile-loaded')].every(t => t.src.startsWith('blob:'))"
    )
    assert browser.evaluate(TILE_COLOUR)["n"] > 10_000


def test_no_request_left_the_machine(service: Service, browser: Browser) -> None:
    browser.navigate(f"{service.url}/map?item={SELECTED}")
    wait_ready(browser)
    browser.wait_for(TILES_LOADED, timeout=90, what="the selected item's tiles")
    # Every request of every page this module opened: the services on loopback, or the page's own blob:/data:.
    outside = [url for url in browser.requests
               if urlparse(url).scheme not in ("data", "blob") and urlparse(url).hostname != "127.0.0.1"]  # fmt: skip
    assert outside == []
    assert any(url.endswith("/map/vendor/world-atlas/countries-50m.json") for url in browser.requests)
    assert browser.console_errors == []


def test_without_its_libraries_the_page_says_what_to_run(tmp_path: Path) -> None:
    for name in ("index.html", *PAGE_FILES):
        shutil.copy(MAP_DIR / name, tmp_path / name)
    app = FastAPI()
    app.include_router(map_router(tmp_path))
    client = TestClient(app)

    page = client.get("/map", headers={"accept": "text/html"})
    assert page.status_code == 503 and "run bash infra/install_map_assets.sh" in page.text
    library = client.get("/map/vendor/leaflet/leaflet.js")
    assert library.status_code == 503
    assert library.json()["code"] == "MapAssetsMissing" and INSTALL_COMMAND in library.json()["description"]
    assert client.get("/map/app.js").status_code == 200  # the page's own files do not depend on npm

    if missing_vendor_files():
        pytest.skip(f"the map page's libraries are not installed: {INSTALL_COMMAND}")
    shutil.copytree(MAP_DIR / "vendor", tmp_path / "vendor")
    assert client.get("/map").status_code == 200
    assert client.get("/map/vendor/leaflet/leaflet.js").headers["content-type"].startswith("text/javascript")
    for outside in ("/map/vendor/../index.html", "/map/vendor/%2e%2e/%2e%2e/map_page.py", "/map/vendor/.lock-sha256",
                    "/map/package.json", "/map/vendor/leaflet/LICENSE"):  # fmt: skip
        assert client.get(outside).status_code == 404, outside
