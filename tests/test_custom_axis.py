"""A new axis is a subclass plus one register_axis call, and becomes a checked env id."""

from dataclasses import dataclass
from typing import ClassVar

import gymnasium as gym
import numpy as np
import pytest
from conftest import noise_scenario, play_oracle
from gymnasium.utils.env_checker import check_env

from fdenv import Axis, AxisScore, register_axis
from fdenv.registration import unregister_axis
from fdenv.voice import TextVoice


@dataclass(frozen=True)
class Greeting(Axis):
    """Say something within the first second of the scenario (a throwaway axis)."""

    name: ClassVar[str] = "Greeting"
    required_labels: ClassVar[tuple[str, ...]] = ("user_speech",)

    def synthesize(self, rng, scenario_id):
        start = float(rng.uniform(1.5, 2.0))
        scenario = noise_scenario(self.name, 4.0, [(start, 3.5)])
        scenario.id = scenario_id
        return scenario

    def score(self, episode):
        early = [i for i in episode.agent_speech_in_window() if i.start < 1.0]
        return AxisScore(terms={"greeting": 1.0 if early else 0.0})


@pytest.fixture
def greeting():
    env_id = register_axis(Greeting)
    yield env_id
    unregister_axis("Greeting")


def test_registered_axis_is_an_env_that_passes_check_env(greeting):
    assert greeting == "FullDuplex-Greeting-v0"
    env = gym.make(greeting, num_scenarios=2)
    check_env(env.unwrapped, skip_render_check=True)
    venv = gym.make_vec(greeting, num_envs=2, vectorization_mode="vector_entry_point")
    assert venv.reset(seed=0)[0].shape == (2, 1920)


def test_registered_axis_scores_with_its_own_reward(greeting):
    env = gym.make(greeting, num_scenarios=1, voice=TextVoice(hold_frames=1))
    scenario = env.unwrapped.sampler.sample(np.random.default_rng(0))
    assert play_oracle(env, scenario, [(0.36, 0.76)])[0] == 1.0
    assert play_oracle(env, scenario, [])[0] == 0.0


def test_unregister_forgets_the_ids(greeting):
    unregister_axis("Greeting")
    assert "FullDuplex-Greeting-v0" not in gym.registry
    register_axis(Greeting)  # the fixture unregisters again


def test_bad_axis_names_are_refused():
    @dataclass(frozen=True)
    class Bad(Greeting):
        name: ClassVar[str] = "bad-name"

    with pytest.raises(ValueError, match="CamelCase"):
        register_axis(Bad)
