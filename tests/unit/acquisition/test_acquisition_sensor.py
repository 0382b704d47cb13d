"""The request sensor reads the requests topic exactly once (accepted and refused requests land in their tables,
a duplicate id is refused, a tick that died between its two commits loses and repeats nothing), and the
``raw/acquisitions`` asset acquires one request end to end and announces what it landed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from satlake.acquisition.assets import ACQUISITION_PARTITIONS, raw_acquisitions
from satlake.acquisition.request import publish_request
from satlake.acquisition.sensors import (
    acquisition_requests_sensor,
    commit_requests,
    offsets_app_id,
    read_requests,
)
from satlake.acquisition.stac_replay import StacReplayServer
from satlake.acquisition.tables import (
    ACQUISITION_REJECTS,
    ACQUISITION_REQUESTS,
    ACQUISITION_REQUESTS_SCHEMA,
    ACQUISITIONS,
)
from satlake.resources import request_inbox
from satlake.resources.event_log import OutgoingRecord
from tests.unit.acquisition.replay_helpers import (
    ROLE_FILES,
    Lake,
    add_test_aoi,
    lonlat_box,
    make_scenes,
    replay_items,
    request_for,
)

NOW = datetime(2024, 6, 2, 8, tzinfo=UTC)


@pytest.fixture(autouse=True)
def short_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(request_inbox, "READ_WAIT_S", 0.1)  # an empty topic answers after this wait


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake.at(tmp_path / "root")


def publish_raw(lake: Lake, *payloads: bytes) -> None:
    lake.resources.event_log.append(lake.settings.acquisition_topic, [OutgoingRecord(value=p) for p in payloads])


def tick(lake: Lake) -> list[str]:
    topic = lake.settings.acquisition_topic
    return commit_requests(
        lake.resources.lakehouse, topic, read_requests(lake.resources.event_log, lake.resources.lakehouse, topic), NOW
    )


def table_rows(lake: Lake, table: object) -> list[dict]:
    data = lake.resources.lakehouse.read(table)  # type: ignore[arg-type]
    return data.to_pylist() if data is not None else []


def publish_mixed(lake: Lake) -> list[str]:
    """Two valid requests, two invalid ones and a duplicate of the first id; returns the valid ids."""
    first, second = request_for("forest", request_id="req-1"), request_for("forest", request_id="req-2")
    publish_request(lake.resources.event_log, lake.settings.acquisition_topic, first)
    publish_raw(lake, b"{broken", json.dumps({"request_id": "req-3", "aoi": "forest"}).encode())
    publish_request(lake.resources.event_log, lake.settings.acquisition_topic, second)
    publish_raw(lake, first.to_json().encode())
    return [first.request_id, second.request_id]


def test_a_tick_accepts_valid_requests_and_refuses_the_rest_with_reasons(lake: Lake) -> None:
    valid = publish_mixed(lake)
    assert tick(lake) == valid
    accepted = table_rows(lake, ACQUISITION_REQUESTS)
    assert [(row["request_id"], row["offset"]) for row in accepted] == [("req-1", 0), ("req-2", 3)]
    assert json.loads(accepted[0]["request_json"])["aoi"] == "forest"
    refused = {row["offset"]: row for row in table_rows(lake, ACQUISITION_REJECTS)}
    assert sorted(refused) == [1, 2, 4]
    assert "not JSON" in refused[1]["reason"] and refused[1]["payload"] == b"{broken"
    assert "'datetime' is a required property" in refused[2]["reason"]
    assert "'req-1' was received before; it is served once" in refused[4]["reason"]

    assert tick(lake) == []  # nothing new: the offsets were committed with the rows
    assert len(table_rows(lake, ACQUISITION_REQUESTS)) == 2 and len(table_rows(lake, ACQUISITION_REJECTS)) == 3


def test_a_tick_that_died_between_its_commits_repeats_and_loses_nothing(lake: Lake) -> None:
    valid = publish_mixed(lake)
    topic = lake.settings.acquisition_topic
    batch = read_requests(lake.resources.event_log, lake.resources.lakehouse, topic)
    # The first commit of the tick (accepted requests and their offsets) happens; the process dies before the second.
    rows = pa.Table.from_pylist(
        [{"request_id": r.request_id, "aoi": r.aoi, "request_json": r.to_json(), "topic": topic,
          "partition": rec.partition, "offset": rec.offset, "received_at": NOW} for r, rec in batch.accepted[:2]],
        schema=ACQUISITION_REQUESTS_SCHEMA,
    )  # fmt: skip
    transactions = {offsets_app_id(ACQUISITION_REQUESTS, topic, p): o for p, o in batch.next_offsets.items()}
    lake.resources.lakehouse.append_exactly_once(
        ACQUISITION_REQUESTS, rows, partition_by=[], app_transactions=transactions
    )

    assert tick(lake) == []  # the requests table has them: not accepted twice
    assert [row["request_id"] for row in table_rows(lake, ACQUISITION_REQUESTS)] == valid
    refused = {row["offset"]: row["reason"] for row in table_rows(lake, ACQUISITION_REJECTS)}
    assert sorted(refused) == [1, 2, 4]  # the rejects the dead tick never wrote are written now, once
    assert "'req-1' was received before" in refused[4]
    assert tick(lake) == [] and len(table_rows(lake, ACQUISITION_REJECTS)) == 3


def test_the_sensor_adds_a_partition_and_a_run_per_new_request(lake: Lake) -> None:
    instance = dg.DagsterInstance.ephemeral()
    resources = {key: getattr(lake.resources, key) for key in ("settings", "event_log", "lakehouse")}

    def evaluate() -> dg.SensorResult | dg.SkipReason:
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            return acquisition_requests_sensor(context)

    skipped = evaluate()
    assert isinstance(skipped, dg.SkipReason) and "does not exist yet" in str(skipped.skip_message)
    valid = publish_mixed(lake)
    result = evaluate()
    assert isinstance(result, dg.SensorResult)
    assert [(r.run_key, r.partition_key) for r in result.run_requests or []] == [(v, v) for v in valid]
    assert sorted(instance.get_dynamic_partitions(ACQUISITION_PARTITIONS.name)) == valid
    again = evaluate()
    assert isinstance(again, dg.SkipReason) and "no new requests" in str(again.skip_message)


def test_the_asset_acquires_one_request_and_announces_what_landed(lake: Lake, tmp_path: Path) -> None:
    scenes = make_scenes(tmp_path / "scenes", tiles=1)[:3]
    items = replay_items(scenes, tmp_path / "replay", "earth-search")
    with StacReplayServer(items, page_size=2) as server:
        add_test_aoi(lake.resources, "forest", lonlat_box(scenes[0], 20, 20, 60, 60), server.url)
        request = request_for("forest", request_id="req-e2e")
        publish_request(lake.resources.event_log, lake.settings.acquisition_topic, request)
        assert tick(lake) == ["req-e2e"]
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(ACQUISITION_PARTITIONS.name, ["req-e2e"])
        resources = {
            **lake.resources.as_dagster_resources(),
            "object_store": lake.stores.lake,
            "landing_store": lake.stores.landing,
        }
        result = dg.materialize([raw_acquisitions], partition_key="req-e2e", resources=resources, instance=instance)
    assert result.success
    rows = [row for row in table_rows(lake, ACQUISITIONS) if row["request_id"] == "req-e2e"]
    assert sorted((row["item_id"] or "", row["status"]) for row in rows) == sorted(
        [("", "searched")] + [(r.item["id"], "landed") for r in items]
    )
    landed = lake.stores.landing.list()
    assert len(landed) == 3 * (len(ROLE_FILES) + 1)  # five bands and scene.json per item
    assert not lake.stores.landing.announces_uploads
    topic = lake.settings.object_events_topic
    partitions = lake.resources.event_log.partitions(topic)
    records = lake.resources.event_log.read(topic, dict.fromkeys(partitions, 0), 1000, timeout_s=0.1)
    bucket = lake.stores.landing.bucket
    announced = sorted(json.loads(r.value)["Key"].removeprefix(f"{bucket}/") for r in records)
    assert announced == landed  # each landed object announced once, manifests included
    (check,) = result.get_asset_check_evaluations()
    assert check.passed
