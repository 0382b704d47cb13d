#!/usr/bin/env bash
# Install the browser libraries of satlake's map page (/map of `satlake serve`) and API docs page from npm into
# satlake/serving/map/vendor/: Leaflet (the map), topojson-client and world-atlas (an offline basemap of
# coastlines and borders), so the page loads nothing from the internet. `npm ci` runs on the committed
# package-lock.json in a cache (~/.cache/satlake/map-npm, or $SATLAKE_MAP_NPM_CACHE); only the files the page
# uses are copied. Idempotent: when vendor/ already holds the files of this lock file, it does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

map_dir=satlake/serving/map
vendor="$map_dir/vendor"
cache="${SATLAKE_MAP_NPM_CACHE:-$HOME/.cache/satlake/map-npm}"
stamp="$vendor/.lock-sha256"
lock_sha=$(sha256sum "$map_dir/package-lock.json" | cut -d' ' -f1)

if [[ -f "$stamp" && "$(cat "$stamp")" == "$lock_sha" ]]; then
  echo "map page assets up to date in $vendor"
  exit 0
fi

if ! command -v npm >/dev/null; then
  echo "error: npm is not installed; install Node.js and npm (e.g. apt-get install npm), then run bash $0" >&2
  exit 1
fi

mkdir -p "$cache"
cp "$map_dir/package.json" "$map_dir/package-lock.json" "$cache/"
echo "installing the map page's libraries with npm ci (in $cache)"
(cd "$cache" && npm ci --prefer-offline --ignore-scripts --no-audit --no-fund --loglevel=error)

modules="$cache/node_modules"
staging="$vendor.partial"
rm -rf "$staging"
mkdir -p "$staging/leaflet/images" "$staging/topojson-client" "$staging/world-atlas" "$staging/swagger-ui"
cp "$modules/leaflet/dist/leaflet.js" "$modules/leaflet/dist/leaflet.css" "$modules/leaflet/LICENSE" \
  "$staging/leaflet/"
cp "$modules/leaflet/dist/images/"*.png "$staging/leaflet/images/"
cp "$modules/topojson-client/dist/topojson-client.min.js" "$modules/topojson-client/LICENSE" \
  "$staging/topojson-client/"
cp "$modules/world-atlas/countries-50m.json" "$modules/world-atlas/LICENSE" "$staging/world-atlas/"
# Swagger UI for the API's /api.html (FastAPI's page would load it from a CDN).
cp "$modules/swagger-ui-dist/swagger-ui-bundle.js" "$modules/swagger-ui-dist/swagger-ui.css" \
  "$modules/swagger-ui-dist/favicon-32x32.png" "$modules/swagger-ui-dist/LICENSE" "$staging/swagger-ui/"
echo "$lock_sha" >"$staging/.lock-sha256"
# Swap in whole, so a page served meanwhile never sees half a vendor folder.
rm -rf "$vendor"
mv "$staging" "$vendor"
echo "map page assets installed in $vendor"
