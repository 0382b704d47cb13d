"""The temporal functions of CQL2 (T_INTERSECTS, T_BEFORE, ... T_STARTS) over the catalog's ``datetime``: each a
fixed pattern of comparisons between interval endpoints, with an item's datetime the instant [datetime, datetime]
and every literal endpoint a bound parameter (open ends decided here, without a parameter)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from satlake.catalog.search import parse_datetime_range
from satlake.serving.stac_queryables import FilterError, named_property

_OPEN = (None, "..", "")
Endpoint = Any  # a column reference (_Column), a UTC datetime, or one of the infinities below
_NEG_INF, _POS_INF = float("-inf"), float("inf")

# Each temporal relation of CQL2 between A = [as, ae] and B = [bs, be], as a conjunction (or, for t_disjoint, a
# disjunction) of endpoint comparisons. An item's datetime is the instant interval [datetime, datetime].
TEMPORAL_OPS: Mapping[str, tuple[str, tuple[tuple[str, str, str], ...]]] = {
    "t_after": ("AND", (("as", ">", "be"),)),
    "t_before": ("AND", (("ae", "<", "bs"),)),
    "t_contains": ("AND", (("as", "<", "bs"), ("ae", ">", "be"))),
    "t_disjoint": ("OR", (("ae", "<", "bs"), ("as", ">", "be"))),
    "t_during": ("AND", (("as", ">", "bs"), ("ae", "<", "be"))),
    "t_equals": ("AND", (("as", "=", "bs"), ("ae", "=", "be"))),
    "t_finishedby": ("AND", (("as", "<", "bs"), ("ae", "=", "be"))),
    "t_finishes": ("AND", (("as", ">", "bs"), ("ae", "=", "be"))),
    "t_intersects": ("AND", (("as", "<=", "be"), ("ae", ">=", "bs"))),
    "t_meets": ("AND", (("ae", "=", "bs"),)),
    "t_metby": ("AND", (("as", "=", "be"),)),
    "t_overlappedby": ("AND", (("as", ">", "bs"), ("as", "<", "be"), ("ae", ">", "be"))),
    "t_overlaps": ("AND", (("as", "<", "bs"), ("ae", ">", "bs"), ("ae", "<", "be"))),
    "t_startedby": ("AND", (("as", "=", "bs"), ("ae", ">", "be"))),
    "t_starts": ("AND", (("as", "=", "bs"), ("ae", "<", "be"))),
}


@dataclass(frozen=True, slots=True)
class _Column:
    sql: str


def instant_bounds(value: Any) -> tuple[datetime | float, datetime | float]:
    """A temporal literal as its [start, end] (open ends as infinities)."""
    try:
        if isinstance(value, Mapping) and "timestamp" in value:
            start, end = parse_datetime_range(str(value["timestamp"]))
            return start or _NEG_INF, start or _POS_INF
        if isinstance(value, Mapping) and "date" in value:
            start, end = parse_datetime_range(str(value["date"]))
            return start or _NEG_INF, end or _POS_INF
        if isinstance(value, Mapping) and "interval" in value and len(value["interval"]) == 2:
            ends = [_interval_end(v, i == 1) for i, v in enumerate(value["interval"])]
            return ends[0], ends[1]
    except ValueError as error:
        raise FilterError(f"bad temporal literal {json.dumps(value)[:80]}: {error}") from None
    raise FilterError(f"expected TIMESTAMP(...), DATE(...) or INTERVAL(...), not {json.dumps(value)[:80]}")


def _interval_end(value: Any, is_end: bool) -> datetime | float:
    if isinstance(value, Mapping):
        value = value.get("timestamp", value.get("date"))
    if value in _OPEN:
        return _POS_INF if is_end else _NEG_INF
    start, end = parse_datetime_range(str(value))
    moment = end if is_end else start
    return moment if moment is not None else (_POS_INF if is_end else _NEG_INF)


def _temporal_operand(node: Any) -> tuple[Endpoint, Endpoint]:
    named = named_property(node)
    if named is not None:
        if named[1].kind != "datetime":
            raise FilterError(f"{named[0]} is not temporal; temporal functions take datetime")
        column = _Column(f'"{named[1].column}"')
        return column, column
    return instant_bounds(node)


def _endpoint_comparison(left: Endpoint, op: str, right: Endpoint, params: list[Any]) -> str:
    if not isinstance(left, _Column) and not isinstance(right, _Column):
        return "TRUE" if _compare_values(left, op, right) else "FALSE"
    if isinstance(left, float) or isinstance(right, float):  # a column against an open end
        column_is_left = isinstance(left, _Column)
        infinite = right if column_is_left else left
        # A finite column value is above -inf and below +inf, never equal to either.
        below = (infinite == _POS_INF) == column_is_left
        holds = {"<": below, "<=": below, ">": not below, ">=": not below, "=": False}[op]
        return "TRUE" if holds else "FALSE"
    left_sql = left.sql if isinstance(left, _Column) else "?"
    right_sql = right.sql if isinstance(right, _Column) else "?"
    params.extend(v for v in (left, right) if not isinstance(v, _Column))
    return f"{left_sql} {op} {right_sql}"


def _compare_values(left: datetime | float, op: str, right: datetime | float) -> bool:
    def key(v: datetime | float) -> float:
        return v if isinstance(v, float) else v.astimezone(UTC).timestamp()

    a, b = key(left), key(right)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "=": a == b}[op]


def temporal_sql(op: str, args: list[Any], params: list[Any]) -> str:
    if len(args) != 2:
        raise FilterError(f"{op.upper()} takes two temporal arguments")
    (a_start, a_end), (b_start, b_end) = _temporal_operand(args[0]), _temporal_operand(args[1])
    ends = {"as": a_start, "ae": a_end, "bs": b_start, "be": b_end}
    joiner, comparisons = TEMPORAL_OPS[op]
    parts = [_endpoint_comparison(ends[x], cmp, ends[y], params) for x, cmp, y in comparisons]
    return "(" + f" {joiner} ".join(parts) + ")"
