import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import noise_scenario

import fdenv
from agents.moshi.models import tiny_models
from fdenv.audio.io import resample
from fdenv.audio.vad import SileroVAD
from fdenv.constants import FRAME_SIZE, SAMPLE_RATE
from fdenv.voice import MimiVoice
from fdenv.wrappers import agent_channel

TURN_TAKING = (
    Path(__file__).resolve().parents[2] / "shared/fixtures/fdbench_v1/smooth_turn_taking_example/1"
)


@pytest.fixture(scope="module")
def mimi():
    """The tiny random Mimi with random codebooks.

    A fresh Mimi's codebooks are all zero (they are learnt by k-means), so every token would
    decode to the same latent and no test could tell one token from another.
    """
    mimi = tiny_models().mimi
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in mimi.modules():
            if hasattr(module, "embedding_sum"):
                module.embedding_sum.copy_(
                    torch.randn(module.embedding_sum.shape, generator=generator)
                )
                module._embedding = None  # the cached embedding_sum / cluster_usage
    return mimi


def random_actions(num_envs: int, frames: int, seed: int = 0) -> np.ndarray:
    """``[frames, num_envs, 9]`` int64 actions with random audio tokens."""
    return np.random.default_rng(seed).integers(0, 2048, (frames, num_envs, 9))


def play(voice: MimiVoice, actions: np.ndarray) -> np.ndarray:
    """Audio ``[frames, num_envs, 1920]`` of a fresh voice playing ``actions``."""
    voice.reset(actions.shape[1])
    return np.stack([voice.step(a).audio for a in actions])


def test_step_returns_a_frame_of_float32_audio_per_env(mimi):
    voice = MimiVoice(mimi)
    assert voice.makes_audio
    voice.reset(3)
    frame = voice.step(random_actions(3, 1)[0])
    assert frame.audio.shape == (3, FRAME_SIZE)
    assert frame.audio.dtype == np.float32
    assert frame.speaking.shape == (3,)
    assert frame.speaking.dtype == bool


def test_streaming_decode_has_no_delay(mimi):
    """The first call returns a full frame and the frames joined are the offline decode."""
    actions = random_actions(2, 5)
    streamed = play(MimiVoice(mimi), actions)  # [5, 2, 1920]
    codes = torch.as_tensor(actions[:, :, 1:]).permute(1, 2, 0)  # [2, 8, 5]
    with torch.no_grad():
        offline = mimi.decode(codes)[:, 0].numpy()  # [2, 5 * 1920]
    joined = streamed.transpose(1, 0, 2).reshape(2, -1)
    np.testing.assert_allclose(joined, offline, atol=1e-5)
    assert np.abs(streamed[0]).max() > 0


def test_batched_decode_equals_decoding_each_env_alone(mimi):
    actions = random_actions(3, 4)
    batched = play(MimiVoice(mimi), actions)
    for env in range(3):
        alone = play(MimiVoice(mimi), actions[:, env : env + 1])
        np.testing.assert_allclose(batched[:, env], alone[:, 0], atol=1e-5)
    assert not np.allclose(batched[:, 0], batched[:, 1])  # the tokens matter


def test_reset_envs_restarts_only_those_envs(mimi):
    before, after = random_actions(2, 3, seed=1), random_actions(2, 2, seed=2)
    voice = MimiVoice(mimi)
    play(voice, before)
    voice.reset_envs(np.array([False, True]))
    resumed = np.stack([voice.step(a).audio for a in after])
    fresh = play(MimiVoice(mimi), after[:, 1:])
    np.testing.assert_allclose(resumed[:, 1], fresh[:, 0], atol=1e-5)
    untouched = play(MimiVoice(mimi), np.concatenate([before, after])[:, :1])
    np.testing.assert_allclose(resumed[:, 0], untouched[3:, 0], atol=1e-5)


def test_audio_tokens_outside_the_codebooks_are_refused(mimi):
    voice = MimiVoice(mimi)
    voice.reset(2)
    actions = np.zeros((2, 9), dtype=np.int64)
    actions[1, 4] = 2048
    with pytest.raises(ValueError, match=r"audio token 2048 .* audio_card=2048"):
        voice.step(actions)


def test_a_streaming_mimi_is_refused(mimi):
    with mimi.streaming(1), pytest.raises(ValueError, match="mid-stream"):
        MimiVoice(mimi)


def test_speech_intervals_are_silero_on_the_episode_audio(mimi):
    if not (TURN_TAKING / "input.wav").is_file():
        pytest.skip(f"FD-Bench fixtures not found under {TURN_TAKING}")
    audio16, rate = sf.read(TURN_TAKING / "input.wav", dtype="float32")
    audio = resample(audio16, rate, SAMPLE_RATE)
    turn_end = json.loads((TURN_TAKING / "turn_taking.json").read_text())[0]["timestamp"][0]
    speaking = np.zeros(audio.size // FRAME_SIZE, dtype=bool)  # ignored: the audio decides
    intervals = MimiVoice(mimi).speech_intervals(speaking, audio)
    assert intervals == SileroVAD().speech_intervals(audio)
    assert intervals[-1].end == pytest.approx(turn_end, abs=0.3)  # the user's turn ends at 2.01 s


def test_env_records_the_decoded_audio(mimi):
    env = gym.make(
        "FullDuplex-TurnTaking-v0",
        voice=MimiVoice(mimi),
        text_card=512,
        num_scenarios=2,
        lead_in_s=0.4,
    )
    short = noise_scenario("TurnTaking", 1.6, [(0.2, 1.0)], turn_end=1.0)
    env.reset(seed=0, options={"scenario": short})
    done = False
    while not done:
        _, _, done, _, info = env.step(env.action_space.sample())
    episode = env.unwrapped.last_episode
    assert episode.num_frames == 25  # (0.4 s + 1.6 s) / 80 ms
    assert episode.agent_audio.shape == (episode.num_frames * FRAME_SIZE,)
    assert episode.agent_audio.dtype == np.float32
    np.testing.assert_array_equal(agent_channel(episode), episode.agent_audio)  # what is recorded
    assert "agent_speech" in info


def test_vector_env_decodes_every_env(mimi):
    env = fdenv.FullDuplexVectorEnv(
        4, voice=MimiVoice(mimi), text_card=512, num_scenarios=2, lead_in_s=0.4
    )
    env.reset(seed=0)
    for _ in range(10):
        env.step(env.action_space.sample())
    for i in range(4):
        episode = env.episode(i)
        assert episode.agent_audio.shape == (10 * FRAME_SIZE,)
    assert not np.allclose(env.episode(0).agent_audio, env.episode(1).agent_audio)
