"""Voice activity detection: Silero for labelling real audio, frame energy for baselines and tests.

Both return :class:`~fdenv.timeline.Interval` lists in seconds, the currency of axes and
metrics, whatever the input rate.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fdenv.audio.io import check_mono, resample
from fdenv.constants import FRAME_S, SAMPLE_RATE
from fdenv.timeline import Interval, clip, frame_runs

SILERO_RATE = 16_000
"""Rate Silero runs at; other rates are resampled with fdenv's own resampler."""


@dataclass(frozen=True)
class VADConfig:
    """Silero post-processing; defaults equal ``silero_vad.get_speech_timestamps``' own."""

    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 100
    speech_pad_ms: int = 30

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"VADConfig.threshold must be in (0, 1), got {self.threshold}")
        for name in ("min_speech_ms", "min_silence_ms", "speech_pad_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"VADConfig.{name} must be >= 0, got {getattr(self, name)}")


@functools.lru_cache(maxsize=1)
def _silero() -> tuple[Any, Callable[..., list[dict[str, int]]]]:
    """Model and timestamp function, loaded once per process; undoes silero's thread setting.

    Importing ``silero_vad`` calls ``torch.set_num_threads(1)``, which would silently slow
    every other torch computation in the process (the policy, Moshi).
    """
    import torch

    threads = torch.get_num_threads()
    try:
        from silero_vad import get_speech_timestamps, load_silero_vad

        with warnings.catch_warnings():  # its use of importlib.resources.path is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            return load_silero_vad(), get_speech_timestamps
    finally:
        torch.set_num_threads(threads)


_SILERO_LOCK = threading.Lock()
"""The model carries recurrent state between chunks, so two threads must not share a call."""


class SileroVAD:
    """Silero VAD on audio at any rate (fdenv's 24 kHz by default)."""

    def __init__(self, config: VADConfig = VADConfig()) -> None:
        self.config = config

    def speech_intervals(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> list[Interval]:
        audio = check_mono(audio, "SileroVAD input")
        duration = audio.size / sample_rate
        audio16 = resample(audio, sample_rate, SILERO_RATE)
        if audio16.size == 0:
            return []
        import torch

        model, get_speech_timestamps = _silero()
        with _SILERO_LOCK, torch.inference_mode():
            stamps = get_speech_timestamps(
                torch.from_numpy(np.ascontiguousarray(audio16)),
                model,
                threshold=self.config.threshold,
                sampling_rate=SILERO_RATE,
                min_speech_duration_ms=self.config.min_speech_ms,
                min_silence_duration_ms=self.config.min_silence_ms,
                speech_pad_ms=self.config.speech_pad_ms,
            )
        # Sample indices rather than return_seconds, which rounds to 0.1 s.
        found = (Interval(s["start"] / SILERO_RATE, s["end"] / SILERO_RATE) for s in stamps)
        return clip(found, 0.0, duration)


class EnergyVAD:
    """Frame-energy detector: cheap, for baselines and tests. RMS in dBFS over 80 ms frames vs
    threshold.

    dBFS is relative to a full-scale amplitude of 1 (a constant 0.1 is -20 dBFS). It cannot
    tell speech from loud noise, which is why real labels come from :class:`SileroVAD`.
    """

    def __init__(self, threshold_db: float = -40.0, frame_s: float = FRAME_S) -> None:
        if frame_s <= 0:
            raise ValueError(f"EnergyVAD.frame_s must be > 0 seconds, got {frame_s}")
        self.threshold_db = threshold_db
        self.frame_s = frame_s

    def frame_activity(self, frames: np.ndarray) -> np.ndarray:
        """``frames[..., n]`` -> bool ``[...]``: whether each frame's RMS exceeds the threshold."""
        frames = np.asarray(frames, dtype=np.float64)
        rms = np.sqrt(np.mean(frames**2, axis=-1))
        with np.errstate(divide="ignore"):
            rms_db = 20.0 * np.log10(rms)
        return rms_db > self.threshold_db

    def speech_intervals(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> list[Interval]:
        """Active frames as intervals; a trailing partial frame is judged on its own samples."""
        audio = check_mono(audio, "EnergyVAD input")
        frame_len = max(round(self.frame_s * sample_rate), 1)
        full = audio.size // frame_len
        active = self.frame_activity(audio[: full * frame_len].reshape(full, frame_len))
        if audio.size > full * frame_len:
            active = np.append(active, self.frame_activity(audio[full * frame_len :]))
        step = frame_len / sample_rate
        found = (Interval(a * step, b * step) for a, b in frame_runs(active))
        return clip(found, 0.0, audio.size / sample_rate)
