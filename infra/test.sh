#!/usr/bin/env bash
# Install satlake with its test tools, install (once, cached in ~/.cache/satlake/servers) the native Kafka,
# MinIO and Trino the integration tests start, then run the whole test suite: unit, reliability, Dagster,
# end-to-end and integration tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
# A cold install downloads Trino and builds MinIO (10-20 minutes once); the test fixture reports and skips
# the integration tests only if a build tool is missing altogether.
python3 -m satlake.stack install || echo "warning: the native stack could not be installed; see the message above"
# The pgstac peer of the catalog-search benchmark (PostgreSQL + PostGIS from apt-get, pypgstac from pip; about a
# second once installed); without it the benchmark's smoke test runs satlake alone and reports the peer skipped.
bash bench/peers/install_pgstac.sh || echo "warning: pgstac peer not installed; its smoke test will skip"
# The GDAL peer of the COG benchmark (gdal-bin from apt-get), whose smoke test checks satlake's COGs against
# gdal_translate's pixel for pixel, every overview level included.
bash bench/peers/install_gdal.sh || echo "warning: gdal_translate not installed; the COG peer's smoke test will skip"
# The map page's browser libraries (Leaflet, the world-atlas basemap) from npm, into the package.
bash infra/install_map_assets.sh
# Debian's chromium, for the tests that open the UI's pages in a real browser (they skip, saying so, without it).
bash infra/install_chromium.sh || echo "warning: chromium not installed; the browser tests will skip"
# The Compose Specification's own loader (compose-go, built from the Go module proxy), so the docker-compose.yml
# tests run `config` on the file without Docker.
bash infra/install_compose_checker.sh
python3 -m pytest --durations=30 "$@"
