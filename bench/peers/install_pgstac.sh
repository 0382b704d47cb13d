#!/usr/bin/env bash
# Install the pgstac peer of bench/catalog_search.py and bench/serving_search.py: PostgreSQL with PostGIS from the
# distribution's packages (apt-get), pypgstac (with psycopg) and stac-fastapi-pgstac from the Python package index
# (pip). Idempotent and quiet: when all are present it only checks (about a second). The benchmarks start their
# own private cluster with these binaries; no system PostgreSQL service is used.
# SATLAKE_PGSTAC_PG_MAJOR=NN asks for postgresql-NN and postgresql-NN-postgis-3; by default the distribution's
# own PostgreSQL (the postgresql and postgresql-postgis metapackages: 15 on Debian 12, 17 on Debian 13).
set -euo pipefail
# shellcheck source=bench/peers/apt_install.sh
source "$(dirname "$0")/apt_install.sh"

PG_MAJOR="${SATLAKE_PGSTAC_PG_MAJOR:-}"
PYPGSTAC_VERSION="0.10.0"  # its migrations install pgstac 0.10.0, which needs PostgreSQL >= 13 and PostGIS >= 3
# The STAC API over pgstac that bench/serving_search.py runs beside satlake serve (stac-fastapi 7, as satlake's).
STAC_FASTAPI_PGSTAC_VERSION="7.2.0"

# The same test as bench/peers/pgstac.py's postgres_bindir: some PostgreSQL (or the one asked for) with PostGIS.
have_postgis() {
  local bindir major
  for bindir in /usr/lib/postgresql/*/bin; do
    major="$(basename "$(dirname "$bindir")")"
    if [ -n "$PG_MAJOR" ] && [ "$major" != "$PG_MAJOR" ]; then continue; fi
    if [ -x "$bindir/initdb" ] && [ -f "/usr/share/postgresql/${major}/extension/postgis.control" ]; then
      return 0
    fi
  done
  return 1
}

if ! have_postgis; then
  if [ -n "$PG_MAJOR" ]; then
    apt_install install_pgstac "postgresql-${PG_MAJOR}" "postgresql-${PG_MAJOR}-postgis-3"
  else
    # The same install as the stack's PostgreSQL server (satlake.stack.postgres): the distribution's packages.
    echo "install_pgstac: python3 -m satlake.stack install --servers postgres"
    python3 -m satlake.stack install --servers postgres
  fi
fi

if ! python3 -c "import pypgstac, psycopg, psycopg_pool; assert pypgstac.__version__ == '${PYPGSTAC_VERSION}'" \
  2>/dev/null; then
  echo "install_pgstac: pip install pypgstac[psycopg]==${PYPGSTAC_VERSION}"
  python3 -m pip install --quiet --disable-pip-version-check "pypgstac[psycopg]==${PYPGSTAC_VERSION}"
fi

installed="$(python3 -c "import importlib.metadata as m; print(m.version('stac-fastapi-pgstac'))" 2>/dev/null || true)"
if [ "$installed" != "$STAC_FASTAPI_PGSTAC_VERSION" ]; then
  echo "install_pgstac: pip install stac-fastapi-pgstac==${STAC_FASTAPI_PGSTAC_VERSION}"
  python3 -m pip install --quiet --disable-pip-version-check "stac-fastapi-pgstac==${STAC_FASTAPI_PGSTAC_VERSION}"
fi
