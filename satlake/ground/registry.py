"""Missions and ground stations, kept in the lakehouse: ``catalog.missions`` holds every version of every
mission database (the XTCE or layout file itself, its checksum, the topic its packets arrive on), and
``catalog.ground_stations`` the stations allowed to deliver packets, with a hash of each one's token.

Registering the same file again changes nothing; a changed file becomes the mission's next version, and the
earlier versions stay (what decoded a packet can always be found). Removing stamps ``removed_at``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from satlake.resources.lakehouse import Lakehouse, TableRef
from satlake.settings import Settings

if TYPE_CHECKING:
    from satlake.ground.xtce import MissionDatabase

MISSIONS = TableRef("catalog", "missions")
GROUND_STATIONS = TableRef("catalog", "ground_stations")
MISSION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
STATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ALL_MISSIONS = "*"

_TS = pa.timestamp("us", tz="UTC")
MISSIONS_SCHEMA = pa.schema(
    [
        pa.field("mission", pa.string(), nullable=False),
        pa.field("version", pa.int32(), nullable=False, metadata={"doc": "1, 2, ...: one per distinct file"}),
        pa.field("format", pa.string(), nullable=False, metadata={"doc": "xtce | ccsdspy-csv"}),
        pa.field("file_name", pa.string(), nullable=False),
        pa.field("checksum", pa.string(), nullable=False, metadata={"doc": "sha256 of the definition"}),
        pa.field("definition", pa.binary(), nullable=False, metadata={"doc": "the file's bytes"}),
        pa.field("topic", pa.string(), nullable=False, metadata={"doc": "the stream its packets arrive on"}),
        pa.field("apids", pa.list_(pa.int32()), nullable=False),
        pa.field("packet_types", pa.list_(pa.string()), nullable=False),
        pa.field("added_by", pa.string(), nullable=False),
        pa.field("added_at", _TS, nullable=False),
        pa.field("removed_at", _TS, metadata={"doc": "null while the mission is active"}),
    ]
)
GROUND_STATIONS_SCHEMA = pa.schema(
    [
        pa.field("station", pa.string(), nullable=False),
        pa.field("token_sha256", pa.string(), nullable=False, metadata={"doc": "the token itself is never kept"}),
        pa.field("missions", pa.list_(pa.string()), nullable=False, metadata={"doc": "['*']: every mission"}),
        pa.field("added_at", _TS, nullable=False),
        pa.field("removed_at", _TS),
    ]
)


class RegistryError(ValueError):
    """A mission or station that cannot be registered or found; the message says why and what to do."""


def mission_topic(settings: Settings, mission: str) -> str:
    """The topic a mission's packets arrive on."""
    return f"{settings.packets_topic_prefix}.{mission}"


def check_mission_name(name: str) -> str:
    if not isinstance(name, str) or not MISSION_NAME.match(name):
        raise RegistryError(
            f"mission name {name!r}: use 1-32 lower-case letters, digits and '_', starting with a letter (it names "
            "tables and a topic)"
        )
    return name


def check_station_name(name: str) -> str:
    if not isinstance(name, str) or not STATION_NAME.match(name):
        raise RegistryError(f"station name {name!r}: use 1-64 letters, digits, '_', '.' and '-'")
    return name


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class MissionRecord:
    """One version of a mission database as registered."""

    name: str
    version: int
    format: str
    checksum: str
    definition: bytes
    file_name: str
    topic: str
    apids: tuple[int, ...]
    packet_types: tuple[str, ...]
    added_by: str
    added_at: datetime
    removed_at: datetime | None = None

    @cached_property
    def database(self) -> MissionDatabase:
        """The parsed definition (parsed once per record)."""
        from satlake.ground.xtce import load_mission_database

        return load_mission_database(self.definition, name=self.file_name)


