"""Reading an exporter's output the way Prometheus does: every sample by name and labels."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from satlake.ops.exporter import Exporter

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(exporter: Exporter) -> Samples:
    """One scrape of ``exporter``, parsed from the exposition text."""
    text = generate_latest(exporter.registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The value of the one sample ``name{labels}``; KeyError names what the scrape held instead."""
    key = (name, frozenset(labels.items()))
    if key not in samples:
        present = [dict(found) for found_name, found in samples if found_name == name]
        raise KeyError(f"no {name}{labels} in the scrape; {name} has {present}")
    return samples[key]


def labels_of(samples: Samples, name: str) -> list[dict[str, str]]:
    return sorted((dict(labels) for found, labels in samples if found == name), key=lambda d: sorted(d.items()))
