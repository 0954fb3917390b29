"""Who speaks when in a two-party conversation, and the segments axes mine from it.

Definitions (Ohashi et al. 2026, arXiv 2606.11167, section "Segment mining"): a VAD on each
channel gives inter-pausal units (IPUs); a silence longer than ``max_pause_s`` (1.0 s) ends an
utterance, and a silence of at most that inside an utterance is a pause. Each axis turns these
labels into :class:`Segment` records with :meth:`fdenv.axes.Axis.mine`; :mod:`fdenv.mining`
cuts the audio.
Times here are seconds from the start of the conversation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from fdenv.timeline import Interval, clip, merge

TIME_EPS_S = 1e-6
"""Slack of threshold comparisons: corpus times are decimal seconds held in binary floats, and
``15.4 - 15.0`` is 0.40000000000000036; thresholds hold to the microsecond."""


def at_least(value: float, bound: float) -> bool:
    return value >= bound - TIME_EPS_S


def at_most(value: float, bound: float) -> bool:
    return value <= bound + TIME_EPS_S


@dataclass(frozen=True)
class MinedUtterance:
    """An utterance: IPUs joined across silences of at most ``max_pause_s``."""

    span: Interval
    pauses: tuple[Interval, ...] = ()

    @property
    def duration(self) -> float:
        return self.span.duration


def utterances_from_ipus(
    ipus: Iterable[Interval], max_pause_s: float = 1.0
) -> list[MinedUtterance]:
    """Groups IPUs into utterances; the silences inside an utterance are its pauses.

    Overlapping or touching IPUs are one IPU first, so a pause always has a positive length.
    """
    units = merge(ipus)
    utterances: list[MinedUtterance] = []
    group: list[Interval] = []
    for unit in units:
        if group and not at_most(unit.start - group[-1].end, max_pause_s):
            utterances.append(_utterance(group))
            group = []
        group.append(unit)
    if group:
        utterances.append(_utterance(group))
    return utterances


def _utterance(group: Sequence[Interval]) -> MinedUtterance:
    pauses = tuple(Interval(a.end, b.start) for a, b in pairwise(group))
    return MinedUtterance(Interval(group[0].start, group[-1].end), pauses)


@dataclass(frozen=True)
class ChannelLabels:
    """One speaker's IPUs and the utterances built from them."""

    ipus: tuple[Interval, ...]
    utterances: tuple[MinedUtterance, ...]

    def speaks_during(self, span: Interval) -> bool:
        """Whether any IPU overlaps ``span``."""
        return any(i.overlaps(span) for i in self.ipus)

    def utterances_overlapping(self, span: Interval) -> list[MinedUtterance]:
        return [u for u in self.utterances if u.span.overlaps(span)]

    def first_starting_after(self, t: float) -> MinedUtterance | None:
        return next((u for u in self.utterances if u.span.start > t), None)


@dataclass(frozen=True)
class ConversationLabels:
    """Both speakers' labels; channel indices match the corpus's channels."""

    channels: tuple[ChannelLabels, ChannelLabels]
    duration: float

    @classmethod
    def from_ipus(
        cls,
        ipus: tuple[Sequence[Interval], Sequence[Interval]],
        duration: float,
        max_pause_s: float = 1.0,
    ) -> ConversationLabels:
        """Labels from each channel's IPUs, clipped to ``[0, duration]``."""
        channels = []
        for units in ipus:
            kept = merge(clip(units, 0.0, duration))
            channels.append(
                ChannelLabels(tuple(kept), tuple(utterances_from_ipus(kept, max_pause_s)))
            )
        return cls((channels[0], channels[1]), duration)

    def window(self, start: float, end: float) -> Interval:
        """``[start, end)`` clipped to the conversation."""
        return Interval(max(start, 0.0), min(end, self.duration))


@dataclass(frozen=True)
class MiningRules:
    """Windows around mined utterances, shared by the axes (each axis keeps its own tau_min).

    A scenario plays ``lead_s`` of the user channel before the first labelled utterance (less
    than the 1 s that separates utterances, so no earlier user speech is cut in half); pause and
    backchannel windows end ``tail_s`` after the utterance (their rewards judge the utterance
    itself); turn-taking and interruption windows run ``response_s`` past the turn end or the
    interruption's end, the time the agent has to answer (a scenario that never gets an answer
    scores ``-response_s``), cut at the conversation's end.
    """

    max_pause_s: float = 1.0
    """Longest silence inside an utterance: a longer one ends it (seconds)."""
    lead_s: float = 0.5
    """User channel played before the first labelled utterance (seconds)."""
    tail_s: float = 0.2
    """Pause and backchannel windows end this long after the utterance (seconds)."""
    response_s: float = 5.0
    """Time the agent has to answer in turn-taking and interruption windows (seconds)."""

    def __post_init__(self) -> None:
        for name in ("max_pause_s", "lead_s", "tail_s", "response_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"MiningRules.{name} must be >= 0 s, got {getattr(self, name)}")


@dataclass(frozen=True)
class Segment:
    """A mined stretch of conversation: the user channel's window and the axis' labels.

    ``user`` is the channel playing the user (speaker X); the other one is the agent's role (Y).
    Labels are in conversation time; the miner shifts them to scenario time and adds
    ``user_speech`` (X's IPUs inside the window).
    """

    axis: str
    user: int
    window: Interval
    pauses: tuple[Interval, ...] = ()
    turn_end: float | None = None
    backchannels: tuple[Interval, ...] = ()
    interruption: Interval | None = None
    evidence: dict[str, list[float]] = field(default_factory=dict)
    """The utterances the definition matched (``x``, ``y``, ``x2``, ``y2``: [start, end])."""
