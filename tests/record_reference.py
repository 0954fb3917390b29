"""Records what the envs give for fixed agents, seeds and actions, to compare later runs with.

    python tests/record_reference.py    # rewrites tests/data/reference_episodes.json

The file holds every episode's reward, reward terms, FD-Bench metrics, agent speech, scenario id
and a checksum of its observations, for scripted agents and seeded random actions on the single
and the vector env (groups, acoustics, context). ``tests/test_reference_episodes.py`` replays
the same set and asks for the same numbers bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

import fdenv
from agents.baselines import AlwaysTalkAgent, RuleAgent, SilentAgent
from fdenv.audio.acoustics import Acoustics
from fdenv.constants import PAD_ID

PATH = Path(__file__).parent / "data" / "reference_episodes.json"
AXES = ("PauseHandling", "TurnTaking", "Backchannel", "UserInterruption")
AGENTS = {"silent": SilentAgent, "always-talk": AlwaysTalkAgent, "rule": RuleAgent}


def _episode_record(info: dict, digest: str) -> dict:
    return {
        "scenario_id": str(info["scenario_id"]),
        "reward_terms": {k: float(v) for k, v in info["reward_terms"].items()},
        "stats": {k: float(v) for k, v in info["stats"].items()},
        "metrics": {k: float(v) for k, v in info["metrics"].items()},
        "agent_speech": [[float(s), float(e)] for s, e in info["agent_speech"]],
        "observations_sha256": digest,
    }


def random_actions(rng: np.random.Generator, n: int) -> np.ndarray:
    actions = np.zeros((n, 9), dtype=np.int64)
    actions[:, 0] = np.where(rng.random(n) < 0.2, 1000, PAD_ID)
    actions[:, 1:] = rng.integers(0, 2048, (n, 8))
    return actions


def vector_run(name: str, axis: str, **env_kwargs) -> list[dict]:
    """One episode per env of a vector env (N = 8, groups of 2), played to the end."""
    env = fdenv.FullDuplexVectorEnv(
        8, axis, group_size=2, autoreset_mode="Disabled", num_scenarios=8, **env_kwargs
    )
    agent = AGENTS[name]() if name in AGENTS else None
    rng = np.random.default_rng(7)
    obs, _ = env.reset(seed=3, options={"context_s": 2.0})
    if agent is not None:
        agent.start(env.num_envs)
    hashes = [hashlib.sha256() for _ in range(env.num_envs)]
    records: list[dict | None] = [None] * env.num_envs
    finished = np.zeros(env.num_envs, dtype=bool)
    while not finished.all():
        for i in np.flatnonzero(~finished):
            hashes[i].update(obs[i].tobytes())
        actions = agent.act(obs) if agent is not None else random_actions(rng, env.num_envs)
        obs, _, terminated, _, info = env.step(actions)
        for i in np.flatnonzero(terminated):
            final = {"scenario_id": info["scenario_id"][i]}
            final["reward_terms"] = {k: v[i] for k, v in info["reward_terms"].items()}
            final["stats"] = {k: v[i] for k, v in info["stats"].items()}
            final["metrics"] = {k: v[i] for k, v in info["metrics"].items()}
            final["agent_speech"] = info["agent_speech"][i]
            records[i] = _episode_record(final, hashes[i].hexdigest())
        finished |= terminated
    return records  # type: ignore[return-value]


def single_run(axis: str, seed: int) -> dict:
    """One episode of the single env under seeded random actions."""
    env = fdenv.FullDuplexEnv(axis, num_scenarios=8)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    digest = hashlib.sha256()
    done = False
    while not done:
        digest.update(obs.tobytes())
        obs, _, done, _, info = env.step(random_actions(rng, 1)[0])
    return _episode_record(info, digest.hexdigest())


def record() -> dict:
    runs: dict[str, object] = {}
    for axis in AXES:
        for name in (*AGENTS, "random"):
            runs[f"vector/{axis}/{name}"] = vector_run(name, axis)
        runs[f"single/{axis}"] = single_run(axis, seed=11)
    runs["vector/Mixed/rule/acoustics"] = vector_run(
        "rule", "Mixed", acoustics=Acoustics(), scenario_seed=5
    )
    return runs


def main() -> int:
    PATH.parent.mkdir(parents=True, exist_ok=True)
    PATH.write_text(json.dumps(record(), sort_keys=True, separators=(",", ":")) + "\n")
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
