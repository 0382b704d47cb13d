#!/usr/bin/env bash
# Start, stop or inspect the native stack (Kafka, MinIO, Trino) without Docker:
#   infra/stack.sh up [--servers kafka,minio,trino] | down | status [--json] | install
# Same as `satlake stack …`; see docs/stack.md for ports, logs and troubleshooting.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m satlake.stack "$@"
