"""bench.visibility's latency arithmetic: first poll that saw an offset, infinite when none did."""

from __future__ import annotations

import numpy as np

from bench.common import percentile
from bench.visibility import finite_or_none, latencies


def test_each_event_waits_for_the_first_poll_that_sees_its_offset() -> None:
    polls = [(10.0, {}), (11.0, {0: 1}), (12.5, {0: 1, 1: 0}), (13.0, {0: 3, 1: 0})]
    broker = {0: np.array([9.0, 9.5, 10.0, 10.5]), 1: np.array([9.0])}
    assert latencies(polls, broker).tolist() == [2.0, 1.5, 3.0, 2.5, 3.5]


def test_events_no_poll_saw_are_infinite_and_reported_as_null() -> None:
    polls = [(10.0, {0: 0}), (11.0, {0: 0})]
    seconds = latencies(polls, {0: np.array([9.0, 9.0]), 1: np.array([9.0])})
    assert seconds[0] == 1.0 and np.isinf(seconds[1:]).all()
    assert finite_or_none(percentile(list(seconds), 0.99)) is None
    assert finite_or_none(percentile(list(seconds), 0.2)) == 1.0
