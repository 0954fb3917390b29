"""Oracle agents with exactly known speech timing, played through the real env."""

import gymnasium as gym
import pytest
from conftest import frame_start, noise_scenario, play_oracle

import fdenv  # noqa: F401
from fdenv.timeline import Interval
from fdenv.voice import TextVoice

LEAD = 3.0


def make_env(axis: str, scenario):
    return gym.make(f"FullDuplex-{axis}-v0", scenarios=[scenario], voice=TextVoice(hold_frames=1))


@pytest.fixture
def pause_scenario():
    return noise_scenario(
        "PauseHandling",
        6.0,
        [(0.5, 2.5), (3.3, 5.8)],
        pauses=[Interval(2.5, 3.3)],
    )


def test_pause_speaking_1_5_s_in_the_pause_gives_minus_one(pause_scenario):
    # frames start at -0.04 + 0.08k in scenario time; 2.52 .. 4.04 is 19 frames = 1.52 s
    reward, info = play_oracle(
        make_env("PauseHandling", pause_scenario), pause_scenario, [(2.52, 4.04)]
    )
    assert reward == -1.0
    assert info["reward_terms"] == {"pause": -1.0}
    assert info["stats"]["longest_agent_speech_s"] == pytest.approx(1.52)


def test_pause_speaking_0_8_s_gives_zero(pause_scenario):
    reward, info = play_oracle(
        make_env("PauseHandling", pause_scenario), pause_scenario, [(2.52, 3.32)]
    )
    assert reward == 0.0
    assert info["agent_speech"] == [pytest.approx((2.52, 3.32))]


def test_pause_opening_phrase_counts_only_inside_the_window(pause_scenario):
    # 2.5 s of speech from -2.0 s: only 0.5 s of it lies in the scenario window
    reward, _ = play_oracle(
        make_env("PauseHandling", pause_scenario), pause_scenario, [(-2.04, 0.52)]
    )
    assert reward == 0.0


def test_turn_taking_answer_0_4_s_after_turn_end_gives_minus_0_4():
    scenario = noise_scenario("TurnTaking", 10.0, [(0.5, 5.0)], turn_end=5.0)
    env = make_env("TurnTaking", scenario)
    # 5.4 s is a frame start (8.4 s after the stream starts = frame 105); 2 s of speech
    reward, info = play_oracle(env, scenario, [(5.4, 7.4)])
    assert reward == pytest.approx(-0.4, abs=1e-9)
    assert info["stats"]["responded"] == 1.0
    reward, info = play_oracle(env, scenario, [])
    assert reward == pytest.approx(-5.0)  # never answers: the 5 s after the turn end


def test_backchannels_at_the_truth_and_an_extra_takeover():
    truth = [frame_start(t, LEAD) for t in (2.0, 5.0, 8.0)]
    scenario = noise_scenario(
        "Backchannel",
        12.0,
        [(0.3, 11.5)],
        backchannels=[Interval(t, t + 0.4) for t in truth],
    )
    env = make_env("Backchannel", scenario)
    bcs = [(t, t + 0.32) for t in truth]
    reward, info = play_oracle(env, scenario, bcs)
    assert reward == 1.0
    reward, info = play_oracle(env, scenario, [*bcs, (9.96, 11.96)])
    assert reward == pytest.approx(6 / 7)
    assert info["stats"]["takeovers"] == 1.0


def test_interruption_delay_counts_from_the_end_of_the_interruption():
    scenario = noise_scenario(
        "UserInterruption",
        11.0,
        [(0.3, 3.0), (4.0, 7.0)],
        turn_end=3.0,
        interruption=Interval(4.0, 7.0),
    )
    env = make_env("UserInterruption", scenario)
    restart = frame_start(7.5, LEAD)  # 7.48: the frame holding 7.5 s starts there
    reward, _ = play_oracle(env, scenario, [(3.4, 4.52), (restart, 9.0)])
    assert reward == pytest.approx(-(restart - 7.0))
    assert abs(reward + 0.5) <= 0.08  # within one frame of the intended 0.5 s
    reward, _ = play_oracle(env, scenario, [(3.4, 9.0)])  # never yields
    assert reward == pytest.approx(-4.0)


def test_held_words_make_continuous_speech():
    # one word every 5 frames with the default hold of 5 frames is one unbroken interval
    scenario = noise_scenario("TurnTaking", 4.0, [(0.5, 2.0)], turn_end=2.0)
    env = gym.make("FullDuplex-TurnTaking-v0", scenarios=[scenario])
    env.reset(seed=0)
    k, done = 0, False
    while not done:
        action = [1000 if (k % 5 == 0 and 40 <= k < 60) else 3] + [0] * 8
        _, _, done, _, info = env.step(action)
        k += 1
    # words at frames 40, 45, 50, 55 held 5 frames each: frames 40..59 -> 1.6 s
    ((start, end),) = info["agent_speech"]
    assert end - start == pytest.approx(1.6)
    assert start == pytest.approx(40 * 0.08 - LEAD)
