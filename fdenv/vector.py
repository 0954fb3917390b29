"""FullDuplexVectorEnv: many conversations batched in numpy, with GRPO groups.

``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")`` builds it. With
``group_size=G`` each run of ``G`` consecutive envs plays the same scenario (same audio, same
acoustics), so one batched policy call rolls out a whole GRPO group. Env ``i`` seeded with
``seed + i`` draws exactly what a single :class:`FullDuplexEnv` seeded the same way draws; a
group draws from its first env's generator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.error import ResetNeeded
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from fdenv.axes import Axis
from fdenv.config import EnvConfig
from fdenv.engine import DuplexEngine
from fdenv.env import (
    check_actions,
    episode_stream,
    make_config,
    make_sampler,
    make_spaces,
    score_episode,
    stream_partners,
)
from fdenv.episode import Episode
from fdenv.sampler import ScenariosArg

PER_GROUP = ("scenario", "axis", "context_s")
"""Reset options that may list one value per group."""


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _info_array(value: Any, num_envs: int) -> np.ndarray:
    """The per-env array Gymnasium makes for an info value of this type."""
    if type(value) in (int, float, bool) or isinstance(value, np.number):
        return np.zeros(num_envs, dtype=type(value))
    if isinstance(value, np.ndarray):
        return np.zeros((num_envs, *value.shape), dtype=value.dtype)
    return np.full(num_envs, None, dtype=object)


class FullDuplexVectorEnv(VectorEnv):
    """``num_envs`` conversations stepped together; see :class:`fdenv.env.FullDuplexEnv`.

    Args as :class:`fdenv.env.FullDuplexEnv` (``axis``, ``scenarios``, ``config``, any
    :class:`fdenv.config.EnvConfig` field as a keyword), and:
        group_size: consecutive envs that share a scenario (must divide ``num_envs``).
            ``reset(options={"scenario": s})`` pins every group to ``s`` (a Scenario or id);
            a list pins group ``g`` to its ``g``-th entry; ``options={"axis": name}`` (or a
            list per group) draws the scenario from that axis. ``options={"context_s": x}`` (or a
            list per group) plays up to ``x`` seconds of the recording before the scenario,
            where the scenario has one (see :class:`fdenv.env.FullDuplexEnv`).
        autoreset_mode: ``NEXT_STEP`` (Gymnasium's default: a finished env restarts on the
            following step, whose action is ignored) or ``DISABLED`` (a finished env idles,
            with zero observations and rewards and ``terminated`` false, until you reset it with
            ``options={"reset_mask": mask}``; so a batch of episodes of different lengths can
            be stepped until the longest ends).
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        axis: str | Axis | list[str | Axis] = "TurnTaking",
        scenarios: ScenariosArg = None,
        *,
        group_size: int = 1,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        config: EnvConfig | None = None,
        render_mode: str | None = None,
        **settings: Any,
    ) -> None:
        if num_envs < 1 or group_size < 1 or num_envs % group_size:
            raise ValueError(
                f"num_envs ({num_envs}) must be a positive multiple of group_size ({group_size})"
            )
        mode = AutoresetMode(autoreset_mode)
        if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED):
            raise ValueError(f"autoreset_mode must be NEXT_STEP or DISABLED, got {mode}")
        if render_mode is not None:
            raise ValueError("the vector env does not render; render single envs instead")
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self.num_envs = num_envs
        self.group_size = group_size
        self.config = make_config(config, scenarios, settings)
        self.single_observation_space, self.single_action_space = make_spaces(
            self.config.text_card, self.config.audio_card
        )
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.sampler = make_sampler(axis, self.config)
        self.voice = self.config.make_voice()
        self._engine = DuplexEngine(
            num_envs, self.voice, self.config.lead_in_s, self.config.word_starts
        )
        self._rngs = [seeding.np_random()[0] for _ in range(num_envs)]
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self._started = False

    @property
    def group_inputs_shared(self) -> bool:
        """Whether the envs of a group hear the same user audio whatever their agents do: true
        for replayed scenarios, false where the user reacts (closed-loop axes)."""
        return not any(axis.closed_loop for axis in self.sampler.specs.values())

    @property
    def lead_in_s(self) -> float:
        return self._engine.lead_in_s

    def episode(self, env: int) -> Episode:
        """Env ``env``'s current (or just finished) episode."""
        return self._engine.episode(env)

    def partner_audio(self) -> dict[int, tuple[np.ndarray, int]]:
        """Per env that plays a recorded context before its scenario: the partner's side of it
        and the frame it starts at (see :meth:`fdenv.env.FullDuplexEnv.partner_audio`)."""
        return stream_partners(self._engine.streams)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        seeds = self._seeds(seed)
        options = dict(options or {})
        mask = np.asarray(options.pop("reset_mask", np.ones(self.num_envs, dtype=bool)))
        if mask.shape != (self.num_envs,) or mask.dtype != bool:
            raise ValueError(
                f"options['reset_mask'] must be a bool array of shape ({self.num_envs},)"
            )
        groups = mask.reshape(-1, self.group_size)
        if not np.all(groups.all(axis=1) | ~groups.any(axis=1)):
            raise ValueError("options['reset_mask'] must reset whole groups of group_size envs")
        for env, env_seed in enumerate(seeds):
            if mask[env] and env_seed is not None:
                self._rngs[env] = seeding.np_random(env_seed)[0]
        infos: dict[str, Any] = {}
        groups = self.num_envs // self.group_size
        per_group = {k: v for k, v in options.items() if k in PER_GROUP and _is_list(v)}
        for key, values in per_group.items():
            if len(values) != groups:
                raise ValueError(f"options[{key!r}] lists {len(values)} values for {groups} groups")
        for env in np.flatnonzero(mask):
            group = env // self.group_size
            group_options = options | {k: v[group] for k, v in per_group.items()}
            infos = self._start(int(env), infos, group_options)
        self._autoreset[mask] = False
        self._started = True
        return self._engine.observe(), infos

    def _seeds(self, seed: int | list[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, int | np.integer) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(self.num_envs)]
        if not isinstance(seed, list | tuple | np.ndarray) or len(seed) != self.num_envs:
            raise ValueError(
                f"seed must be an int or a list of {self.num_envs} ints or None, got {seed!r}"
            )
        return [None if s is None else int(s) for s in seed]

    def _start(self, env: int, infos: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """Starts env's next episode; a group's first env draws the scenario for the group."""
        leader = env - env % self.group_size
        if env == leader:
            self._stream = episode_stream(self.sampler, self._rngs[leader], self.lead_in_s, options)
        self._engine.start(env, self._stream)
        info = {
            "axis": self._stream.scenario.axis,
            "scenario_id": self._stream.scenario.id,
            "context_s": self._stream.context_s,
        }
        return self._add_info(infos, info, env)

    def _add_info(
        self, vector_infos: dict[str, Any], env_info: dict[str, Any], env_num: int
    ) -> dict[str, Any]:
        """Gymnasium's layout of per-env infos (an array per key, a ``_key`` mask beside it,
        nested dicts alike), built without Gymnasium's spare mask array per key and call: an
        episode's last info holds some thirty keys, and this ran at every episode's end."""
        for key, value in env_info.items():
            if isinstance(value, dict):
                array = self._add_info(vector_infos.get(key, {}), value, env_num)
            else:
                array = vector_infos.get(key)
                if array is None:
                    array = _info_array(value, self.num_envs)
                array[env_num] = value
            mask = vector_infos.get(f"_{key}")
            if mask is None:
                mask = np.zeros(self.num_envs, dtype=np.bool_)
            mask[env_num] = True
            vector_infos[key], vector_infos[f"_{key}"] = array, mask
        return vector_infos

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._started:
            raise ResetNeeded("call reset() before step()")
        batch = check_actions(actions, self.single_action_space.nvec, self.num_envs)
        restarting = self._autoreset  # replaced below, never changed in place during a step
        result = self._engine.step(batch)
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        infos: dict[str, Any] = {
            "t": result.t,  # the engine's arrays are new each step
            "user_speaking": result.user_speaking,
            "agent_speaking": result.agent_speaking,
        }
        ended = result.done.nonzero()[0].tolist()
        for env, episode in zip(ended, self._engine.episodes(ended), strict=True):
            axis = self.sampler.spec(episode.axis)
            score, final = score_episode(axis, episode, self.config.info_metrics)
            rewards[env] = score.reward
            infos = self._add_info(infos, final, env)
        for env in restarting.nonzero()[0]:
            infos = self._start(int(env), infos, {})
            infos["t"][env] = -self._stream.lead_in_s  # the new episode's, not the old one's
        if self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP:
            self._autoreset = result.done.copy()
        truncations = np.zeros(self.num_envs, dtype=bool)
        return self._engine.observe(), rewards, result.done, truncations, infos
