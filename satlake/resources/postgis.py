"""The PostGIS serving database (stack mode): where the serving/* assets copy footprints, forest-change
polygons and the satellite health for QGIS, GeoServer and any SQL client."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from satlake.settings import Settings, SettingsError

if TYPE_CHECKING:
    import psycopg

CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class PostgisServing:
    """Connection parameters of the serving database; each ``connect()`` opens a new psycopg connection."""

    host: str
    port: int
    user: str
    database: str
    password: str | None = field(default=None, repr=False)
    secrets_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PostgisServing:
        """The serving database of ``settings``; a missing password fails on ``connect``, not here, so a stack
        from before this layer still loads every other asset."""
        return cls(
            host=settings.postgres_host,
            port=settings.postgres_port,
            user=settings.postgres_user,
            database=settings.postgres_database,
            password=settings.postgres_password,
            secrets_file=settings.secrets_file,
        )

    def require_password(self) -> str:
        if not self.password:
            raise SettingsError(
                "the PostGIS serving layer needs SATLAKE_POSTGRES_PASSWORD: run `satlake stack up`, which writes "
                f"it to {self.secrets_file}, or set it in the environment"
            )
        return self.password

    @property
    def conninfo(self) -> str:
        """A libpq key=value connection string (with the password: never log it)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.require_password(),
            dbname=self.database,
            connect_timeout=CONNECT_TIMEOUT_S,
        )

    def describe(self) -> str:
        """Where the database is, without the password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def connect(self) -> psycopg.Connection:
        import psycopg

        return psycopg.connect(self.conninfo)
