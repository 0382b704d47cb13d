"""Typed settings for satlake, read once from the environment (and an optional git-ignored secrets file).

Everything that differs between a developer laptop, CI and a production stack lives here; nothing else
reads ``os.environ`` for configuration.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit


class Mode(StrEnum):
    EMBEDDED = "embedded"
    STACK = "stack"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable and how to fix it."""


TELEMETRY_TOPIC = "satlake.telemetry"
OBJECT_EVENTS_TOPIC = "satlake.object-events"
ACQUISITION_TOPIC = "satlake.acquisition-requests"
MARS_TOPIC = "satlake.mars-requests"
# Each mission's packets arrive on "<prefix>.<mission>" (satlake/ground).
PACKETS_TOPIC_PREFIX = "satlake.packets"
MARS_PHOTOS_URL = "https://api.nasa.gov/mars-photos/api/v1"
MARS_MMGIS_URL = "https://mars.nasa.gov/mmgis-maps"
NASA_DEMO_KEY = "DEMO_KEY"  # api.nasa.gov's shared key: 30 requests an hour, 50 a day per address
# The public STAC APIs satlake knows by name; SATLAKE_STAC_SOURCES adds or overrides entries.
DEFAULT_STAC_SOURCES: dict[str, str] = {
    "earth-search": "https://earth-search.aws.element84.com/v1",
    "planetary-computer": "https://planetarycomputer.microsoft.com/api/stac/v1",
    "cdse": "https://stac.dataspace.copernicus.eu/v1",
}
PLANETARY_COMPUTER_SAS_URL = "https://planetarycomputer.microsoft.com/api/sas/v1"
_SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def read_secrets_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=VALUE`` secrets file (comments and blank lines allowed, values may be quoted)."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for number, raw_line in enumerate(path.read_text().splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE, got {line!r}")
        key, value = line.split("=", 1)
        values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names, lower-cased, blanks dropped: ``"Curiosity, perseverance,"``."""
    return tuple(name.strip().lower() for name in text.split(",") if name.strip())


def parse_stac_sources(text: str, variable: str = "SATLAKE_STAC_SOURCES") -> dict[str, str]:
    """The named STAC APIs: the preconfigured ones, with ``name=url,name2=url2`` from ``text`` added or
    overriding (an empty text keeps the defaults)."""
    sources = dict(DEFAULT_STAC_SOURCES)
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        name, sep, url = (piece.strip() for piece in entry.partition("="))
        if not sep or not _SOURCE_NAME.match(name):
            raise SettingsError(
                f"{variable}: {entry!r} is not NAME=URL with a lower-case name (letters, digits, '-', '_'), e.g. "
                "replay=http://127.0.0.1:8500"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError(f"{variable}: {name}={url!r} is not an http(s) URL of a STAC API root")
        sources[name] = url.rstrip("/")
    return sources


@dataclass(frozen=True)
class Settings:
    """Where satlake keeps its data and how it reaches its servers."""

    mode: Mode = Mode.EMBEDDED
    root: Path = field(default_factory=lambda: Path(".satlake").resolve())
    telemetry_topic: str = TELEMETRY_TOPIC
    object_events_topic: str = OBJECT_EVENTS_TOPIC
    telemetry_partitions: int = 4
    # Stack mode endpoints and credentials.
    kafka_bootstrap: str = "127.0.0.1:9092"
    s3_endpoint: str = "http://127.0.0.1:9000"
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    # Secrets stay out of repr, so a logged or displayed Settings never shows one.
    s3_secret_key: str | None = field(default=None, repr=False)
    # Trino's own object-store key, and MinIO's root user (read only by the stack's provisioning).
    trino_s3_access_key: str | None = None
    trino_s3_secret_key: str | None = field(default=None, repr=False)
    minio_root_user: str | None = None
    minio_root_password: str | None = field(default=None, repr=False)
    lake_bucket: str = "satlake"
    landing_bucket: str = "satlake-landing"
    trino_host: str = "127.0.0.1"
    trino_port: int = 8081  # Trino's own default 8080 is `satlake serve`'s
    trino_user: str = "admin"
    # The PostGIS serving database (stack mode): QGIS, GeoServer and tipg read the serving/* tables there.
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_user: str = "satlake"
    postgres_password: str | None = field(default=None, repr=False)
    postgres_database: str = "satlake"
    # Operations: the exporter (`satlake metrics serve`), Prometheus and Alertmanager (stack mode), and where
    # Alertmanager sends firing alerts (a webhook URL; None keeps them in Alertmanager's UI only).
    metrics_port: int = 9108
    prometheus_port: int = 9090
    alertmanager_port: int = 9095  # 9093 is the Kafka controller's (the broker port + 1)
    alert_webhook_url: str | None = None
    # Ground stations deliver packets here (stack mode): HAProxy's raw TCP and HTTP fronts, balancing over the
    # stack's collectors, which listen on the next ports (the TCP front + 1, + 2; the HTTP front + 1, + 2).
    collector_host: str = "127.0.0.1"
    collector_tcp_port: int = 10015
    collector_http_port: int = 8095
    stack_dir: Path | None = None
    secrets_path: Path | None = None
    # The mission's telemetry limits file (None: the limits shipped with satlake).
    telemetry_limits_path: Path | None = None
    # Whether satlake's sensors and the automation-condition sensor start running in a daemon (or stopped).
    automation_running: bool = True
    # The first daily partition (None: the one recorded under the root at first use; see satlake.partitions).
    partitions_start: date | None = None
    # Acquisition: the STAC APIs by name (hash=False keeps Settings hashable with a dict field), the token
    # endpoint signing Planetary Computer asset hrefs, the largest AOI accepted, the requests topic, and the
    # limits of one acquisition run (per HTTP request, per run, per request's downloaded bytes).
    stac_sources: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_STAC_SOURCES), hash=False)
    planetary_computer_sas_url: str = PLANETARY_COMPUTER_SAS_URL
    aoi_max_area_km2: float = 25_000.0
    acquisition_topic: str = ACQUISITION_TOPIC
    acquisition_timeout_s: float = 30.0
    acquisition_max_retries: int = 5
    acquisition_request_budget: int = 2000
    acquisition_byte_budget: int = 2_000_000_000
    # The Mars source: the photo API and MMGIS base URLs (the live services or a mirror), the api.nasa.gov key,
    # its requests topic and bucket, the rovers the daily schedule follows, and the limits of one run (HTTP
    # requests: under the API's hourly limit, 30 with DEMO_KEY and 1,000 with a personal key; image bytes).
    mars_photos_url: str = MARS_PHOTOS_URL
    mars_mmgis_url: str = MARS_MMGIS_URL
    nasa_api_key: str = field(default=NASA_DEMO_KEY, repr=False)
    mars_topic: str = MARS_TOPIC
    mars_rovers: tuple[str, ...] = ("curiosity", "perseverance")
    mars_request_budget: int = 25
    mars_image_byte_budget: int = 500_000_000
    mars_timeout_s: float = 30.0
    mars_max_retries: int = 4
    # Ground segment: the topic prefix of missions' packets, and the partitions a new mission topic gets.
    packets_topic_prefix: str = PACKETS_TOPIC_PREFIX
    packets_partitions: int = 4

    @property
    def stack_home(self) -> Path:
        """Directory holding the native servers' binaries, data and logs (``satlake stack``)."""
        return self.stack_dir or self.root / "stack"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def secrets_file(self) -> Path:
        """Git-ignored ``KEY=VALUE`` file with credentials (``SATLAKE_SECRETS_FILE``, default <root>/secrets.env)."""
        return self.secrets_path or self.root / "secrets.env"

    def require_s3_credentials(self) -> tuple[str, str]:
        if not self.s3_access_key or not self.s3_secret_key:
            raise SettingsError(
                "stack mode needs object-store credentials: set SATLAKE_S3_ACCESS_KEY and "
                f"SATLAKE_S3_SECRET_KEY, or run `satlake stack up`, which writes them to {self.secrets_file}"
            )
        return self.s3_access_key, self.s3_secret_key

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        root = Path(env.get("SATLAKE_ROOT", ".satlake")).expanduser().resolve()
        secrets_path = Path(env.get("SATLAKE_SECRETS_FILE", root / "secrets.env"))
        merged = {**read_secrets_file(secrets_path), **env}

        raw_mode = merged.get("SATLAKE_MODE", Mode.EMBEDDED.value).strip().lower()
        try:
            mode = Mode(raw_mode)
        except ValueError:
            raise SettingsError(
                f"SATLAKE_MODE={raw_mode!r} is not a mode: use 'embedded' (default) or 'stack'"
            ) from None

        def integer(name: str, default: int) -> int:
            value = merged.get(name)
            if value is None or value == "":
                return default
            try:
                return int(value)
            except ValueError:
                raise SettingsError(f"{name}={value!r} must be an integer") from None

        def positive(name: str, default: float) -> float:
            value = merged.get(name)
            if value is None or value == "":
                return default
            try:
                number = float(value)
            except ValueError:
                raise SettingsError(f"{name}={value!r} must be a number") from None
            if not number > 0 or number == float("inf"):
                raise SettingsError(f"{name}={value!r} must be a finite number above 0")
            return number

        stack_dir = merged.get("SATLAKE_STACK_DIR")
        start = merged.get("SATLAKE_PARTITIONS_START", "").strip()
        try:
            partitions_start = date.fromisoformat(start) if start else None
        except ValueError:
            raise SettingsError(
                f"SATLAKE_PARTITIONS_START={start!r} is not a day: write the first daily partition as YYYY-MM-DD"
            ) from None
        limits_path = merged.get("SATLAKE_TELEMETRY_LIMITS")
        automation = merged.get("SATLAKE_AUTOMATION", "running").strip().lower()
        if automation not in ("running", "stopped"):
            raise SettingsError(
                f"SATLAKE_AUTOMATION={automation!r}: use 'running' (default: sensors and automation start with the "
                "daemon) or 'stopped' (start them from the UI)"
            )
        api_key = merged.get("SATLAKE_NASA_API_KEY", "").strip() or NASA_DEMO_KEY
        return cls(
            mode=mode,
            root=root,
            telemetry_topic=merged.get("SATLAKE_TELEMETRY_TOPIC", TELEMETRY_TOPIC),
            object_events_topic=merged.get("SATLAKE_OBJECT_EVENTS_TOPIC", OBJECT_EVENTS_TOPIC),
            telemetry_partitions=integer("SATLAKE_TELEMETRY_PARTITIONS", 4),
            kafka_bootstrap=merged.get("SATLAKE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            s3_endpoint=merged.get("SATLAKE_S3_ENDPOINT", "http://127.0.0.1:9000"),
            s3_region=merged.get("SATLAKE_S3_REGION", "us-east-1"),
            s3_access_key=merged.get("SATLAKE_S3_ACCESS_KEY") or None,
            s3_secret_key=merged.get("SATLAKE_S3_SECRET_KEY") or None,
            trino_s3_access_key=merged.get("SATLAKE_TRINO_S3_ACCESS_KEY") or None,
            trino_s3_secret_key=merged.get("SATLAKE_TRINO_S3_SECRET_KEY") or None,
            minio_root_user=merged.get("SATLAKE_MINIO_ROOT_USER") or None,
            minio_root_password=merged.get("SATLAKE_MINIO_ROOT_PASSWORD") or None,
            lake_bucket=merged.get("SATLAKE_LAKE_BUCKET", "satlake"),
            landing_bucket=merged.get("SATLAKE_LANDING_BUCKET", "satlake-landing"),
            trino_host=merged.get("SATLAKE_TRINO_HOST", "127.0.0.1"),
            trino_port=integer("SATLAKE_TRINO_PORT", 8081),
            trino_user=merged.get("SATLAKE_TRINO_USER", "admin"),
            postgres_host=merged.get("SATLAKE_POSTGRES_HOST", "127.0.0.1"),
            postgres_port=integer("SATLAKE_POSTGRES_PORT", 5432),
            postgres_user=merged.get("SATLAKE_POSTGRES_USER", "satlake"),
            postgres_password=merged.get("SATLAKE_POSTGRES_PASSWORD") or None,
            postgres_database=merged.get("SATLAKE_POSTGRES_DB", "satlake"),
            metrics_port=integer("SATLAKE_METRICS_PORT", 9108),
            prometheus_port=integer("SATLAKE_PROMETHEUS_PORT", 9090),
            alertmanager_port=integer("SATLAKE_ALERTMANAGER_PORT", 9095),
            alert_webhook_url=merged.get("SATLAKE_ALERT_WEBHOOK_URL") or None,
            collector_host=merged.get("SATLAKE_COLLECTOR_HOST", "127.0.0.1"),
            collector_tcp_port=integer("SATLAKE_COLLECTOR_TCP_PORT", 10015),
            collector_http_port=integer("SATLAKE_COLLECTOR_HTTP_PORT", 8095),
            stack_dir=Path(stack_dir).expanduser().resolve() if stack_dir else None,
            secrets_path=secrets_path.expanduser().resolve(),
            telemetry_limits_path=Path(limits_path).expanduser().resolve() if limits_path else None,
            automation_running=automation == "running",
            partitions_start=partitions_start,
            stac_sources=parse_stac_sources(merged.get("SATLAKE_STAC_SOURCES", "")),
            planetary_computer_sas_url=merged.get("SATLAKE_PC_SAS_URL", PLANETARY_COMPUTER_SAS_URL).rstrip("/"),
            aoi_max_area_km2=positive("SATLAKE_AOI_MAX_AREA_KM2", 25_000.0),
            acquisition_topic=merged.get("SATLAKE_ACQUISITION_TOPIC", ACQUISITION_TOPIC),
            acquisition_timeout_s=positive("SATLAKE_ACQUISITION_TIMEOUT_S", 30.0),
            acquisition_max_retries=integer("SATLAKE_ACQUISITION_MAX_RETRIES", 5),
            acquisition_request_budget=integer("SATLAKE_ACQUISITION_REQUEST_BUDGET", 2000),
            acquisition_byte_budget=integer("SATLAKE_ACQUISITION_BYTE_BUDGET", 2_000_000_000),
            mars_photos_url=merged.get("SATLAKE_MARS_PHOTOS_URL", MARS_PHOTOS_URL).rstrip("/"),
            mars_mmgis_url=merged.get("SATLAKE_MMGIS_URL", MARS_MMGIS_URL).rstrip("/"),
            nasa_api_key=api_key,
            mars_topic=merged.get("SATLAKE_MARS_TOPIC", MARS_TOPIC),
            mars_rovers=names(merged.get("SATLAKE_MARS_ROVERS", "curiosity,perseverance")),
            mars_request_budget=integer("SATLAKE_MARS_REQUEST_BUDGET", 25 if api_key == NASA_DEMO_KEY else 900),
            mars_image_byte_budget=integer("SATLAKE_MARS_IMAGE_BYTE_BUDGET", 500_000_000),
            mars_timeout_s=positive("SATLAKE_MARS_TIMEOUT_S", 30.0),
            mars_max_retries=integer("SATLAKE_MARS_MAX_RETRIES", 4),
            packets_topic_prefix=merged.get("SATLAKE_PACKETS_TOPIC_PREFIX", PACKETS_TOPIC_PREFIX),
            packets_partitions=integer("SATLAKE_PACKETS_PARTITIONS", 4),
        )


def endpoint_environment(settings: Settings) -> dict[str, str]:
    """The variables that point another satlake process at ``settings``' servers: the inverse of ``from_env``
    for every address and port (a test's isolated stack, a benchmark's subprocess)."""
    return {
        "SATLAKE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "SATLAKE_S3_ENDPOINT": settings.s3_endpoint,
        "SATLAKE_TRINO_HOST": settings.trino_host,
        "SATLAKE_TRINO_PORT": str(settings.trino_port),
        "SATLAKE_POSTGRES_HOST": settings.postgres_host,
        "SATLAKE_POSTGRES_PORT": str(settings.postgres_port),
        "SATLAKE_PROMETHEUS_PORT": str(settings.prometheus_port),
        "SATLAKE_ALERTMANAGER_PORT": str(settings.alertmanager_port),
        "SATLAKE_METRICS_PORT": str(settings.metrics_port),
        "SATLAKE_COLLECTOR_HOST": settings.collector_host,
        "SATLAKE_COLLECTOR_TCP_PORT": str(settings.collector_tcp_port),
        "SATLAKE_COLLECTOR_HTTP_PORT": str(settings.collector_http_port),
    }
