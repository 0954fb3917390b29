"""An axis object handed to an env, a vector env, the evaluator or the trainer is the one that
scores (and synthesises): its settings are never replaced by the registered default of the same
name.

The probe is the interruption axis' ``min_response_s``: a 0.4 s answer right after the
interruption is an answer for the default (0 s) and no answer at all for ``min_response_s=1``.
"""

import gymnasium as gym
import numpy as np
import pytest
from conftest import WORD, noise_scenario, play_oracle

import fdenv
from agents.baselines import RuleAgent
from agents.evaluate import evaluate
from agents.grpo.trainer import GRPOConfig, GRPOTrainer
from agents.moshi.models import tiny_models
from fdenv.axes import PauseHandling, TurnTaking, UserInterruption
from fdenv.config import EnvConfig
from fdenv.constants import FRAME_S, PAD_ID
from fdenv.play import play
from fdenv.registration import expand_axes, get_axis
from fdenv.timeline import Interval

STRICT = UserInterruption(min_response_s=1.0)


def interruption_scenario():
    """User 0.5-2 s, interruption 3-4 s, window to 7 s."""
    return noise_scenario(
        "UserInterruption",
        7.0,
        [(0.5, 2.0), (3.0, 4.0)],
        turn_end=2.0,
        interruption=Interval(3.0, 4.0),
    )


# one word in the frame that starts at 4.04 s: with TextVoice's 5-frame hold, 0.4 s of speech
# 0.04 s after the interruption ends
SHORT_ANSWER = [(4.0, 4.08)]


def test_a_configured_axis_scores_in_the_single_env():
    scenario = interruption_scenario()
    default = gym.make("FullDuplex-UserInterruption-v0", scenarios=[scenario])
    strict = gym.make("FullDuplex-UserInterruption-v0", axis=STRICT, scenarios=[scenario])
    default_reward, _ = play_oracle(default, scenario, SHORT_ANSWER)
    strict_reward, info = play_oracle(strict, scenario, SHORT_ANSWER)
    assert default_reward == pytest.approx(-0.04)  # any speech answers
    assert strict_reward == pytest.approx(-3.0)  # too short to count: the rest of the window
    assert info["stats"]["responded"] == 0.0


def test_a_configured_axis_scores_in_the_vector_env():
    scenario = interruption_scenario()
    rewards = []
    for axis in ("UserInterruption", STRICT):
        env = fdenv.FullDuplexVectorEnv(1, axis, [scenario], autoreset_mode="Disabled")
        env.reset(seed=0)
        word_frame = round((4.04 + env.lead_in_s) / FRAME_S)
        frame, terminated = 0, np.zeros(1, dtype=bool)
        while not terminated[0]:
            action = np.full((1, 9), PAD_ID, dtype=np.int64)
            action[0, 0] = WORD if frame == word_frame else PAD_ID
            _, reward, terminated, _, _ = env.step(action)
            frame += 1
        rewards.append(reward[0])
    assert rewards == [pytest.approx(-0.04), pytest.approx(-3.0)]


def test_the_sampler_synthesises_with_the_axis_object():
    long = PauseHandling(min_utterance_s=8.0)
    env = fdenv.FullDuplexEnv(long, num_scenarios=2)
    env.reset(seed=0)
    speech = env.episode().scenario.user_speech
    assert speech[-1].end - speech[0].start >= 8.0  # the default axis makes 4 s utterances


def test_a_scenario_of_another_axis_is_refused_not_rescored():
    env = fdenv.FullDuplexEnv(STRICT, num_scenarios=1)
    other = noise_scenario("TurnTaking", 3.0, [(0.5, 2.0)], turn_end=2.0)
    with pytest.raises(ValueError, match="not playable here"):
        env.reset(seed=0, options={"scenario": other})


def test_the_evaluator_scores_with_the_axis_object():
    lenient = evaluate(RuleAgent(), [UserInterruption()], episodes=3)["UserInterruption"]
    never = UserInterruption(min_response_s=100.0)  # no answer is ever long enough
    strict = evaluate(RuleAgent(), [never], episodes=3)["UserInterruption"]
    assert lenient.mean > -1.0  # the rule agent answers about 0.25 s after the interruption
    env = fdenv.FullDuplexVectorEnv(3, never, autoreset_mode="Disabled", scenario_seed=1000)
    ids = env.sampler.ids("UserInterruption")[:3]
    played = play(RuleAgent(), env, options={"scenario": ids})
    windows = [-(e.scenario.duration - e.scenario.interruption.end) for e in played.episodes]
    assert strict.rewards == pytest.approx(tuple(windows))
    # the same episodes by the registered axis (the paper's rule) ride along, for the summary
    assert strict.paper_rewards == lenient.rewards and lenient.paper_rewards == ()


@pytest.mark.slow
def test_the_trainer_trains_and_evaluates_with_the_axis_object(tmp_path):
    never = UserInterruption(min_response_s=100.0)
    config = GRPOConfig(
        axes=(never,),
        iterations=1,
        groups=1,
        group_size=2,
        eval_episodes=2,
        eval_every=100,
        env=EnvConfig(num_scenarios=2, scenario_seed=1),
    )
    trainer = GRPOTrainer(config, tiny_models(seed=2), tmp_path)
    assert trainer.env.sampler.spec("UserInterruption") is never
    record = trainer.train_iteration()
    assert record["flat_groups"] == 1  # nobody ever answers: every rollout scores the same
    result = trainer.evaluate()["UserInterruption"]
    windows = [-(e.scenario.duration - e.scenario.interruption.end) for e in result.played]
    assert result.rewards == pytest.approx(tuple(windows))


def test_an_axis_name_can_carry_settings():
    axis = get_axis("PauseHandling(rule=span, max_speech_s=0.5)")
    assert axis == PauseHandling(rule="span", max_speech_s=0.5)
    tupled = get_axis("Backchannel(max_backchannel_words=2, sentence_gap_s=(0.3, 0.8))")
    assert tupled.max_backchannel_words == 2 and tupled.sentence_gap_s == (0.3, 0.8)
    assert get_axis("TurnTaking()") == TurnTaking()
    assert [a.rule for a in expand_axes(["PauseHandling(rule=span)", "PauseHandling"])] == [
        "span",
        "interval",
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("PauseHandling(foo=1)", "'foo=1' is not a setting of PauseHandling"),
        ("PauseHandling(rule)", "'rule' is not a setting"),
        ("PauseHandling(rule=total)", "'interval' or 'span'"),
        ("Nope(rule=span)", "unknown axis"),
        ("PauseHandling(rule=__import__('os').system('true'))", "'interval' or 'span'"),
    ],
)
def test_bad_axis_settings_are_named(name, message):
    with pytest.raises(ValueError, match=message):
        get_axis(name)
