"""Selectivity: talk through what is not for you, stop for what is (closed loop).

Plan: the user asks one question; while the agent answers, ``overlay_after_s`` into the
answer, one of four things happens (Full-Duplex-Bench v1.5's overlap behaviours, tau-voice's
selectivity): the user backchannels, speaks to someone else in the room (quieter, turned
away), another person speaks in the background (another voice, quieter), or the user truly
interrupts with a question (half the plans; ``interruption_share``). The agent should keep
talking through the first three and yield to the last, then answer it. The episode ends when
the user has nothing more to say (the agent went quiet after the overlap) or at
``max_duration_s``.

Reward terms:
- ``answer``: as in :mod:`fdenv.axes.conversation` (the question, and an interruption).
- ``selectivity``: +1 if the agent met the overlap right (talked through a backchannel, side
  talk or background speech: was talking when it started and did not stop within 1 s; stopped
  within 2 s for an interruption, or was not talking), -1 if not, and -1 if the overlap never
  came (the agent did not talk long enough to be tested).
- ``barge_in``: as in :mod:`fdenv.axes.conversation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from fdenv.audio.espeak import random_style
from fdenv.axes.base import AxisScore
from fdenv.axes.closed_loop import ClosedLoopAxis, bank_lines, reprompt_lines
from fdenv.axes.conversation import closed_loop_terms
from fdenv.episode import Episode
from fdenv.interaction import ANSWER_WINDOW_S, SELECTIVITY_WINDOW_S, overlaps, yielded
from fdenv.scenarios.sentences import load_sentence_bank, unmarked
from fdenv.user.config import UserConfig
from fdenv.user.plan import SIDE_TALK, TALK_THROUGH, Line, Turn, UserPlan


def selectivity_term(episode: Episode) -> float:
    """+1 / -1 for the episode's overlap (see the module docstring)."""
    found = overlaps(
        episode.user_lines, episode.agent_speech_in_window(), episode.scenario.duration
    )
    if not found:
        return -1.0
    first = found[0]
    if first.kind == "interruption":
        return 1.0 if yielded(first, ANSWER_WINDOW_S) else -1.0
    return 1.0 if first.agent_talking and not yielded(first, SELECTIVITY_WINDOW_S) else -1.0


@dataclass(frozen=True)
class Selectivity(ClosedLoopAxis):
    name: ClassVar[str] = "Selectivity"

    user: UserConfig = field(default_factory=lambda: UserConfig(finish_probability=(1.0, 1.0)))
    """The user finishes its question even when talked over: this axis tests the overlaps
    during the answer, so an agent that never stops still gets to meet them (and a user who
    yields its question is the Conversation axis' business)."""
    overlay_after_s: tuple[float, float] = (0.5, 1.5)
    """Agent talk before the overlap starts (our choice: early in a short answer)."""
    interruption_share: float = 0.5
    """Share of plans whose overlap is a real interruption; the rest are backchannels, side
    talk and background speech in equal parts. Half and half, so that neither an agent that
    always yields nor one that never does scores above 0 on ``selectivity``."""
    side_talk_gain: float = 0.6
    """Level of speech to someone else in the room (turned away from the microphone)."""
    background_gain: float = 0.3
    """Level of another person's speech in the background."""
    max_duration_s: float = 15.0

    def __post_init__(self) -> None:
        super().__post_init__()
        low, high = self.overlay_after_s
        if not 0 <= low <= high:
            raise ValueError("Selectivity.overlay_after_s must satisfy 0 <= low <= high")
        if not 0 <= self.interruption_share <= 1:
            raise ValueError("Selectivity.interruption_share must lie in [0, 1]")
        for name in ("side_talk_gain", "background_gain"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"Selectivity.{name} must lie in (0, 1]")

    def plan(self, rng: np.random.Generator) -> UserPlan:
        bank = load_sentence_bank()
        style = random_style(rng)
        question = unmarked(bank.questions[rng.integers(len(bank.questions))])
        if rng.random() < self.interruption_share:
            kind = "interruption"
        else:
            kind = TALK_THROUGH[rng.integers(len(TALK_THROUGH))]
        if kind == "backchannel":
            overlay = bank_lines("backchannel", "backchannels", style, rng, 1)[0]
        elif kind == "interruption":
            overlay = bank_lines("interruption", "interruptions", style, rng, 1)[0]
        elif kind == "side_talk":
            text = SIDE_TALK[rng.integers(len(SIDE_TALK))]
            overlay = Line("side_talk", text, style, self.side_talk_gain)
        else:
            other = random_style(rng)
            text = unmarked(bank.statements[rng.integers(len(bank.statements))])
            overlay = Line("background", text, other, self.background_gain)
        after = float(rng.uniform(*self.overlay_after_s))
        turn = Turn((Line("turn", question, style),), overlay=overlay, overlay_after_s=after)
        return UserPlan(
            turns=(turn,),
            reprompts=reprompt_lines(style),
            max_duration_s=self.max_duration_s,
            extra={"overlay": kind},
        )

    def score(self, episode: Episode) -> AxisScore:
        terms = closed_loop_terms(episode)
        terms = {
            "answer": terms["answer"],
            "selectivity": selectivity_term(episode),
            "barge_in": terms["barge_in"],
        }
        return AxisScore(terms=terms, stats=self.metrics(episode))
