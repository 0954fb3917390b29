"""Scripted agents against hand-built scenarios whose rewards follow from the frame grid.

The lead-in is 3.0 s, so frame k covers scenario time [0.08k - 3.0, 0.08k - 2.92). Noise placed
at scenario time s starts at stream sample (s + 3.0) * 24000; a frame holding at least a few
hundred samples of it is far above the RuleAgent's -45 dBFS (noise at +-0.1 is -25 dBFS).
RuleAgent defaults in frames: answer after 14 silent frames (1.12 s), answers last 32 frames with
a word every 5th, backchannel in the 4th silent frame (0.32 s) after >= 13 speech frames (1.04 s).
TextVoice holds each word 5 frames (0.4 s).
"""

import gymnasium as gym
import numpy as np
import pytest
from conftest import noise_scenario

import fdenv  # noqa: F401
from agents.baselines import AlwaysTalkAgent, RuleAgent, RuleConfig, ScriptedAgent, SilentAgent
from fdenv.constants import FRAME_SIZE, PAD_ID
from fdenv.timeline import Interval


def play(agent: ScriptedAgent, axis: str, scenario):
    """One episode of ``scenario`` with the default TextVoice; returns (reward, info, episode)."""
    env = gym.make(f"FullDuplex-{axis}-v0", scenarios=[scenario])
    obs, _ = env.reset(seed=0)
    agent.start(1)
    done = False
    while not done:
        obs, reward, done, _, info = env.step(agent.act_one(obs))
    return reward, info, env.unwrapped.last_episode


def turn_scenario():
    return noise_scenario("TurnTaking", 10.0, [(0.5, 5.0)], turn_end=5.0)


def test_silent_agent_never_answers_a_turn():
    reward, info, _ = play(SilentAgent(), "TurnTaking", turn_scenario())
    assert reward == pytest.approx(-5.0)  # the 5 s of window after the turn end
    assert info["stats"]["responded"] == 0.0


def test_always_talk_takes_over_a_pause():
    scenario = noise_scenario(
        "PauseHandling", 6.0, [(0.5, 2.5), (3.3, 5.8)], pauses=[Interval(2.5, 3.3)]
    )
    reward, info, _ = play(AlwaysTalkAgent(), "PauseHandling", scenario)
    assert reward == -1.0
    assert info["agent_speech"] == [pytest.approx((-3.0, 6.04))]  # 113 frames from the start


def test_rule_agent_answers_after_the_silence_threshold():
    reward, info, episode = play(RuleAgent(), "TurnTaking", turn_scenario())
    # User noise covers stream [3.5, 8.0) s: frames 43..99; frames 100.. are silent.
    # Backchannel: 4th silent frame = frame 103 -> scenario 103 * 0.08 - 3 = 5.24, held to 5.64
    # (0.4 s: not a response, which must be longer than 1 s).
    # Answer: 14th silent frame = frame 113 -> scenario 6.04; words at frames 113, 118, .., 143
    # (32 frames), the last held to frame 147 -> ends at 148 * 0.08 - 3 = 8.84.
    # Reward = -(6.04 - 5.0) = -1.04.
    assert info["agent_speech"] == [pytest.approx((5.24, 5.64)), pytest.approx((6.04, 8.84))]
    assert reward == pytest.approx(-1.04)
    words = np.flatnonzero(episode.text_tokens != PAD_ID).tolist()
    assert words == [103, 113, 118, 123, 128, 133, 138, 143]


def test_rule_agent_yields_when_the_user_speaks_over_it():
    scenario = noise_scenario(
        "UserInterruption",
        12.0,
        [(0.5, 3.0), (5.0, 8.0)],
        turn_end=3.0,
        interruption=Interval(5.0, 8.0),
    )
    reward, info, episode = play(RuleAgent(), "UserInterruption", scenario)
    # First utterance: frames 43..74. Backchannel at frame 78 (3.24 s); answer from frame 88
    # (4.04 s) with words at 88, 93, 98. The interruption starts at stream 8.0 s = frame 100,
    # so the word due at 103 never comes: speech ends at frame 98 + 5 = 103 -> 5.24 s.
    # Interruption frames 100..137 (frame 137 holds its last 0.04 s). Backchannel in the 4th
    # silent frame, 141 (8.28 s); answer at frame 151 (9.08 s), words held to frame 185.
    assert info["agent_speech"] == [
        pytest.approx((3.24, 3.64)),
        pytest.approx((4.04, 5.24)),
        pytest.approx((8.28, 8.68)),
        pytest.approx((9.08, 11.88)),
    ]
    assert not np.any(episode.text_tokens[100:138] != PAD_ID)  # quiet while the user speaks
    # The axis counts the agent's next speech, the backchannel 0.28 s after the interruption.
    assert reward == pytest.approx(-0.28)


