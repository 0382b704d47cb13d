"""Sequence counts per APID: gaps with wrap-around, duplicates kept once, counter repeats, late packets."""

from satlake.ground.sequence import (
    COUNTER_REPEAT,
    DUPLICATE,
    FIRST,
    GAP,
    OK,
    OUT_OF_ORDER,
    Previous,
    judge_sequence,
    missing_range,
)


def test_consecutive_counts_are_ok_and_each_apid_counts_alone() -> None:
    verdicts = judge_sequence([100, 101, 100, 101], [5, 9, 6, 10], [1, 1, 2, 2], {})
    assert verdicts.status == [FIRST, FIRST, OK, OK]
    assert verdicts.events == []
    assert verdicts.state == {100: Previous(6, 2), 101: Previous(10, 2)}


def test_a_gap_across_the_14_bit_wrap_counts_the_missing_packets() -> None:
    verdicts = judge_sequence([7, 7, 7], [16382, 16383, 2], [1, 2, 3], {})
    assert verdicts.status == [FIRST, OK, GAP]
    assert verdicts.missing_before == [0, 0, 2]
    (event,) = verdicts.events
    assert (event.kind, event.previous_count, event.sequence_count, event.missing) == (GAP, 16383, 2, 2)
    assert missing_range(event) == "0..1"


def test_wrapping_from_16383_to_0_is_no_gap() -> None:
    assert judge_sequence([7, 7], [16383, 0], [1, 2], {}).status == [FIRST, OK]


def test_the_same_packet_twice_is_a_duplicate_and_is_not_kept() -> None:
    verdicts = judge_sequence([1, 1, 1, 1], [3, 4, 4, 5], [10, 11, 11, 12], {})
    assert verdicts.status == [FIRST, OK, DUPLICATE, OK]
    assert verdicts.kept == [True, True, False, True]


def test_a_duplicate_received_later_through_another_station_is_still_one_packet() -> None:
    verdicts = judge_sequence([1, 1, 1, 1], [3, 4, 3, 5], [10, 11, 10, 12], {})
    assert verdicts.status == [FIRST, OK, DUPLICATE, OK]


def test_a_stored_packet_arriving_again_is_a_duplicate() -> None:
    verdicts = judge_sequence([1], [3], [10], {1: Previous(9, 20)}, known={(1, 3, 10)})
    assert verdicts.status == [DUPLICATE]


def test_the_same_count_at_another_time_is_a_counter_repeat_and_is_kept() -> None:
    verdicts = judge_sequence([1, 1], [3, 3], [10, 11], {})
    assert verdicts.status == [FIRST, COUNTER_REPEAT]
    assert verdicts.kept == [True, True]


def test_a_late_packet_does_not_move_the_position_back() -> None:
    verdicts = judge_sequence([1, 1, 1, 1], [10, 12, 11, 13], [1, 3, 2, 4], {})
    assert verdicts.status == [FIRST, GAP, OUT_OF_ORDER, OK]
    assert verdicts.missing_before == [0, 1, 0, 0]


def test_judging_continues_from_the_previous_batch() -> None:
    verdicts = judge_sequence([1], [100], [5], {1: Previous(90, 4)})
    assert verdicts.status == [GAP]
    assert verdicts.missing_before == [9]
