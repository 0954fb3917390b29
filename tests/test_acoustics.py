import json

import numpy as np
import pytest
from scipy.signal import fftconvolve, welch

from fdenv.audio.acoustics import (
    Acoustics,
    RIRBank,
    RoomConfig,
    add_noise,
    augment,
    make_noise,
    speech_mask,
)
from fdenv.constants import SAMPLE_RATE
from fdenv.timeline import Interval

SMALL_ROOMS = RoomConfig(num_rirs=4, seed=3)
SPEECH = [Interval(0.5, 1.5)]


def speech_like(seed: int = 0, seconds: float = 2.0) -> np.ndarray:
    """Noise bursts in SPEECH, silence elsewhere, at a level that clips once reverb is added."""
    rng = np.random.default_rng(seed)
    audio = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
    mask = speech_mask(SPEECH, audio.size)
    audio[mask] = 0.3 * rng.standard_normal(int(mask.sum()))
    return audio


def snr_db(clean: np.ndarray, noisy: np.ndarray, mask: np.ndarray) -> float:
    noise = noisy.astype(np.float64) - clean.astype(np.float64)
    return 10 * np.log10(np.mean(clean[mask].astype(np.float64) ** 2) / np.mean(noise[mask] ** 2))


def test_rirs_start_at_their_direct_path_with_unit_gain():
    bank = RIRBank.build(SMALL_ROOMS)
    assert len(bank) == 4
    for rir in bank.rirs:
        assert rir.dtype == np.float32
        assert rir[0] == 1.0
        assert np.argmax(np.abs(rir)) == 0
        assert rir.size <= SMALL_ROOMS.max_rir_s * SAMPLE_RATE


def test_bank_is_cached_per_config():
    assert RIRBank.build(SMALL_ROOMS).rirs[0] is RIRBank.build(SMALL_ROOMS).rirs[0]
    other = RIRBank.build(RoomConfig(num_rirs=4, seed=4))
    assert not np.array_equal(other.rirs[0][:100], RIRBank.build(SMALL_ROOMS).rirs[0][:100])


def test_impulse_stays_at_its_sample():
    k = 5_000
    impulse = np.zeros(SAMPLE_RATE, dtype=np.float32)
    impulse[k] = 0.5
    for rir in RIRBank.build(SMALL_ROOMS).rirs:
        assert np.argmax(np.abs(fftconvolve(impulse, rir)[: impulse.size])) == k
    dry_only = Acoustics(snr_db_range=None, room=SMALL_ROOMS)
    out, info = augment(
        impulse, [Interval(k / SAMPLE_RATE, 0.5)], dry_only, np.random.default_rng(0)
    )
    assert info["rir_index"] is not None
    assert np.argmax(np.abs(out)) == k
    assert np.abs(out[:k]).max() < 1e-6  # nothing before the onset but FFT round-off


def test_augment_keeps_length_range_and_is_reproducible():
    audio = speech_like()
    acoustics = Acoustics(room=SMALL_ROOMS)
    out, info = augment(audio, SPEECH, acoustics, np.random.default_rng(7))
    assert out.shape == audio.shape
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert np.abs(out).max() <= 1.0
    again, info_again = augment(audio, SPEECH, acoustics, np.random.default_rng(7))
    assert np.array_equal(out, again)
    assert info == info_again
    other, _ = augment(audio, SPEECH, acoustics, np.random.default_rng(8))
    assert not np.array_equal(out, other)
    assert set(info) == {"rir_index", "rt60", "snr_db", "noise", "gain"}
    assert 5.0 <= info["snr_db"] <= 25.0
    json.dumps(info)


def test_augment_without_anything_is_identity():
    audio = 0.1 * speech_like()
    off = Acoustics(reverb_prob=0.0, snr_db_range=None, room=SMALL_ROOMS)
    out, info = augment(audio, SPEECH, off, np.random.default_rng(0))
    assert np.array_equal(out, audio)
    assert info == {"rir_index": None, "rt60": None, "snr_db": None, "noise": None, "gain": 1.0}


