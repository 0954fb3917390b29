"""The axis, fdenv's unit of extension: it owns its scenarios' labels, synthesis and reward.

A new interactivity axis is a subclass of :class:`Axis` in one file plus one
:func:`fdenv.registration.register_axis` call, which makes it the environment
``FullDuplex-<name>-v<version>``. Everything else that depends on the axis also lives in the
class, so that no code outside it branches on axis names: the direction of its metrics, the
exchange an LLM judge grades, and what a good partner says (the warm start's reference). The
optional parts raise ``NotImplementedError`` naming the missing method when something needs them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from fdenv.axes.reference import AgentLine, ReferencePartner
from fdenv.episode import Episode
from fdenv.scenario import Scenario, Utterance
from fdenv.segments import ConversationLabels, MiningRules, Segment


@dataclass(frozen=True)
class AxisScore:
    """An axis' verdict on an episode.

    ``terms`` are reward components; the episode reward is their sum. They are kept apart so that
    trainers can normalise each one within a group (decoupled normalisation). ``stats`` are
    diagnostics (latencies, counts) that are not rewards.
    """

    terms: dict[str, float]
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def reward(self) -> float:
        return float(sum(self.terms.values()))


@dataclass(frozen=True)
class JudgedExchange:
    """What an LLM judge reads of an episode (:mod:`fdenv.judge.reward`): the user's turn that
    the model answers, and the scenario time from which the model's reply is taken.

    ``user_turn`` is empty when the scenario's transcripts do not cover the turn; the judge then
    leaves the episode unscored.
    """

    user_turn: tuple[Utterance, ...]
    reply_start: float


def user_utterances(scenario: Scenario) -> list[Utterance]:
    """The user's timed transcripts in time order."""
    return sorted((u for u in scenario.transcripts if u.speaker == "user"), key=lambda u: u.start)


class Axis(ABC):
    """One facet of interactivity, with the labels it needs, its synthetic scenarios and its reward.

    Subclasses set ``name`` (CamelCase, used in env ids and manifests), ``required_labels``
    (``Scenario`` attributes that must be non-empty) and implement :meth:`synthesize` and
    :meth:`score`.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 0
    metrics_source: ClassVar[str] = (
        "Full-Duplex-Bench v1 metrics from the agents' audible text tokens (latency over "
        "take-overs only)"
    )
    """What :meth:`metrics` measures, for the titles of reports."""
    closed_loop: ClassVar[bool] = False
    """Whether the user reacts to the agent (:mod:`fdenv.axes.closed_loop`) instead of
    replaying a scenario."""
    required_labels: ClassVar[tuple[str, ...]] = ()
    metric_directions: ClassVar[Mapping[str, str]] = {}
    """Which way each number of :meth:`metrics` is better, ``"up"`` or ``"down"`` (the arrows of
    the benchmark's tables); reports refuse a metric that has no direction. A judge's grade
    (the ``judge`` column of ``fdenv-eval``) is better up on any axis and needs no entry."""

    @abstractmethod
    def synthesize(self, rng: np.random.Generator, scenario_id: str) -> Scenario:
        """Makes one synthetic scenario of this axis, deterministic given ``rng``'s state."""

    @abstractmethod
    def score(self, episode: Episode) -> AxisScore:
        """Scores a finished episode of one of this axis' scenarios."""

    def metrics(self, episode: Episode) -> dict[str, float]:
        """Full-Duplex-Bench v1 numbers for a finished episode (see :mod:`fdenv.fdbench.metrics`),
        computed from the agent's text tokens that its audio voices, as word timings; NaN where
        the benchmark has no value (latency without a take-over). Axes without a benchmark task
        return ``{}``."""
        return {}

    def credit_start(self, scenario: Scenario) -> float:
        """Seconds into ``scenario`` from which the agent's actions decide this axis' reward.

        A trainer may credit a rollout's advantage to the frames from here on only
        (``GRPOConfig.axis_credit``): what the agent did earlier reaches the reward at most
        through what it is still doing then, and crediting those frames anyway spreads the
        reward's noise over them. Default: the whole scenario.
        """
        return 0.0

    def mine(self, labels: ConversationLabels, user: int, rules: MiningRules) -> list[Segment]:
        """This axis' segments in a two-party conversation, with channel ``user`` as the user.

        Real-conversation mining (:mod:`fdenv.mining`) calls it once per channel; the segment
        definition and its window live here, next to the reward that scores them. Axes that
        only synthesise scenarios need not implement it.
        """
        raise NotImplementedError(
            f"axis {self.name} defines no mine(labels, user, rules); "
            "implement it to mine this axis from conversations"
        )

    def judged_exchange(self, scenario: Scenario) -> JudgedExchange:
        """The user's turn an LLM judge reads and where the model's reply to it starts.

        :func:`fdenv.judge.reward.judge_terms` calls it for every episode of an axis it judges
        (the paper judges turn-taking and interruptions); other axes need not implement it.
        """
        raise NotImplementedError(
            f"axis {self.name} defines no judged_exchange(scenario); "
            "implement it to judge this axis' replies"
        )

    def reference_lines(self, scenario: Scenario, partner: ReferencePartner) -> list[AgentLine]:
        """What a good partner says in ``scenario``, with ``partner``'s words and timing.

        A warm start (:mod:`agents.moshi.warmstart`) teacher-forces a model on these lines
        before RL; axes that are never warm-started need not implement it.
        """
        raise NotImplementedError(
            f"axis {self.name} defines no reference_lines(scenario, partner); "
            "implement it to warm-start a model on this axis"
        )

    def validate(self, scenario: Scenario) -> None:
        """Raises ``ValueError`` naming the scenario if a label this axis needs is missing."""
        scenario.validate()
        for label in self.required_labels:
            value = getattr(scenario, label)
            if value is None or (isinstance(value, list) and not value):
                raise ValueError(
                    f"scenario {scenario.id!r}: axis {self.name} needs the label {label!r}, "
                    "which is missing or empty"
                )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
