"""The agent protocol: what :func:`fdenv.play.play` (and so evaluation, rollouts, recordings and
benchmark exports) asks of a policy.

An agent acts for a batch of envs at once, 80 ms per call, and keeps its streaming state per
env: Moshi's KV cache, a scripted agent's counters. The batch is fixed between :meth:`start`
and :meth:`stop`; :meth:`reset` restarts some envs of it (a vector env's autoreset, a GRPO group
that starts over).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from fdenv.config import EnvConfig

Partners = Mapping[int, tuple[np.ndarray, int]]
"""Env -> (the partner's side of a recorded context, the stream frame it starts at), for agents
that play the partner's part over a context (the paper's context curriculum); see
:meth:`fdenv.env.FullDuplexEnv.partner_audio`."""


@runtime_checkable
class Agent(Protocol):
    """A batched streaming policy: user frames ``[N, 1920]`` in, actions ``[N, 9]`` out."""

    def start(self, num_envs: int, partners: Partners | None = None) -> None:
        """Begins a batch of ``num_envs`` episodes, every env at the start of its episode."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """One frame for every env of the batch: observations ``[N, 1920]`` -> int64 ``[N, 9]``."""

    def reset(self, mask: np.ndarray) -> None:
        """Restarts the episodes of the envs where ``mask`` (bool ``[N]``) is true."""

    def stop(self) -> None:
        """Ends the batch (frees streaming state)."""


def env_for(agent: object, config: EnvConfig) -> EnvConfig:
    """``config`` fitted to ``agent``: its model's vocabulary sizes and word starts where it
    has them (a Moshi policy; a scripted agent fits any), and for ``voice="audio"`` a fresh
    voice that decodes the agent's audio tokens (``agent.audio_voice()``; a ``ValueError`` for
    an agent without one).
    ``voice="auto"`` is ``audio`` for an agent with ``audio_voice`` and ``text`` otherwise."""
    sizes = {name: getattr(agent, name, None) for name in ("text_card", "audio_card")}
    changes: dict[str, object] = {k: int(v) for k, v in sizes.items() if v is not None}
    starts = getattr(agent, "word_starts", None)
    if config.word_starts is None and starts is not None:
        changes["word_starts"] = starts
    make = getattr(agent, "audio_voice", None)
    if config.voice == "audio" and make is None:
        raise ValueError(
            f"voice 'audio' decodes the agent's audio tokens with the agent's decoder, and "
            f"{type(agent).__name__} has none (no audio_voice()); use voice 'text' or 'auto'"
        )
    if config.voice in ("audio", "auto"):
        changes["voice"] = "text" if make is None else make()
    return config.replace(**changes)
