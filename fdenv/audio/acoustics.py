"""Room reverberation and additive noise for user channels, keeping speech labels valid.

Scenarios carry speech intervals measured on the dry signal, so every augmentation here keeps
the clip's length and the timing of its onsets: impulse responses start at their direct path
and convolution is truncated to the input length. All randomness comes from the caller's numpy
``Generator`` so an augmented scenario can be rebuilt from its seed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.signal import fftconvolve

from fdenv.audio.io import check_mono
from fdenv.constants import SAMPLE_RATE
from fdenv.timeline import Interval

NOISE_KINDS = ("white", "pink")
"""Noises generated on the fly, so that no noise corpus has to be shipped or downloaded."""

NOMINAL_SPEECH_DBFS = -26.0
"""Reference level for noise when a clip has no speech (the usual active speech level)."""

_MIN_DISTANCE_M = 0.5
_MAX_DISTANCE_M = 3.0
_WALL_MARGIN_M = 0.5
_MAX_DRAWS_PER_RIR = 1_000


@dataclass(frozen=True)
class RoomConfig:
    """Settings of the precomputed RIR bank.

    Defaults cover small offices to living rooms (RT60 0.15-0.7 s, rooms 3x3x2.4 m to
    10x8x3.5 m), talker 0.5-3 m from the microphone, both at least 0.5 m from every wall.
    """

    num_rirs: int = 32
    """RIRs in the bank (one room each)."""
    rt60_range: tuple[float, float] = (0.15, 0.7)
    """Reverberation time of the rooms, drawn uniformly from (low, high) seconds."""
    room_size_range: tuple[tuple[float, float, float], tuple[float, float, float]] = (
        (3.0, 3.0, 2.4),
        (10.0, 8.0, 3.5),
    )
    """Smallest and largest room, (x, y, z) metres each."""
    max_order: int = 12
    """Cap of the image-source order: the order Sabine's formula asks for costs seconds per RIR,
    and beyond order 12 the thin late tail barely changes what a listener (or a model) hears."""
    max_rir_s: float = 0.5
    """Length the responses are truncated to, bounding the cost of convolution."""
    seed: int = 0
    """Seed of the bank's rooms and positions."""

    def __post_init__(self) -> None:
        if self.num_rirs < 1:
            raise ValueError(f"RoomConfig.num_rirs must be >= 1, got {self.num_rirs}")
        lo, hi = self.rt60_range
        if not 0.0 < lo <= hi:
            raise ValueError(
                f"RoomConfig.rt60_range must satisfy 0 < low <= high (seconds), got {lo, hi}"
            )
        small, large = self.room_size_range
        if len(small) != 3 or len(large) != 3:
            raise ValueError("RoomConfig.room_size_range must hold two (x, y, z) triples")
        min_side = 2 * _WALL_MARGIN_M
        if any(not min_side < s <= b for s, b in zip(small, large, strict=True)):
            raise ValueError(
                "RoomConfig.room_size_range must satisfy "
                f"{min_side} m < low <= high per side, got {self.room_size_range}"
            )
        if self.max_order < 0:
            raise ValueError(f"RoomConfig.max_order must be >= 0, got {self.max_order}")
        if self.max_rir_s <= 0:
            raise ValueError(f"RoomConfig.max_rir_s must be > 0 seconds, got {self.max_rir_s}")


@dataclass(frozen=True)
class RIRBank:
    """Room impulse responses at 24 kHz, direct path at index 0 with amplitude 1.

    Starting at the direct path makes convolution delay nothing, so speech labels measured
    on the dry signal stay aligned; a direct-path gain of 1 keeps the dry part's level.
    Arrays are read-only because the bank is shared through an in-process cache.
    """

    rirs: list[np.ndarray]
    rt60s: list[float] = field(default_factory=list)
    """Target RT60 per RIR (Sabine); the order cap makes the real decay somewhat shorter."""

    @classmethod
    def build(cls, config: RoomConfig = RoomConfig()) -> RIRBank:
        rirs, rt60s = _build_bank(config)
        return cls(rirs=list(rirs), rt60s=list(rt60s))

    def __len__(self) -> int:
        return len(self.rirs)


