"""Builds the warm-started tiny Moshi and compares it on held-out scenarios.

    python -m agents.cli.warmstart [--steps N] [--force] [--eval-episodes 32]

builds the base (:mod:`agents.moshi.warmstart`; or loads it from the cache) and compares it on
held-out scenarios with the random model it started from and with the scripted baselines.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch

from agents.baselines import AlwaysTalkAgent, RuleAgent, ScriptedAgent, SilentAgent
from agents.evaluate import HELD_OUT_SEED, AxisResult, compare
from agents.moshi.models import MoshiModels, tiny_models
from agents.moshi.policy import MoshiPolicy
from agents.moshi.warmstart import WarmstartConfig, base_path, tiny_base_models
from fdenv.axes import PAPER_AXES


def evaluate(
    agents: dict[str, ScriptedAgent | MoshiModels], episodes: int, seed: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """Rewards per agent and axis on the same held-out episodes (scenario seed
    ``HELD_OUT_SEED``; training uses ``WarmstartConfig.train_seed``), through
    :func:`agents.evaluate.compare`."""
    policies = {
        name: agent if isinstance(agent, ScriptedAgent) else MoshiPolicy(agent)
        for name, agent in agents.items()
    }
    axes = [a.name for a in PAPER_AXES]
    results = compare(policies, axes, episodes, HELD_OUT_SEED, seed, progress=True)
    return {
        name: {axis: np.array(r.rewards) for axis, r in by_axis.items()}
        for name, by_axis in results.items()
    }


def table(results: dict[str, dict[str, np.ndarray]]) -> str:
    """One row per agent, one ``mean [95% bootstrap interval]`` cell per axis."""
    axes = [a.name for a in PAPER_AXES]
    lines = [f"{'agent':<12}" + "".join(f"{a:>26}" for a in axes)]
    for name, rewards in results.items():
        cells = [str(AxisResult(a, tuple(rewards[a]))) for a in axes]
        lines.append(f"{name:<12}" + "".join(f"{c:>26}" for c in cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=WarmstartConfig.steps)
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    parser.add_argument("--eval-episodes", type=int, default=32, help="per axis; 0 skips")
    args = parser.parse_args()
    if args.steps < 1 or args.eval_episodes < 0:
        parser.error("--steps must be >= 1 and --eval-episodes >= 0")
    torch.set_num_threads(1)  # the tiny model is fastest on one thread
    config = replace(WarmstartConfig(), steps=args.steps)
    base = tiny_base_models(config=config, force=args.force)
    print(f"base: {base_path(config)}")
    if args.eval_episodes == 0:
        return
    word = base.tokenizer.encode("right")[0]  # the scripted agents' word, inside the tiny vocab
    agents: dict[str, ScriptedAgent | MoshiModels] = {
        "base": base,
        "random": tiny_models(config.model_seed),
        "Silent": SilentAgent(word),
        "AlwaysTalk": AlwaysTalkAgent(word),
        "Rule": RuleAgent(word_id=word),
    }
    results = evaluate(agents, args.eval_episodes)
    print(
        f"mean reward [95% bootstrap interval], {args.eval_episodes} held-out episodes per axis "
        f"(scenario seed {HELD_OUT_SEED}, episodes seeded 0..{args.eval_episodes - 1})"
    )
    print(table(results))


if __name__ == "__main__":
    main()
