#!/usr/bin/env bash
# Install Debian's chromium for the tests that open satlake's pages in a real, headless browser (the Dagster UI's
# asset pages, with screenshots in docs/images/). Idempotent: when chromium is on the PATH it does nothing.
set -euo pipefail
# shellcheck source=bench/peers/apt_install.sh
source "$(dirname "$0")/../bench/peers/apt_install.sh"

if ! command -v chromium >/dev/null; then
  apt_install install_chromium chromium
fi
chromium --headless --version 2>/dev/null || chromium --version
