"""Packet sequence counts per APID: gaps, duplicates, late packets and counter repeats, as Yamcs' preprocessor
judges them (``((new - old) & 0x3FFF) != 1`` is a jump), refined so a report says what happened.

Packets of one APID are judged in the order they arrived (the log's order: collectors key every packet by its
APID, so an APID's packets share one partition). With ``d = (new - previous) mod 16384``:

- ``d == 1``: the next packet (``ok``);
- ``d == 0`` and the same packet time: the same packet again, received twice (through two ground stations, or a
  replayed archive): a ``duplicate``, kept once;
- ``d == 0`` and another time: the on-board counter did not advance (``counter_repeat``), kept;
- ``1 < d < 8192``: ``d - 1`` packets are missing before this one (``gap``), kept;
- ``d >= 8192``: the packet is older than the previous one (``out_of_order``: late, or the counter was reset),
  kept, and it does not move the APID's position back.

A packet whose (APID, count, time) is already in bronze, however long ago it arrived, is a duplicate too.
Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SEQUENCE_MODULUS = 1 << 14
HALF_RANGE = SEQUENCE_MODULUS // 2

FIRST, OK, GAP, DUPLICATE, COUNTER_REPEAT, OUT_OF_ORDER = (
    "first", "ok", "gap", "duplicate", "counter_repeat", "out_of_order",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Previous:
    """The last packet of an APID that moved its position forward."""

    sequence_count: int
    packet_time_us: int | None


@dataclass(frozen=True, slots=True)
class SequenceEvent:
    """Anything but ``ok`` or ``first``: which packet (its index in the batch), what, and the counts around it."""

    index: int
    apid: int
    kind: str
    previous_count: int | None
    sequence_count: int
    missing: int  # packets missing before this one (gaps only)


@dataclass
class SequenceVerdicts:
    status: list[str] = field(default_factory=list)
    missing_before: list[int] = field(default_factory=list)
    events: list[SequenceEvent] = field(default_factory=list)
    state: dict[int, Previous] = field(default_factory=dict)

    @property
    def kept(self) -> list[bool]:
        return [status != DUPLICATE for status in self.status]


def judge_sequence(
    apids: Sequence[int],
    counts: Sequence[int],
    times_us: Sequence[int | None],
    previous: Mapping[int, Previous],
    known: frozenset[tuple[int, int, int | None]] | set[tuple[int, int, int | None]] = frozenset(),
) -> SequenceVerdicts:
    """Judge packets given in arrival order, continuing from ``previous`` (per APID, from earlier batches).

    ``known``: (apid, count, time) of packets already stored; one of them arriving again is a duplicate."""
    verdicts = SequenceVerdicts(state=dict(previous))
    seen: set[tuple[int, int, int | None]] = set()
    for index, (apid, count, time_us) in enumerate(zip(apids, counts, times_us, strict=True)):
        key = (apid, count, time_us)
        last = verdicts.state.get(apid)
        missing = 0
        if key in seen or key in known:
            status = DUPLICATE
        elif last is None:
            status = FIRST
        else:
            step = (count - last.sequence_count) % SEQUENCE_MODULUS
            if step == 1:
                status = OK
            elif step == 0:
                status = DUPLICATE if time_us == last.packet_time_us else COUNTER_REPEAT
            elif step < HALF_RANGE:
                status, missing = GAP, step - 1
            else:
                status = OUT_OF_ORDER
        seen.add(key)
        if status in (FIRST, OK, GAP, COUNTER_REPEAT):
            verdicts.state[apid] = Previous(count, time_us)
        verdicts.status.append(status)
        verdicts.missing_before.append(missing)
        if status not in (FIRST, OK):
            verdicts.events.append(
                SequenceEvent(index, apid, status, last.sequence_count if last else None, count, missing)
            )
    return verdicts


def missing_range(event: SequenceEvent) -> str:
    """The missing counts of a gap as text, e.g. ``16383..1`` (wrapping) or ``7``."""
    if event.kind != GAP or event.previous_count is None:
        return ""
    first = (event.previous_count + 1) % SEQUENCE_MODULUS
    last = (event.sequence_count - 1) % SEQUENCE_MODULUS
    return str(first) if first == last else f"{first}..{last}"
