"""One run's fetching: the client built from settings with what is left of the API's hourly limit, and the
responses recorded as received (``raw.mars_responses``) and landed in the landing area.

The API allows a number of requests per hour per key (30 with DEMO_KEY, 1,000 with a personal key). A run's
request budget is therefore the configured hourly budget minus the API requests recorded in the last hour, so
runs started one after another (a backfill, the schedule, the CLI) never exceed it together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from satlake.mars.client import ApiResponse, MarsClient, mars_session
from satlake.mars.landing import MANIFEST, PHOTOS, land_responses, response_key
from satlake.mars.tables import MARS_RESPONSES, MARS_RESPONSES_SCHEMA
from satlake.resources.event_log import EventLog
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.object_store import ObjectStore
from satlake.settings import Settings

HOUR = timedelta(hours=1)
API_KINDS = (MANIFEST, PHOTOS)  # the kinds api.nasa.gov counts; MMGIS is another service


class HourlyBudgetSpent(RuntimeError):
    """The API requests of the last hour already reach the hourly budget."""


def requests_in_last_hour(lakehouse: Lakehouse, now: datetime) -> int:
    table = lakehouse.read(MARS_RESPONSES, columns=["kind", "fetched_at"])
    if table is None or not table.num_rows:
        return 0
    recent = pc.and_(pc.is_in(table["kind"], pa.array(API_KINDS)), pc.greater(table["fetched_at"], now - HOUR))
    return int(pc.sum(pc.cast(recent, pa.int64())).as_py() or 0)


def build_client(settings: Settings, lakehouse: Lakehouse, now: datetime | None = None) -> MarsClient:
    """A client whose request budget is what the last hour left of ``SATLAKE_MARS_REQUEST_BUDGET``."""
    used = requests_in_last_hour(lakehouse, now or datetime.now(UTC))
    left = settings.mars_request_budget - used
    if left < 1:
        raise HourlyBudgetSpent(
            f"the API was asked {used} times in the last hour; SATLAKE_MARS_REQUEST_BUDGET allows "
            f"{settings.mars_request_budget} an hour (the API's own limit is 30 with DEMO_KEY, 1,000 with a "
            "personal key): run again later, or set SATLAKE_NASA_API_KEY to a personal key"
        )
    session = mars_session(settings.mars_timeout_s, settings.mars_max_retries, left)
    return MarsClient(settings.mars_photos_url, settings.mars_mmgis_url, settings.nasa_api_key, session)


def response_id(response: ApiResponse) -> str:
    return hashlib.sha256(f"{response.url}\n{response.fetched_at.isoformat()}".encode()).hexdigest()[:32]


def record_responses(
    lakehouse: Lakehouse,
    landing: ObjectStore,
    event_log: EventLog,
    topic: str,
    request_id: str,
    responses: Sequence[ApiResponse],
    say: Callable[[str], None] | None = None,
    mission: str | None = None,
) -> list[dict[str, object]]:
    """Append every response, usable or not, to ``raw.mars_responses`` with its request and time, and land it
    (announced on ``topic``). Unusable ones are landed too: their announcement starts the bronze partition, which
    records them in bronze.mars_rejects with the reason (a sol whose every page failed would otherwise never get
    a bronze run, nor a reject row). Returns the rows written."""
    rows: list[dict[str, object]] = []
    bodies: list[tuple[str, bytes]] = []
    for response in responses:
        key = response_key(
            response.kind,
            response.rover,
            response.fetched_at,
            sol=response.sol,
            page=response.page,
            mission=mission,
        )
        bodies.append((key, response.body))
        rows.append(
            {
                "response_id": response_id(response),
                "request_id": request_id,
                "kind": response.kind,
                "rover": response.rover,
                "sol": response.sol,
                "page": response.page,
                "url": response.url,
                "status": response.status,
                "content_type": response.content_type,
                "body": response.body,
                "fetched_at": response.fetched_at,
                "object_key": key,
                "error": response.error,
            }
        )
    if not rows:
        return rows
    table = pa.Table.from_pylist(rows, schema=MARS_RESPONSES_SCHEMA)
    ids = ", ".join(f"'{row['response_id']}'" for row in rows)  # hex digests: safe inside quotes
    # Rows first, landing second: a landed file whose row is missing would reach bronze with no response row.
    lakehouse.replace_where(MARS_RESPONSES, table, f"response_id IN ({ids})", partition_by=["rover", "kind"], retries=8)
    land_responses(landing, event_log, topic, bodies, say)
    return rows
