"""The agent's voice: how its tokens become speech activity (and audio, where it can).

The environment calls a voice once per step for a whole batch of envs, so a voice keeps its
state per env and must be cheap. At the end of an episode the environment asks the voice for
the episode's speech intervals; a voice that makes audio can answer from the audio (for
example with a VAD, the paper's way) rather than from its per-frame guess.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np

from fdenv.constants import EPAD_ID, FRAME_S, PAD_ID
from fdenv.timeline import Interval, mask_to_intervals


class VoiceFrame(NamedTuple):
    """One step of a batch of voices: who is speaking, and their audio if the voice makes any."""

    speaking: np.ndarray
    audio: np.ndarray | None = None


class Voice(ABC):
    """Turns a batch of actions ``[N, 9]`` (text token + 8 audio tokens) into speech."""

    makes_audio: bool = False

    @abstractmethod
    def reset(self, num_envs: int) -> None:
        """Prepares state for ``num_envs`` envs, all silent."""

    @abstractmethod
    def reset_envs(self, mask: np.ndarray) -> None:
        """Forgets the state of the envs where ``mask`` is true (their episodes start over)."""

    @abstractmethod
    def step(self, actions: np.ndarray) -> VoiceFrame:
        """Consumes one frame of actions for every env."""

    def speech_intervals(
        self, speaking: np.ndarray, audio: np.ndarray | None = None
    ) -> list[Interval]:
        """An episode's speech, in seconds from the start of its stream.

        ``speaking`` is what :meth:`step` reported frame by frame; ``audio`` is the voice's
        audio over the episode when it makes any. The default trusts the per-frame activity.
        """
        return mask_to_intervals(speaking, FRAME_S)


class TextVoice(Voice):
    """Speech activity from the text stream alone: cheap, deterministic, no audio.

    The agent speaks in a frame if it emitted a word token (any text token other than PAD and
    EPAD) in that frame or in the ``hold_frames - 1`` frames before. Moshi emits a word's tokens
    when the word starts and pads until the next one, so the hold stands for the word's duration:
    the default 5 frames (0.4 s) keeps fluent speech (about 2.5 words per second) continuous
    while a lone backchannel token stays a short interval.
    """

    def __init__(self, hold_frames: int = 5, pad_id: int = PAD_ID, epad_id: int = EPAD_ID):
        if hold_frames < 1:
            raise ValueError(f"hold_frames must be >= 1, got {hold_frames}")
        self.hold_frames = hold_frames
        self.pad_id = pad_id
        self.epad_id = epad_id
        self._since_word = np.zeros(0, dtype=np.int64)

    def reset(self, num_envs: int) -> None:
        self._since_word = np.full(num_envs, self.hold_frames, dtype=np.int64)

    def reset_envs(self, mask: np.ndarray) -> None:
        self._since_word[mask] = self.hold_frames

    def step(self, actions: np.ndarray) -> VoiceFrame:
        text = actions[:, 0]
        word = (text != self.pad_id) & (text != self.epad_id)
        self._since_word = np.where(word, 0, self._since_word + 1)
        return VoiceFrame(self._since_word < self.hold_frames)
