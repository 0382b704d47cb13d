"""The map page (/map of `satlake serve`) as a user meets it, in a real headless Chromium driven over the DevTools
protocol, against the real service (`build_app`) over the demo's lakehouse: the page lists the search's items and
draws their Earth footprints over the offline basemap, never draws the Mars scene, re-runs the search when the
cloud filter changes, draws the titiler tiles of a selected item, and loads nothing from outside this machine.
A screenshot goes to docs/images/map.png."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from websockets.sync.client import ClientConnection, connect

from satlake.serving.map_page import INSTALL_COMMAND, MAP_DIR, PAGE_FILES, map_router, missing_vendor_files
from satlake.serving.server import build_app, get_item
from satlake.serving.tiles import tiles_router
from satlake.settings import Settings
from tests.e2e.test_ui import free_port
from tests.e2e.test_ui_after_demo import environment

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "images"
SELECTED = "sim_t00_20240502"  # a clear synthetic scene with red, green, blue and NDVI assets
MARS = "sim_mars_gale"
WINDOW = (1400, 900)


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
        self.send("Page.navigate", {"url": url})

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"]))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`build_app` over the lakehouse of `satlake demo` in a fresh root, served by uvicorn on a free port."""
    if missing_vendor_files():
        pytest.skip(f"the map page's libraries are not installed: {INSTALL_COMMAND}")
    root = tmp_path_factory.mktemp("map-page")
    demo = subprocess.run([sys.executable, "-m", "satlake", "demo"], env=environment(root), cwd=REPO,
                          capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]

    settings = Settings.from_env(environment(root))
    app = build_app(settings, routers=[tiles_router(get_item, settings), map_router()])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.1)
    yield Service(f"http://127.0.0.1:{port}", root)
    server.should_exit = True
    thread.join(timeout=30)


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


def catalogued(service: Service) -> dict[str, dict[str, Any]]:
    """Every item of the service, from its own STAC search (what the page should show)."""
    request = urllib.request.Request(f"{service.url}/search", data=json.dumps({"limit": 1000}).encode(),
                                     headers={"content-type": "application/json"})  # fmt: skip
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
    assert MARS in items and SELECTED in items and len(items) == 10
    browser.navigate(f"{service.url}/map")
    wait_ready(browser)

    listed = items_listed(browser)
    assert sorted(entry["id"] for entry in listed) == sorted(items)
    off_earth = [entry for entry in listed if entry["offEarth"]]
    assert [entry["id"] for entry in off_earth] == [MARS]
    assert "not drawn on the Earth map" in off_earth[0]["text"] and "mars" in off_earth[0]["text"].lower()
    # One footprint per Earth item, as SVG paths over the basemap drawn on a canvas.
    assert count(browser, "path.footprint") == len(items) - 1
    browser.wait_for("document.body.dataset.basemap === 'drawn'", what="the basemap")
    assert count(browser, ".leaflet-basemap-pane canvas") == 1
    assert "9 drawn on the map" in browser.evaluate("document.getElementById('status').textContent")
    browser.screenshot(SCREENSHOTS / "map-search.png")
    assert (SCREENSHOTS / "map-search.png").stat().st_size > 20_000


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


def test_selecting_an_item_shows_its_properties_and_draws_its_tiles(service: Service, browser: Browser) -> None:
    browser.navigate(f"{service.url}/map")
    wait_ready(browser)
    browser.evaluate(f"document.querySelector('#items li[data-item-id={json.dumps(SELECTED)}]').click()")
    loaded = browser.wait_for("document.querySelectorAll('.item-tiles img.leaflet-tile-loaded').length",
                              timeout=90, what="the selected item's tiles")  # fmt: skip
    assert loaded >= 1
    assert browser.evaluate("document.body.dataset.tileErrors || '0'") == "0"
    tiles = {url: status for url, status in browser.responses.items() if "/tiles/WebMercatorQuad/" in url}
    assert tiles and set(tiles.values()) == {200}, tiles
    assert all(f"/items/{SELECTED}/" in url and "render=truecolor" in url for url in tiles)
    properties = browser.evaluate("document.getElementById('properties').textContent")
    assert "eo:cloud_cover" in properties and "satlake-sim" in properties and "2024-05-02" in properties
    assert browser.evaluate("document.getElementById('details-title').textContent") == SELECTED
    browser.wait_for("!document.getElementById('quicklook').hidden", what="the quicklook")
    time.sleep(1)  # the last tiles fade in
    browser.screenshot(SCREENSHOTS / "map.png")
    assert (SCREENSHOTS / "map.png").stat().st_size > 50_000


def test_the_mars_item_is_listed_and_never_drawn_on_earth(service: Service, browser: Browser) -> None:
    browser.navigate(f"{service.url}/map?item={MARS}")
    wait_ready(browser)
    browser.wait_for(f"document.body.dataset.selected === {json.dumps(MARS)}", what="the Mars item selected")
    note = browser.wait_for("document.getElementById('details-note').textContent", what="the Mars note")
    assert "never drawn on the Earth map" in note
    assert count(browser, ".item-tiles") == 0
    assert not any(f"/items/{MARS}/tiles/" in url or f"/items/{MARS}/WebMercatorQuad" in url
                   for url in browser.requests)  # fmt: skip


def test_no_request_left_the_machine(service: Service, browser: Browser) -> None:
    browser.navigate(f"{service.url}/map?item={SELECTED}")
    wait_ready(browser)
    browser.wait_for("document.querySelectorAll('.item-tiles img.leaflet-tile-loaded').length", timeout=90,
                     what="the selected item's tiles")  # fmt: skip
    outside = [url for url in browser.requests
               if urlparse(url).scheme not in ("data", "blob") and not url.startswith(service.url + "/")]  # fmt: skip
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
