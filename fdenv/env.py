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
``reset(options={"axis": name})`` draws the scenario from that axis (an env of several axes
otherwise draws the axis too); ``options={"scenario": s}`` plays ``s`` (a Scenario or an id).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from fdenv.axes import Axis, AxisScore
from fdenv.config import EnvConfig
from fdenv.constants import FRAME_SIZE, NUM_CODEBOOKS
from fdenv.engine import DuplexEngine, Stream, closed_loop_stream, make_stream
from fdenv.episode import Episode
from fdenv.plotting import timeline_image
from fdenv.registration import expand_axes
from fdenv.sampler import ScenarioSampler, ScenariosArg

_STREAM_NAMES = ["text token"] + [f"audio codebook {i}" for i in range(NUM_CODEBOOKS)]


def make_spaces(text_card: int, audio_card: int) -> tuple[spaces.Box, spaces.MultiDiscrete]:
    observation = spaces.Box(-1.0, 1.0, (FRAME_SIZE,), np.float32)
    action = spaces.MultiDiscrete(np.array([text_card] + [audio_card] * NUM_CODEBOOKS))
    return observation, action


def check_actions(actions: Any, nvec: np.ndarray, num_envs: int | None = None) -> np.ndarray:
    """Returns ``actions`` as an int64 array of the shape asked for; ``ValueError`` naming a bad
    entry.

    ``num_envs=None`` is a single env, which takes exactly one action ``[9]`` (a batch there
    would be cut to its first row without a word); otherwise ``[num_envs, 9]``. Every step
    calls this, so the usual case costs a few numpy calls; finding the bad entry can wait for
    the error.
    """
    single = num_envs is None and type(actions) is np.ndarray and actions.dtype == np.int64
    if single and actions.shape == nvec.shape:
        # The single env's usual case, in Python scalars: numpy's per-call cost is most of
        # the check on 9 numbers, and the single env calls it every step.
        for value, limit in zip(actions.tolist(), nvec.tolist(), strict=True):
            if not 0 <= value < limit:
                break
        else:
            return actions
    array = np.asarray(actions)
    expected = (len(nvec),) if num_envs is None else (num_envs, len(nvec))
    if array.shape != expected:
        what = "one action per step" if num_envs is None else "one action per env"
        raise ValueError(f"action must have shape {expected} ({what}), got {array.shape}")
    if array.dtype.kind not in "iu" and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"action must hold integer token ids, got dtype {array.dtype}")
    checked = array.astype(np.int64, copy=False)
    # cast to unsigned, a negative id is huge: one comparison checks both ends of the range
    if np.count_nonzero(checked.astype(np.uint64) >= nvec.astype(np.uint64)):
        batch = checked.reshape(-1, len(nvec))
        env, index = (int(i) for i in np.argwhere((batch < 0) | (batch >= nvec))[0])
        where = f"action[{index}]" if array.ndim == 1 else f"action[{env}, {index}]"
        raise ValueError(
            f"{where} ({_STREAM_NAMES[index]}) = {batch[env, index]} is outside "
            f"the allowed range [0, {nvec[index] - 1}]"
        )
    return checked


def score_episode(
    axis: Axis, episode: Episode, with_metrics: bool = True
) -> tuple[AxisScore, dict[str, Any]]:
    """The episode's score by ``axis`` and what the last step's info adds: the reward terms, the
    axis' metrics if ``with_metrics`` (:meth:`Axis.metrics`: Full-Duplex-Bench's, or the
    interaction metrics of a closed-loop axis; NaN where there is no value), the agent's speech,
    and for a closed-loop axis the episode's ``events``, each with its time, kind and cause."""
    score = axis.score(episode)
    final = {
        "axis": episode.axis,
        "scenario_id": episode.scenario.id,
        "reward_terms": {k: np.float64(v) for k, v in score.terms.items()},
        "stats": {k: np.float64(v) for k, v in score.stats.items()},
        "agent_speech": [(i.start, i.end) for i in episode.agent_speech],
    }
    if with_metrics:
        final["metrics"] = {k: np.float64(v) for k, v in axis.metrics(episode).items()}
    if axis.closed_loop:
        final["events"] = [e.to_json() for e in episode.events]
    return score, final


