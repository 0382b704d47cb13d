// satlake's map page: runs a STAC item search (POST /search of this service) with the date and cloud filters,
// draws the Earth footprints over an offline basemap (world-atlas coastlines and borders), lists every item,
// and shows the selected item's properties, its quicklook and its titiler tiles. Items of another body are
// listed and never drawn on this Earth map. Nothing is fetched from anywhere but this service.
"use strict";

const MAX_ITEMS = 1000; // search pages followed by their `next` links, up to this many items
const PAGE_SIZE = 200; // items a search page asks for; `?limit=N` in the page's URL sets another
const BASEMAP_URL = "map/vendor/world-atlas/countries-50m.json";
const api = (path) => new URL(path, document.baseURI).toString();
const itemPath = (item) =>
  `collections/${encodeURIComponent(item.collection)}/items/${encodeURIComponent(item.id)}`;
// 256-pixel tiles: Leaflet's own tile size, so titiler's z/x/y are the map's.
const TILEJSON_URL = (item, render) =>
  api(`${itemPath(item)}/WebMercatorQuad/tilejson.json?render=${render}&tilesize=256`);
const PREVIEW_URL = (item, render) =>
  api(`${itemPath(item)}/preview.png?max_size=512${render ? `&render=${render}` : ""}`);
const SHOWN_PROPERTIES = ["datetime", "platform", "instruments", "eo:cloud_cover", "gsd", "proj:code",
                          "ssys:targets", "created", "updated"];

const $ = (id) => document.getElementById(id);
const state = { items: [], selected: null, selection: 0, tiles: null, footprints: new Map(), tileErrors: 0,
                tilesLoaded: 0 };

const map = L.map("map", { worldCopyJump: true, minZoom: 1 }).setView([20, 0], 2);
// The basemap lies under the item's tiles (tile pane, z-index 200), the footprints over them (overlay pane).
map.createPane("basemap").style.zIndex = 150;
const footprintLayer = L.featureGroup().addTo(map);

function setStatus(text, mode) {
  $("status").textContent = text;
  document.body.dataset.state = mode;
}

function apiHeaders(extra) {
  const key = $("api-key").value.trim();
  return key ? { ...extra, "X-API-Key": key } : { ...extra };
}

async function fetchJson(url, init) {
  const response = await fetch(url, { ...init, headers: apiHeaders(init && init.headers) });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = body && (body.description || body.detail || body.message);
    throw new Error(`${response.status} ${detail ? JSON.stringify(detail) : response.statusText}`);
  }
  return body;
}

// Whether an item is on Earth: STAC's ssys:targets names its body; an item without a target is an Earth item
// only if it has a geometry (items of other bodies carry none in geographic coordinates).
function isEarthItem(item) {
  const targets = (item.properties || {})["ssys:targets"];
  if (Array.isArray(targets) && targets.length > 0) {
    return targets.some((target) => String(target).toLowerCase() === "earth") && item.geometry !== null;
  }
  return item.geometry !== null && item.geometry !== undefined;
}

function bodyOf(item) {
  const targets = (item.properties || {})["ssys:targets"];
  return Array.isArray(targets) && targets.length > 0 ? targets.join(", ") : "another body";
}

// world-atlas rings cross the antimeridian as a jump from +180 to -180, which Leaflet would draw as a band across
// the whole world: unwrap their longitudes so they continue past 180 instead. A ring around a pole (Antarctica)
// cannot be unwrapped and is kept as it is.
function unwrapRing(ring) {
  let shift = 0;
  const unwrapped = ring.map(([lon, lat], i) => {
    const step = i > 0 ? lon - ring[i - 1][0] : 0;
    if (step > 180) shift -= 360;
    else if (step < -180) shift += 360;
    return [lon + shift, lat];
  });
  return Math.abs(unwrapped[unwrapped.length - 1][0] - unwrapped[0][0]) > 180 ? ring : unwrapped;
}

function splitAtAntimeridian(line) {
  const parts = [[line[0]]];
  for (let i = 1; i < line.length; i++) {
    if (Math.abs(line[i][0] - line[i - 1][0]) > 180) parts.push([]);
    parts[parts.length - 1].push(line[i]);
  }
  return parts.filter((part) => part.length > 1);
}

