"""Reading, checking and resampling audio at fdenv's edges.

Inside fdenv all audio is mono float32 in [-1, 1] at 24 kHz; everything read from disk passes
through :func:`load_mono` so that bad files fail here, with their name, and nowhere else.

Samples outside [-1, 1] (a float WAV can hold them, and resampling overshoots near full scale)
are clipped where audio enters: when a file is read, resampled on reading, or a scenario is
validated (:func:`check_mono`). Clipping, not refusing: a few loud samples are common in real
recordings and harmless to the labels, and it keeps every observation inside the env's
``Box(-1, 1)``.
"""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from fdenv.atomic import atomic_path
from fdenv.constants import SAMPLE_RATE
from fdenv.optional import require

RESAMPLERS = ("polyphase", "soxr")


def resample(
    audio: np.ndarray, from_rate: int, to_rate: int, method: str = "polyphase"
) -> np.ndarray:
    """Resampling along the last axis (exact length ``ceil(n * to / from)``).

    ``polyphase`` (scipy's ``resample_poly``) makes every audio fdenv keeps: scenarios,
    synthetic speech, exports. ``soxr`` (libsoxr, high quality) is about 4x faster and makes
    audio that only feeds a detector and is never kept (mining's labelling pass); the two
    differ by filter rounding, so switching a kept path would change stored scenarios.
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if method not in RESAMPLERS:
        raise ValueError(f"resampling method must be one of {RESAMPLERS}, got {method!r}")
    if from_rate == to_rate:
        return np.asarray(audio, dtype=np.float32)
    if method == "soxr":
        return _soxr(np.asarray(audio, dtype=np.float32), from_rate, to_rate)
    g = gcd(from_rate, to_rate)
    out = resample_poly(audio, to_rate // g, from_rate // g, axis=-1)
    return out.astype(np.float32, copy=False)


def _soxr(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    soxr = require("soxr", "soxr resampling (mining's labelling pass) needs soxr", "vad")
    length = -(-audio.shape[-1] * to_rate // from_rate)
    out = np.zeros((*audio.shape[:-1], length), dtype=np.float32)
    if length == 0:
        return out
    for source, target in zip(
        audio.reshape(-1, audio.shape[-1]), out.reshape(-1, length), strict=True
    ):
        done = soxr.resample(np.ascontiguousarray(source), from_rate, to_rate, quality="HQ")
        target[: min(done.size, length)] = done[:length]
    return out


def clip_unit(audio: np.ndarray) -> np.ndarray:
    """``audio`` as float32 clipped to [-1, 1] (the same array when nothing needs clipping)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size and (audio.max() > 1.0 or audio.min() < -1.0):
        return np.clip(audio, -1.0, 1.0)
    return audio


def check_mono(audio: np.ndarray, name: str) -> np.ndarray:
    """Returns ``audio`` as a finite 1-D float32 array clipped to [-1, 1], or raises
    ``ValueError`` naming ``name``."""
    audio = np.asarray(audio)
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise ValueError(
            f"{name}: expected mono audio (1-D), got shape {audio.shape}; "
            "mix down or pick one channel before using it as a user channel"
        )
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"{name}: expected float audio in [-1, 1], got dtype {audio.dtype}")
    if not np.all(np.isfinite(audio)):
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise ValueError(f"{name}: audio contains {bad} NaN/Inf samples")
    return clip_unit(audio)


def load_mono(path: str | Path, name: str | None = None) -> tuple[np.ndarray, int]:
    """Reads a mono audio file, resampled to 24 kHz; returns it with the file's original rate."""
    audio, rate = read_mono(path, name)
    return clip_unit(resample(audio, rate, SAMPLE_RATE)), rate


def read_channels(
    path: str | Path, channels: int, name: str | None = None, layout: str = "mono"
) -> tuple[list[np.ndarray], int]:
    """Reads an audio file of exactly ``channels`` channels at its own rate, one float32 array
    per channel; errors name ``name`` (default: the path) and the expected ``layout``."""
    path = Path(path)
    label = name or str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{label}: audio file {path} does not exist")
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise ValueError(f"{label}: cannot read audio file {path}: {err}") from err
    if audio.shape[1] != channels:
        raise ValueError(
            f"{label}: {path} has {audio.shape[1]} channel(s), expected {channels} ({layout})"
        )
    return [check_mono(audio[:, c], label) for c in range(channels)], int(rate)


def read_mono(path: str | Path, name: str | None = None) -> tuple[np.ndarray, int]:
    """Reads a mono audio file at its own rate; errors name ``name`` (default: the path)."""
    (audio,), rate = read_channels(path, 1, name)
    return audio, rate


def write_audio(path: str | Path, audio: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Writes audio atomically (temporary file, then rename); the format follows the suffix."""
    with atomic_path(path) as tmp:
        sf.write(tmp, audio, rate)
