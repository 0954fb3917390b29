"""The loop that plays episodes: one per env, an :class:`~fdenv.agent.Agent` acting for all of
them at once, until every episode is over.

Evaluation, GRPO rollouts, recordings of single envs and Full-Duplex-Bench exports all play
through :func:`play`, so they agree on what a step, a reward and an episode are. A vector env
must be made with ``autoreset_mode="Disabled"``: finished envs then idle (zero observations)
while the longest episode goes on, and the agent keeps acting for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from fdenv.agent import Agent
from fdenv.episode import Episode


@dataclass
class PlayedBatch:
    """What one call of :func:`play` produced, env by env.

    ``reward_terms`` maps each term name to an array ``[N]`` (NaN where an episode lacks it);
    ``steps`` counts the steps each env took until its episode ended.
    """

    rewards: np.ndarray
    reward_terms: dict[str, np.ndarray]
    episodes: list[Episode]
    steps: np.ndarray

    @property
    def axes(self) -> list[str]:
        return [e.axis for e in self.episodes]


def play(
    agent: Agent,
    env: VectorEnv | gym.Env,
    *,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
) -> PlayedBatch:
    """Plays one episode in every env of ``env`` (a vector env with autoreset disabled, or a
    single, possibly wrapped, env as a batch of one); ``options`` go to ``env.reset``."""
    vector = isinstance(env, VectorEnv)
    if vector and env.metadata.get("autoreset_mode") != AutoresetMode.DISABLED:
        raise ValueError("play needs a vector env made with autoreset_mode='Disabled'")
    n = env.num_envs if vector else 1
    obs, _ = env.reset(seed=seed, options=options)
    agent.start(n, env.unwrapped.partner_audio())
    rewards = np.zeros(n)
    terms: list[dict[str, float]] = [{} for _ in range(n)]
    steps = np.zeros(n, dtype=np.int64)
    finished = np.zeros(n, dtype=bool)
    try:
        while not finished.all():
            actions = agent.act(obs if vector else obs[None])
            obs, reward, terminated, _, info = env.step(actions if vector else actions[0])
            steps[~finished] += 1
            ended = np.flatnonzero(terminated) if vector else np.flatnonzero([terminated])
            for i in ended:
                rewards[i] = reward[i] if vector else reward
                terms[i] = _terms(info["reward_terms"], i if vector else None)
            finished[ended] = True
    finally:
        agent.stop()
    unwrapped = env.unwrapped
    episodes = [unwrapped.episode(i) for i in range(n)] if vector else [unwrapped.episode()]
    names = sorted({k for t in terms for k in t})
    return PlayedBatch(
        rewards=rewards,
        reward_terms={k: np.array([t.get(k, np.nan) for t in terms]) for k in names},
        episodes=episodes,
        steps=steps,
    )


def _terms(reward_terms: dict[str, Any], env: int | None) -> dict[str, float]:
    """One env's reward terms from a last step's info (a vector env's info also holds the
    ``_name`` masks of Gymnasium's batched infos)."""
    if env is None:
        return {k: float(v) for k, v in reward_terms.items()}
    return {k: float(v[env]) for k, v in reward_terms.items() if not k.startswith("_")}
