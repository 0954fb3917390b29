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
from fdenv.timeline import Interval, clip, frame_runs

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
    probs: np.ndarray,
    hop_s: float,
    config: VADConfig,
    duration: float,
    sample_rate: int = SILERO_RATE,
) -> list[Interval]:
    """Speech intervals from per-hop speech probabilities, by the rules of Silero's own
    ``get_speech_timestamps`` (in whole samples at ``sample_rate``, as it counts), so that a
    stream gives the intervals :class:`SileroVAD` gives it:

    - speech starts at a hop at or above ``threshold``; once started, it ends where the
      probability first falls below ``threshold - 0.15`` (hysteresis), but only if it stays
      there: the silence is confirmed at a hop still below that level, ``min_silence_ms`` or
      more after the silence began, and any hop back at ``threshold`` before that cancels it
      (so a silence ends speech only when it lasts ``min_silence_ms`` plus one hop);
    - speech of ``min_speech_ms`` or less is dropped; speech still going at the end runs to the
      end of the audio;
    - each interval is padded by ``speech_pad_ms``, except that two intervals closer than two
      pads share the silence between them, half each.
    """
    probs = np.asarray(probs, dtype=np.float32)
    hop = round(hop_s * sample_rate)
    length = round(duration * sample_rate)
    low = max(config.threshold - 0.15, 0.01)
    min_silence = sample_rate * config.min_silence_ms / 1000
    min_speech = sample_rate * config.min_speech_ms / 1000
    pad = int(sample_rate * config.speech_pad_ms / 1000)
    runs: list[list[int]] = []
    start: int | None = None
    silent_from: int | None = None
    for index, prob in enumerate(probs.tolist()):
        at = index * hop
        if prob >= config.threshold:
            silent_from = None
            if start is None:
                start = at
            continue
        if start is None or prob >= low:
            continue
        if silent_from is None:
            silent_from = at
        if at - silent_from < min_silence:
            continue
        if silent_from - start > min_speech:
            runs.append([start, silent_from])
        start = silent_from = None
    if start is not None and length - start > min_speech:
        runs.append([start, length])
    for index, run in enumerate(runs):
        if index == 0:
            run[0] = max(0, run[0] - pad)
        if index + 1 == len(runs):
            run[1] = min(length, run[1] + pad)
            continue
        following = runs[index + 1]
        silence = following[0] - run[1]
        share = silence // 2 if silence < 2 * pad else pad
        run[1] = min(length, run[1] + share)
        following[0] = max(0, following[0] - share)
    return [Interval(a / sample_rate, b / sample_rate) for a, b in runs]


class BatchedSileroVAD:
    """Silero VAD over many 16 kHz streams at once, each stream whole.

    Silero's network is a per-chunk feature extractor (an STFT and four convolutions, each
    32 ms chunk seen with the 4 ms before it) followed by one LSTM cell that carries the state
    from chunk to chunk and a one-unit head. Only the LSTM is recurrent, so the extractor runs
    over every chunk of every stream in a few large calls (``block`` chunks each) and the
    recurrence over all streams at once, in one sequence call with the cell's own weights: no
    stream is cut, so no piece starts from a fresh state, and each stream's probabilities are
    Silero's own up to float rounding (1e-5 apart; the intervals are the same in the tests and
    on the metric fixtures). On one core this is about 650x real time per stream, where stepping
    the model chunk by chunk reaches about 500x at best, batched over 128 streams (and 56x on
    one).
    """

    def __init__(self, config: VADConfig = VADConfig(), block: int = 2048) -> None:
        if block < 1:
            raise ValueError(f"BatchedSileroVAD.block must be >= 1 chunk, got {block}")
        self.config = config
        self.block = block

    def speech_intervals_batch(self, streams: list[np.ndarray]) -> list[list[Interval]]:
        """Speech intervals of each 16 kHz float32 stream."""
        probs = self.probabilities(streams)
        hop = SILERO_CHUNK / SILERO_RATE
        return [
            probabilities_to_intervals(p, hop, self.config, s.size / SILERO_RATE)
            for p, s in zip(probs, streams, strict=True)
        ]

    def probabilities(self, streams: list[np.ndarray]) -> list[np.ndarray]:
        """Speech probability of every 512-sample chunk of every stream (the last chunk
        zero-padded, as Silero's own timestamp function pads it)."""
        streams = [check_mono(s, f"BatchedSileroVAD stream {i}") for i, s in enumerate(streams)]
        if not streams:
            return []
        import torch

        threads = torch.get_num_threads()
        # One thread: "per core" is how mining is sized, and the LSTM's small matrices lose
        # more to synchronisation than a second thread gains.
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                probs = self.recurrence(self.features(streams)).numpy()
        finally:
            torch.set_num_threads(threads)
        return [probs[: _chunks(s), index].copy() for index, s in enumerate(streams)]

    def features(self, streams: list[np.ndarray]) -> Any:
        """The extractor's output for every chunk of every stream, a tensor ``[chunks,
        streams, width]`` (zeros past a shorter stream's end)."""
        import torch

        network = _silero_network()
        counts = [_chunks(s) for s in streams]
        out = torch.zeros(max(counts, default=0), len(streams), network.width)
        for index, stream in enumerate(streams):
            windows = _chunk_windows(stream, network.context)
            for lo in range(0, counts[index], self.block):
                block = torch.from_numpy(windows[lo : lo + self.block].copy())
                out[lo : lo + len(block), index] = network.extract(block)
        return out

    def recurrence(self, features: Any) -> Any:
        """Features ``[chunks, streams, width]`` -> speech probabilities ``[chunks, streams]``,
        every stream from Silero's zero state."""
        return _silero_network().recurrence(features)


