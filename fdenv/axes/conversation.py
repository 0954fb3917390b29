"""Conversation: a multi-turn exchange with a user who reacts (closed loop).

Plan: a random voice asks or tells two to four things from the sentence bank; some turns have
a mid-sentence pause. The simulated user waits for answers, re-prompts an agent that stays
silent, yields (or finishes its sentence) when talked over, takes up its turn again, says
"mm-hmm" during answers and sometimes cuts in with a question (see
:class:`~fdenv.user.config.UserConfig`). The episode ends when the user has nothing more to
say or at ``max_duration_s``.

Reward terms (each from what happened; :mod:`fdenv.interaction` defines the measures):
- ``answer``: mean over the user's turns of ``1 - min(L, 2) / 2``, ``L`` the answer latency in
  seconds (tau-voice's 2 s response window; an answer begun before the turn ended is charged
  ``end - start``), 0 for a turn not answered before the user spoke again; in [0, 1].
- ``barge_in``: ``-min(1, n / turns)``, ``n`` the agent's talk spurts longer than 1 s (a
  backchannel is no barge-in) that start while the user holds the floor (speaking or in a
  mid-turn pause): cutting the user off.
- ``yield``: minus the share of the user's interruptions the agent did not stop for within 2 s.
- ``talk_through``: minus the share of the overlaps to talk through (the user's backchannels;
  side talk and background speech where a plan has them) during which the agent, talking when
  it started, stopped within 1 s.
A term with nothing to measure in an episode is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fdenv.audio.espeak import random_style
from fdenv.axes.base import AxisScore
from fdenv.axes.closed_loop import ClosedLoopAxis, bank_lines, reprompt_lines
from fdenv.episode import Episode
from fdenv.interaction import (
    ANSWER_WINDOW_S,
    SELECTIVITY_WINDOW_S,
    answer_latencies,
    barge_ins,
    overlaps,
    yielded,
)
from fdenv.scenarios.sentences import load_sentence_bank, split_at_pause, unmarked
from fdenv.user.plan import Line, Turn, UserPlan


def answer_term(latencies: list[float | None]) -> float:
    """Mean of ``1 - min(L, 2) / 2`` over turns, unanswered turns 0; 0 without turns."""
    if not latencies:
        return 0.0
    scores = [
        0.0 if x is None else 1.0 - min(x, ANSWER_WINDOW_S) / ANSWER_WINDOW_S for x in latencies
    ]
    return float(np.mean(scores))


def closed_loop_terms(episode: Episode) -> dict[str, float]:
    """The four reward terms of a closed-loop episode (see the module docstring)."""
    lines, events = episode.user_lines, episode.events
    agent = episode.agent_speech_in_window()
    turns = len({x.turn for x in lines if x.kind in ("turn", "interruption")})
    found = overlaps(lines, agent, episode.scenario.duration)
    cut_ins = [o for o in found if o.kind == "interruption"]
    talked = [o for o in found if o.kind != "interruption" and o.agent_talking]
    return {
        "answer": answer_term(answer_latencies(lines, agent)),
        "barge_in": -min(1.0, barge_ins(lines, events, agent) / turns) if turns else 0.0,
        "yield": -float(np.mean([not yielded(o, ANSWER_WINDOW_S) for o in cut_ins]))
        if cut_ins
        else 0.0,
        "talk_through": -float(np.mean([yielded(o, SELECTIVITY_WINDOW_S) for o in talked]))
        if talked
        else 0.0,
    }


@dataclass(frozen=True)
class Conversation(ClosedLoopAxis):
    name: ClassVar[str] = "Conversation"

    turns: tuple[int, int] = (2, 4)
    """User turns per conversation, drawn uniformly (inclusive)."""
    pause_probability: float = 0.5
    """Chance that a turn with a hesitation point pauses there."""
    pause_s: tuple[float, float] = (0.8, 1.6)
    """Mid-sentence pause lengths: long enough that an eager agent barges in (Full-Duplex-Bench's
    pause task uses pauses of this order)."""
    max_duration_s: float = 30.0

    def __post_init__(self) -> None:
        super().__post_init__()
        low, high = self.turns
        if not 1 <= low <= high:
            raise ValueError(f"Conversation.turns must satisfy 1 <= low <= high, got {self.turns}")
        if not 0.0 <= self.pause_probability <= 1.0:
            raise ValueError("Conversation.pause_probability must lie in [0, 1]")
        if not 0 < self.pause_s[0] <= self.pause_s[1]:
            raise ValueError(
                f"Conversation.pause_s must satisfy 0 < low <= high, got {self.pause_s}"
            )

    def plan(self, rng: np.random.Generator) -> UserPlan:
        bank = load_sentence_bank()
        style = random_style(rng)
        pool = [*bank.questions, *bank.statements]
        picks = rng.choice(len(pool), size=int(rng.integers(self.turns[0], self.turns[1] + 1)))
        turns = []
        for index in picks:
            first, second = split_at_pause(pool[index])
            if second is not None and rng.random() < self.pause_probability:
                parts = (Line("turn", first, style), Line("turn", second, style))
                turns.append(Turn(parts, float(rng.uniform(*self.pause_s))))
            else:
                turns.append(Turn((Line("turn", unmarked(pool[index]), style),)))
        return UserPlan(
            turns=tuple(turns),
            reprompts=reprompt_lines(style),
            backchannels=bank_lines("backchannel", "backchannels", style, rng, 3),
            interruptions=bank_lines("interruption", "interruptions", style, rng, 2),
            max_duration_s=self.max_duration_s,
        )

    def score(self, episode: Episode) -> AxisScore:
        return AxisScore(terms=closed_loop_terms(episode), stats=self.metrics(episode))
