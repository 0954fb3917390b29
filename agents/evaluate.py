"""Held-out evaluation: mean reward per axis, with a 95% bootstrap interval.

Used by the warm-start command, the GRPO trainer and the examples, so that every table in the
project is computed the same way: ``episodes`` held-out scenarios per axis (their own
``scenario_seed``), one batched rollout per axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from agents.moshi.policy import MoshiPolicy
from agents.moshi.rollout import rollout
from fdenv.vector import FullDuplexVectorEnv

HELD_OUT_SEED = 1000
"""Scenario seed of the held-out synthetic sets (training uses small seeds)."""


@dataclass(frozen=True)
class AxisResult:
    """Held-out rewards of one axis, in scenario order (so two results can be paired)."""

    axis: str
    rewards: tuple[float, ...]

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

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


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


def evaluate(
    policy: MoshiPolicy,
    axes: list[str],
    episodes: int = 32,
    scenario_seed: int = HELD_OUT_SEED,
    seed: int = 0,
) -> dict[str, AxisResult]:
    """Mean reward per axis over ``episodes`` held-out scenarios (one episode each)."""
    results = {}
    for axis in axes:
        env = FullDuplexVectorEnv(
            episodes,
            axis,
            autoreset_mode="Disabled",
            text_card=policy.text_card,
            audio_card=policy.audio_card,
            num_scenarios=episodes,
            scenario_seed=scenario_seed,
        )
        ids = env.sampler.ids(axis)
        result = rollout(policy, env, seed=seed, options={"scenario": ids})
        results[axis] = AxisResult(axis, tuple(float(r) for r in result.rewards))
    return results
