import numpy as np
import pytest

from fdenv.timeline import (
    Interval,
    as_intervals,
    clip,
    frame_runs,
    intervals_to_mask,
    mask_to_intervals,
    merge,
    total_duration,
)


def test_merge_joins_overlaps_and_small_gaps():
    spans = [Interval(2.0, 3.0), Interval(0.0, 1.0), Interval(0.5, 1.5), Interval(3.2, 4.0)]
    assert merge(spans) == [Interval(0.0, 1.5), Interval(2.0, 3.0), Interval(3.2, 4.0)]
    # the 0.2 s gap between 3.0 and 3.2 is joined at max_gap 0.25, the 0.5 s gap is not
    assert merge(spans, max_gap=0.25) == [Interval(0.0, 1.5), Interval(2.0, 4.0)]


def test_clip_cuts_and_drops():
    spans = [Interval(-1.0, 0.5), Interval(1.0, 2.0), Interval(5.0, 6.0)]
    assert clip(spans, 0.0, 1.5) == [Interval(0.0, 0.5), Interval(1.0, 1.5)]


def test_frame_runs_and_intervals():
    mask = np.array([0, 1, 1, 0, 0, 1], dtype=bool)
    assert frame_runs(mask) == [(1, 3), (5, 6)]
    got = mask_to_intervals(mask, frame_s=0.08)
    np.testing.assert_allclose(got, [(0.08, 0.24), (0.40, 0.48)])
    assert frame_runs(np.zeros(4, dtype=bool)) == []


def test_mask_uses_frame_midpoints():
    # frame k's midpoint is 0.08k + 0.04: [0.10, 0.30) holds the midpoints 0.12 and 0.20 and 0.28
    mask = intervals_to_mask([Interval(0.10, 0.30)], num_frames=6)
    assert mask.tolist() == [False, True, True, True, False, False]
    # an offset of 0.16 s (two frames) shifts the run by two frames; out-of-range is cut
    mask = intervals_to_mask([Interval(0.10, 0.30)], num_frames=5, offset=0.16)
    assert mask.tolist() == [False, False, False, True, True]


def test_mask_round_trip():
    spans = [Interval(0.08, 0.4), Interval(0.8, 1.6)]
    np.testing.assert_allclose(mask_to_intervals(intervals_to_mask(spans, 30)), spans)


def test_as_intervals_and_total():
    spans = as_intervals([[2, 3], [0, 1.5], [1, 2]])
    assert spans[0] == Interval(0.0, 1.5)
    assert total_duration(spans) == pytest.approx(3.0)
    assert Interval(1.0, 3.5).duration == 2.5
    assert Interval(0, 1).overlaps(Interval(0.5, 2)) and not Interval(0, 1).overlaps(Interval(1, 2))
