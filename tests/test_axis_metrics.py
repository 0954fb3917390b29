"""Axis.metrics: Full-Duplex-Bench v1 numbers of hand-made episodes, and the env's info."""

import math

import gymnasium as gym
import numpy as np
import pytest
from conftest import WORD, noise_scenario

import fdenv
from agents.baselines import AlwaysTalkAgent
from fdenv.axes import Axis, Backchannel, PauseHandling, TurnTaking, UserInterruption
from fdenv.constants import FRAME_S, PAD_ID
from fdenv.episode import Episode
from fdenv.fdbench.metrics import label_distribution
from fdenv.timeline import Interval

LEAD = 0.8
"""10 frames of lead-in: frame k starts at scenario time 0.08 k - 0.8."""


def episode(scenario, word_frames, agent_speech=None) -> Episode:
    """Words in ``word_frames``; the agent's speech voices each word's frame unless given."""
    frames = math.ceil((LEAD + scenario.duration) / FRAME_S - 1e-9)
    tokens = np.full(frames, PAD_ID, dtype=np.int64)
    tokens[list(word_frames)] = WORD
    if agent_speech is None:
        agent_speech = [Interval(k * FRAME_S - LEAD, (k + 1) * FRAME_S - LEAD) for k in word_frames]
    return Episode(scenario, LEAD, np.zeros(frames, bool), tokens, list(agent_speech))


def frames_at(start_s: float, count: int) -> range:
    first = round((start_s + LEAD) / FRAME_S)
    return range(first, first + count)


def turn_scenario():
    return noise_scenario("TurnTaking", 6.0, [(0.5, 3.0)], turn_end=3.0)


def test_turn_taking_take_over_and_latency():
    # 14 words from 3.2 s: response 3.2 -> 4.32 s, 1.12 s >= 1 s -> TOR 1; latency 3.2 - 3.0
    metrics = TurnTaking().metrics(episode(turn_scenario(), frames_at(3.2, 14)))
    assert metrics["tor"] == 1.0
    assert metrics["latency"] == pytest.approx(0.2)


def test_turn_taking_two_words_are_no_take_over():
    # 2 words, 0.16 s: < 1 s and <= 3 words -> TOR 0, no latency
    metrics = TurnTaking().metrics(episode(turn_scenario(), frames_at(3.2, 2)))
    assert metrics["tor"] == 0.0 and math.isnan(metrics["latency"])


def test_turn_taking_early_speech_gives_latency_zero():
    # first word at 2.0 s, before the turn end: latency max(2.0 - 3.0, 0) = 0
    metrics = TurnTaking().metrics(episode(turn_scenario(), frames_at(2.0, 20)))
    assert metrics == {"tor": 1.0, "latency": 0.0}


@pytest.mark.parametrize(("count", "tor"), [(3, 0.0), (4, 1.0)])
def test_pause_tor_counts_words(count, tor):
    # 3 words span 0.24 s -> 0; a 4th word is "more than 3 words" -> 1
    scenario = noise_scenario("PauseHandling", 5.0, [(0.2, 2.0), (2.6, 4.8)], pauses=[(2.0, 2.6)])
    assert PauseHandling().metrics(episode(scenario, frames_at(2.08, count))) == {"tor": tor}


def test_words_in_the_lead_in_do_not_count():
    scenario = noise_scenario("PauseHandling", 5.0, [(0.2, 2.0), (2.6, 4.8)], pauses=[(2.0, 2.6)])
    assert PauseHandling().metrics(episode(scenario, range(10))) == {"tor": 0.0}


def test_interruption_cuts_words_before_its_end():
    scenario = noise_scenario(
        "UserInterruption", 6.0, [(0.2, 1.0), (2.0, 3.0)], interruption=Interval(2.0, 3.0)
    )
    # 5 words 2.4-2.8 s end before the cut at 3.0 s; 15 words 3.6-4.8 s remain:
    # 1.2 s -> TOR 1, latency 3.6 - 3.0 = 0.6
    frames = [*frames_at(2.4, 5), *frames_at(3.6, 15)]
    metrics = UserInterruption().metrics(episode(scenario, frames))
    assert metrics["tor"] == 1.0
    assert metrics["latency"] == pytest.approx(0.6)


