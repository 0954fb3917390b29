"""FullDuplexEnv: one conversation with a user, 80 ms per step.

Each step the agent hears the next 80 ms of user audio (observation) and answers with its text
token and 8 audio tokens for that frame (action). A scenario is preceded by ``lead_in_s`` of
silence; the episode ends with the scenario, and its only reward, the axis reward, arrives on the
last step. Observation ``k`` is frame ``k`` of the stream; the action that follows it is what the
agent says in the same frame.

Mined scenarios keep the recording that preceded them (:class:`fdenv.scenario.ContextRef`).
``reset(options={"context_s": x})`` plays up to ``x`` seconds of its user channel between the
silence and the scenario (the paper's context curriculum); the reset info's ``context_s`` says
how much was played (0 for a scenario without context). Rewards still look at the scenario only.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from fdenv.audio.acoustics import Acoustics
from fdenv.axes import Axis, AxisScore
from fdenv.constants import (
    AUDIO_CARD,
    DEFAULT_LEAD_IN_S,
    FRAME_SIZE,
    NUM_CODEBOOKS,
    TEXT_CARD,
)
from fdenv.engine import DuplexEngine, make_stream
from fdenv.episode import Episode
from fdenv.registration import expand_axes, get_axis
from fdenv.sampler import ScenarioSampler, ScenariosArg
from fdenv.voice import TextVoice, Voice

_STREAM_NAMES = ["text token"] + [f"audio codebook {i}" for i in range(NUM_CODEBOOKS)]


def make_spaces(text_card: int, audio_card: int) -> tuple[spaces.Box, spaces.MultiDiscrete]:
    if text_card < 4 or audio_card < 1:
        raise ValueError(
            f"text_card must be >= 4 and audio_card >= 1, got {text_card}, {audio_card}"
        )
    observation = spaces.Box(-1.0, 1.0, (FRAME_SIZE,), np.float32)
    action = spaces.MultiDiscrete(np.array([text_card] + [audio_card] * NUM_CODEBOOKS))
    return observation, action


def check_actions(actions: Any, nvec: np.ndarray) -> np.ndarray:
    """Returns ``actions`` as an int64 array ``[N, 9]``; ``ValueError`` naming a bad entry."""
    array = np.asarray(actions)
    if array.shape[-1:] != nvec.shape or array.ndim not in (1, 2):
        raise ValueError(f"action must have shape ({len(nvec)},) per env, got {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"action must hold integer token ids, got dtype {array.dtype}")
    batch = array.reshape(-1, len(nvec)).astype(np.int64, copy=False)
    bad = (batch < 0) | (batch >= nvec)
    if bad.any():
        env, index = (int(i) for i in np.argwhere(bad)[0])
        where = f"action[{index}]" if array.ndim == 1 else f"action[{env}, {index}]"
        raise ValueError(
            f"{where} ({_STREAM_NAMES[index]}) = {batch[env, index]} is outside "
            f"the allowed range [0, {nvec[index] - 1}]"
        )
    return batch


def final_info(episode: Episode, score: AxisScore) -> dict[str, Any]:
    """What the last step's info adds: the reward terms, the axis' Full-Duplex-Bench metrics
    (:meth:`Axis.metrics`; NaN where the benchmark has no value) and the agent's speech."""
    metrics = get_axis(episode.axis).metrics(episode)
    return {
        "axis": episode.axis,
        "scenario_id": episode.scenario.id,
        "reward_terms": {k: np.float64(v) for k, v in score.terms.items()},
        "stats": {k: np.float64(v) for k, v in score.stats.items()},
        "metrics": {k: np.float64(v) for k, v in metrics.items()},
        "agent_speech": [(i.start, i.end) for i in episode.agent_speech],
    }


class FullDuplexEnv(gym.Env[np.ndarray, np.ndarray]):
    """A full-duplex conversation on one interactivity axis (or a mix of them).

    Args:
        axis: a registered axis name, ``"Mixed"`` (one of the paper's four per episode), an
            :class:`Axis`, or a list of them.
        scenarios: a manifest path, a list of scenarios or a scenario source; ``None`` uses the
            embedded synthetic scenarios (``num_scenarios`` per axis from ``scenario_seed``).
        voice: turns actions into speech activity; default :class:`TextVoice`.
        lead_in_s: silence before each scenario (the paper's 3 s).
        text_card, audio_card: action space sizes (Moshi's 32000 and 2048).
        acoustics: room reverb and noise applied to the user channel per episode.
        axis_weights: relative weights of the axes when several are mixed (default: equal).
        render_mode: ``"rgb_array"`` draws the episode's timeline.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 12.5}

    def __init__(
        self,
        axis: str | Axis | list[str | Axis] = "TurnTaking",
        scenarios: ScenariosArg = None,
        *,
        voice: Voice | None = None,
        lead_in_s: float = DEFAULT_LEAD_IN_S,
        text_card: int = TEXT_CARD,
        audio_card: int = AUDIO_CARD,
        num_scenarios: int = 64,
        scenario_seed: int = 0,
        acoustics: Acoustics | None = None,
        axis_weights: dict[str, float] | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.observation_space, self.action_space = make_spaces(text_card, audio_card)
        self.sampler = ScenarioSampler(
            expand_axes(axis),
            scenarios,
            num_scenarios=num_scenarios,
            scenario_seed=scenario_seed,
            acoustics=acoustics,
            axis_weights=axis_weights,
        )
        self.voice = voice or TextVoice()
        self._engine = DuplexEngine(1, self.voice, lead_in_s)
        self._obs = np.zeros((1, FRAME_SIZE), dtype=np.float32)
        self._needs_reset = True
        self.last_episode: Episode | None = None

    @property
    def lead_in_s(self) -> float:
        return self._engine.lead_in_s

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        scenario = self.sampler.sample(self.np_random, options)
        stream = make_stream(scenario, self.lead_in_s, float((options or {}).get("context_s", 0)))
        self._engine.start(0, stream)
        self._needs_reset = False
        self.last_episode = None
        info = {
            "axis": scenario.axis,
            "scenario_id": scenario.id,
            "t": -stream.lead_in_s,
            "context_s": stream.context_s,
        }
        return self._engine.observe(self._obs)[0].copy(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise ResetNeeded(
                "step() called after the episode terminated (or before the first reset); "
                "call reset() first"
            )
        actions = check_actions(action, self.action_space.nvec)
        result = self._engine.step(actions)
        info: dict[str, Any] = {
            "t": np.float64(result.t[0]),
            "user_speaking": np.bool_(result.user_speaking[0]),
            "agent_speaking": np.bool_(result.agent_speaking[0]),
        }
        reward = 0.0
        terminated = bool(result.done[0])
        if terminated:
            self._needs_reset = True
            episode = self._engine.episode(0)
            score = get_axis(episode.axis).score(episode)
            reward = score.reward
            info |= final_info(episode, score)
            self.last_episode = episode
        return self._engine.observe(self._obs)[0].copy(), reward, terminated, False, info

    def episode(self) -> Episode:
        """The current (or just finished) episode."""
        return self._engine.episode(0)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        from fdenv.plotting import timeline_image

        return timeline_image(self.episode())
