#!/usr/bin/env bash
# Install satlake, then run the main job on the embedded default: `satlake demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e .
python3 -m satlake demo "$@"
