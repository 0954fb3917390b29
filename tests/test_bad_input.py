"""Bad input gets a clear error (or, for audio at another rate, a recorded resampling)."""

import json

import gymnasium as gym
import numpy as np
import pytest
import soundfile as sf
from conftest import noise_scenario

import fdenv
from fdenv.constants import PAD_ID
from fdenv.manifest import Manifest, write_manifest
from fdenv.timeline import Interval


def turn_scenario():
    return noise_scenario("TurnTaking", 3.0, [(0.5, 2.0)], turn_end=2.0)


def test_wrong_sample_rate_is_resampled_and_recorded(tmp_path):
    scenario = turn_scenario()
    write_manifest(tmp_path, [scenario])
    sf.write(tmp_path / "audio/hand-TurnTaking.wav", np.zeros(48_000, np.float32), 16_000)
    lines = (tmp_path / "manifest.jsonl").read_text().replace(".flac", ".wav")
    (tmp_path / "manifest.jsonl").write_text(lines)
    loaded = Manifest(tmp_path)[0]
    assert loaded.source["original_sample_rate"] == 16_000
    assert len(loaded.audio) == 72_000  # 3 s at 24 kHz


def test_stereo_audio_is_a_clear_error(tmp_path):
    write_manifest(tmp_path, [turn_scenario()])
    sf.write(tmp_path / "audio/hand-TurnTaking.flac", np.zeros((72_000, 2), np.float32), 24_000)
    with pytest.raises(ValueError, match=r"2 channel\(s\), expected 1 \(mono\)"):
        Manifest(tmp_path)[0]
    scenario = turn_scenario()
    scenario.audio = np.zeros((2, 100), np.float32)
    with pytest.raises(ValueError, match=r"'hand-TurnTaking'.*expected mono"):
        scenario.validate()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_audio_names_the_scenario(bad):
    scenario = turn_scenario()
    scenario.audio[100] = bad
    with pytest.raises(ValueError, match="scenario 'hand-TurnTaking': audio contains 1 NaN/Inf"):
        gym.make("FullDuplex-TurnTaking-v0", scenarios=[scenario])


def test_action_out_of_range_names_index_and_range():
    env = gym.make("FullDuplex-TurnTaking-v0", scenarios=[turn_scenario()])
    env.reset(seed=0)
    action = np.full(9, PAD_ID)
    action[3] = 2048
    with pytest.raises(ValueError, match=r"action\[3\] \(audio codebook 2\) = 2048 .* \[0, 2047\]"):
        env.step(action)
    action = np.full(9, PAD_ID)
    action[0] = -1
    with pytest.raises(ValueError, match=r"action\[0\] \(text token\) = -1 .* \[0, 31999\]"):
        env.step(action)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(8, np.int64))


def test_vector_action_error_names_env_and_index():
    venv = fdenv.FullDuplexVectorEnv(2, "TurnTaking", [turn_scenario()])
    venv.reset(seed=0)
    actions = np.full((2, 9), PAD_ID)
    actions[1, 0] = 40_000
    with pytest.raises(ValueError, match=r"action\[1, 0\] \(text token\) = 40000"):
        venv.step(actions)


def test_step_after_termination_is_a_clear_error():
    env = gym.make("FullDuplex-TurnTaking-v0", scenarios=[turn_scenario()]).unwrapped
    with pytest.raises(gym.error.ResetNeeded, match="call reset"):
        env.step(np.full(9, PAD_ID))
    env.reset(seed=0)
    done = False
    while not done:
        *_, done, _, _ = env.step(np.full(9, PAD_ID))
    with pytest.raises(gym.error.ResetNeeded, match="after the episode terminated"):
        env.step(np.full(9, PAD_ID))


def test_malformed_manifest_line_reports_file_and_line(tmp_path):
    path = write_manifest(tmp_path, [turn_scenario()])
    good = path.read_text()
    path.write_text(good + "{not json\n")
    with pytest.raises(ValueError, match=rf"{path}:2: not valid JSON"):
        Manifest(path)
    record = json.loads(good)
    del record["axis"]
    path.write_text(good + "\n" + json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=rf"{path}:3: missing field\(s\) axis"):
        Manifest(path)
    record["axis"], record["user_speech"] = "TurnTaking", [[1.0]]
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=rf"{path}:1:"):
        Manifest(path)


def test_missing_manifest_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Manifest(tmp_path / "nope.jsonl")


def test_unknown_axis_lists_the_known_ones(tmp_path):
    known = "Backchannel, Conversation, PauseHandling, Selectivity, TurnTaking, UserInterruption"
    with pytest.raises(ValueError, match=f"unknown axis 'Greeting'; known axes: {known}"):
        fdenv.FullDuplexEnv(axis="Greeting")
    path = write_manifest(tmp_path, [turn_scenario()])
    path.write_text(path.read_text().replace('"TurnTaking"', '"Greeting"'))
    with pytest.raises(ValueError, match=rf"{path}:1: unknown axis 'Greeting'; known axes"):
        Manifest(path)


def test_missing_axis_label_is_named():
    scenario = noise_scenario("UserInterruption", 3.0, [(0.5, 2.0)])
    with pytest.raises(ValueError, match="needs the label 'interruption'"):
        fdenv.FullDuplexEnv("UserInterruption", [scenario])


def test_label_outside_the_audio_is_named():
    scenario = noise_scenario("PauseHandling", 3.0, [(0.5, 2.0)], pauses=[Interval(2.0, 4.0)])
    with pytest.raises(ValueError, match=r"pauses interval \(2.0, 4.0\)"):
        fdenv.FullDuplexEnv("PauseHandling", [scenario])


def test_manifest_without_the_envs_axis_is_an_error(tmp_path):
    path = write_manifest(tmp_path, [turn_scenario()])
    with pytest.raises(ValueError, match="no scenarios of axis 'Backchannel'"):
        fdenv.FullDuplexEnv("Backchannel", path)
