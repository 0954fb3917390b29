"""Voice activity detection: Silero for labelling real audio, frame energy for baselines and tests.

Mining runs VAD over hours of audio, so it has batched variants: :class:`BatchedSileroVAD`
(many 16 kHz streams per model call) and :class:`WebRTCVAD` (much cheaper, coarser).

Both return :class:`~fdenv.timeline.Interval` lists in seconds, the currency of axes and
metrics, whatever the input rate. Silero and WebRTC come with the ``vad`` extra (torch,
silero-vad, webrtcvad-wheels) and are imported on first use, so the environments, which need
neither, install and import without torch.
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
from fdenv.optional import require
from fdenv.timeline import Interval, clip, frame_runs, merge

SILERO_RATE = 16_000
"""Rate Silero runs at; other rates are resampled with fdenv's own resampler."""
SILERO_CHUNK = 512
"""Samples per Silero model call at 16 kHz (32 ms)."""
SILERO_NEEDS = "Silero VAD needs torch and silero-vad"
"""What :func:`~fdenv.optional.require` says when either is missing (the ``vad`` extra)."""


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
    torch = require("torch", SILERO_NEEDS, "vad")
    threads = torch.get_num_threads()
    try:
        silero_vad = require("silero_vad", SILERO_NEEDS, "vad")
        with warnings.catch_warnings():  # its use of importlib.resources.path is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            return silero_vad.load_silero_vad(), silero_vad.get_speech_timestamps
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
        model, get_speech_timestamps = _silero()  # first: it says which extra is missing
        import torch

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


def probabilities_to_intervals(
    probs: np.ndarray, hop_s: float, config: VADConfig, duration: float
) -> list[Interval]:
    """Speech intervals from per-hop speech probabilities, by Silero's post-processing rules.

    Speech starts at a hop at or above ``threshold`` and lasts until the probability falls
    below ``threshold - 0.15`` (hysteresis); silences shorter than ``min_silence_ms`` are
    bridged, runs shorter than ``min_speech_ms`` dropped, and each run padded by
    ``speech_pad_ms`` on both sides.
    """
    probs = np.asarray(probs, dtype=np.float32)
    low = max(config.threshold - 0.15, 0.01)
    found = []
    for a, b in frame_runs(probs >= low):
        onsets = np.flatnonzero(probs[a:b] >= config.threshold)
        if onsets.size:
            found.append(Interval((a + int(onsets[0])) * hop_s, b * hop_s))
    found = merge(found, max_gap=config.min_silence_ms / 1000 - 1e-9)
    found = [i for i in found if i.duration >= config.min_speech_ms / 1000]
    pad = config.speech_pad_ms / 1000
    return merge(clip((Interval(i.start - pad, i.end + pad) for i in found), 0.0, duration))


