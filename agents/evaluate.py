"""Held-out evaluation: rewards and Full-Duplex-Bench v1 metrics per axis, with 95% bootstrap
intervals.

Used by the warm-start command, the GRPO trainer and ``fdenv-eval``, so that every
table in the project is computed the same way: ``episodes`` held-out scenarios per axis (their
own ``scenario_seed``, or scenarios given on disk), one batched rollout per axis, for a Moshi
policy and a scripted agent alike (any :class:`fdenv.agent.Agent`, played by
:func:`fdenv.play.play`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from fdenv.agent import Agent, env_for
from fdenv.axes import PAPER_AXES, Axis
from fdenv.config import EnvConfig
from fdenv.env import make_sampler
from fdenv.episode import Episode
from fdenv.manifest import Manifest
from fdenv.play import play
from fdenv.registration import expand_axes, get_axis
from fdenv.sampler import ScenariosArg
from fdenv.vector import FullDuplexVectorEnv

HELD_OUT_SEED = 1000
"""Scenario seed of the held-out synthetic sets (training uses small seeds)."""


@dataclass(frozen=True)
class EvalConfig:
    """What an evaluation plays: ``fdenv-eval``'s settings, one flag per field
    (:func:`compare` takes them one by one)."""

    axes: tuple[str, ...] = tuple(a.name for a in PAPER_AXES)
    """Names of the axes to evaluate (default: the paper's four)."""
    episodes: int = 32
    """Held-out scenarios per axis, one episode each."""
    seed: int = 0
    """Episode and sampling seed: an evaluation is deterministic for it."""
    env: EnvConfig = field(
        default_factory=lambda: EnvConfig(scenario_seed=HELD_OUT_SEED, voice="auto")
    )
    """The env the agents play: the held-out synthetic set of ``scenario_seed`` or the manifest
    ``scenarios``, acoustics, lead-in, voice. Its scenario count is ``episodes`` and its
    vocabulary sizes are each agent's."""

    def __post_init__(self) -> None:
        if isinstance(self.axes, str) or not self.axes:
            raise ValueError(f"EvalConfig.axes must name at least one axis, got {self.axes!r}")
        object.__setattr__(self, "axes", tuple(self.axes))
        if isinstance(self.episodes, bool) or not isinstance(self.episodes, int):
            raise ValueError(f"EvalConfig.episodes must be an integer, got {self.episodes!r}")
        if self.episodes < 1:
            raise ValueError(f"EvalConfig.episodes must be >= 1, got {self.episodes}")


@dataclass(frozen=True)
class MetricSummary:
    """One FD-Bench metric over an axis' episodes: the benchmark's aggregate and its interval.

    ``samples`` counts the episodes that have a value (latency exists only where TOR = 1).
    """

    value: float
    low: float
    high: float
    samples: int

    def __str__(self) -> str:
        if self.samples == 0:
            return "n/a"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass(frozen=True)
class AxisResult:
    """Held-out rewards of one axis, in scenario order (so two results can be paired).

    ``metrics`` maps each FD-Bench metric name of the axis (:meth:`fdenv.axes.Axis.metrics`) to
    its per-episode values in the same order, NaN where the episode has none; ``played`` keeps
    the episodes for plots (not compared, not saved).
    """

    axis: str
    rewards: tuple[float, ...]
    metrics: dict[str, tuple[float, ...]] = field(default_factory=dict)
    played: tuple[Episode, ...] = field(default=(), compare=False, repr=False)
    directions: dict[str, str] = field(default_factory=dict, compare=False)
    """Which way each metric is better (the axis' :attr:`fdenv.axes.Axis.metric_directions`)."""
    source: str = field(default="", compare=False)
    """What the metrics measure (the axis' :attr:`fdenv.axes.Axis.metrics_source`)."""
    paper_rewards: tuple[float, ...] = ()
    """Where the axis scored with settings other than its registered ones (a remedy such as
    ``Backchannel(max_backchannel_words=2)``): the registered axis' rewards, the paper's
    rules, on the same episodes; empty otherwise."""

    @property
    def mean(self) -> float:
        return float(np.mean(self.rewards))

    @cached_property
    def interval(self) -> tuple[float, float]:
        return bootstrap_interval(np.array(self.rewards))

    @property
    def low(self) -> float:
        return self.interval[0]

    @property
    def high(self) -> float:
        return self.interval[1]

    @property
    def episodes(self) -> int:
        return len(self.rewards)

    @cached_property
    def metric_summary(self) -> dict[str, MetricSummary]:
        """Each metric aggregated the FD-Bench way, with a 95% bootstrap interval: the mean over
        the episodes that have a value. For TOR, frequency and JSD that is every episode; for
        latency (NaN without a take-over) it is the mean over TOR = 1 episodes, as the
        benchmark averages it."""
        return {name: summarize_metric(values) for name, values in self.metrics.items()}

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def summarize_metric(values: tuple[float, ...] | np.ndarray) -> MetricSummary:
    """Mean and 95% bootstrap interval of the finite values (all NaN: NaN, 0 samples)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return MetricSummary(math.nan, math.nan, math.nan, 0)
    return MetricSummary(float(finite.mean()), *bootstrap_interval(finite), int(finite.size))


def bootstrap_interval(
    values: np.ndarray, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (deterministic for a seed)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    tail = (1.0 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def paired_change(
    before: dict[str, AxisResult], after: dict[str, AxisResult]
) -> dict[str, tuple[float, float, float]]:
    """Mean change per axis and over all axes, with 95% bootstrap intervals of paired changes.

    Both evaluations score the same held-out scenarios in the same order, so the change is
    measured scenario by scenario; ``"mean"`` averages the axes' changes per scenario index.
    """
    changes = {a: np.array(after[a].rewards) - np.array(r.rewards) for a, r in before.items()}
    changes["mean"] = np.mean(np.stack(list(changes.values())), axis=0)
    return {k: (float(v.mean()), *bootstrap_interval(v)) for k, v in changes.items()}


MIN_VERDICT_PAIRS = 6
"""Fewest paired episodes that get a better/worse verdict. A percentile bootstrap of n pairs
that all moved the same way excludes 0 whatever n is, yet by a sign test n agreeing pairs are
beyond chance at the 5% level (two-sided) only from n = 6 on (2 / 2**6 = 0.031; 5 give 0.063)."""


@dataclass(frozen=True)
class MetricChange:
    """A metric's change from one evaluation to another on the same scenarios, episode by
    episode: the mean of the per-episode differences over the ``pairs`` episodes where both
    have a value (latency exists only where both took over), its 95% bootstrap interval, and
    the verdict in the metric's direction: ``better`` or ``worse`` when the interval excludes
    0, else ``same`` (within noise); ``too few`` under :data:`MIN_VERDICT_PAIRS` pairs."""

    mean: float
    low: float
    high: float
    pairs: int
    verdict: str

    def __str__(self) -> str:
        if not self.pairs:
            return "n/a"
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}] {self.verdict}"


def paired_metric_changes(
    before: dict[str, AxisResult], after: dict[str, AxisResult]
) -> dict[tuple[str, str], MetricChange]:
    """Every (axis, metric)'s :class:`MetricChange` from ``before`` to ``after`` (the same
    held-out scenarios in the same order, as :func:`paired_change` needs)."""
    changes = {}
    for axis, start in before.items():
        for metric, values in start.metrics.items():
            first = np.array(values, dtype=np.float64)
            then = np.array(after[axis].metrics[metric], dtype=np.float64)
            diff = (then - first)[np.isfinite(first) & np.isfinite(then)]
            if not diff.size:
                changes[axis, metric] = MetricChange(math.nan, math.nan, math.nan, 0, "same")
                continue
            low, high = bootstrap_interval(diff)
            sign = 1.0 if start.directions[metric] == "up" else -1.0
            verdict = "same"
            if diff.size < MIN_VERDICT_PAIRS:
                verdict = "too few"
            elif min(sign * low, sign * high) > 0:
                verdict = "better"
            elif max(sign * low, sign * high) < 0:
                verdict = "worse"
            changes[axis, metric] = MetricChange(
                float(diff.mean()), low, high, int(diff.size), verdict
            )
    return changes


def opened(scenarios: ScenariosArg) -> ScenariosArg:
    """A manifest path as its opened :class:`~fdenv.manifest.Manifest` (other sources as they
    are): opening checks every line and file, which the ids and every env would repeat."""
    return Manifest(scenarios) if isinstance(scenarios, str | Path) else scenarios


def held_out_ids(axis: Axis, episodes: int, config: EnvConfig) -> list[str]:
    """The scenarios an evaluation of ``axis`` plays: the first ``episodes`` of the held-out
    synthetic set, or of ``config.scenarios`` (all of them when there are fewer)."""
    sampler = make_sampler(axis, config.replace(num_scenarios=episodes))
    return sampler.ids(axis.name)[:episodes]


def evaluate(
    policy: Agent,
    axes: Sequence[str | Axis],
    episodes: int = 32,
    scenario_seed: int = HELD_OUT_SEED,
    seed: int = 0,
    *,
    scenarios: ScenariosArg = None,
    env: EnvConfig | None = None,
) -> dict[str, AxisResult]:
    """Rewards and FD-Bench metrics per axis over ``episodes`` held-out scenarios (one episode
    each), from the synthetic set of ``scenario_seed`` or from ``scenarios`` (a manifest, a
    list of scenarios, ...). ``axes`` are names or axis objects (an object scores with its own
    settings); ``env`` sets the rest of the env (voice, acoustics, lead-in; its vocabulary sizes
    are the policy's; by default the voice is ``auto``: a model is heard through its decoded
    audio, a scripted agent through its text). Moshi samples from torch's global generator: seed
    it for a repeatable evaluation (:func:`compare` does)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    config = env_for(
        policy,
        (env or EnvConfig(voice="auto")).replace(
            scenario_seed=scenario_seed,
            num_scenarios=episodes,
            **({} if scenarios is None else {"scenarios": scenarios}),
        ),
    )
    config = config.replace(scenarios=opened(config.scenarios))
    results = {}
    for spec in expand_axes(list(axes)):
        ids = held_out_ids(spec, episodes, config)
        vector = FullDuplexVectorEnv(len(ids), spec, autoreset_mode="Disabled", config=config)
        played = play(policy, vector, seed=seed, options={"scenario": ids})
        vector.close()
        per_episode = [spec.metrics(e) for e in played.episodes]
        names = list(dict.fromkeys(k for m in per_episode for k in m))  # the axis' order
        registered = get_axis(spec.name)
        results[spec.name] = AxisResult(
            spec.name,
            tuple(float(r) for r in played.rewards),
            {k: tuple(float(m.get(k, math.nan)) for m in per_episode) for k in names},
            tuple(played.episodes),
            dict(spec.metric_directions),
            spec.metrics_source,
            ()
            if spec == registered
            else tuple(float(registered.score(e).reward) for e in played.episodes),
        )
    return results


def compare(
    agents: dict[str, Agent],
    axes: Sequence[str | Axis],
    episodes: int = 32,
    scenario_seed: int = HELD_OUT_SEED,
    seed: int = 0,
    *,
    scenarios: ScenariosArg = None,
    env: EnvConfig | None = None,
    progress: bool = False,
) -> dict[str, dict[str, AxisResult]]:
    """:func:`evaluate` for several agents on the same scenarios, one axis at a time; torch is
    seeded with ``seed`` before each (agent, axis), so no result depends on what ran before it."""
    from tqdm import tqdm

    scenarios = opened(scenarios)  # every (agent, axis) plays the same set, opened once
    results: dict[str, dict[str, AxisResult]] = {name: {} for name in agents}
    jobs = [(name, axis) for name in agents for axis in axes]
    for name, axis in tqdm(jobs, desc="evaluating", unit="axis", disable=not progress):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            results[name] |= evaluate(
                agents[name], [axis], episodes, scenario_seed, seed, scenarios=scenarios, env=env
            )
    return results
