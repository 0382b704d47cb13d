"""A small typed client for satlake's Trino ``lake`` catalog: queries as a given user, schemas, and
registration of Delta tables written by delta-rs (idempotent, so every write may call it).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import Any

import trino
from trino.exceptions import TrinoConnectionError, TrinoExternalError, TrinoQueryError, TrinoUserError

log = logging.getLogger(__name__)

# Errors of a Trino that has just started and whose node manager has not yet listed a worker for the catalog
# (itself included): the query did no work, so running it again once the node is listed is safe.
TRANSIENT_STARTUP_ERRORS = frozenset({"NO_NODES_AVAILABLE", "SERVER_STARTING_UP"})
STARTUP_WAIT_S = 60.0

_LOCATION = re.compile(r"\blocation\s*=\s*'((?:[^']|'')*)'", re.IGNORECASE)


class TrinoLakeError(RuntimeError):
    """A Trino query failed: the message starts with Trino's own (for example ``Access Denied: …``)."""

    def __init__(self, message: str, *, error_name: str | None = None, user: str | None = None) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.user = user


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def normalize_location(location: str) -> str:
    """Compare table locations without the trailing slash and the ``s3a://`` spelling."""
    return re.sub(r"^s3a://", "s3://", location).rstrip("/")


def location_from_create_table(ddl: str) -> str | None:
    """The ``location`` table property from a ``SHOW CREATE TABLE`` statement."""
    match = _LOCATION.search(ddl)
    return match.group(1).replace("''", "'") if match else None