@functools.lru_cache(maxsize=8)
def _build_bank(config: RoomConfig) -> tuple[tuple[np.ndarray, ...], tuple[float, ...]]:
    # Imported here: pyroomacoustics is slow to import and only needed when reverb is used.
    import pyroomacoustics as pra

    rng = np.random.default_rng(config.seed)
    rirs: list[np.ndarray] = []
    rt60s: list[float] = []
    for index in range(config.num_rirs):
        for _ in range(_MAX_DRAWS_PER_RIR):
            rt60 = float(rng.uniform(*config.rt60_range))
            rir = _draw_rir(pra, config, rt60, rng)
            if rir is not None:
                break
        else:
            raise RuntimeError(
                f"could not draw RIR {index} for {config}: the rooms may be too large for "
                "the RT60 range, or too small for the talker distance"
            )
        rir.setflags(write=False)
        rirs.append(rir)
        rt60s.append(rt60)
    return tuple(rirs), tuple(rt60s)


def _draw_rir(
    pra: Any, config: RoomConfig, rt60: float, rng: np.random.Generator
) -> np.ndarray | None:
    """One random room; ``None`` when the draw is unusable and must be redrawn."""
    small, large = (np.asarray(s, dtype=float) for s in config.room_size_range)
    dims = rng.uniform(small, large)
    source = rng.uniform(_WALL_MARGIN_M, dims - _WALL_MARGIN_M)
    mic = rng.uniform(_WALL_MARGIN_M, dims - _WALL_MARGIN_M)
    distance = float(np.linalg.norm(source - mic))
    if not _MIN_DISTANCE_M <= distance <= _MAX_DISTANCE_M:
        return None
    try:
        absorption, order = pra.inverse_sabine(rt60, dims)
    except ValueError:  # the room is too large to be this dry
        return None
    room = pra.ShoeBox(
        dims,
        fs=SAMPLE_RATE,
        materials=pra.Material(absorption),
        max_order=min(order, config.max_order),
        air_absorption=False,
    )
    room.add_source(source)
    room.add_microphone(mic)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)

    # pyroomacoustics centres its fractional-delay filters, delaying everything by half
    # their length; find the direct path's sample from the geometry, then check it is the
    # loudest one (coinciding reflections can sum above it when the talker is far away).
    expected = pra.constants.get("frac_delay_length") // 2 + distance / room.c * SAMPLE_RATE
    lo = max(int(expected) - 2, 0)
    peak = lo + int(np.argmax(np.abs(rir[lo : int(expected) + 3])))
    rir = rir[peak : peak + round(config.max_rir_s * SAMPLE_RATE)]
    if rir[0] <= 0 or np.argmax(np.abs(rir)) != 0:
        return None
    return (rir / rir[0]).astype(np.float32)


@dataclass(frozen=True)
class Acoustics:
    """Augmentation applied to a user channel. Defaults: reverb always, noise at 5-25 dB SNR."""

    reverb_prob: float = 1.0
    """Probability that a clip is convolved with a room's RIR (0: no reverb)."""
    snr_db_range: tuple[float, float] | None = (5.0, 25.0)
    """Noise at an SNR drawn uniformly from (low, high) dB over the speech; ``None``: no noise."""
    noise: str = "pink"
    """``"white"`` or ``"pink"`` (1/f power), both generated from the caller's generator."""
    room: RoomConfig = RoomConfig()
    """The bank of room impulse responses that reverb draws from."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.reverb_prob <= 1.0:
            raise ValueError(f"Acoustics.reverb_prob must be in [0, 1], got {self.reverb_prob}")
        if self.snr_db_range is not None:
            lo, hi = self.snr_db_range
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(
                    "Acoustics.snr_db_range must be None or finite (low, high) dB with "
                    f"low <= high, got {self.snr_db_range}"
                )
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"Acoustics.noise must be one of {NOISE_KINDS}, got {self.noise!r}")


def make_noise(num_samples: int, rng: np.random.Generator, kind: str = "pink") -> np.ndarray:
    """Unit-variance noise; pink is white noise shaped by 1/sqrt(f) in the frequency domain."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise kind must be one of {NOISE_KINDS}, got {kind!r}")
    white = rng.standard_normal(num_samples)
    if kind == "white" or num_samples < 2:
        noise = white
    else:
        spectrum = np.fft.rfft(white)
        freqs = np.arange(spectrum.size, dtype=float)
        freqs[0] = 1.0
        spectrum /= np.sqrt(freqs)
        spectrum[0] = 0.0  # no DC offset
        noise = np.fft.irfft(spectrum, n=num_samples)
    std = noise.std()
    return noise / std if std > 0 else noise


