"""The machinery behind both environment classes: a batch of episodes played in lockstep.

:class:`FullDuplexEnv` runs it with one env and :class:`FullDuplexVectorEnv` with many, so the
two give the same results for the same seeds by construction. Per step it copies one frame of
user audio per env and writes a few numbers into preallocated history buffers; everything
that looks at a whole episode (intervals, rewards) runs once, at the episode's end.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from fdenv.constants import FRAME_S, FRAME_SIZE, SAMPLE_RATE
from fdenv.episode import Episode
from fdenv.manifest import load_context
from fdenv.scenario import Scenario
from fdenv.timeline import intervals_to_mask
from fdenv.voice import Voice


class Stream(NamedTuple):
    """A scenario laid out for playback: lead-in silence, the recording before the scenario
    (context, when asked for), the scenario's audio, zero padding to a whole frame.

    ``lead_in_s`` is everything before the scenario (silence and context). With a context,
    ``partner`` holds the partner's side of it from frame ``partner_frame`` on (whole frames, the
    first one partly silent), for policies that play the partner's part (see
    :meth:`agents.moshi.policy.MoshiPolicy.start`).
    """

    scenario: Scenario
    audio: np.ndarray
    user_speaking: np.ndarray
    num_frames: int
    lead_in_s: float
    context_s: float = 0.0
    partner: np.ndarray | None = None
    partner_frame: int = 0


def make_stream(scenario: Scenario, lead_in_s: float, context_s: float = 0.0) -> Stream:
    """Lays out ``scenario`` after ``lead_in_s`` of silence and, if it has a recorded context,
    the last ``context_s`` seconds of it (shortened so that the scenario starts on a frame)."""
    lead = round(lead_in_s * SAMPLE_RATE)
    if context_s < 0:
        raise ValueError(f"context_s must be >= 0 seconds, got {context_s}")
    context = 0
    user = partner = None
    if context_s > 0 and scenario.context is not None:
        user, partner = load_context(scenario.context)
        wanted = min(round(context_s * SAMPLE_RATE), len(user))
        context = max(0, (lead + wanted) // FRAME_SIZE * FRAME_SIZE - lead)
    start = lead + context
    num_frames = math.ceil((start + len(scenario.audio)) / FRAME_SIZE)
    audio = np.zeros(num_frames * FRAME_SIZE, dtype=np.float32)
    audio[start : start + len(scenario.audio)] = scenario.audio
    speaking = intervals_to_mask(scenario.user_speech, num_frames, offset=start / SAMPLE_RATE)
    if context == 0:
        return Stream(scenario, audio, speaking, num_frames, lead / SAMPLE_RATE)
    assert user is not None and partner is not None
    audio[lead:start] = user[len(user) - context :]
    first = lead // FRAME_SIZE
    played = np.zeros(start - first * FRAME_SIZE, dtype=np.float32)
    played[lead - first * FRAME_SIZE :] = partner[len(partner) - context :]
    return Stream(
        scenario,
        audio,
        speaking,
        num_frames,
        start / SAMPLE_RATE,
        context / SAMPLE_RATE,
        played,
        first,
    )


class StepResult(NamedTuple):
    """Per-env facts about the frame just played (arrays of length ``num_envs``)."""

    t: np.ndarray
    user_speaking: np.ndarray
    agent_speaking: np.ndarray
    done: np.ndarray


class DuplexEngine:
    """Plays one stream per env; ``step`` advances the envs that are mid-episode."""

    def __init__(self, num_envs: int, voice: Voice, lead_in_s: float) -> None:
        if lead_in_s < 0:
            raise ValueError(f"lead_in_s must be >= 0, got {lead_in_s}")
        self.num_envs = num_envs
        self.voice = voice
        self.lead_in_s = round(lead_in_s * SAMPLE_RATE) / SAMPLE_RATE
        self.streams: list[Stream | None] = [None] * num_envs
        self.frame = np.zeros(num_envs, dtype=np.int64)
        self._lead = np.full(num_envs, self.lead_in_s)
        self.num_frames = np.zeros(num_envs, dtype=np.int64)
        self._capacity = 0
        self._speaking = np.zeros((num_envs, 0), dtype=bool)
        self._text = np.zeros((num_envs, 0), dtype=np.int64)
        self._user = np.zeros((num_envs, 0), dtype=bool)
        self._audio: list[list[np.ndarray]] = [[] for _ in range(num_envs)]
        self._rows = np.arange(num_envs)
        voice.reset(num_envs)

    @property
    def running(self) -> np.ndarray:
        """Envs that are mid-episode."""
        return self.frame < self.num_frames

    def start(self, env: int, stream: Stream) -> None:
        """Begins an episode in ``env`` (several envs may share one stream)."""
        self.streams[env] = stream
        self._lead[env] = stream.lead_in_s
        self.frame[env] = 0
        self.num_frames[env] = stream.num_frames
        if stream.num_frames > self._capacity:
            self._grow(stream.num_frames)
        self._user[env, : stream.num_frames] = stream.user_speaking
        self._audio[env] = []
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[env] = True
        self.voice.reset_envs(mask)

    def _grow(self, frames: int) -> None:
        extra = frames - self._capacity
        self._speaking = np.pad(self._speaking, ((0, 0), (0, extra)))
        self._text = np.pad(self._text, ((0, 0), (0, extra)))
        self._user = np.pad(self._user, ((0, 0), (0, extra)))
        self._capacity = frames

    def observe(self, out: np.ndarray) -> np.ndarray:
        """Writes each env's current frame of user audio into ``out`` ``[num_envs, 1920]``."""
        for env, stream in enumerate(self.streams):
            k = self.frame[env]
            if stream is None or k >= stream.num_frames:
                out[env] = 0.0
            else:
                out[env] = stream.audio[k * FRAME_SIZE : (k + 1) * FRAME_SIZE]
        return out

    def step(self, actions: np.ndarray) -> StepResult:
        """Plays the agents' actions ``[num_envs, 9]`` into the current frame of running envs."""
        voiced = self.voice.step(actions)
        rows = self._rows[self.running]
        k = self.frame[rows]
        self._speaking[rows, k] = voiced.speaking[rows]
        self._text[rows, k] = actions[rows, 0]
        if voiced.audio is not None:
            for env in rows:
                self._audio[env].append(voiced.audio[env])
        user = np.zeros(self.num_envs, dtype=bool)
        user[rows] = self._user[rows, k]
        agent = np.zeros(self.num_envs, dtype=bool)
        agent[rows] = voiced.speaking[rows]
        t = self.frame * FRAME_S - self._lead
        self.frame[rows] += 1
        done = np.zeros(self.num_envs, dtype=bool)
        done[rows] = self.frame[rows] == self.num_frames[rows]
        return StepResult(t, user, agent, done)

    def episode(self, env: int) -> Episode:
        """The episode in ``env`` so far (complete once it is done)."""
        stream = self.streams[env]
        if stream is None:
            raise RuntimeError("no episode has started; call reset() first")
        played = int(self.frame[env])
        speaking = self._speaking[env, :played].copy()
        audio = np.concatenate(self._audio[env]) if self._audio[env] else None
        intervals = self.voice.speech_intervals(speaking, audio)
        return Episode(
            scenario=stream.scenario,
            lead_in_s=stream.lead_in_s,
            agent_speaking=speaking,
            text_tokens=self._text[env, :played].copy(),
            agent_speech=[i.shift(-stream.lead_in_s) for i in intervals],
            agent_audio=audio,
            context_s=stream.context_s,
        )
