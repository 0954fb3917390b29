"""One batched rollout: a streaming Moshi plays one episode in every env of a vector env.

All envs step together in one model call per frame (for GRPO, a group of G envs shares a
scenario, see ``group_size``); envs whose episode ended idle until the longest one is over.
The result pairs each env's reward with the 17-stream sequence the policy produced, and marks
which of its frames may be trained (not the lead-in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from agents.moshi.policy import MoshiPolicy
from fdenv.constants import FRAME_S
from fdenv.episode import Episode
from fdenv.vector import FullDuplexVectorEnv


@dataclass
class Rollout:
    """What one batched rollout produced, env by env.

    ``codes [B, 17, T]`` and ``lengths [B]`` are Moshi's frames (see
    :meth:`MoshiPolicy.sequences`); ``trainable [B, T]`` is true for frames that lie in the
    scenario window. ``reward_terms`` maps each term name to an array ``[B]``.
    """

    rewards: np.ndarray
    reward_terms: dict[str, np.ndarray]
    episodes: list[Episode]
    codes: torch.Tensor
    lengths: torch.Tensor
    trainable: torch.Tensor

    @property
    def axes(self) -> list[str]:
        return [e.axis for e in self.episodes]


def rollout(
    policy: MoshiPolicy,
    env: FullDuplexVectorEnv,
    *,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
) -> Rollout:
    """Plays one episode per env of ``env`` (made with ``autoreset_mode="Disabled"``).

    ``options`` go to ``env.reset``; with ``context_s`` the policy plays the partner's side of
    each recorded context, and only frames of the scenario itself are marked trainable.
    """
    if env.metadata["autoreset_mode"] != AutoresetMode.DISABLED:
        raise ValueError("rollout needs a vector env made with autoreset_mode='Disabled'")
    policy.check_env(env)
    n = env.num_envs
    obs, _ = env.reset(seed=seed, options=options)
    streams = [env.engine.streams[i] for i in range(n)]
    partners = {
        i: (s.partner, s.partner_frame)
        for i, s in enumerate(streams)
        if s is not None and s.partner is not None
    }
    policy.start(n, partners)
    rewards = np.zeros(n)
    terms: list[dict[str, float]] = [{} for _ in range(n)]
    steps = np.zeros(n, dtype=np.int64)
    finished = np.zeros(n, dtype=bool)
    while not finished.all():
        actions = policy.act(obs)
        obs, reward, terminated, _, info = env.step(actions)
        steps[~finished] += 1
        for i in np.flatnonzero(terminated):
            rewards[i] = reward[i]
            terms[i] = {k: float(v[i]) for k, v in info["reward_terms"].items() if k[0] != "_"}
        finished |= terminated
    policy.stop()
    episodes = [env.engine.episode(i) for i in range(n)]
    codes, lengths = policy.sequences()
    lengths = torch.minimum(lengths, torch.as_tensor(steps - 1))
    frames = torch.arange(codes.shape[2])
    played = frames[None, :] < lengths[:, None]  # [B, T]; idle steps after an episode are not
    codes = torch.where(played[:, None, :].to(codes.device), codes, policy.models.lm.zero_token_id)
    # Moshi frame j is spoken in env frame j + 1; train the frames that reach the scenario
    lead_in = torch.tensor([e.lead_in_s for e in episodes])
    trainable = played & ((frames[None, :] + 2) * FRAME_S > lead_in[:, None])
    names = sorted({k for t in terms for k in t})
    return Rollout(
        rewards=rewards,
        reward_terms={k: np.array([t.get(k, np.nan) for t in terms]) for k in names},
        episodes=episodes,
        codes=codes,
        lengths=lengths,
        trainable=trainable.to(codes.device),
    )


def play_episode(policy: MoshiPolicy, env, seed: int | None = None) -> tuple[float, dict[str, Any]]:
    """Plays one episode of a single (possibly wrapped) env at batch size 1, for recordings;
    returns the episode's reward and last info."""
    obs, _ = env.reset(seed=seed)
    policy.start(1)
    done = False
    while not done:
        obs, reward, done, _, info = env.step(policy.act(obs[None])[0])
    policy.stop()
    return float(reward), info