function landOf(world) {
  const land = topojson.feature(world, world.objects.land);
  for (const feature of land.features || [land]) {
    const geometry = feature.geometry;
    const polygons = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
    feature.geometry = { type: "MultiPolygon", coordinates: polygons.map((rings) => rings.map(unwrapRing)) };
  }
  return land;
}

function bordersOf(world) {
  const mesh = topojson.mesh(world, world.objects.countries, (a, b) => a !== b);
  const lines = mesh.type === "LineString" ? [mesh.coordinates] : mesh.coordinates;
  return { type: "MultiLineString", coordinates: lines.flatMap(splitAtAntimeridian) };
}

async function drawBasemap() {
  const world = await fetchJson(api(BASEMAP_URL));
  const canvas = L.canvas({ padding: 0.5, pane: "basemap" });
  L.geoJSON(landOf(world), {
    renderer: canvas, interactive: false, pane: "basemap",
    attribution: "coastlines and borders: Natural Earth via world-atlas",
    style: { color: "#6f7f8f", weight: 0.8, fillColor: "#f2efe6", fillOpacity: 1 },
  }).addTo(map);
  L.geoJSON(bordersOf(world), {
    renderer: canvas, interactive: false, pane: "basemap", style: { color: "#9a8f7f", weight: 0.6, dashArray: "3 2" },
  }).addTo(map);
  document.body.dataset.basemap = "drawn";
}

// The map's view as a STAC bbox: longitudes wrapped into [-180, 180], so a view across the antimeridian gives
// west > east as STAC allows; a view wider than the world is the whole world.
function viewBbox() {
  const view = map.getBounds();
  const south = Math.max(view.getSouth(), -90);
  const north = Math.min(view.getNorth(), 90);
  if (view.getEast() - view.getWest() >= 360) return [-180, south, 180, north];
  const wrap = (lon) => L.Util.wrapNum(lon, [-180, 180], true);
  return [wrap(view.getWest()), south, wrap(view.getEast()), north];
}

function searchBody() {
  const limit = Number(new URLSearchParams(location.search).get("limit"));
  const body = { limit: Number.isInteger(limit) && limit > 0 ? limit : PAGE_SIZE };
  const from = $("date-from").value;
  const to = $("date-to").value;
  if (from || to) body.datetime = `${from ? `${from}T00:00:00Z` : ".."}/${to ? `${to}T23:59:59Z` : ".."}`;
  const cloud = Number($("cloud-max").value);
  if (cloud < 100) {
    body["filter-lang"] = "cql2-json";
    body.filter = { op: "<=", args: [{ property: "eo:cloud_cover" }, cloud] };
  }
  if ($("in-view").checked) body.bbox = viewBbox();
  return body;
}