class FullDuplexEnv(gym.Env[np.ndarray, np.ndarray]):
    """A full-duplex conversation on one interactivity axis (or a mix of them).

    Args:
        axis: a registered axis name, ``"Mixed"`` (one of the paper's four per episode), an
            :class:`Axis` object (it scores, with its own settings), or a list of them.
        scenarios: shorthand for ``config.scenarios``.
        config: the env's settings (:class:`fdenv.config.EnvConfig`: scenarios, lead-in,
            vocabulary sizes, acoustics, axis weights, voice).
        render_mode: ``"rgb_array"`` draws the episode's timeline.
        **settings: any :class:`EnvConfig` field, overriding ``config``
            (``gym.make(id, lead_in_s=2.0, text_card=512)``).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 12.5}

    def __init__(
        self,
        axis: str | Axis | list[str | Axis] = "TurnTaking",
        scenarios: ScenariosArg = None,
        *,
        config: EnvConfig | None = None,
        render_mode: str | None = None,
        **settings: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.config = make_config(config, scenarios, settings)
        self.observation_space, self.action_space = make_spaces(
            self.config.text_card, self.config.audio_card
        )
        self.sampler = make_sampler(axis, self.config)
        self.voice = self.config.make_voice()
        self._engine = DuplexEngine(1, self.voice, self.config.lead_in_s, self.config.word_starts)
        self._needs_reset = True
        self.last_episode: Episode | None = None

    @property
    def lead_in_s(self) -> float:
        return self._engine.lead_in_s

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=None if seed is None else int(seed))
        stream = episode_stream(self.sampler, self.np_random, self.lead_in_s, options)
        scenario = stream.scenario
        self._engine.start(0, stream)
        self._needs_reset = False
        self.last_episode = None
        info = {
            "axis": scenario.axis,
            "scenario_id": scenario.id,
            "t": -stream.lead_in_s,
            "context_s": stream.context_s,
        }
        return self._engine.observe_one(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise ResetNeeded(
                "step() called after the episode terminated (or before the first reset); "
                "call reset() first"
            )
        checked = check_actions(action, self.action_space.nvec)
        t, user, agent, terminated = self._engine.step_one(checked)
        info: dict[str, Any] = {
            "t": np.float64(t),
            "user_speaking": np.bool_(user),
            "agent_speaking": np.bool_(agent),
        }
        reward = 0.0
        if terminated:
            self._needs_reset = True
            episode = self._engine.episode(0)
            axis = self.sampler.spec(episode.axis)
            score, final = score_episode(axis, episode, self.config.info_metrics)
            reward = score.reward
            info |= final
            self.last_episode = episode
        return self._engine.observe_one(), reward, terminated, False, info

    def episode(self) -> Episode:
        """The current (or just finished) episode."""
        return self._engine.episode(0)

    def partner_audio(self) -> dict[int, tuple[np.ndarray, int]]:
        """The partner's side of the recorded context played before this episode's scenario,
        with the frame it starts at (``{}`` without a context), keyed by env (0): what a policy
        that plays the partner's part needs (see :class:`fdenv.agent.Agent`)."""
        return stream_partners(self._engine.streams)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return timeline_image(self.episode())


def make_config(
    config: EnvConfig | None, scenarios: ScenariosArg, settings: dict[str, Any]
) -> EnvConfig:
    """``config`` (default :class:`EnvConfig`) with the constructor's keyword settings."""
    if scenarios is not None:
        settings = {"scenarios": scenarios} | settings
    return (config or EnvConfig()).replace(**settings)


def make_sampler(axis: str | Axis | list[str | Axis], config: EnvConfig) -> ScenarioSampler:
    return ScenarioSampler(
        expand_axes(axis),
        config.scenarios,
        num_scenarios=config.num_scenarios,
        scenario_seed=config.scenario_seed,
        acoustics=config.acoustics,
        axis_weights=config.axis_weights,
    )


def episode_stream(
    sampler: ScenarioSampler,
    rng: np.random.Generator,
    lead_in_s: float,
    options: dict[str, Any] | None,
) -> Stream:
    """The next episode's stream: a scenario drawn from ``sampler`` laid out for replay, or,
    for a closed-loop axis, its plan with the user who plays it (drawn from ``rng`` too). A
    closed-loop episode has no recorded context, like a synthetic scenario: its ``context_s``
    is 0 whatever ``options`` ask."""
    context_s = context_seconds(options)
    scenario = sampler.sample(rng, options)
    axis = sampler.spec(scenario.axis)
    if axis.closed_loop:
        return closed_loop_stream(scenario, axis.user_setup(scenario, rng), lead_in_s)
    return make_stream(scenario, lead_in_s, context_s)


def context_seconds(options: dict[str, Any] | None) -> float:
    """``options["context_s"]`` as seconds; a ``ValueError`` for a value that is not a finite
    number >= 0."""
    value = (options or {}).get("context_s", 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"options['context_s'] must be a number of seconds, got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"options['context_s'] must be finite and >= 0 seconds, got {value}")
    return float(value)


def stream_partners(streams: Sequence[Stream | None]) -> dict[int, tuple[np.ndarray, int]]:
    """Env -> (partner audio, first frame) for the streams that play a recorded context."""
    return {
        env: (stream.partner, stream.partner_frame)
        for env, stream in enumerate(streams)
        if stream is not None and stream.partner is not None
    }
