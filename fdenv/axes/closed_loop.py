"""The base of closed-loop axes: the user hears the agent and reacts (:mod:`fdenv.user`).

A closed-loop axis makes a plan per scenario instead of a recording (:meth:`plan`), and its
scenarios' audio is the plan's clip store. At every episode start the env asks the axis for the
user who plays it (:meth:`user_setup`: traits drawn from :class:`~fdenv.user.config.UserConfig`,
a seed, the policy), and scores the episode from what actually happened: the user's lines and
events and the agent's speech.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from fdenv.audio.espeak import SpeakerStyle
from fdenv.axes.base import Axis
from fdenv.episode import Episode
from fdenv.interaction import METRIC_DIRECTIONS, interaction_metrics
from fdenv.scenario import Scenario
from fdenv.scenarios.sentences import load_sentence_bank, unmarked
from fdenv.user.config import UserConfig
from fdenv.user.plan import REPROMPTS, Line, UserPlan
from fdenv.user.policy import UserPolicy
from fdenv.user.simulator import UserSetup
from fdenv.user.store import ClipStore, store_scenario, stored_lines


@dataclass(frozen=True)
class ClosedLoopAxis(Axis):
    """An axis whose user reacts to the agent; subclasses make plans and score episodes."""

    closed_loop: ClassVar[bool] = True
    metrics_source: ClassVar[str] = (
        "interaction metrics of closed-loop episodes (tau-voice's definitions, see "
        "fdenv.interaction)"
    )
    metric_directions: ClassVar[Mapping[str, str]] = METRIC_DIRECTIONS

    user: UserConfig = field(default_factory=UserConfig)
    """The simulated user's behaviour knobs (``user.answer_gap_s=(0.2, 0.4)`` on a command
    line)."""
    policy: UserPolicy = field(default_factory=UserPolicy, compare=False)
    """Who decides for the user: the planned user by default, or your own
    :class:`~fdenv.user.policy.UserPolicy` (such as :class:`~fdenv.user.llm.LLMUser`)."""
    max_duration_s: float = 30.0
    """The episode's time limit."""

    def __post_init__(self) -> None:
        if not isinstance(self.user, UserConfig):
            raise ValueError(f"{self.name}.user must be a UserConfig, got {self.user!r}")
        if not isinstance(self.policy, UserPolicy):
            raise ValueError(f"{self.name}.policy must be a UserPolicy, got {self.policy!r}")
        if not self.max_duration_s > 0:
            raise ValueError(f"{self.name}.max_duration_s must be > 0, got {self.max_duration_s}")

    @abstractmethod
    def plan(self, rng: np.random.Generator) -> UserPlan:
        """One scenario's plan, deterministic given ``rng``'s state."""

    def synthesize(self, rng: np.random.Generator, scenario_id: str) -> Scenario:
        plan = self.plan(rng)
        return store_scenario(plan, scenario_id, self.name, {"kind": "plan"})

    def validate(self, scenario: Scenario) -> None:
        scenario.validate()
        if scenario.plan is None:
            raise ValueError(
                f"scenario {scenario.id!r}: axis {self.name} is closed-loop and needs a plan "
                "(scenario.plan); recorded scenarios play on the replay axes"
            )
        lines = stored_lines(scenario, scenario.plan.lines())
        longest = max(lines[p].duration_s for t in scenario.plan.turns for p in t.parts)
        if self.user.yield_after_s[0] >= longest:
            raise ValueError(
                f"scenario {scenario.id!r}: {self.name}.user.yield_after_s "
                f"{self.user.yield_after_s} is longer than every turn of the plan (the longest "
                f"lasts {longest:.2f} s): the user could never yield"
            )

    def user_setup(self, scenario: Scenario, rng: np.random.Generator) -> UserSetup:
        """The user of one episode of ``scenario`` (a GRPO group shares it)."""
        assert scenario.plan is not None
        traits = self.user.draw(rng)
        seed = int(rng.integers(2**63))
        lines = stored_lines(scenario, scenario.plan.lines())
        return UserSetup(scenario.plan, traits, seed, self.policy, ClipStore(scenario), lines)

    def metrics(self, episode: Episode) -> dict[str, float]:
        """The interaction metrics (:func:`fdenv.interaction.interaction_metrics`)."""
        return interaction_metrics(
            episode.user_lines,
            episode.events,
            episode.agent_speech_in_window(),
            episode.scenario.duration,
        )


def reprompt_lines(style: SpeakerStyle) -> tuple[Line, ...]:
    return tuple(Line("reprompt", text, style) for text in REPROMPTS)


def bank_lines(kind: str, section: str, style: SpeakerStyle, rng: np.random.Generator, count: int):
    """``count`` distinct lines of a sentence-bank section, said in ``style``."""
    texts = getattr(load_sentence_bank(), section)
    picks = rng.choice(len(texts), size=min(count, len(texts)), replace=False)
    return tuple(Line(kind, unmarked(texts[i]), style) for i in picks)
