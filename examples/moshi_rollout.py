"""Rolls a tiny Moshi through every environment and records one of its episodes per axis.

    python examples/moshi_rollout.py [--model base|random] [--episodes 4] [--out runs/moshi_rollout]

``--model base`` is the warm-started tiny Moshi of :mod:`agents.moshi.warmstart`, ``random`` the
untrained preset. Each env plays ``--episodes`` episodes as one batch (env ``i`` seeded ``i``) in
a batched rollout, one model call per 80 ms frame. Then a single env per axis, driven by the same
policy at batch size 1, is recorded as stereo WAV (left the user, right a tone where Moshi
speaks), JSON and a PNG timeline.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import fdenv
from agents.moshi.models import MoshiModels, tiny_models
from agents.moshi.policy import MoshiPolicy
from agents.moshi.rollout import rollout
from fdenv.play import play
from fdenv.wrappers import RecordEpisode

AXES = ["PauseHandling", "TurnTaking", "Backchannel", "UserInterruption"]
ENV_IDS = [fdenv.env_id(axis) for axis in [*AXES, "Mixed"]]


def build_models(kind: str) -> tuple[MoshiModels, str]:
    """The models and the name of what was built: ``base`` falls back to ``random`` if missing."""
    if kind == "base":
        try:
            from agents.moshi.warmstart import tiny_base_models
        except ImportError as error:
            print(f"--model base is not available yet ({error}); using the random tiny model")
        else:
            return tiny_base_models(), "base"
    return tiny_models(seed=0), "random"


def record(policy: MoshiPolicy, env_id: str, out: Path) -> list[Path]:
    """Plays episode 0 of ``env_id`` on a single env and writes it; returns the files."""
    name = env_id.split("-")[1]
    env = RecordEpisode(gym.make(env_id, text_card=policy.text_card), out, prefix=f"moshi-{name}")
    play(policy, env, seed=0)
    env.close()
    return env.paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["base", "random"], default="base")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per env, one batch")
    parser.add_argument("--out", type=Path, default=Path("runs/moshi_rollout"))
    args = parser.parse_args()
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")

    started = time.perf_counter()
    torch.set_num_threads(1)  # a tiny model's ops are too small to gain from more threads
    models, name = build_models(args.model)
    policy = MoshiPolicy(models)
    print(f"mean reward of tiny Moshi ({name}) over {args.episodes} episode(s) per env")
    for env_id in ENV_IDS:
        env = gym.make_vec(
            env_id,
            num_envs=args.episodes,
            vectorization_mode="vector_entry_point",
            autoreset_mode="Disabled",
            text_card=models.text_card,
        )
        result = rollout(policy, env, seed=0)
        axes = ", ".join(sorted(set(result.axes)))
        print(f"{env_id:<32}{np.mean(result.rewards):>9.3f}  ({axes})")
        env.close()
    written = [path for axis in AXES for path in record(policy, fdenv.env_id(axis), args.out)]
    print(f"wrote {len(written)} files (WAV, JSON, PNG per axis) to {args.out}")
    print(f"took {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