class BatchedSileroVAD:
    """Silero VAD over many 16 kHz streams at once: one model call steps a batch of streams.

    A model call on 128 streams costs about as much per stream as 1/20 of a call on one
    (0.02 vs 0.4 ms per 32 ms chunk on one core), so the streams are cut into pieces that
    run side by side, up to ``batch`` at a time: as many pieces as fill one batch, but none
    shorter than ``min_piece_s``. Silero is recurrent, and a piece started from a fresh state
    mislabels its first few hundred milliseconds (a split inside an utterance would invent a
    pause; 0.5 s of warm-up was not enough in tests), so each piece first runs over the
    ``warmup_s`` seconds before it (zeros for the first) and discards those outputs. Streams
    that fit a piece each get exactly Silero's own result.
    """

    def __init__(
        self,
        config: VADConfig = VADConfig(),
        min_piece_s: float = 8.0,
        warmup_s: float = 1.0,
        batch: int = 128,
    ) -> None:
        if min_piece_s < SILERO_CHUNK / SILERO_RATE:
            raise ValueError(f"BatchedSileroVAD.min_piece_s must be >= 0.032 s, got {min_piece_s}")
        if warmup_s < 0:
            raise ValueError(f"BatchedSileroVAD.warmup_s must be >= 0 s, got {warmup_s}")
        if batch < 1:
            raise ValueError(f"BatchedSileroVAD.batch must be >= 1, got {batch}")
        self.config = config
        self.min_piece_chunks = round(min_piece_s * SILERO_RATE / SILERO_CHUNK)
        self.warmup_chunks = round(warmup_s * SILERO_RATE / SILERO_CHUNK)
        self.batch = batch

    def speech_intervals_batch(self, streams: list[np.ndarray]) -> list[list[Interval]]:
        """Speech intervals of each 16 kHz float32 stream."""
        probs = self.probabilities(streams)
        hop = SILERO_CHUNK / SILERO_RATE
        return [
            probabilities_to_intervals(p, hop, self.config, s.size / SILERO_RATE)
            for p, s in zip(probs, streams, strict=True)
        ]

    def probabilities(self, streams: list[np.ndarray]) -> list[np.ndarray]:
        """Speech probability of every 512-sample chunk of every stream."""
        streams = [check_mono(s, f"BatchedSileroVAD stream {i}") for i, s in enumerate(streams)]
        if not streams:
            return []
        total = sum(_chunks(s) for s in streams)
        # Each stream's last piece may be partial: leave one batch row per stream for it.
        rows = max(self.batch - len(streams), 1)
        piece_chunks = max(self.min_piece_chunks, -(-total // rows))
        if all(_chunks(s) <= piece_chunks for s in streams):
            return self._run([(s, 0) for s in streams], max(_chunks(s) for s in streams))
        size = piece_chunks * SILERO_CHUNK
        warm = self.warmup_chunks * SILERO_CHUNK
        pieces: list[tuple[np.ndarray, int]] = []
        owners: list[int] = []
        for index, stream in enumerate(streams):
            padded = np.concatenate([np.zeros(warm, dtype=np.float32), stream])
            for first in range(0, stream.size, size):
                pieces.append((padded[first : first + warm + size], self.warmup_chunks))
                owners.append(index)
        probs = self._run(pieces, self.warmup_chunks + piece_chunks)
        result = []
        for index, stream in enumerate(streams):
            rows = [p for p, owner in zip(probs, owners, strict=True) if owner == index]
            result.append(np.concatenate(rows)[: _chunks(stream)])
        return result

    def _run(self, pieces: list[tuple[np.ndarray, int]], num_chunks: int) -> list[np.ndarray]:
        """Steps the model over equal-length pieces (zero-padded), ``batch`` at a time, and
        returns each piece's probabilities after its ``skip`` warm-up chunks."""
        model, _ = _silero()  # first: it says which extra is missing
        import torch

        out = np.zeros((len(pieces), num_chunks), dtype=np.float32)
        threads = torch.get_num_threads()
        # One thread: the per-call matrices are small, and a second thread costs more in
        # synchronisation than it saves (10x slower on a shared 2-core machine).
        torch.set_num_threads(1)
        try:
            with _SILERO_LOCK, torch.inference_mode():
                for lo in range(0, len(pieces), self.batch):
                    group = pieces[lo : lo + self.batch]
                    block = np.zeros((len(group), num_chunks * SILERO_CHUNK), dtype=np.float32)
                    for row, (piece, _) in enumerate(group):
                        block[row, : piece.size] = piece
                    chunks = block.reshape(len(group), num_chunks, SILERO_CHUNK).transpose(1, 0, 2)
                    chunks = torch.from_numpy(np.ascontiguousarray(chunks))
                    model.reset_states()
                    for k in range(num_chunks):
                        out[lo : lo + len(group), k] = model(chunks[k], SILERO_RATE)[:, 0].numpy()
                model.reset_states()
        finally:
            torch.set_num_threads(threads)
        return [out[i, skip:] for i, (_, skip) in enumerate(pieces)]


def _chunks(stream: np.ndarray) -> int:
    return -(-stream.size // SILERO_CHUNK)


class WebRTCVAD:
    """Google's WebRTC VAD (``webrtcvad-wheels``): about 200x cheaper than Silero, coarser.

    ``mode`` 0-3 is its aggressiveness (3 rejects the most non-speech); frames are
    ``frame_ms`` (10, 20 or 30) at 16 kHz. Frame decisions go through the same smoothing as
    Silero's probabilities (:func:`probabilities_to_intervals` with ``config``).
    """

    def __init__(self, mode: int = 2, frame_ms: int = 30, config: VADConfig = VADConfig()) -> None:
        if mode not in (0, 1, 2, 3):
            raise ValueError(f"WebRTCVAD.mode must be 0, 1, 2 or 3, got {mode}")
        if frame_ms not in (10, 20, 30):
            raise ValueError(f"WebRTCVAD.frame_ms must be 10, 20 or 30, got {frame_ms}")
        self.mode = mode
        self.frame_ms = frame_ms
        self.config = config

    def speech_intervals_batch(self, streams: list[np.ndarray]) -> list[list[Interval]]:
        """Speech intervals of each 16 kHz float32 stream."""
        webrtcvad = require("webrtcvad", "WebRTCVAD needs webrtcvad-wheels", "vad")
        vad = webrtcvad.Vad(self.mode)
        frame = SILERO_RATE * self.frame_ms // 1000
        results = []
        for index, stream in enumerate(streams):
            stream = check_mono(stream, f"WebRTCVAD stream {index}")
            pcm = (np.clip(stream, -1.0, 1.0) * 32767).astype("<i2")
            count = pcm.size // frame
            data = pcm[: count * frame].tobytes()
            step = 2 * frame
            decisions = np.array(
                [vad.is_speech(data[k * step : (k + 1) * step], SILERO_RATE) for k in range(count)],
                dtype=np.float32,
            )
            results.append(
                probabilities_to_intervals(
                    decisions, self.frame_ms / 1000, self.config, stream.size / SILERO_RATE
                )
            )
        return results
