"""The envs under messy input: a clear error at the call that is wrong, never a silent wrong
result or an env broken for later calls."""

import gymnasium as gym
import numpy as np
import pytest

import fdenv
from fdenv.config import EnvConfig
from fdenv.constants import PAD_ID


def silence(n: int | None = None) -> np.ndarray:
    shape = (9,) if n is None else (n, 9)
    actions = np.zeros(shape, dtype=np.int64)
    actions[..., 0] = PAD_ID
    return actions


def test_a_batch_into_the_single_env_is_refused_and_the_env_still_works():
    env = fdenv.FullDuplexEnv("TurnTaking", num_scenarios=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(9,\) \(one action per step\), got \(5, 9\)"):
        env.step(silence(5))
    with pytest.raises(ValueError, match=r"got \(1, 9\)"):
        env.step(silence(1))
    env.step(silence())  # the refused calls changed nothing
    env.reset(seed=1)
    env.step(silence())


def test_the_vector_env_wants_one_action_per_env():
    env = fdenv.FullDuplexVectorEnv(3, "TurnTaking", num_scenarios=2)
    env.reset(seed=0)
    for bad in (silence(), silence(2), silence(4)):
        with pytest.raises(ValueError, match=r"shape \(3, 9\)"):
            env.step(bad)
    env.step(silence(3))


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("lead_in_s", float("nan"), "lead_in_s must be a finite number"),
        ("lead_in_s", float("inf"), "lead_in_s must be a finite number"),
        ("lead_in_s", -1.0, "lead_in_s must be >= 0"),
        ("text_card", 4.5, "text_card must be an integer"),
        ("text_card", 3, "text_card must be >= 4"),
        ("audio_card", True, "audio_card must be an integer"),
        ("num_scenarios", 0, "num_scenarios must be >= 1"),
        ("voice", "audio", r"use fdenv\.agent\.env_for"),
        ("voice", "auto", r"use fdenv\.agent\.env_for"),
        ("voice", "tts", "voice must be one of"),
    ],
)
def test_bad_settings_are_named_at_construction(setting, value, message):
    with pytest.raises(ValueError, match=message):
        fdenv.FullDuplexEnv("TurnTaking", **{setting: value})
    with pytest.raises(ValueError, match=message):
        fdenv.FullDuplexVectorEnv(2, "TurnTaking", **{setting: value})


def test_an_unknown_setting_is_a_type_error_listing_the_settings():
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'lead_in'.*lead_in_s"):
        gym.make("FullDuplex-TurnTaking-v0", lead_in=2.0)


def test_numpy_integers_are_integers():
    env = fdenv.FullDuplexEnv("TurnTaking", num_scenarios=np.int64(2), text_card=np.int32(512))
    assert env.action_space.nvec[0] == 512
    env.reset(seed=np.int64(3))
    vector = fdenv.FullDuplexVectorEnv(2, "TurnTaking", num_scenarios=2)
    first, _ = vector.reset(seed=np.int64(5))
    again, _ = vector.reset(seed=5)
    np.testing.assert_array_equal(first, again)
    with pytest.raises(ValueError, match="seed must be an int or a list of 2"):
        vector.reset(seed="5")


@pytest.mark.parametrize("context_s", [float("nan"), float("inf"), -1.0, "2"])
def test_a_bad_context_length_is_named(context_s):
    env = fdenv.FullDuplexEnv("TurnTaking", num_scenarios=1)
    with pytest.raises(ValueError, match=r"options\['context_s'\]"):
        env.reset(seed=0, options={"context_s": context_s})
    vector = fdenv.FullDuplexVectorEnv(2, "TurnTaking", num_scenarios=1)
    with pytest.raises(ValueError, match=r"options\['context_s'\]"):
        vector.reset(seed=0, options={"context_s": context_s})


def test_info_t_after_an_autoreset_is_the_new_episode_s():
    """NEXT_STEP autoreset: the step that restarts an env reports the new episode's first time
    (minus the lead-in), as a reset would, not the finished episode's end."""
    config = EnvConfig(num_scenarios=1, lead_in_s=0.4)
    env = fdenv.FullDuplexVectorEnv(1, "TurnTaking", config=config)
    env.reset(seed=0)
    terminated = np.zeros(1, dtype=bool)
    while not terminated[0]:
        _, _, terminated, _, info = env.step(silence(1))
    assert info["t"][0] > 0  # the last frame of the episode
    _, _, _, _, info = env.step(silence(1))  # the autoreset step
    assert info["t"][0] == pytest.approx(-0.4)
    _, _, _, _, info = env.step(silence(1))
    assert info["t"][0] == pytest.approx(-0.4)  # the new episode's first frame played
