#!/usr/bin/env bash
# Install the peer of bench/cog.py: GDAL's command-line tools (gdal_translate with GDAL's own COG driver) from the
# distribution's packages. Idempotent: when gdal_translate is on the PATH it does nothing.
set -euo pipefail
# shellcheck source=bench/peers/apt_install.sh
source "$(dirname "$0")/apt_install.sh"

if ! command -v gdal_translate >/dev/null; then
  apt_install install_gdal gdal-bin
fi
gdal_translate --version
