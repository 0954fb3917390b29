"""Plays the scripted baselines on every environment and records the rule agent's episodes.

    python examples/play_baselines.py --episodes 3 --out runs/play_baselines

Every agent meets the same scenarios (episode ``i`` is seeded ``i``), so the table compares
agents, not draws. The rule agent's episodes are written as stereo WAV (left the user, right a
tone where the agent speaks), JSON and a PNG timeline.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import fdenv  # noqa: F401  (registers the environments)
from agents.baselines import (
    AlwaysTalkAgent,
    AlwaysYieldAgent,
    RuleAgent,
    ScriptedAgent,
    SilentAgent,
)
from fdenv.wrappers import RecordEpisode

ENV_IDS = [
    "FullDuplex-PauseHandling-v0",
    "FullDuplex-TurnTaking-v0",
    "FullDuplex-Backchannel-v0",
    "FullDuplex-UserInterruption-v0",
    "FullDuplex-Mixed-v0",
    "FullDuplex-Conversation-v0",  # closed loop: the user reacts to each agent
    "FullDuplex-Selectivity-v0",
]


def play(env: gym.Env, agent: ScriptedAgent, episodes: int) -> float:
    """Mean reward over ``episodes`` episodes seeded 0, 1, ..."""
    rewards = []
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        agent.start(1)
        done = False
        while not done:
            obs, reward, done, _, _ = env.step(agent.act_one(obs))
        rewards.append(reward)
    return float(np.mean(rewards))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=3, help="episodes per agent and env")
    parser.add_argument("--out", type=Path, default=Path("runs/play_baselines"))
    args = parser.parse_args()
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")

    started = time.perf_counter()
    agents: dict[str, ScriptedAgent] = {
        "Silent": SilentAgent(),
        "AlwaysTalk": AlwaysTalkAgent(),
        "Rule": RuleAgent(),
        "AlwaysYield": AlwaysYieldAgent(),
    }
    table: dict[str, list[float]] = {name: [] for name in agents}
    written: list[Path] = []
    for env_id in ENV_IDS:
        env = gym.make(env_id)
        for name, agent in agents.items():
            if isinstance(agent, RuleAgent):
                prefix = "rule-" + env_id.split("-")[1]
                recorder = RecordEpisode(env, args.out, prefix=prefix)
                table[name].append(play(recorder, agent, args.episodes))
                written += recorder.paths
            else:
                table[name].append(play(env, agent, args.episodes))
        env.close()

    names = [env_id.split("-")[1] for env_id in ENV_IDS]
    print(f"mean reward over {args.episodes} episode(s) per cell")
    print(f"{'agent':<12}" + "".join(f"{n:>18}" for n in names))
    for name, row in table.items():
        print(f"{name:<12}" + "".join(f"{r:>18.3f}" for r in row))
    print(f"wrote {len(written)} files (WAV, JSON, PNG per Rule episode) to {args.out}")
    print(f"took {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
