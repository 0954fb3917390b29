"""Gymnasium wrappers around the full-duplex environments.

:class:`RecordEpisode` keeps what is needed to listen to and look at an episode after the fact:
a stereo WAV of both sides of the conversation, its labels and scores as JSON, and its timeline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from fdenv.atomic import atomic_path
from fdenv.audio.io import write_audio
from fdenv.constants import FRAME_SIZE, SAMPLE_RATE
from fdenv.engine import make_stream
from fdenv.episode import Episode
from fdenv.plotting import save_timeline

TONE_HZ = 220.0
TONE_AMPLITUDE = 0.1
"""The right channel's stand-in for a voice without audio: audible, and far below clipping."""


def _json_default(value: Any) -> Any:
    """Numpy scalars and arrays slip into labels and infos; JSON wants Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _fit(audio: np.ndarray, length: int) -> np.ndarray:
    """Cuts or zero-pads ``audio`` to ``length`` samples."""
    out = np.zeros(length, dtype=np.float32)
    n = min(length, len(audio))
    out[:n] = audio[:n]
    return out


def agent_channel(episode: Episode) -> np.ndarray:
    """The agent's side: its voice's audio, or a tone in the frames where it was speaking."""
    length = episode.num_frames * FRAME_SIZE
    if episode.agent_audio is not None:
        return _fit(np.asarray(episode.agent_audio, dtype=np.float32).reshape(-1), length)
    t = np.arange(length) / SAMPLE_RATE
    tone = TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)
    return (tone * np.repeat(episode.agent_speaking, FRAME_SIZE)).astype(np.float32)


def episode_stereo(episode: Episode) -> np.ndarray:
    """``[samples, 2]``: left the user stream the agent heard, right the agent; one length."""
    length = episode.num_frames * FRAME_SIZE
    silence = episode.lead_in_s - episode.context_s
    user = _fit(make_stream(episode.scenario, silence, episode.context_s).audio, length)
    return np.stack([user, agent_channel(episode)], axis=1)


class RecordEpisode(gym.Wrapper):
    """Writes every ``every``-th finished episode to ``folder`` as ``<prefix>-<episode:04d>``.

    Per episode: ``.wav`` (stereo 24 kHz, see :func:`episode_stereo`), ``.json`` (scenario
    labels, agent speech in scenario time, reward, its terms and stats, lead-in; for a
    closed-loop episode also its events with their causes and the user's lines as said) and
    ``.png`` (the timeline, events marked).
    Episodes are numbered from 0 in the order they finish; ``paths`` lists every file written.
    """

    def __init__(
        self, env: gym.Env, folder: str | Path, *, prefix: str = "episode", every: int = 1
    ) -> None:
        super().__init__(env)
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.every = every
        self.episode_count = 0
        self.paths: list[Path] = []

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            if self.episode_count % self.every == 0:
                self._record(float(reward), info)
            self.episode_count += 1
        return obs, reward, terminated, truncated, info

    def _record(self, reward: float, info: dict[str, Any]) -> None:
        episode: Episode | None = self.env.unwrapped.last_episode
        if episode is None:
            raise RuntimeError("the wrapped env set no last_episode on its terminal step")
        stem = f"{self.prefix}-{self.episode_count:04d}"
        wav, record, png = (self.folder / f"{stem}{s}" for s in (".wav", ".json", ".png"))
        write_audio(wav, episode_stereo(episode))
        summary = {
            "scenario": episode.scenario.labels_json(),
            "lead_in_s": episode.lead_in_s,
            "agent_speech": [[i.start, i.end] for i in episode.agent_speech],
            "reward": reward,
            "reward_terms": info.get("reward_terms", {}),
            "stats": info.get("stats", {}),
        }
        if episode.events:
            summary["events"] = [e.to_json() for e in episode.events]
            summary["user_lines"] = [line.to_json() for line in episode.user_lines]
        text = json.dumps(summary, indent=2, default=_json_default)
        with atomic_path(record) as tmp:
            tmp.write_text(text + "\n")
        save_timeline(episode, png, f"{episode.axis}: {episode.scenario.id}, reward {reward:+.3f}")
        self.paths += [wav, record, png]
