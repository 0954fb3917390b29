"""A new axis is a subclass plus one register_axis call, and becomes a checked env id.

The second half checks the worked example, examples/custom_axis.py's Greeting axis: its env,
synthesis, hand-computed rewards and metrics, and mining.
"""

import importlib.util
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import gymnasium as gym
import numpy as np
import pytest
from conftest import noise_scenario, play_oracle
from gymnasium.utils.env_checker import check_env

from fdenv import Axis, AxisScore, register_axis
from fdenv.registration import get_axis, unregister_axis
from fdenv.scenarios.synthetic import make_scenario
from fdenv.segments import ConversationLabels, MiningRules
from fdenv.timeline import Interval
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


# --- the worked example: examples/custom_axis.py's Greeting axis ------------------------------


def load_example():
    """Imports examples/custom_axis.py (not a package) as the module ``custom_axis``."""
    path = Path(__file__).resolve().parents[1] / "examples" / "custom_axis.py"
    spec = importlib.util.spec_from_file_location("custom_axis", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["custom_axis"] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


example = load_example()
LEAD = 0.8
"""A lead-in of 10 frames puts frame starts at multiples of 80 ms in scenario time."""


@pytest.fixture
def example_greeting():
    env_id = register_axis(example.Greeting)
    yield env_id
    unregister_axis("Greeting")


def test_example_axis_is_an_env_that_passes_check_env(example_greeting):
    assert example_greeting == "FullDuplex-Greeting-v0"
    env = gym.make(example_greeting, num_scenarios=2)
    check_env(env.unwrapped, skip_render_check=True)
    venv = gym.make_vec(
        example_greeting, num_envs=4, vectorization_mode="vector_entry_point", group_size=2
    )
    _, infos = venv.reset(seed=0)
    assert infos["scenario_id"][0] == infos["scenario_id"][1]


def test_example_synthesis_waits_then_answers(example_greeting):
    scenario = make_scenario(get_axis("Greeting"), 0, 3)
    assert scenario.audio.tolist() == make_scenario(get_axis("Greeting"), 0, 3).audio.tolist()
    first = scenario.user_speech[0]
    assert 1.0 <= first.start <= 2.0  # the caller's wait for the greeting
    assert len(scenario.user_speech) == 2 and len(scenario.transcripts) == 2
    assert scenario.transcripts[0].text in example.REPLIES
    assert scenario.duration == pytest.approx(scenario.user_speech[-1].end + 0.5, abs=1e-3)


@pytest.mark.parametrize(
    ("speech", "greeting", "overlap", "greeted", "opening"),
    [
        ([(0.4, 0.8)], -0.4, 0.0, 1.0, 0.4),  # greets at 0.4 s, quiet when the user speaks
        ([(0.4, 2.0)], -0.4, -0.5, 1.0, 0.4),  # keeps talking 0.5 s into the answer
        ([(-0.4, 0.4)], 0.0, 0.0, 1.0, 0.0),  # begun in the lead-in: counts from time 0
        ([(1.6, 2.4)], -1.5, -0.8, 0.0, math.nan),  # after the user started: no greeting
        ([], -1.5, 0.0, 0.0, math.nan),  # silent: charged the whole wait (user starts at 1.5)
    ],
)
def test_example_reward_and_metrics(example_greeting, speech, greeting, overlap, greeted, opening):
    env = gym.make(example_greeting, voice=TextVoice(hold_frames=1), lead_in_s=LEAD)
    scenario = noise_scenario("Greeting", 4.0, [(1.5, 3.5)])
    reward, info = play_oracle(env, scenario, speech)
    assert info["reward_terms"]["greeting"] == pytest.approx(greeting, abs=1e-6)
    assert info["reward_terms"]["overlap"] == pytest.approx(overlap, abs=1e-6)
    assert reward == pytest.approx(greeting + overlap, abs=1e-6)
    metrics = example.Greeting().metrics(env.unwrapped.last_episode)
    assert metrics["greeted"] == greeted
    assert metrics["overlap_s"] == pytest.approx(-overlap, abs=1e-6)
    assert metrics["opening_s"] == pytest.approx(opening, abs=1e-6, nan_ok=True)


def conversation(user_ipus, partner_ipus, duration=20.0):
    """Labels of a conversation where channel 0 plays the user and channel 1 the agent's role."""
    ipus = ([Interval(*p) for p in user_ipus], [Interval(*p) for p in partner_ipus])
    return ConversationLabels.from_ipus(ipus, duration)


def test_example_mines_openings_where_the_partner_speaks_first():
    labels = conversation([(1.8, 3.5), (6.0, 9.0)], [(0.5, 1.2), (4.0, 5.0)])
    (segment,) = example.Greeting().mine(labels, 0, MiningRules())
    assert segment.axis == "Greeting" and segment.user == 0
    assert segment.window == Interval(0.0, pytest.approx(3.7))  # reply end + tail_s 0.2
    assert segment.evidence == {"y": [0.5, 1.2], "x": [1.8, 3.5]}
    # with channel 1 as the user, the agent's side (channel 0) did not speak first
    assert example.Greeting().mine(labels, 1, MiningRules()) == []


@pytest.mark.parametrize(
    ("user", "partner"),
    [
        ([(4.5, 6.0)], [(3.5, 4.0)]),  # the opening starts after max_opening_s (3 s)
        ([(1.8, 2.5)], [(0.5, 1.2)]),  # the reply is shorter than min_reply_s (1 s)
        ([(1.8, 3.5)], []),  # the partner never speaks
    ],
)
def test_example_mining_skips_non_openings(user, partner):
    assert example.Greeting().mine(conversation(user, partner), 0, MiningRules()) == []