// All pages of one search, following the `next` links as STAC API Item Search gives them (GET or POST).
async function searchAll(body) {
  const items = [];
  let page = await fetchJson(api("search"), {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  for (;;) {
    items.push(...page.features);
    const next = (page.links || []).find((link) => link.rel === "next");
    if (!next || items.length >= MAX_ITEMS) return { items, truncated: Boolean(next) };
    if ((next.method || "GET").toUpperCase() === "POST") {
      const nextBody = next.merge ? { ...body, ...next.body } : next.body || body;
      page = await fetchJson(next.href, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(nextBody),
      });
    } else {
      page = await fetchJson(next.href);
    }
  }
}

function listEntry(item) {
  const entry = document.createElement("li");
  entry.dataset.itemId = item.id;
  entry.dataset.collection = item.collection;
  const cloud = item.properties["eo:cloud_cover"];
  const title = document.createElement("div");
  title.textContent = item.id;
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = [item.collection, (item.properties.datetime || "").slice(0, 10),
                      cloud === undefined || cloud === null ? "" : `${Math.round(cloud)} % cloud`]
    .filter(Boolean).join(" · ");
  entry.append(title, meta);
  if (!isEarthItem(item)) {
    entry.dataset.offEarth = "true";
    const note = document.createElement("div");
    note.className = "off-earth";
    note.textContent = `${bodyOf(item)}: not drawn on the Earth map`;
    entry.append(note);
  }
  entry.addEventListener("click", () => selectItem(item));
  return entry;
}

function showResults(items) {
  footprintLayer.clearLayers();
  state.footprints.clear();
  const list = $("items");
  list.replaceChildren(...items.map(listEntry));
  for (const item of items.filter(isEarthItem)) {
    const footprint = L.geoJSON(item, {
      style: { color: "#0b57d0", weight: 2, fillOpacity: 0.08, className: "footprint" },
    });
    footprint.on("click", () => selectItem(item));
    footprint.bindTooltip(item.id);
    footprint.addTo(footprintLayer);
    footprint.eachLayer((shape) => { shape.getElement().dataset.itemId = item.id; });
    state.footprints.set(item.id, footprint);
  }
  highlightSelected();
  if (footprintLayer.getLayers().length > 0 && !$("in-view").checked) {
    // Without animation: a selection right after a search must not race the search's zoom.
    map.fitBounds(footprintLayer.getBounds(), { maxZoom: 9, padding: [20, 20], animate: false });
  }
}

async function runSearch() {
  setStatus("Searching…", "loading");
  try {
    const { items, truncated } = await searchAll(searchBody());
    items.sort((a, b) => String(b.properties.datetime).localeCompare(String(a.properties.datetime)));
    state.items = items;
    showResults(items);
    const drawn = items.filter(isEarthItem).length;
    setStatus(`${items.length} items${truncated ? ` (the first ${items.length})` : ""}, ${drawn} drawn on the map`,
              "ready");
    const wanted = new URLSearchParams(location.search).get("item");
    const preselected = items.find((item) => item.id === wanted);
    if (preselected && !state.selected) selectItem(preselected);
  } catch (error) {
    state.items = [];
    showResults([]);
    setStatus(`Search failed: ${error.message}`, "error");
  }
}

function showProperties(item) {
  const rows = [["collection", item.collection]];
  for (const name of SHOWN_PROPERTIES) {
    if (item.properties[name] !== undefined) rows.push([name, item.properties[name]]);
  }
  for (const [name, value] of Object.entries(item.properties)) {
    if (!SHOWN_PROPERTIES.includes(name) && !name.startsWith("proj:")) rows.push([name, value]);
  }
  rows.push(["assets", Object.keys(item.assets || {}).join(", ")]);
  const body = $("properties").tBodies[0];
  body.replaceChildren(...rows.map(([name, value]) => {
    const row = document.createElement("tr");
    const key = document.createElement("th");
    const cell = document.createElement("td");
    key.textContent = name;
    cell.textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
    row.append(key, cell);
    return row;
  }));
}

function highlightSelected() {
  for (const [id, footprint] of state.footprints) {
    footprint.setStyle(state.selected && id === state.selected.id ? { color: "#e8710a", weight: 3, fillOpacity: 0 }
                                                                  : { color: "#0b57d0", weight: 2, fillOpacity: 0.08 });
  }
}

function clearTiles() {
  if (state.tiles) map.removeLayer(state.tiles);
  delete document.body.dataset.tiles;
  state.tiles = null;
  state.tilesLoaded = 0;
  state.tileErrors = 0;
}

// A tile layer from the item's TileJSON. With an API key the tiles are fetched with its header (an <img> cannot
// send one) and shown from blob: URLs, still from this service only.
function tileLayerFrom(tilejson) {
  const options = { minZoom: tilejson.minzoom, maxZoom: 22, maxNativeZoom: tilejson.maxzoom, className: "item-tiles",
                    bounds: tilejson.bounds && L.latLngBounds([tilejson.bounds[1], tilejson.bounds[0]],
                                                              [tilejson.bounds[3], tilejson.bounds[2]]) };
  if (!$("api-key").value.trim()) return L.tileLayer(tilejson.tiles[0], options);
  const KeyedTiles = L.TileLayer.extend({
    createTile(coords, done) {
      const tile = document.createElement("img");
      fetch(this.getTileUrl(coords), { headers: apiHeaders() })
        .then((response) => (response.ok ? response.blob() : Promise.reject(new Error(String(response.status)))))
        .then((blob) => { tile.onload = () => done(null, tile); tile.src = URL.createObjectURL(blob); })
        .catch((error) => done(error, tile));
      return tile;
    },
  });
  const layer = new KeyedTiles(tilejson.tiles[0], options);
  layer.on("tileunload", (event) => URL.revokeObjectURL(event.tile.src));
  return layer;
}

// The selected item's tiles, unless another item was selected while its TileJSON was on its way.
async function showTiles(item, render, selection) {
  clearTiles();
  const tilejson = await fetchJson(TILEJSON_URL(item, render));
  if (selection !== state.selection) return;
  const layer = tileLayerFrom(tilejson);
  layer.on("tileload", () => { state.tilesLoaded += 1; document.body.dataset.tilesLoaded = state.tilesLoaded; });
  layer.on("tileerror", () => { state.tileErrors += 1; document.body.dataset.tileErrors = state.tileErrors; });
  layer.on("loading", () => { document.body.dataset.tiles = "loading"; });
  layer.on("load", () => { document.body.dataset.tiles = "loaded"; }); // every tile of the view
  state.tiles = layer.addTo(map);
}

async function showQuicklook(item, render, selection) {
  const image = $("quicklook");
  const response = await fetch(PREVIEW_URL(item, render), { headers: apiHeaders() });
  if (selection !== state.selection) return "";
  if (!response.ok) {
    image.hidden = true;
    const body = await response.json().catch(() => null);
    return body && (body.detail || body.description) ? String(body.detail || body.description) : "";
  }
  const blob = await response.blob();
  if (selection !== state.selection) return "";
  if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
  image.src = URL.createObjectURL(blob);
  image.hidden = false;
  return "";
}

async function selectItem(item) {
  state.selected = item;
  state.selection += 1;
  const selection = state.selection;
  document.body.dataset.selected = item.id;
  for (const entry of $("items").children) entry.classList.toggle("selected", entry.dataset.itemId === item.id);
  $("details").hidden = false;
  $("details-title").textContent = item.id;
  showProperties(item);
  highlightSelected();
  const earth = isEarthItem(item);
  const chosen = $("render").value;
  const render = chosen === "quicklook" ? "" : chosen; // no render: the item's first rendering
  const notes = [];
  clearTiles();
  if (earth) {
    map.fitBounds(state.footprints.get(item.id).getBounds(), { maxZoom: 14, padding: [30, 30], animate: false });
    if (chosen !== "quicklook") {
      try {
        await showTiles(item, render, selection);
      } catch (error) {
        notes.push(`No tiles: ${error.message}`);
      }
    }
  } else {
    notes.push(`This item is on ${bodyOf(item)}: it is never drawn on the Earth map.`);
  }
  const refused = await showQuicklook(item, earth ? render : "", selection);
  if (selection !== state.selection) return; // another item was selected meanwhile: its notes stand
  if (refused) notes.push(`No quicklook: ${refused}`);
  $("details-note").textContent = notes.join(" ");
}

function readFiltersFromUrl() {
  const query = new URLSearchParams(location.search);
  if (query.get("from")) $("date-from").value = query.get("from");
  if (query.get("to")) $("date-to").value = query.get("to");
  if (query.get("cloud")) $("cloud-max").value = query.get("cloud");
  if (query.get("render")) $("render").value = query.get("render");
  $("cloud-value").textContent = $("cloud-max").value;
}

$("cloud-max").addEventListener("input", () => { $("cloud-value").textContent = $("cloud-max").value; });
$("filters").addEventListener("submit", (event) => { event.preventDefault(); runSearch(); });
for (const id of ["date-from", "date-to", "cloud-max", "in-view"]) $(id).addEventListener("change", runSearch);
$("render").addEventListener("change", () => { if (state.selected) selectItem(state.selected); });

readFiltersFromUrl();
drawBasemap().catch((error) => setStatus(`Basemap failed: ${error.message}`, "error"));
runSearch();
