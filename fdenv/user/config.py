"""The simulated user's behaviour knobs, and the values one episode draws from them.

Each timing knob is a range ``(low, high)`` in seconds: every episode draws its own value
uniformly from it (:meth:`UserConfig.draw`), so a policy meets patient and impatient users
alike, and a range with ``low == high`` fixes the value. Probabilities are ranges too. The
defaults come from published measurements, cited next to each field; where no measurement
exists the choice is said to be ours.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fdenv.constants import FRAME_S

Range = tuple[float, float]


@dataclass(frozen=True)
class UserConfig:
    """How a simulated user takes turns, yields, backchannels and cuts in."""

    answer_gap_s: Range = (0.4, 0.8)
    """Agent silence after which the user takes the floor again. tau-voice's user responds once
    >= 2 ticks of 0.2 s have passed since the agent last spoke (0.4 s); conversation analysis
    puts the modal gap between turns at 0-200 ms (Stivers et al. 2009, PNAS), so 0.8 s is an
    unhurried user."""
    reprompt_after_s: Range = (2.5, 4.0)
    """Silence after the user's turn before it asks "are you there?". tau-voice counts a turn
    unanswered when the agent has not started within its 2.0 s response window; the user waits
    a little longer before saying so (our choice)."""
    max_reprompts: int = 2
    """Re-prompts per turn before the user gives up on it and moves on (our choice)."""
    yield_after_s: Range = (0.2, 0.6)
    """Overlap that makes the user stop when the agent talks over it. tau-voice's user yields
    after 2 ticks of overlap (0.4 s)."""
    finish_probability: Range = (0.0, 0.4)
    """Chance that a user talked over finishes its sentence instead of trailing off at the next
    word boundary (our choice: most users yield, as tau-voice's always does)."""
    backchannel_probability: Range = (0.2, 0.5)
    """Chance per agent answer that the user says "mm-hmm" while the agent talks. tau-voice's
    LLM user backchannels about once per 4-6 sentences of the agent."""
    backchannel_after_s: Range = (1.5, 3.0)
    """Agent talk before that backchannel: tau-voice backchannels only after >= 2 substantive
    sentences; tiny models answer in a few seconds, so the range is shorter (our choice)."""
    interrupt_probability: Range = (0.1, 0.3)
    """Chance per agent answer that the user cuts in with a question (our choice)."""
    interrupt_after_s: Range = (1.5, 2.5)
    """Agent talk before the user cuts in: tau-voice does not interrupt before ~5 words, about
    2 s at 150 words per minute."""
    answer_s: float = 1.0
    """Agent talk after the user's turn that counts as an answer: a shorter burst is a
    backchannel, and the user goes on waiting (the paper's backchannel reward draws the line
    at 1 s)."""
    stop_s: float = 0.24
    """Agent silence that counts as the agent having stopped (3 frames), so that the gap
    between two words is not mistaken for a yield (our choice)."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "max_reprompts":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"UserConfig.max_reprompts must be an int >= 0, got {value!r}")
                continue
            if field.name in ("stop_s", "answer_s"):
                _check_seconds(field.name, value)
                continue
            pair = _check_range(field.name, value)
            if field.name.endswith("_probability") and not 0.0 <= pair[0] <= pair[1] <= 1.0:
                raise ValueError(f"UserConfig.{field.name} must lie in [0, 1], got {value!r}")
            object.__setattr__(self, field.name, pair)
        if self.answer_gap_s[1] >= self.reprompt_after_s[0]:
            raise ValueError(
                "UserConfig.answer_gap_s must end before reprompt_after_s starts (the user "
                f"re-prompts an agent that has not answered), got {self.answer_gap_s} and "
                f"{self.reprompt_after_s}"
            )

    def replace(self, **changes: Any) -> UserConfig:
        """A copy with ``changes``; an unknown knob is a ``ValueError`` naming the knobs."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            known = ", ".join(f.name for f in dataclasses.fields(self))
            raise ValueError(f"unknown user knob {unknown[0]!r}; the knobs are: {known}")
        return dataclasses.replace(self, **changes)

    def draw(self, rng: np.random.Generator) -> UserTraits:
        """One episode's user: each range drawn once, in field order, timings as frames."""

        def pick(name: str) -> float:
            low, high = getattr(self, name)
            return float(rng.uniform(low, high)) if high > low else float(low)

        def frames(name: str) -> int:
            return max(1, round(pick(name) / FRAME_S))

        return UserTraits(
            answer_gap=frames("answer_gap_s"),
            reprompt_after=frames("reprompt_after_s"),
            max_reprompts=self.max_reprompts,
            yield_after=frames("yield_after_s"),
            finish_probability=pick("finish_probability"),
            backchannel_probability=pick("backchannel_probability"),
            backchannel_after=frames("backchannel_after_s"),
            interrupt_probability=pick("interrupt_probability"),
            interrupt_after=frames("interrupt_after_s"),
            answer=math.floor(self.answer_s / FRAME_S + 1e-9) + 1,
            stop=max(1, round(self.stop_s / FRAME_S)),
        )


@dataclass(frozen=True)
class UserTraits:
    """One episode's user, timings in 80 ms frames (see :class:`UserConfig` for each knob)."""

    answer_gap: int
    reprompt_after: int
    max_reprompts: int
    yield_after: int
    finish_probability: float
    backchannel_probability: float
    backchannel_after: int
    interrupt_probability: float
    interrupt_after: int
    answer: int
    """Frames of agent talk that make an answer (more than ``answer_s``)."""
    stop: int

    def to_json(self) -> dict[str, float]:
        """Timings back in seconds, for episode records."""
        record: dict[str, float] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, int) and field.name != "max_reprompts":
                record[f"{field.name}_s"] = round(value * FRAME_S, 6)
            else:
                record[field.name] = value
        return record


def _check_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"UserConfig.{name} must be a finite number, got {value!r}")
    if value < 0:
        raise ValueError(f"UserConfig.{name} must be >= 0, got {value}")
    return float(value)


def _check_range(name: str, value: Any) -> Range:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"UserConfig.{name} must be a range (low, high), got {value!r}")
    low, high = (_check_seconds(name, v) for v in value)
    if low > high:
        raise ValueError(f"UserConfig.{name} must have low <= high, got {value!r}")
    return low, high