@dataclass(frozen=True)
class StationRecord:
    """A ground station allowed to deliver packets of ``missions`` (``("*",)``: any)."""

    name: str
    token_sha256: str
    missions: tuple[str, ...]
    added_at: datetime
    removed_at: datetime | None = None

    def serves(self, mission: str) -> bool:
        return ALL_MISSIONS in self.missions or mission in self.missions

    def accepts(self, token: str, mission: str) -> bool:
        """Whether ``token`` is this station's (compared in constant time) and it may deliver ``mission``."""
        return hmac.compare_digest(token_hash(token), self.token_sha256) and self.serves(mission)


def _mission_from_row(row: dict[str, Any]) -> MissionRecord:
    return MissionRecord(
        name=row["mission"],
        version=row["version"],
        format=row["format"],
        checksum=row["checksum"],
        definition=row["definition"],
        file_name=row["file_name"],
        topic=row["topic"],
        apids=tuple(row["apids"]),
        packet_types=tuple(row["packet_types"]),
        added_by=row["added_by"],
        added_at=row["added_at"].astimezone(UTC),
        removed_at=row["removed_at"].astimezone(UTC) if row["removed_at"] is not None else None,
    )


def mission_history(lakehouse: Lakehouse, name: str | None = None) -> list[MissionRecord]:
    """Every registered version (of ``name``, or of all missions), oldest first per mission."""
    filters = [("mission", "=", check_mission_name(name))] if name is not None else None
    table = lakehouse.read(MISSIONS, filters=filters)
    records = [_mission_from_row(row) for row in table.to_pylist()] if table is not None else []
    return sorted(records, key=lambda r: (r.name, r.version))


def load_missions(lakehouse: Lakehouse) -> dict[str, MissionRecord]:
    """The latest version of each active mission, by name."""
    latest: dict[str, MissionRecord] = {}
    for record in mission_history(lakehouse):
        latest[record.name] = record
    return {name: record for name, record in latest.items() if record.removed_at is None}


def get_mission(lakehouse: Lakehouse, name: str) -> MissionRecord:
    missions = load_missions(lakehouse)
    if name not in missions:
        known = ", ".join(sorted(missions)) or "none yet (`satlake mission add NAME --xtce FILE`)"
        raise RegistryError(f"no mission named {name!r}; the missions are: {known}")
    return missions[name]


def _replace_mission(lakehouse: Lakehouse, name: str, records: list[MissionRecord], change: str) -> int:
    rows = [
        {"mission": r.name, "version": r.version, "format": r.format, "file_name": r.file_name,
         "checksum": r.checksum, "definition": r.definition, "topic": r.topic, "apids": list(r.apids),
         "packet_types": list(r.packet_types), "added_by": r.added_by, "added_at": r.added_at,
         "removed_at": r.removed_at}
        for r in records
    ]  # fmt: skip
    data = pa.Table.from_pylist(rows, schema=MISSIONS_SCHEMA)
    # The name passed check_mission_name: the predicate is safe, and other missions' rows are never rewritten.
    return lakehouse.replace_where(
        MISSIONS, data, f"mission = '{name}'", partition_by=[], commit_metadata={"satlake.mission": change}
    )


def add_mission(
    lakehouse: Lakehouse,
    settings: Settings,
    name: str,
    path: Path,
    *,
    topic: str | None = None,
    added_by: str = "satlake",
    now: datetime | None = None,
) -> tuple[MissionRecord, bool]:
    """Register ``path`` (an XTCE file or a ccsdspy layout) as mission ``name``: its first version, or its next
    one when the file changed. Returns the record and whether it is new (False: the same file is registered)."""
    from satlake.ground.xtce import load_mission_database

    check_mission_name(name)
    if not path.is_file():
        raise RegistryError(f"{path}: no such file")
    definition = path.read_bytes()
    database = load_mission_database(definition, name=path.name)  # MissionDefinitionError names file and element
    history = mission_history(lakehouse, name)
    latest = history[-1] if history else None
    topic = topic or (latest.topic if latest is not None else mission_topic(settings, name))
    unchanged = latest is not None and latest.checksum == database.checksum and latest.topic == topic
    if latest is not None and unchanged and latest.removed_at is None:
        return latest, False
    record = MissionRecord(
        name=name,
        version=(latest.version + 1) if latest is not None else 1,
        format=database.format,
        checksum=database.checksum,
        definition=definition,
        file_name=path.name,
        topic=topic,
        apids=tuple(sorted(database.packet_types)),
        packet_types=tuple(database.packet_types[apid].name for apid in sorted(database.packet_types)),
        added_by=added_by,
        added_at=(now or datetime.now(UTC)).astimezone(UTC),
    )
    _replace_mission(lakehouse, name, [*history, record], f"add {name} v{record.version}")
    return record, True


