"""The PostGIS serving database (stack mode): where the serving/* assets copy footprints, forest-change
polygons and the satellite health for QGIS, GeoServer and any SQL client."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    password: str = field(repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> PostgisServing:
        if not settings.postgres_password:
            raise SettingsError(
                "the PostGIS serving layer needs SATLAKE_POSTGRES_PASSWORD: run `satlake stack up`, which writes "
                f"it to {settings.secrets_file}, or set it in the environment"
            )
        return cls(
            host=settings.postgres_host,
            port=settings.postgres_port,
            user=settings.postgres_user,
            database=settings.postgres_database,
            password=settings.postgres_password,
        )

    @property
    def conninfo(self) -> str:
        """A libpq key=value connection string (with the password: never log it)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.database,
            connect_timeout=CONNECT_TIMEOUT_S,
        )

    @property
    def url(self) -> str:
        """``postgresql://user:password@host:port/database`` for clients that take a URL (tipg)."""
        from urllib.parse import quote

        return (
            f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{self.host}:{self.port}/"
            f"{quote(self.database, safe='')}"
        )

    def describe(self) -> str:
        """Where the database is, without the password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def connect(self) -> psycopg.Connection:
        import psycopg

        return psycopg.connect(self.conninfo)
