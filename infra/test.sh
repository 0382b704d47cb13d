#!/usr/bin/env bash
# Install satlake with its test tools, then run the whole test suite (unit, integration against real Kafka,
# MinIO and Trino started natively by the session fixture, and end-to-end CLI tests).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
python3 -m pytest "$@"