class TrinoLake:
    """Queries against one Trino catalog; each call may run as another user (a role, for access rules)."""

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        catalog: str = "lake",
        *,
        http_scheme: str = "http",
        request_timeout_s: float = 300.0,
        max_attempts: int = 3,
        startup_wait_s: float = STARTUP_WAIT_S,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.catalog = catalog
        self.http_scheme = http_scheme
        self.request_timeout_s = request_timeout_s
        self.max_attempts = max_attempts
        self.startup_wait_s = startup_wait_s
        self._connections: dict[str, trino.dbapi.Connection] = {}

    def _connection(self, user: str) -> trino.dbapi.Connection:
        connection = self._connections.get(user)
        if connection is None:
            connection = trino.dbapi.connect(
                host=self.host,
                port=self.port,
                user=user,
                catalog=self.catalog,
                http_scheme=self.http_scheme,
                request_timeout=self.request_timeout_s,
                max_attempts=self.max_attempts,
                source="satlake",
            )
            self._connections[user] = connection
        return connection

    def query(
        self, sql: str, parameters: Sequence[Any] | None = None, user: str | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run ``sql`` (``?`` placeholders bound to ``parameters``) as ``user``; returns (columns, rows).

        A Trino that has just (re)started answers ``NO_NODES_AVAILABLE`` until its node manager lists itself;
        such a query is sent again, with a growing pause, for up to ``startup_wait_s`` seconds."""
        deadline = time.monotonic() + self.startup_wait_s
        pause_s = 0.5
        while True:
            try:
                return self._query_once(sql, parameters, user or self.user)
            except TrinoLakeError as error:
                if error.error_name not in TRANSIENT_STARTUP_ERRORS or time.monotonic() + pause_s > deadline:
                    raise
                log.info("Trino at %s:%s is still starting (%s); asking again in %.1f s",
                         self.host, self.port, error.error_name, pause_s)  # fmt: skip
                time.sleep(pause_s)
                pause_s = min(pause_s * 2, 5.0)

    def _query_once(
        self, sql: str, parameters: Sequence[Any] | None, as_user: str
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        cursor = self._connection(as_user).cursor()
        try:
            if parameters:
                cursor.execute(sql, list(parameters))
            else:
                cursor.execute(sql)
            rows = cursor.fetchall()
        except (TrinoQueryError, TrinoUserError, TrinoExternalError) as error:
            raise TrinoLakeError(
                f"{error.message} (Trino {error.error_name}, user {as_user!r}, query: {_shorten(sql)})",
                error_name=error.error_name,
                user=as_user,
            ) from error
        except (TrinoConnectionError, OSError) as error:
            raise TrinoLakeError(
                f"cannot reach Trino at {self.http_scheme}://{self.host}:{self.port} ({error}); "
                "start it with `satlake stack up` or check SATLAKE_TRINO_HOST/SATLAKE_TRINO_PORT",
                user=as_user,
            ) from error
        finally:
            _close_quietly(cursor)
        columns = [column[0] for column in cursor.description or []]
        return columns, [tuple(row) for row in rows]

    def _qualified(self, schema: str, table: str | None = None) -> str:
        parts = [self.catalog, schema] + ([table] if table is not None else [])
        return ".".join(quote_identifier(part) for part in parts)

    def schema_exists(self, schema: str) -> bool:
        _, rows = self.query(
            f"SELECT 1 FROM {quote_identifier(self.catalog)}.information_schema.schemata "
            f"WHERE schema_name = {quote_literal(schema)}"
        )
        return bool(rows)

    def ensure_schema(self, schema: str, location: str) -> None:
        """Create ``schema`` with its data under ``location`` unless it exists (its location is then kept)."""
        self.query(f"CREATE SCHEMA IF NOT EXISTS {self._qualified(schema)} WITH (location = {quote_literal(location)})")

    def table_exists(self, schema: str, table: str) -> bool:
        _, rows = self.query(
            f"SELECT 1 FROM {quote_identifier(self.catalog)}.information_schema.tables "
            f"WHERE table_schema = {quote_literal(schema)} AND table_name = {quote_literal(table)}"
        )
        return bool(rows)

    def table_location(self, schema: str, table: str) -> str | None:
        """Where a registered table's Delta log lives, or None when Trino cannot read its definition."""
        try:
            _, rows = self.query(f"SHOW CREATE TABLE {self._qualified(schema, table)}")
        except TrinoLakeError as error:
            log.warning("cannot read the definition of %s.%s: %s", schema, table, error)
            return None
        return location_from_create_table(rows[0][0]) if rows else None

    def register_table(self, schema: str, table: str, location: str) -> bool:
        """Make ``schema.table`` point at the Delta table at ``location``; True when anything changed.

        Registered at the same location: nothing to do. At another location (or unreadable): unregistered and
        registered again. The schema must exist (``ensure_schema``).
        """
        wanted = normalize_location(location)
        if self.table_exists(schema, table):
            current = self.table_location(schema, table)
            if current is not None and normalize_location(current) == wanted:
                return False
            log.info("re-registering %s.%s: location %s -> %s", schema, table, current, wanted)
            self.unregister_table(schema, table)
        try:
            self._call_register(schema, table, wanted)
        except TrinoLakeError as error:
            # A concurrent writer registered it first; that is fine when it chose the same location.
            current = self.table_location(schema, table) if self.table_exists(schema, table) else None
            if current is None or normalize_location(current) != wanted:
                raise
            log.info("%s.%s was registered concurrently: %s", schema, table, error)
            return False
        return True

    def _call_register(self, schema: str, table: str, location: str) -> None:
        self.query(
            f"CALL {quote_identifier(self.catalog)}.system.register_table("
            f"schema_name => {quote_literal(schema)}, table_name => {quote_literal(table)}, "
            f"table_location => {quote_literal(location)})"
        )

    def unregister_table(self, schema: str, table: str) -> None:
        """Forget the table in the metastore; its files stay where they are."""
        self.query(
            f"CALL {quote_identifier(self.catalog)}.system.unregister_table(schema_name => "
            f"{quote_literal(schema)}, table_name => {quote_literal(table)})"
        )

    def flush_metadata_cache(self, schema: str | None = None, table: str | None = None) -> None:
        """Drop Trino's cached metastore and Delta metadata (of one table when both names are given)."""
        arguments = ""
        if schema is not None and table is not None:
            arguments = f"schema_name => {quote_literal(schema)}, table_name => {quote_literal(table)}"
        self.query(f"CALL {quote_identifier(self.catalog)}.system.flush_metadata_cache({arguments})")

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()


def _close_quietly(cursor: trino.dbapi.Cursor) -> None:
    """Close ``cursor`` without hiding why its query failed: closing cancels a query still running, and when
    Trino went away mid-query that cancel fails too, with an error that would replace the useful one."""
    try:
        cursor.close()
    except (TrinoConnectionError, TrinoQueryError, OSError) as error:
        log.warning("could not close a Trino cursor (the query is cancelled or gone with the server): %s", error)


def _shorten(sql: str, limit: int = 200) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