def _chunks(stream: np.ndarray) -> int:
    return -(-stream.size // SILERO_CHUNK)


def _chunk_windows(stream: np.ndarray, context: int) -> np.ndarray:
    """Every chunk of ``stream`` as the model sees it, a view ``[chunks, context + 512]``: the
    ``context`` samples before it (zeros before the stream) and its 512 samples (zeros past the
    stream's end)."""
    padded = np.zeros(context + _chunks(stream) * SILERO_CHUNK, dtype=np.float32)
    padded[context : context + stream.size] = stream
    windows = np.lib.stride_tricks.sliding_window_view(padded, context + SILERO_CHUNK)
    return windows[::SILERO_CHUNK]


class _SileroNetwork:
    """Silero's 16 kHz network split at its recurrence (see :class:`BatchedSileroVAD`): the
    extractor and head are the model's own modules, the LSTM cell's weights go into a sequence
    LSTM. Built once per process, and checked against the model stepped chunk by chunk, so
    that a silero-vad release that changes the network fails here rather than labelling wrong.
    """

    def __init__(self, model: Any) -> None:
        import torch

        try:
            net = model._model
            self._stft, self._encoder, cell = net.stft, net.encoder, net.decoder.rnn
            self._head = net.decoder.decoder
            self.context = int(net.context_size_samples)
            self.width = int(cell.weight_hh.shape[1])
            self._lstm = torch.nn.LSTM(int(cell.weight_ih.shape[1]), self.width)
            with torch.no_grad():
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(self._lstm, f"{name}_l0").copy_(getattr(cell, name))
        except (AttributeError, RuntimeError) as err:
            raise RuntimeError(
                f"this silero-vad release's network is not the one fdenv knows ({err}); "
                "install silero-vad 6.x"
            ) from err
        self._lstm.eval()
        self._check(model)

    def extract(self, windows: Any) -> Any:
        """``[n, 576]`` chunks with their context -> features ``[n, width]``."""
        return self._encoder(self._stft(windows)).squeeze(-1)

    def recurrence(self, features: Any) -> Any:
        """Features ``[chunks, streams, width]`` -> speech probabilities ``[chunks, streams]``,
        every stream from a zero state."""
        states, _ = self._lstm(features)
        steps, streams, width = states.shape
        out = self._head(states.reshape(steps * streams, width, 1))
        return out.reshape(steps, streams)

    def _check(self, model: Any) -> None:
        import torch

        stream = np.random.default_rng(0).uniform(-0.5, 0.5, 8 * SILERO_CHUNK).astype(np.float32)
        with torch.inference_mode():
            model.reset_states()
            chunks = torch.from_numpy(stream).reshape(8, 1, SILERO_CHUNK)
            stepped = np.array([float(model(c, SILERO_RATE)[0, 0]) for c in chunks])
            model.reset_states()
            windows = _chunk_windows(stream, self.context)
            features = self.extract(torch.from_numpy(windows.copy()))
            split = self.recurrence(features[:, None]).numpy()[:, 0]
        if not np.allclose(split, stepped, atol=1e-4):
            raise RuntimeError(
                "Silero's network split at its recurrence does not reproduce the model "
                f"(max difference {np.abs(split - stepped).max():.2g}); install silero-vad 6.x"
            )


@functools.lru_cache(maxsize=1)
def _silero_network() -> _SileroNetwork:
    """Built on first use, which can come in the middle of a rollout: under a forked random
    state, since a new LSTM initialises its weights from torch's global generator and would
    change what a seeded policy samples next, in the first evaluation of a process only."""
    import torch

    model, _ = _silero()  # first: it says which extra is missing
    with _SILERO_LOCK, torch.random.fork_rng():
        return _SileroNetwork(model)


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
