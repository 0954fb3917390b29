"""The simulated user's decisions: replaceable, and consulted only when something happens.

:class:`fdenv.user.simulator.ReactiveUsers` counts frames (overlap, silence, talk) for every
env at once and calls the policy at decision points only: a turn to take, an answer to listen
to, being talked over, an unanswered turn. So a policy may be slow, such as :class:`LLMUser`,
which asks a language model what to say next at turn boundaries, never per frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fdenv.user.config import UserTraits
from fdenv.user.events import UserEvent
from fdenv.user.plan import Line, Turn, UserPlan


@dataclass
class UserContext:
    """What the user knows at a decision point of one episode."""

    plan: UserPlan
    traits: UserTraits
    rng: np.random.Generator
    """The episode's generator: the same seed and the same agent give the same draws."""
    turns_taken: int = 0
    """Planned turns started so far."""
    reprompts: int = 0
    """Re-prompts since the user's last turn ended."""
    said: list[Line] = field(default_factory=list)
    """The user's lines so far, in order."""
    events: list[UserEvent] = field(default_factory=list)
    agent_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """The agent's text tokens so far, one per frame (for a policy that reads its words)."""


class UserPolicy:
    """The planned user: takes the plan's turns in order, re-prompts from the plan, and draws
    backchannels, interruptions and whether it yields from the episode's traits.

    Subclass and override a method to change one decision; each returns what the user does.
    """

    def next_turn(self, context: UserContext) -> Turn | None:
        """The turn the user takes now that the agent has answered (or it gave up); ``None``
        ends the conversation."""
        if context.turns_taken >= len(context.plan.turns):
            return None
        return context.plan.turns[context.turns_taken]

    def reprompt(self, context: UserContext) -> Line | None:
        """What the user says to an agent that has not answered; ``None`` gives up the turn."""
        if context.reprompts >= context.traits.max_reprompts:
            return None
        lines = context.plan.reprompts
        return lines[context.reprompts % len(lines)]

    def during_answer(self, context: UserContext, turn: Turn | None) -> tuple[Line, int] | None:
        """What the user does while the agent answers ``turn`` (``None`` for an answer to an
        interruption or a re-prompt): a line and the frames of agent talk after which it
        comes, or ``None`` to just listen. A turn's planned ``overlay`` always comes."""
        traits, rng, plan = context.traits, context.rng, context.plan
        if turn is not None and turn.overlay is not None:
            return turn.overlay, max(1, round(turn.overlay_after_s / 0.08))
        draw = rng.random()
        if plan.interruptions and draw < traits.interrupt_probability:
            line = plan.interruptions[rng.integers(len(plan.interruptions))]
            return line, traits.interrupt_after
        if (
            plan.backchannels
            and draw < traits.interrupt_probability + traits.backchannel_probability
        ):
            line = plan.backchannels[rng.integers(len(plan.backchannels))]
            return line, traits.backchannel_after
        return None

    def finishes_when_talked_over(self, context: UserContext, line: Line) -> bool:
        """Whether the user, talked over for its yield time while saying ``line``, finishes
        the sentence (``True``) or trails off at the next word boundary (``False``)."""
        return bool(context.rng.random() < context.traits.finish_probability)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
