"""One batched rollout: a streaming Moshi plays one episode in every env of a vector env.

All envs step together in one model call per frame (for GRPO, a group of G envs shares a
scenario, see ``group_size``); envs whose episode ended idle until the longest one is over.
The result pairs each env's reward with the 17-stream sequence the policy produced, and marks
which of its frames may be trained (not the lead-in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from agents.moshi.policy import MoshiPolicy
from fdenv.constants import FRAME_S
from fdenv.play import PlayedBatch, play
from fdenv.vector import FullDuplexVectorEnv


@dataclass
class Rollout(PlayedBatch):
    """What one batched rollout produced, env by env: what :func:`fdenv.play.play` returns, and
    Moshi's frames to score it with.

    ``codes [B, 17, T]`` and ``lengths [B]`` are Moshi's frames (see
    :meth:`MoshiPolicy.sequences`); ``trainable [B, T]`` is true for frames that lie in the
    scenario window.
    """

    codes: torch.Tensor
    lengths: torch.Tensor
    trainable: torch.Tensor


def spoken_after(times_s: torch.Tensor, length: int) -> torch.Tensor:
    """``[B, T]``: which of ``length`` Moshi frames are heard after ``times_s [B]`` (seconds
    into each episode). Moshi frame j is spoken in env frame j + 1, which ends at
    ``(j + 2) * FRAME_S``."""
    ends = (torch.arange(length) + 2) * FRAME_S
    return ends[None, :] > times_s[:, None]


def rollout(
    policy: MoshiPolicy,
    env: FullDuplexVectorEnv,
    *,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
) -> Rollout:
    """Plays one episode per env of ``env`` (made with ``autoreset_mode="Disabled"``) with
    :func:`fdenv.play.play`, and keeps what the policy produced for scoring.

    ``options`` go to ``env.reset``; with ``context_s`` the policy plays the partner's side of
    each recorded context, and only frames of the scenario itself are marked trainable.
    """
    policy.check_env(env)
    played = play(policy, env, seed=seed, options=options)
    codes, lengths = policy.sequences()
    lengths = torch.minimum(lengths, torch.as_tensor(played.steps - 1))
    frames = torch.arange(codes.shape[2])
    in_episode = frames[None, :] < lengths[:, None]  # [B, T]; idle steps after an episode are not
    codes = torch.where(
        in_episode[:, None, :].to(codes.device), codes, policy.models.lm.zero_token_id
    )
    lead_in = torch.tensor([e.lead_in_s for e in played.episodes])
    trainable = in_episode & spoken_after(lead_in, codes.shape[2])
    return Rollout(
        rewards=played.rewards,
        reward_terms=played.reward_terms,
        episodes=played.episodes,
        steps=played.steps,
        codes=codes,
        lengths=lengths,
        trainable=trainable.to(codes.device),
    )