def test_rule_agent_backchannels_once_per_silence_and_only_after_enough_speech():
    scenario = noise_scenario(
        "Backchannel",
        10.0,
        [(0.5, 3.0), (3.9, 4.3), (5.0, 9.0)],
        backchannels=[Interval(3.1, 3.5), Interval(9.1, 9.5)],
    )
    reward, info, episode = play(RuleAgent(), "Backchannel", scenario)
    # Silence frames 75..85 (0.88 s, too short to answer): one word, in frame 78 (3.24 s).
    # Speech frames 86..91 are only 6 frames (< 13): no backchannel in the silence 92..99.
    # Speech frames 100..149, then silence 150..162 (13 frames, no answer): a word at 153 (9.24 s).
    words = np.flatnonzero(episode.text_tokens != PAD_ID).tolist()
    assert words == [78, 153]
    assert info["agent_speech"] == [pytest.approx((3.24, 3.64)), pytest.approx((9.24, 9.64))]
    assert reward == 1.0


def test_rule_agent_stays_quiet_through_the_silent_lead_in():
    agent = RuleAgent()
    agent.start(2)
    silence = np.zeros((2, FRAME_SIZE), dtype=np.float32)
    actions = np.stack([agent.act(silence) for _ in range(100)])
    assert np.all(actions[..., 0] == PAD_ID)


def noise_frames(rng: np.random.Generator, num_envs: int, num_frames: int) -> np.ndarray:
    """``[T, N, 1920]``: runs of noise and silence of random lengths per env."""
    on = np.zeros((num_frames, num_envs), dtype=bool)
    for env in range(num_envs):
        t, state = 0, bool(rng.integers(2))
        while t < num_frames:
            run = int(rng.integers(1, 30))
            on[t : t + run, env] = state
            t, state = t + run, not state
    noise = rng.uniform(-0.1, 0.1, (num_frames, num_envs, FRAME_SIZE)).astype(np.float32)
    return noise * on[..., None]


def test_batched_act_matches_per_env_act_including_resets():
    frames = noise_frames(np.random.default_rng(3), 4, 300)
    batched = RuleAgent()
    batched.start(4)
    singles = [RuleAgent() for _ in range(4)]
    for agent in singles:
        agent.start(1)
    words = 0
    for t, obs in enumerate(frames):
        if t == 150:  # env 2 starts a new episode
            batched.reset(np.array([False, False, True, False]))
            singles[2].start(1)
        actions = batched.act(obs)
        expected = np.stack([agent.act_one(o) for agent, o in zip(singles, obs, strict=True)])
        np.testing.assert_array_equal(actions, expected)
        words += int(np.sum(actions[:, 0] != PAD_ID))
    assert words > 20  # the runs set off answers and backchannels, so the comparison has teeth


def test_agent_drives_the_vector_env_like_single_envs():
    env_id = "FullDuplex-TurnTaking-v0"
    vec = gym.make_vec(
        env_id,
        num_envs=3,
        vectorization_mode="vector_entry_point",
        autoreset_mode="Disabled",
        num_scenarios=4,
    )
    obs, _ = vec.reset(seed=0)
    agent = RuleAgent()
    agent.start(3)
    rewards = np.full(3, np.nan)
    while np.isnan(rewards).any():
        obs, reward, done, _, _ = vec.step(agent.act(obs))
        rewards[done] = reward[done]
        if done.any() and np.isnan(rewards).any():
            obs, _ = vec.reset(options={"reset_mask": done})
            agent.reset(done)
    single = gym.make(env_id, num_scenarios=4)
    for seed in range(3):
        obs, _ = single.reset(seed=seed)
        agent.start(1)
        done = False
        while not done:
            obs, reward, done, _, _ = single.step(agent.act_one(obs))
        assert reward == pytest.approx(rewards[seed])


@pytest.mark.parametrize("agent", [SilentAgent(), AlwaysTalkAgent(), RuleAgent()])
def test_actions_fit_the_action_space(agent):
    env = gym.make("FullDuplex-TurnTaking-v0", num_scenarios=1)
    agent.start(5)
    actions = agent.act(np.zeros((5, FRAME_SIZE), dtype=np.float32))
    assert actions.dtype == np.int64 and actions.shape == (5, 9)
    assert all(env.action_space.contains(a) for a in actions)
    assert np.all(actions[:, 1:] == 0)


def test_bad_inputs_are_refused():
    agent = SilentAgent()
    agent.start(2)
    with pytest.raises(ValueError, match="shape"):
        agent.act(np.zeros((3, FRAME_SIZE)))
    with pytest.raises(ValueError, match="mask"):
        agent.reset(np.array([True]))
    with pytest.raises(ValueError, match="word token"):
        SilentAgent(word_id=PAD_ID)
    with pytest.raises(ValueError, match="word_every"):
        RuleConfig(word_every=0)