def bc_scenario(**source):
    scenario = noise_scenario(
        "Backchannel", 5.0, [(0.0, 0.9), (1.5, 4.5)], backchannels=[Interval(1.0, 1.3)]
    )
    scenario.source.update(source)
    return scenario


def test_backchannel_at_the_true_moment():
    # one 0.3 s segment with 1 word at the label: TOR 0, 1 backchannel / 5 s = 0.2 per s;
    # both histograms fill bins 5 and 6 (1.0 / 0.2, 1.3 / 0.2) equally -> JSD ~ 0
    ep = episode(bc_scenario(), frames_at(1.04, 1), [Interval(1.0, 1.3)])
    metrics = Backchannel().metrics(ep)
    assert metrics["tor"] == 0.0
    assert metrics["frequency"] == pytest.approx(0.2)
    assert metrics["jsd"] == pytest.approx(0.0, abs=1e-4)


def test_backchannel_long_segment_takes_over():
    # a 3.5 s segment is a take-over and no backchannel: TOR 1, frequency 0, JSD 1
    ep = episode(bc_scenario(), frames_at(1.04, 20), [Interval(1.0, 4.5)])
    assert Backchannel().metrics(ep) == {"tor": 1.0, "frequency": 0.0, "jsd": 1.0}


def test_backchannel_prefers_the_benchmark_distribution():
    # all ground-truth mass in the last bin, far from the backchannel at 1.0 s
    gt = [0.0] * 25 + [1.0]
    ep = episode(bc_scenario(icc_gt_distribution=gt), frames_at(1.04, 1), [Interval(1.0, 1.3)])
    assert Backchannel().metrics(ep)["jsd"] > 0.8


def test_label_distribution():
    # int(1.0 / 0.2) + 1 = 6 bins; (0.2, 0.5) touches bins 1 and 2 -> [0, .5, .5, 0, 0, 0]
    assert label_distribution([Interval(0.2, 0.5)], 1.0) == [0.0, 0.5, 0.5, 0.0, 0.0, 0.0]
    assert label_distribution([], 0.4) == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError, match="duration_s"):
        label_distribution([], 0.0)


def test_base_axis_has_no_metrics():
    class Plain(Axis):
        name = "Plain"

        def synthesize(self, rng, scenario_id):
            raise NotImplementedError

        def score(self, episode):
            raise NotImplementedError

    assert Plain().metrics(episode(turn_scenario(), [])) == {}


def test_env_reports_metrics_on_the_last_step():
    env = gym.make("FullDuplex-TurnTaking-v0")
    agent = AlwaysTalkAgent()
    obs, _ = env.reset(seed=0)
    done, info = False, {}
    while not done:
        assert "metrics" not in info
        obs, _, done, _, info = env.step(agent.act_one(obs))
    # talking from the first frame: a take-over that starts before the turn end -> latency 0
    assert info["metrics"] == {"tor": 1.0, "latency": 0.0}
    assert all(isinstance(v, np.float64) for v in info["metrics"].values())


def test_vector_env_reports_metrics_per_env():
    env = fdenv.FullDuplexVectorEnv(2, "Backchannel", autoreset_mode="Disabled")
    obs, _ = env.reset(seed=0)
    agent = AlwaysTalkAgent()
    agent.start(2)
    finished = np.zeros(2, dtype=bool)
    while not finished.all():
        obs, _, terminated, _, info = env.step(agent.act(obs))
        if terminated.any():
            assert np.array_equal(info["metrics"]["tor"][terminated], [1.0] * terminated.sum())
            assert np.array_equal(info["metrics"]["_jsd"], terminated)
        finished |= terminated
