"""RecordEpisode: what it writes, checked against the episode it recorded."""

import json

import gymnasium as gym
import numpy as np
import pytest
import soundfile as sf
from conftest import WORD, LevelVoice, noise_scenario

import fdenv  # noqa: F401
from fdenv.constants import FRAME_SIZE, PAD_ID, SAMPLE_RATE
from fdenv.engine import make_stream
from fdenv.wrappers import RecordEpisode

WORD_FRAMES = (50, 70)
"""Frames with a word token; TextVoice's 5-frame hold makes the agent speak in 50..54, 70..74."""


@pytest.fixture
def scenario():
    # 3 s lead-in + 4 s = 7 s = 87.5 frames -> 88 frames
    return noise_scenario("TurnTaking", 4.0, [(0.5, 2.0)], turn_end=2.0)


def play(env: gym.Env, episodes: int = 1):
    """Plays episodes with words in WORD_FRAMES; returns the last (reward, info)."""
    for _ in range(episodes):
        env.reset(seed=0)
        k, done = 0, False
        while not done:
            action = np.zeros(9, dtype=np.int64)
            action[0] = WORD if k in WORD_FRAMES else PAD_ID
            _, reward, done, _, info = env.step(action)
            k += 1
    return reward, info


def frame_energy(channel: np.ndarray) -> np.ndarray:
    return np.sum(channel.reshape(-1, FRAME_SIZE) ** 2, axis=1)


def test_writes_stereo_wav_json_and_png(tmp_path, scenario):
    env = RecordEpisode(gym.make("FullDuplex-TurnTaking-v0", scenarios=[scenario]), tmp_path)
    reward, info = play(env)
    stems = [tmp_path / f"episode-0000{s}" for s in (".wav", ".json", ".png")]
    assert env.paths == stems
    assert sorted(tmp_path.iterdir()) == sorted(stems)  # no temporary files left behind
    assert stems[2].stat().st_size > 0

    audio, rate = sf.read(stems[0], dtype="float32", always_2d=True)
    assert rate == SAMPLE_RATE and audio.shape == (88 * FRAME_SIZE, 2)
    user, agent = audio[:, 0], audio[:, 1]
    heard = make_stream(scenario, 3.0).audio
    np.testing.assert_allclose(user, heard, atol=1 / 2**15)  # 16-bit PCM
    speaking = np.zeros(88, dtype=bool)
    for k in WORD_FRAMES:
        speaking[k : k + 5] = True
    np.testing.assert_array_equal(frame_energy(agent) > 0, speaking)
    assert np.max(np.abs(agent)) == pytest.approx(0.1, abs=1e-3)

    record = json.loads(stems[1].read_text())
    assert record["scenario"] == json.loads(json.dumps(scenario.labels_json()))
    assert record["reward"] == reward
    assert record["reward_terms"] == info["reward_terms"]
    assert record["stats"] == info["stats"]
    assert record["lead_in_s"] == 3.0
    # words at frames 50 and 70: scenario times 50 * 0.08 - 3 = 1.0 and 70 * 0.08 - 3 = 2.6
    assert record["agent_speech"] == [pytest.approx([1.0, 1.4]), pytest.approx([2.6, 3.0])]


def test_every_nth_episode_is_recorded(tmp_path, scenario):
    env = gym.make("FullDuplex-TurnTaking-v0", scenarios=[scenario])
    env = RecordEpisode(env, tmp_path, prefix="run", every=2)
    play(env, episodes=5)
    assert env.episode_count == 5
    assert sorted(p.name for p in env.paths if p.suffix == ".json") == [
        "run-0000.json",
        "run-0002.json",
        "run-0004.json",
    ]


def constant_voice() -> LevelVoice:
    """A voice with audio: 0.25 in every frame that holds a word, silence elsewhere."""
    return LevelVoice(lambda actions: np.where(actions[:, :1] != PAD_ID, 0.25, 0.0))


def test_right_channel_is_the_voice_audio_when_there_is_some(tmp_path, scenario):
    env = gym.make("FullDuplex-TurnTaking-v0", scenarios=[scenario], voice=constant_voice())
    env = RecordEpisode(env, tmp_path)
    play(env)
    audio, _ = sf.read(tmp_path / "episode-0000.wav", dtype="float32", always_2d=True)
    expected = np.zeros(88 * FRAME_SIZE, dtype=np.float32)
    for k in WORD_FRAMES:
        expected[k * FRAME_SIZE : (k + 1) * FRAME_SIZE] = 0.25
    np.testing.assert_array_equal(audio[:, 1], expected)


def test_every_must_be_positive(tmp_path, scenario):
    env = gym.make("FullDuplex-TurnTaking-v0", scenarios=[scenario])
    with pytest.raises(ValueError, match="every"):
        RecordEpisode(env, tmp_path, every=0)
