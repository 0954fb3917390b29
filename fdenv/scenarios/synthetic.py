"""Synthetic user channels with labels that are exact by construction.

Axes compose their scenarios from espeak-ng utterances and silences with :class:`UserTrack`;
every label (speech, pauses, word times) is the position where audio was placed, so there is
nothing to estimate. :class:`SyntheticScenarios` is the embedded default scenario source: it
needs nothing downloaded and makes each scenario on first use, deterministically from its seed.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Protocol

import numpy as np

from fdenv.audio.espeak import SpeakerStyle, get_engine, random_style
from fdenv.constants import SAMPLE_RATE
from fdenv.scenario import Scenario, Utterance, Word
from fdenv.timeline import Interval


class SynthesizingAxis(Protocol):
    """What synthesis needs of an axis (:class:`fdenv.axes.Axis` has it); a protocol, because
    the axes build their scenarios from this module."""

    name: str

    def synthesize(self, rng: np.random.Generator, scenario_id: str) -> Scenario: ...

    def validate(self, scenario: Scenario) -> None: ...


class UserTrack:
    """Appends speech and silence to a user channel and records where each utterance went."""

    def __init__(self, style: SpeakerStyle) -> None:
        self.style = style
        self._chunks: list[np.ndarray] = []
        self._length = 0
        self.speech: list[Interval] = []
        self.transcripts: list[Utterance] = []

    @property
    def now(self) -> float:
        """Current end of the track in seconds."""
        return self._length / SAMPLE_RATE

    def silence(self, seconds: float) -> None:
        samples = round(seconds * SAMPLE_RATE)
        self._chunks.append(np.zeros(samples, dtype=np.float32))
        self._length += samples

    def say(self, text: str) -> Interval:
        """Speaks ``text`` at the end of the track and returns where its speech lies."""
        spoken = get_engine().speak(text, self.style)
        start = self.now
        self._chunks.append(spoken.audio)
        self._length += len(spoken.audio)
        interval = Interval(start, self.now)
        words = tuple(Word(w.text, w.start + start, w.end + start) for w in spoken.words)
        self.speech.append(interval)
        self.transcripts.append(Utterance("user", spoken.text, start, self.now, words))
        return interval

    def say_until(
        self,
        min_duration_s: float,
        next_text: Callable[[], str],
        gap_s: Callable[[], float],
    ) -> list[Interval]:
        """Speaks sentences separated by short gaps until they span ``min_duration_s``."""
        spans = [self.say(next_text())]
        while spans[-1].end - spans[0].start < min_duration_s:
            self.silence(gap_s())
            spans.append(self.say(next_text()))
        return spans

    def audio(self, total_s: float | None = None) -> np.ndarray:
        """The track, padded with silence to ``total_s`` seconds if given."""
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        if total_s is not None:
            audio = np.pad(audio, (0, max(0, round(total_s * SAMPLE_RATE) - len(audio))))
        return audio


def new_track(rng: np.random.Generator, lead_silence_s: tuple[float, float]) -> UserTrack:
    """A track with a random voice that starts with a random stretch of silence."""
    track = UserTrack(random_style(rng))
    track.silence(rng.uniform(*lead_silence_s))
    return track


def synthetic_source(track: UserTrack) -> dict[str, object]:
    """The ``source`` record of a synthetic scenario: how its voice was drawn."""
    style = track.style
    return {
        "kind": "synthetic",
        "voice": style.voice,
        "rate_wpm": style.rate_wpm,
        "pitch": style.pitch,
    }


class SyntheticScenarios:
    """A fixed-size, lazily built set of synthetic scenarios of one axis.

    Scenario ``i`` depends only on ``(axis, seed, i)``, so a set can be rebuilt anywhere, and a
    held-out set is the same generator with another seed. The axis object synthesises (its
    settings, such as a pause axis' utterance length, shape the scenarios).
    """

    def __init__(self, axis: SynthesizingAxis, size: int = 64, seed: int = 0) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.axis = axis
        self.size = size
        self.seed = seed
        self._cache: dict[int, Scenario] = {}

    def __len__(self) -> int:
        return self.size

    def axis_of(self, index: int) -> str:
        return self.axis.name

    def id_of(self, index: int) -> str:
        return synthetic_id(self.axis.name, self.seed, index)

    def __getitem__(self, index: int) -> Scenario:
        if not 0 <= index < self.size:
            raise IndexError(f"scenario index {index} outside [0, {self.size})")
        if index not in self._cache:
            self._cache[index] = make_scenario(self.axis, self.seed, index)
        return self._cache[index]


def make_scenario(axis: SynthesizingAxis, seed: int, index: int) -> Scenario:
    """Synthesises scenario ``index`` of ``axis`` for ``seed`` (the unit of work of every pool)."""
    rng = np.random.default_rng([seed, index, _stable_hash(axis.name)])
    scenario = axis.synthesize(rng, synthetic_id(axis.name, seed, index))
    scenario.source.setdefault("seed", seed)
    scenario.source.setdefault("index", index)
    axis.validate(scenario)
    return scenario


def synthetic_id(axis: str, seed: int, index: int) -> str:
    return f"{axis}-s{seed}-{index:06d}"


def _stable_hash(text: str) -> int:
    """A hash that, unlike ``hash``, is the same in every process."""
    return zlib.crc32(text.encode())
