#!/usr/bin/env bash
# Build the Compose file checker (infra/compose-checker: the Compose Specification's reference loader,
# github.com/compose-spec/compose-go/v2, pinned in its go.mod) from the Go module proxy, so docker-compose.yml is
# validated (`compose-checker -f docker-compose.yml config`) on machines without `docker compose`.
# The binary goes to ~/.cache/satlake/compose-checker/<sha of the sources>/compose-checker (or under
# $SATLAKE_COMPOSE_CHECKER_CACHE); idempotent: when the binary of these sources exists, nothing is built.
# The last line printed is the binary's path.
set -euo pipefail
cd "$(dirname "$0")/compose-checker"

cache="${SATLAKE_COMPOSE_CHECKER_CACHE:-$HOME/.cache/satlake/compose-checker}"
sources_sha=$(cat go.mod go.sum main.go | sha256sum | cut -c1-16)
binary="$cache/$sources_sha/compose-checker"

if [[ -x "$binary" ]]; then
  echo "$binary"
  exit 0
fi

go_bin=$(command -v go || true)
if [[ -z "$go_bin" && -x /usr/local/go/bin/go ]]; then
  go_bin=/usr/local/go/bin/go
fi
if [[ -z "$go_bin" ]]; then
  echo "error: Go is not installed; install Go 1.24 or newer (https://go.dev/doc/install), then run bash $0" >&2
  exit 1
fi

mkdir -p "$cache/$sources_sha"
echo "building the Compose checker (compose-go $(grep 'compose-spec/compose-go' go.mod | awk '{print $NF}')) into $cache" >&2
# GOTOOLCHAIN=local: build with the installed Go, never download another toolchain; -mod=readonly: go.sum pins
# every module.
GOTOOLCHAIN=local "$go_bin" build -mod=readonly -trimpath -o "$binary.partial" . >&2
mv "$binary.partial" "$binary"
echo "$binary"
