"""Smoke run of the ground-segment benchmark at its small size (``--quick``): every decoder decodes the same
packets alike, the collectors acknowledge every packet and the log holds exactly what was sent. No timing is
asserted; the figures come from ``python -m bench.ground``."""

from __future__ import annotations

from pathlib import Path

from bench import ground
from tests.unit.bench.test_bench_smoke import load_result


def test_ground_bench_decodes_alike_and_loses_no_packet(tmp_path: Path) -> None:
    document = load_result(
        ground.main(["--quick", "--workdir", str(tmp_path), "--out", str(tmp_path / "r.json")]), "ground"
    )
    small = ground.DEFAULTS["small"]
    decoders = {row["system"]: row for row in document["rows"] if row["part"] == "decode"}
    assert set(decoders) == set(ground.DECODERS)
    counts = {row["system"]: row["packets_by_apid"] for row in decoders.values()}
    assert len({str(value) for value in counts.values()}) == 1, counts  # the same packets per APID everywhere
    for row in decoders.values():
        assert row["packets"] == small["decode_packets"]
        assert row["packets_per_s"] > 0 and row["mb_per_s"] > 0 and row["peak_rss_increase_mib"] is not None
    assert "in alarm" in decoders[ground.SATLAKE]["output"]

    collectors = [row for row in document["rows"] if row["part"] == "collector"]
    runs = {(row["system"], row["transport"]) for row in collectors}
    assert runs == {("satlake collect x1", "tcp"), ("satlake collect x2", "tcp"), ("satlake collect x1", "http")}
    assert len(collectors) == 2 + len(ground.POST_BYTES)
    for row in collectors:
        assert row["log"] == "embedded"
        assert row["in_log"] == row["packets"] == small["collector_packets"] and row["verified"] is True
        assert row["packets_per_s"] > 0 and row["collector_peak_rss_mib"] > 0

    met = {c["metric"]: c["met"] for c in document["comparisons"]}
    assert met["decoded packets per APID and sum of BATT_V identical across systems"] is True
    assert [value for metric, value in met.items() if metric.endswith("packets in the log")] == [True] * len(collectors)
