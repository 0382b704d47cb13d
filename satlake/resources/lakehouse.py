"""The Delta Lake writer and reader every asset goes through: table locations, exactly-once appends and
idempotent partition replacement, on a local directory (embedded) or an S3 bucket (stack).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

log = logging.getLogger(__name__)

# Checkpoints keep table opening flat as micro-batches accumulate (delta-rs writes one every N commits).
DEFAULT_TABLE_CONFIGURATION: dict[str, str | None] = {
    "delta.checkpointInterval": "50",
    "delta.logRetentionDuration": "interval 30 days",
}
# Tables read incrementally by their consumers record which rows each commit added (the change data feed).
CHANGE_FEED_CONFIGURATION: dict[str, str | None] = {"delta.enableChangeDataFeed": "true"}
CHANGE_FEED_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


class ChangeFeedUnavailable(RuntimeError):
    """The rows added in a range of versions cannot be read (change data feed off then, or log expired)."""


@dataclass(frozen=True, slots=True, order=True)
class TableRef:
    """A lakehouse table, addressed like its asset key: ``<zone>/<name>``."""

    zone: str
    name: str

    @property
    def path(self) -> str:
        return f"{self.zone}/{self.name}"

    def __str__(self) -> str:
        return self.path


TableWrittenHook = Callable[[TableRef, str], None]


def date_range_predicate(column: str, first: date, last: date) -> str:
    """A Delta predicate selecting ``column`` between two dates (inclusive); dates are formatted, never
    interpolated from user text."""
    return f"{column} >= '{first.isoformat()}' AND {column} <= '{last.isoformat()}'"


@dataclass
class Lakehouse:
    """Delta tables under one root URI (``/abs/dir`` or ``s3://bucket/prefix``).

    ``on_table_written`` is called after every commit (stack mode registers the table in Trino with it).
    """

    root_uri: str
    storage_options: dict[str, str] = field(default_factory=dict)
    on_table_written: TableWrittenHook | None = None

    def uri(self, table: TableRef) -> str:
        return f"{self.root_uri.rstrip('/')}/{table.zone}/{table.name}"

    def open(self, table: TableRef) -> DeltaTable | None:
        """The table's latest version, or None when it has never been written."""
        try:
            return DeltaTable(self.uri(table), storage_options=self.storage_options or None)
        except TableNotFoundError:
            return None

    def list_tables(self) -> list[TableRef]:
        """Every Delta table under the root (a ``<zone>/<name>`` folder holding a ``_delta_log``)."""
        filesystem, base = self._filesystem()
        from pyarrow import fs

        found: list[TableRef] = []
        zones = filesystem.get_file_info(fs.FileSelector(base, allow_not_found=True))
        for zone in (z for z in zones if z.type == fs.FileType.Directory):
            for entry in filesystem.get_file_info(fs.FileSelector(zone.path, allow_not_found=True)):
                log_dir = filesystem.get_file_info(f"{entry.path}/_delta_log")
                if entry.type == fs.FileType.Directory and log_dir.type == fs.FileType.Directory:
                    found.append(TableRef(zone.base_name, entry.base_name))
        return sorted(found)

    def _filesystem(self):
        from pyarrow import fs

        if self.root_uri.startswith("s3://"):
            options = {k.upper(): v for k, v in self.storage_options.items()}
            endpoint = options.get("AWS_ENDPOINT_URL", "")
            filesystem = fs.S3FileSystem(
                access_key=options.get("AWS_ACCESS_KEY_ID"),
                secret_key=options.get("AWS_SECRET_ACCESS_KEY"),
                region=options.get("AWS_REGION", "us-east-1"),
                endpoint_override=endpoint.split("://", 1)[-1] or None,
                scheme="http" if endpoint.startswith("http://") else "https",
            )
            return filesystem, self.root_uri.removeprefix("s3://").rstrip("/")
        return fs.LocalFileSystem(), self.root_uri.removeprefix("file://").rstrip("/")

    def exists(self, table: TableRef) -> bool:
        return self.open(table) is not None

    def read(
        self,
        table: TableRef,
        filters: list[tuple[str, str, object]] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table | None:
        """Rows of ``table`` (partition filters prune files), or None when the table does not exist."""
        delta_table = self.open(table)
        if delta_table is None:
            return None
        return scan(delta_table, filters, columns)

    def read_changes(
        self, table: TableRef, after_version: int, until_version: int, predicate: str | None = None
    ) -> pa.Table:
        """The rows inserted by the commits ``after_version`` (exclusive) to ``until_version`` (inclusive), with
        ``CHANGE_FEED_COLUMNS``; ``predicate`` (a Delta predicate built from checked values) prunes files.

        Raises ``ChangeFeedUnavailable`` when the table did not record its changes then (the feed was off, or
        the commits have expired from the log): the caller reads the whole table instead.
        """
        delta_table = self.open(table)
        if delta_table is None:
            raise ChangeFeedUnavailable(f"{table} does not exist")
        try:
            reader = delta_table.load_cdf(
                starting_version=after_version + 1, ending_version=until_version, predicate=predicate
            )
            return pa.table(reader.read_all())
        except DeltaError as error:
            raise ChangeFeedUnavailable(f"{table}: versions {after_version + 1}..{until_version}: {error}") from error

    def transaction_versions(self, table: TableRef, app_ids: Sequence[str]) -> dict[str, int | None]:
        """The last committed version of each application transaction (None when never committed)."""
        return self.exactly_once_writer(table).transaction_versions(app_ids)

    def exactly_once_writer(self, table: TableRef, *, change_feed: bool = False) -> ExactlyOnceWriter:
        """``table`` opened for a series of exactly-once appends (see ``ExactlyOnceWriter``).

        ``change_feed``: the table records the rows each commit adds, for consumers that read only what is new
        (``read_changes``); turned on for a table created without it."""
        writer = ExactlyOnceWriter(self, table, self.open(table), change_feed=change_feed)
        if change_feed and writer.delta_table is not None:
            enable_change_feed(writer.delta_table, table)
        return writer

    def append_exactly_once(
        self,
        table: TableRef,
        data: pa.Table,
        *,
        partition_by: Sequence[str],
        app_transactions: Mapping[str, int],
        commit_metadata: Mapping[str, str] | None = None,
    ) -> int:
        """Append ``data`` and advance the application transactions in ONE Delta commit.

        Either the rows and the new transaction versions (for ingestion: the next offset of every source
        partition) are both visible, or neither is: a crash in between cannot lose or duplicate a row.
        """
        return self.exactly_once_writer(table).append(
            data, partition_by=partition_by, app_transactions=app_transactions, commit_metadata=commit_metadata
        )

    def replace_date_partitions(
        self,
        table: TableRef,
        data: pa.Table,
        *,
        partition_column: str,
        first: date,
        last: date,
        commit_metadata: Mapping[str, str] | None = None,
        app_transactions: Mapping[str, int] | None = None,
    ) -> int:
        """Replace exactly the rows whose ``partition_column`` lies in [first, last] with ``data``.

        Re-running a partition therefore leaves the table as if it ran once (idempotent backfills); rows in
        other partitions are never touched. An empty ``data`` clears the window (and creates the table with
        its schema if it did not exist, so readers and checks always find it).
        """
        outside = _rows_outside_window(data, partition_column, first, last)
        if outside:
            raise ValueError(
                f"{table}: {outside} rows have {partition_column} outside {first}..{last}; refusing to write "
                "them into a window replacement (they would be deleted by the next run of their own window)"
            )
        return self.replace_where(
            table,
            data,
            date_range_predicate(partition_column, first, last),
            partition_by=[partition_column],
            commit_metadata=commit_metadata,
            app_transactions=app_transactions,
        )

    def replace_where(
        self,
        table: TableRef,
        data: pa.Table,
        predicate: str,
        *,
        partition_by: Sequence[str],
        commit_metadata: Mapping[str, str] | None = None,
        app_transactions: Mapping[str, int] | None = None,
        retries: int = 0,
    ) -> int:
        """Replace the rows matching ``predicate`` (a Delta SQL predicate built by the caller from checked
        values, never from user text) with ``data``, in ONE commit; creates the table on first write. Columns
        of ``data`` the table lacks are added to it (schema evolution; earlier rows read them as null).

        ``retries``: how often to try again when a concurrent commit conflicts (right for writers that each
        replace only their own rows, such as one scene per run); the table is re-read before each attempt.
        ``app_transactions`` are set in the same commit (progress markers, as in ``append_exactly_once``).
        """
        transactions = [Transaction(app_id=app_id, version=v) for app_id, v in (app_transactions or {}).items()]
        for attempt in range(retries + 1):
            delta_table = self.open(table)
            try:
                write_deltalake(
                    delta_table if delta_table is not None else self.uri(table),
                    data,
                    mode="overwrite" if delta_table is not None else "append",
                    predicate=predicate if delta_table is not None else None,
                    # A newer contract adds columns: the table gains them (null in rows written before).
                    schema_mode="merge" if delta_table is not None and _adds_columns(delta_table, data) else None,
                    partition_by=list(partition_by) or None,
                    storage_options=None if delta_table is not None else self.storage_options or None,
                    configuration=None if delta_table is not None else DEFAULT_TABLE_CONFIGURATION,
                    commit_properties=CommitProperties(
                        custom_metadata=dict(commit_metadata or {}), app_transactions=transactions or None
                    ),
                )
            except CommitFailedError:
                if attempt == retries:
                    raise
                log.info("%s: concurrent commit, retrying the replacement of %s", table, predicate)
                time.sleep(0.2 * (attempt + 1))
                continue
            return self.committed(table, delta_table)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def committed(self, table: TableRef, written: DeltaTable | None) -> int:
        """After a commit to ``table``: tell the ``on_table_written`` hook; returns the version committed.

        ``written`` is the ``DeltaTable`` the write went through (delta-rs advances it to the new version), or
        None when the write created the table."""
        delta_table = written if written is not None else self.open(table)
        assert delta_table is not None, f"{table} was just written"
        if self.on_table_written is not None:
            self.on_table_written(table, self.uri(table))
        return delta_table.version()


@dataclass
class ExactlyOnceWriter:
    """One Delta table kept open across a series of exactly-once appends (ingestion's micro-batches).

    The transaction versions are read from, and the next append committed against, the same snapshot: a
    commit by a concurrent writer in between makes ours fail with ``CommitFailedError`` instead of adding the
    same offsets twice. Keeping the table open also means each append loads only the commits since the last
    one (``refresh``), not the whole log again.
    """

    lakehouse: Lakehouse
    table: TableRef
    delta_table: DeltaTable | None
    change_feed: bool = False

    def refresh(self) -> None:
        """Catch up with commits made by others since the table was opened or last written."""
        if self.delta_table is None:
            self.delta_table = self.lakehouse.open(self.table)
        else:
            self.delta_table.update_incremental()

    def transaction_versions(self, app_ids: Sequence[str]) -> dict[str, int | None]:
        """The last committed version of each application transaction in the snapshot held (None: never)."""
        if self.delta_table is None:
            return dict.fromkeys(app_ids)
        return {app_id: self.delta_table.transaction_version(app_id) for app_id in app_ids}

    def append(
        self,
        data: pa.Table,
        *,
        partition_by: Sequence[str],
        app_transactions: Mapping[str, int],
        commit_metadata: Mapping[str, str] | None = None,
        evolve_schema: bool = False,
    ) -> int:
        """Append ``data`` and set the application transactions in ONE commit; returns its version.

        ``evolve_schema``: columns of ``data`` the table lacks are added to it (earlier rows read them as null),
        and columns the table has that ``data`` lacks are null in the new rows; otherwise schemas must match."""
        transactions = [Transaction(app_id=app_id, version=v) for app_id, v in app_transactions.items()]
        creating = self.delta_table is None
        merge = (
            evolve_schema
            and not creating
            and set(data.column_names) != {f.name for f in self.delta_table.schema().fields}  # type: ignore[union-attr]
        )
        try:
            write_deltalake(
                self.lakehouse.uri(self.table) if creating else self.delta_table,
                data,
                mode="append",
                schema_mode="merge" if merge else None,
                partition_by=list(partition_by),
                storage_options=self.lakehouse.storage_options or None if creating else None,
                configuration=self._configuration() if creating else None,
                commit_properties=CommitProperties(
                    app_transactions=transactions, custom_metadata=dict(commit_metadata or {})
                ),
            )
        except CommitFailedError as error:
            raise CommitFailedError(
                f"{self.table}: the commit advancing {sorted(app_transactions)} was refused ({error}). Either another "
                "writer committed these application transactions first, or this commit's answer was lost and it is "
                "already in the table. Nothing was duplicated; rerun to continue from the committed versions"
            ) from error
        if creating:
            self.delta_table = self.lakehouse.open(self.table)
        return self.lakehouse.committed(self.table, self.delta_table)

    def _configuration(self) -> dict[str, str | None]:
        return DEFAULT_TABLE_CONFIGURATION | (CHANGE_FEED_CONFIGURATION if self.change_feed else {})


def enable_change_feed(delta_table: DeltaTable, table: TableRef) -> None:
    """Turn the change data feed on for a table created without it (from the next commit on)."""
    if delta_table.metadata().configuration.get("delta.enableChangeDataFeed") == "true":
        return
    try:
        delta_table.alter.set_table_properties(CHANGE_FEED_CONFIGURATION, raise_if_not_exists=False)
    except CommitFailedError:
        delta_table.update_incremental()  # a concurrent writer won: fine if it enabled the feed too
        if delta_table.metadata().configuration.get("delta.enableChangeDataFeed") != "true":
            raise
    log.info("%s: change data feed enabled", table)


def scan(
    delta_table: DeltaTable,
    filters: list[tuple[str, str, object]] | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """Rows of one snapshot; partition values and the file statistics in the log prune files."""
    expression = None
    for column, op, value in filters or []:
        term = _filter_expression(column, op, value)
        expression = term if expression is None else expression & term
    return delta_table.to_pyarrow_dataset().to_table(filter=expression, columns=list(columns) if columns else None)


def _filter_expression(column: str, op: str, value: object):
    import pyarrow.compute as pc

    field_ref = pc.field(column)
    operations = {
        "=": lambda: field_ref == value,
        "!=": lambda: field_ref != value,
        ">=": lambda: field_ref >= value,
        "<=": lambda: field_ref <= value,
        ">": lambda: field_ref > value,
        "<": lambda: field_ref < value,
        "in": lambda: field_ref.isin(value),
    }
    if op not in operations:
        raise ValueError(f"unsupported filter operator {op!r}; use one of {sorted(operations)}")
    return operations[op]()


def _adds_columns(delta_table: DeltaTable, data: pa.Table) -> bool:
    stored = {field.name for field in delta_table.schema().fields}
    return bool(set(data.column_names) - stored)


def _rows_outside_window(data: pa.Table, column: str, first: date, last: date) -> int:
    import pyarrow.compute as pc

    if data.num_rows == 0:
        return 0
    values = data.column(column)
    inside = pc.and_(pc.greater_equal(values, pa.scalar(first)), pc.less_equal(values, pa.scalar(last)))
    return data.num_rows - pc.sum(pc.cast(pc.fill_null(inside, False), pa.int64())).as_py()