def test_reverb_keeps_speech_level():
    audio = 0.1 * speech_like()  # quiet enough not to be rescaled for clipping
    reverb_only = Acoustics(snr_db_range=None, room=SMALL_ROOMS)
    out, info = augment(audio, SPEECH, reverb_only, np.random.default_rng(1))
    assert info["gain"] == 1.0
    mask = speech_mask(SPEECH, audio.size)
    rms = [np.sqrt(np.mean(x[mask].astype(np.float64) ** 2)) for x in (audio, out)]
    assert rms[1] == pytest.approx(rms[0], rel=1e-4)


def test_augmented_snr_survives_the_final_rescaling():
    audio = speech_like()
    fixed = Acoustics(reverb_prob=0.0, snr_db_range=(12.0, 12.0), room=SMALL_ROOMS)
    out, info = augment(audio, SPEECH, fixed, np.random.default_rng(2))
    assert info["gain"] < 1.0  # 0.3-sigma noise peaks above 1
    mask = speech_mask(SPEECH, audio.size)
    assert snr_db(audio * info["gain"], out, mask) == pytest.approx(12.0, abs=0.1)


def test_silent_clip_still_gets_noise():
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    out, info = augment(silence, [], Acoustics(room=SMALL_ROOMS), np.random.default_rng(0))
    assert np.all(np.isfinite(out))
    assert out.std() > 0
    # Nominal -26 dBFS speech level, so the noise sits snr_db below it.
    assert 20 * np.log10(out.std()) == pytest.approx(-26.0 - info["snr_db"], abs=0.01)


@pytest.mark.parametrize("kind", ["white", "pink"])
@pytest.mark.parametrize("target", [0.0, 7.5, 20.0])
def test_add_noise_hits_the_snr_over_speech(kind, target):
    audio = speech_like()
    out = add_noise(audio, SPEECH, target, np.random.default_rng(0), kind=kind)
    assert out.shape == audio.shape
    mask = speech_mask(SPEECH, audio.size)
    assert snr_db(audio, out, mask) == pytest.approx(target, abs=0.1)
    silence = out[: int(0.4 * SAMPLE_RATE)]
    assert np.all(audio[: silence.size] == 0)
    assert silence.std() > 0


def test_add_noise_needs_speech_energy():
    with pytest.raises(ValueError, match="speech"):
        add_noise(np.zeros(SAMPLE_RATE), SPEECH, 10.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="speech"):
        add_noise(speech_like(), [], 10.0, np.random.default_rng(0))


def test_pink_noise_has_equal_power_per_octave():
    def octave_powers(kind: str) -> tuple[float, float]:
        noise = make_noise(10 * SAMPLE_RATE, np.random.default_rng(0), kind)
        freqs, psd = welch(noise, fs=SAMPLE_RATE, nperseg=4096)
        low = psd[(freqs >= 200) & (freqs < 400)].sum()
        high = psd[(freqs >= 3200) & (freqs < 6400)].sum()
        return low, high

    low, high = octave_powers("pink")
    assert 10 * np.log10(low / high) == pytest.approx(0.0, abs=1.0)
    low, high = octave_powers("white")  # 16x wider band, 16x the power
    assert 10 * np.log10(high / low) == pytest.approx(10 * np.log10(16), abs=1.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"reverb_prob": 1.5}, "reverb_prob"),
        ({"reverb_prob": -0.1}, "reverb_prob"),
        ({"snr_db_range": (25.0, 5.0)}, "snr_db_range"),
        ({"snr_db_range": (5.0, float("inf"))}, "snr_db_range"),
        ({"noise": "babble"}, "noise"),
    ],
)
def test_acoustics_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"Acoustics\.{field}"):
        Acoustics(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_rirs": 0}, "num_rirs"),
        ({"rt60_range": (0.7, 0.15)}, "rt60_range"),
        ({"room_size_range": ((5.0, 5.0, 3.0), (4.0, 6.0, 3.0))}, "room_size_range"),
        ({"max_order": -1}, "max_order"),
        ({"max_rir_s": 0.0}, "max_rir_s"),
    ],
)
def test_room_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"RoomConfig\.{field}"):
        RoomConfig(**kwargs)
