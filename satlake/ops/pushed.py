"""The exporter's side of pushed metrics: every file long runs left under ``<root>/ops/metrics`` (written by
``satlake.resources.run_metrics.RunMetrics``), each series labelled with the run source that wrote it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from satlake.resources.run_metrics import SUFFIX

SOURCE_LABEL = "source"


class PushedMetricsCollector(Collector):
    """Every metric family in the pushed files, each series labelled with the file's source."""

    def __init__(self, directory: Path, on_error: object) -> None:
        self.directory = directory
        self.on_error = on_error

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                families = list(text_string_to_metric_families(path.read_text()))
            except (OSError, ValueError) as error:
                self.on_error(f"pushed file {path.name}", error)  # type: ignore[operator]
                continue
            source = path.name.removesuffix(SUFFIX)
            for family in families:
                target = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                for sample in family.samples:
                    labels = {**sample.labels, SOURCE_LABEL: source}
                    target.add_sample(sample.name, labels, sample.value, sample.timestamp)
        yield from merged.values()
