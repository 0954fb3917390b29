"""Speech intervals in seconds and their conversion to and from 80 ms frames.

Axes, metrics and mining all reason about who speaks when; they share these helpers so that
the same rounding rules hold everywhere. Frame ``k`` covers ``[k * FRAME_S, (k + 1) * FRAME_S)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from fdenv.constants import FRAME_S


class Interval(NamedTuple):
    """A half-open time span ``[start, end)`` in seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    def shift(self, offset: float) -> Interval:
        return Interval(self.start + offset, self.end + offset)

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


def as_intervals(pairs: Iterable[Sequence[float]]) -> list[Interval]:
    """Converts ``[[start, end], ...]`` (as read from JSON) into sorted intervals."""
    intervals = [Interval(float(s), float(e)) for s, e in pairs]
    return sorted(intervals)


def merge(intervals: Iterable[Interval], max_gap: float = 0.0) -> list[Interval]:
    """Unions intervals, also joining those separated by at most ``max_gap`` seconds."""
    merged: list[Interval] = []
    for interval in sorted(intervals):
        if merged and interval.start - merged[-1].end <= max_gap:
            last = merged[-1]
            merged[-1] = Interval(last.start, max(last.end, interval.end))
        else:
            merged.append(interval)
    return merged


def clip(intervals: Iterable[Interval], start: float, end: float) -> list[Interval]:
    """Cuts intervals to ``[start, end)``, dropping those left empty (an interval already
    inside is kept as it is: every episode's end clips its speech)."""
    clipped = []
    for interval in intervals:
        a, b = interval
        if start <= a and b <= end:
            if b > a:
                clipped.append(interval)
        elif min(b, end) > max(a, start):
            clipped.append(Interval(max(a, start), min(b, end)))
    return clipped


def _run_edges(active: np.ndarray) -> np.ndarray:
    """First and stop frame of each run of ``True`` in a 1-D mask, interleaved."""
    padded = np.concatenate(([False], np.asarray(active, dtype=bool), [False]))
    return np.flatnonzero(padded[1:] != padded[:-1])


def frame_runs(active: np.ndarray) -> list[tuple[int, int]]:
    """Returns ``(first, stop)`` frame indices of each run of ``True`` in a 1-D mask."""
    edges = _run_edges(active)
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def mask_to_intervals(active: np.ndarray, frame_s: float = FRAME_S) -> list[Interval]:
    """Turns a per-frame activity mask into intervals in seconds."""
    edges = _run_edges(active) * frame_s
    return list(map(Interval, edges[0::2].tolist(), edges[1::2].tolist()))


def intervals_to_mask(
    intervals: Iterable[Interval], num_frames: int, offset: float = 0.0, frame_s: float = FRAME_S
) -> np.ndarray:
    """Marks frame ``k`` active when its midpoint lies inside an interval.

    ``offset`` is added to every interval first (for example the lead-in before a scenario).
    The midpoint rule gives each boundary to exactly one frame, so masks and intervals round-trip.
    """
    mask = np.zeros(num_frames, dtype=bool)
    for interval in intervals:
        first = int(np.ceil((interval.start + offset) / frame_s - 0.5))
        stop = int(np.ceil((interval.end + offset) / frame_s - 0.5))
        mask[max(first, 0) : max(min(stop, num_frames), 0)] = True
    return mask


def total_duration(intervals: Iterable[Interval]) -> float:
    return float(sum(i.duration for i in merge(intervals)))