def remove_mission(lakehouse: Lakehouse, name: str, now: datetime | None = None) -> MissionRecord:
    """Stop accepting ``name``'s packets; its versions and its tables stay."""
    history = mission_history(lakehouse, name)
    if not history or history[-1].removed_at is not None:
        get_mission(lakehouse, name)  # raises, naming the missions there are
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    latest = history[-1]
    removed = replace(latest, removed_at=moment)
    _replace_mission(lakehouse, name, [*history[:-1], removed], f"remove {name}")
    return removed


def _station_rows(lakehouse: Lakehouse, name: str | None = None) -> list[dict[str, Any]]:
    filters = [("station", "=", check_station_name(name))] if name is not None else None
    table = lakehouse.read(GROUND_STATIONS, filters=filters)
    return table.to_pylist() if table is not None else []


def load_stations(lakehouse: Lakehouse) -> dict[str, StationRecord]:
    """The active stations by name."""
    stations = {}
    for row in sorted(_station_rows(lakehouse), key=lambda r: r["added_at"]):
        if row["removed_at"] is None:
            stations[row["station"]] = StationRecord(
                name=row["station"],
                token_sha256=row["token_sha256"],
                missions=tuple(row["missions"]),
                added_at=row["added_at"].astimezone(UTC),
            )
    return stations


def _replace_station(lakehouse: Lakehouse, name: str, rows: list[dict[str, Any]], change: str) -> int:
    data = pa.Table.from_pylist(rows, schema=GROUND_STATIONS_SCHEMA)
    return lakehouse.replace_where(
        GROUND_STATIONS, data, f"station = '{name}'", partition_by=[], commit_metadata={"satlake.station": change}
    )


def add_station(
    lakehouse: Lakehouse,
    name: str,
    missions: tuple[str, ...] = (ALL_MISSIONS,),
    *,
    token: str | None = None,
    now: datetime | None = None,
) -> tuple[StationRecord, str]:
    """Allow station ``name`` to deliver packets of ``missions``; returns it and its token (shown once, only its
    hash is kept). Adding an existing station gives it a new token (the old one stops working)."""
    check_station_name(name)
    for mission in missions:
        if mission != ALL_MISSIONS:
            check_mission_name(mission)
    token = token or secrets.token_urlsafe(24)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    history = _station_rows(lakehouse, name)
    for row in history:
        if row["removed_at"] is None:
            row["removed_at"] = moment
    row = {"station": name, "token_sha256": token_hash(token), "missions": list(missions), "added_at": moment,
           "removed_at": None}  # fmt: skip
    _replace_station(lakehouse, name, [*history, row], f"add {name}")
    return StationRecord(name, row["token_sha256"], tuple(missions), moment), token


def remove_station(lakehouse: Lakehouse, name: str, now: datetime | None = None) -> None:
    history = _station_rows(lakehouse, name)
    active = [row for row in history if row["removed_at"] is None]
    if not active:
        known = ", ".join(sorted(load_stations(lakehouse))) or "none yet (`satlake station add NAME`)"
        raise RegistryError(f"no station named {name!r}; the stations are: {known}")
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    for row in active:
        row["removed_at"] = moment
    _replace_station(lakehouse, name, history, f"remove {name}")
