import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from fdenv.audio.io import resample
from fdenv.audio.vad import EnergyVAD, SileroVAD, VADConfig
from fdenv.constants import FRAME_SIZE, SAMPLE_RATE
from fdenv.timeline import Interval

FDBENCH = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "fdbench_v1"
TURN_TAKING = FDBENCH / "smooth_turn_taking_example" / "1"


@pytest.fixture(scope="module")
def turn_taking() -> tuple[np.ndarray, float]:
    """Real 16 kHz speech and the labelled end of the user's turn."""
    if not (TURN_TAKING / "input.wav").is_file():
        pytest.skip(f"FD-Bench fixtures not found under {FDBENCH}")
    audio, rate = sf.read(TURN_TAKING / "input.wav", dtype="float32")
    assert rate == 16_000
    turn_end = json.loads((TURN_TAKING / "turn_taking.json").read_text())[0]["timestamp"][0]
    return audio, turn_end


def assert_well_formed(intervals: list[Interval], duration: float) -> None:
    assert intervals == sorted(intervals)
    for interval in intervals:
        assert 0.0 <= interval.start < interval.end <= duration
    for a, b in itertools.pairwise(intervals):
        assert a.end <= b.start


def test_silero_finds_the_users_turn(turn_taking):
    audio, turn_end = turn_taking
    duration = audio.size / 16_000
    intervals = SileroVAD().speech_intervals(audio, sample_rate=16_000)
    assert intervals
    assert_well_formed(intervals, duration)
    # The user speaks first, then leaves the floor at the labelled turn end (2.01 s of 10.4 s).
    assert intervals[0].start < 1.0
    assert intervals[-1].end == pytest.approx(turn_end, abs=0.3)


def test_silero_is_rate_independent(turn_taking):
    audio, _ = turn_taking
    vad = SileroVAD()
    at_16k = vad.speech_intervals(audio, sample_rate=16_000)
    at_24k = vad.speech_intervals(resample(audio, 16_000, SAMPLE_RATE))  # fdenv's default rate
    assert len(at_24k) == len(at_16k)
    for a, b in zip(at_16k, at_24k, strict=True):
        assert b.start == pytest.approx(a.start, abs=0.1)
        assert b.end == pytest.approx(a.end, abs=0.1)


def test_silero_ignores_silence_and_keeps_torch_threads():
    threads = torch.get_num_threads()
    vad = SileroVAD()
    assert vad.speech_intervals(np.zeros(2 * SAMPLE_RATE, dtype=np.float32)) == []
    assert vad.speech_intervals(np.zeros(0, dtype=np.float32)) == []
    assert torch.get_num_threads() == threads


def test_vad_config_defaults_and_validation():
    assert VADConfig() == VADConfig(
        threshold=0.5, min_speech_ms=250, min_silence_ms=100, speech_pad_ms=30
    )
    with pytest.raises(ValueError, match=r"VADConfig\.threshold"):
        VADConfig(threshold=1.5)
    with pytest.raises(ValueError, match=r"VADConfig\.min_silence_ms"):
        VADConfig(min_silence_ms=-1)


def test_energy_frame_activity_against_hand_computed_levels():
    frames = np.stack(
        [
            np.full(FRAME_SIZE, 0.1),  # rms 0.1 = -20 dBFS
            np.zeros(FRAME_SIZE),  # -inf dBFS
            np.full(FRAME_SIZE, 0.001),  # -60 dBFS
            np.tile([0.02, -0.02], FRAME_SIZE // 2),  # rms 0.02 = -33.98 dBFS
        ]
    )
    assert EnergyVAD().frame_activity(frames).tolist() == [True, False, False, True]
    assert EnergyVAD(threshold_db=-19.0).frame_activity(frames).tolist() == [False] * 4
    assert EnergyVAD(threshold_db=-34.0).frame_activity(frames)[3]
    assert not EnergyVAD(threshold_db=-33.9).frame_activity(frames)[3]
    batched = np.broadcast_to(frames, (2, 4, FRAME_SIZE))
    assert EnergyVAD().frame_activity(batched).shape == (2, 4)


def test_energy_intervals_follow_frames():
    audio = np.zeros(int(1.6 * SAMPLE_RATE), dtype=np.float32)
    audio[int(0.4 * SAMPLE_RATE) : int(1.2 * SAMPLE_RATE)] = 0.1  # frames 5 to 14
    (interval,) = EnergyVAD().speech_intervals(audio)
    assert interval.start == pytest.approx(0.4)
    assert interval.end == pytest.approx(1.2)
    at_16k = EnergyVAD().speech_intervals(resample(audio, SAMPLE_RATE, 16_000), 16_000)
    assert at_16k[0].start == pytest.approx(0.4)
    assert at_16k[0].end == pytest.approx(1.2)


def test_energy_judges_a_trailing_partial_frame_on_its_own():
    audio = np.full(FRAME_SIZE + 100, 0.1, dtype=np.float32)
    assert EnergyVAD().speech_intervals(audio) == [Interval(0.0, audio.size / SAMPLE_RATE)]
    assert EnergyVAD().speech_intervals(np.zeros(0, dtype=np.float32)) == []


@pytest.mark.parametrize("size", [0, 1, 7, 48_001])
def test_soxr_resampling_has_the_polyphase_length_and_sound(size):
    t = np.arange(size) / 48_000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    fast = resample(tone, 48_000, 16_000, "soxr")
    exact = resample(tone, 48_000, 16_000)
    assert fast.dtype == np.float32 and fast.shape == exact.shape == (-(-size // 3),)
    if size > 1000:  # away from the edges the two filters agree closely
        inner = slice(100, -100)
        assert np.abs(fast[inner] - exact[inner]).max() < 2e-3
    rows = resample(np.stack([tone, 0.5 * tone]), 48_000, 16_000, "soxr")
    np.testing.assert_allclose(rows, np.stack([fast, 0.5 * fast]), atol=1e-6)
    with pytest.raises(ValueError, match="one of"):
        resample(tone, 48_000, 16_000, "linear")


def test_batched_silero_hears_real_speech_as_silero_does(turn_taking):
    from fdenv.audio.vad import BatchedSileroVAD

    audio, _ = turn_taking
    reference = SileroVAD().speech_intervals(audio, 16_000)
    (batched,) = BatchedSileroVAD().speech_intervals_batch([audio])
    assert len(batched) == len(reference) > 0
    assert np.allclose(batched, reference, atol=1e-9)
    # Labelling reads 48 kHz corpora through soxr: the same speech within a chunk (32 ms).
    at_48k = resample(audio, 16_000, 48_000)
    (via_soxr,) = BatchedSileroVAD().speech_intervals_batch(
        [resample(at_48k, 48_000, 16_000, "soxr")]
    )
    assert len(via_soxr) == len(reference)
    assert np.allclose(via_soxr, reference, atol=0.033)


def test_building_the_batched_network_leaves_torch_random_state_alone():
    """It is built on first use, in the middle of a rollout: drawing from torch's generator
    there made a seeded policy's first evaluation in a process differ from every later one."""
    from fdenv.audio import vad

    state = torch.random.get_rng_state()
    vad._silero_network.__wrapped__()
    assert torch.equal(torch.random.get_rng_state(), state)