def speech_mask(
    intervals: Sequence[Interval], num_samples: int, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Samples inside any interval (rounded to the nearest sample), clipped to the clip."""
    mask = np.zeros(num_samples, dtype=bool)
    for interval in intervals:
        first = max(round(float(interval.start) * sample_rate), 0)
        stop = min(round(float(interval.end) * sample_rate), num_samples)
        mask[first:stop] = True
    return mask


def add_noise(
    audio: np.ndarray,
    speech: Sequence[Interval],
    snr_db: float,
    rng: np.random.Generator,
    kind: str = "pink",
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Adds noise over the whole clip, its level set by the SNR over speech samples only.

    Measuring over the whole clip would make the noise level depend on how much silence a
    scenario has. Noise power is matched on the same samples, so the SNR holds exactly.
    (pyroomacoustics' ``room.simulate(snr=...)`` rescales in ways that break label
    alignment, so it is not used.) Raises ``ValueError`` when the speech has no energy.
    The result is float64 and may exceed [-1, 1]; :func:`augment` rescales at the end.
    """
    audio = np.asarray(audio, dtype=np.float64)
    mask = speech_mask(speech, audio.size, sample_rate)
    if not np.any(audio[mask]):
        raise ValueError("add_noise: the speech intervals hold no signal to measure SNR against")
    return audio + _noise_at_snr(audio, mask, snr_db, rng, kind)


def _noise_at_snr(
    audio: np.ndarray, mask: np.ndarray, snr_db: float, rng: np.random.Generator, kind: str
) -> np.ndarray:
    """Noise whose power over ``mask`` is ``snr_db`` below the audio's power there."""
    noise = make_noise(audio.size, rng, kind)
    signal_power = float(np.mean(audio[mask] ** 2))
    noise_power = float(np.mean(noise[mask] ** 2))
    return noise * math.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))


def augment(
    audio: np.ndarray,
    speech: Sequence[Interval],
    acoustics: Acoustics,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Reverberates, then adds noise; returns audio of the same length and what was applied.

    Reverberant speech is rescaled to the dry speech's RMS so that loudness does not give
    the room away. Noise is not reverberated. If the result would clip, the whole clip is
    scaled down (timing and SNR unchanged). The returned dict is JSON-ready for a
    scenario's ``source`` record: ``rir_index``/``rt60`` (``None`` without reverb),
    ``snr_db``/``noise`` (``None`` without noise) and ``gain`` (the final scaling).
    """
    dry = check_mono(audio, "augment input").astype(np.float64)
    out = dry
    mask = speech_mask(speech, dry.size)
    # Level reference: the speech samples, or the whole clip when the labels hold no speech.
    ref = mask if np.any(dry[mask]) else np.ones(dry.size, dtype=bool)
    info: dict[str, Any] = {"rir_index": None, "rt60": None, "snr_db": None, "noise": None}

    if acoustics.reverb_prob > 0 and rng.random() < acoustics.reverb_prob:
        bank = RIRBank.build(acoustics.room)
        index = int(rng.integers(len(bank)))
        wet = fftconvolve(dry, bank.rirs[index].astype(np.float64))[: dry.size]
        dry_rms, wet_rms = _rms(dry[ref]), _rms(wet[ref])
        out = wet * (dry_rms / wet_rms) if wet_rms > 0 else wet
        info.update(rir_index=index, rt60=round(bank.rt60s[index], 4))

    if acoustics.snr_db_range is not None and out.size:
        snr_db = float(rng.uniform(*acoustics.snr_db_range))
        if np.any(out[ref]):
            out = out + _noise_at_snr(out, ref, snr_db, rng, acoustics.noise)
        else:  # silent clip: noise at the level it would have next to typical speech
            level = 10 ** ((NOMINAL_SPEECH_DBFS - snr_db) / 20)
            out = out + level * make_noise(out.size, rng, acoustics.noise)
        info.update(snr_db=round(snr_db, 4), noise=acoustics.noise)

    peak = float(np.max(np.abs(out))) if out.size else 0.0
    gain = 1.0 / peak if peak > 1.0 else 1.0
    info["gain"] = round(gain, 6)
    result = np.clip(out * gain, -1.0, 1.0).astype(np.float32)
    return result, info


def _rms(x: np.ndarray) -> float:
    return math.sqrt(float(np.mean(x**2))) if x.size else 0.0
