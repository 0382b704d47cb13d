#!/usr/bin/env bash
# Install satlake (and the map page's libraries), then run the main job on the embedded default: `satlake demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e .
# The map page of `satlake serve` (Leaflet and an offline basemap from npm); the demo itself does not need it.
bash infra/install_map_assets.sh || echo "warning: the map page's libraries are not installed; /map will say how"
python3 -m satlake demo "$@"
