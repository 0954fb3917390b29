"""The context curriculum: a scenario's preceding recording played before it, the partner's
side played by the policy, nothing of it scored or trained."""

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import WORD, noise_scenario
from test_grpo_trainer import Quiet, config, hesitant_models

from agents.grpo.trainer import GRPOTrainer
from agents.moshi.models import tiny_models
from agents.moshi.policy import MoshiPolicy
from agents.moshi.rollout import rollout
from fdenv import register_axis
from fdenv.constants import FRAME_S, FRAME_SIZE, PAD_ID, SAMPLE_RATE
from fdenv.engine import make_stream
from fdenv.env import FullDuplexEnv
from fdenv.manifest import load_context
from fdenv.registration import unregister_axis
from fdenv.scenario import ContextRef
from fdenv.vector import FullDuplexVectorEnv

LEAD = 3.0  # 72,000 samples = 37.5 frames: the context starts mid-frame


@pytest.fixture
def scenario(tmp_path):
    """A 3 s turn-taking scenario with 4 s of recorded context (user: +0.25, partner: noise)."""
    rng = np.random.default_rng(1)
    user = np.full(4 * SAMPLE_RATE, 0.25, dtype=np.float32)
    user[-1] = 0.5  # the last sample before the scenario, to check the alignment
    partner = rng.uniform(-0.2, 0.2, 4 * SAMPLE_RATE).astype(np.float32)
    path = tmp_path / "context.wav"
    sf.write(path, np.stack([user, partner], axis=1), SAMPLE_RATE, subtype="FLOAT")
    made = noise_scenario("TurnTaking", 3.0, [(0.2, 1.0)], turn_end=1.0)
    made.context = ContextRef(str(path), 4.0)
    return made


def test_stream_plays_silence_then_the_end_of_the_context_then_the_scenario(scenario):
    stream = make_stream(scenario, LEAD, context_s=1.0)
    # 72,000 + 24,000 = 96,000 = 50 frames: one second fits exactly
    assert stream.context_s == 1.0 and stream.lead_in_s == 4.0
    start = 96_000
    np.testing.assert_array_equal(stream.audio[:72_000], 0.0)
    np.testing.assert_array_equal(stream.audio[72_000 : start - 1], 0.25)
    assert stream.audio[start - 1] == 0.5
    np.testing.assert_array_equal(stream.audio[start : start + 72_000], scenario.audio)
    # the partner's side from frame 37 (71,040 samples): 960 samples of silence, then 1 s
    assert stream.partner_frame == 37 and stream.partner.size == 96_000 - 71_040
    np.testing.assert_array_equal(stream.partner[:960], 0.0)
    # user speech labels move with the scenario: 0.2 s after 4.0 s is frame 52
    assert not stream.user_speaking[51] and stream.user_speaking[52]


def test_context_is_shortened_so_the_scenario_starts_on_a_frame(scenario):
    stream = make_stream(scenario, LEAD, context_s=0.5)
    # 72,000 + 12,000 = 84,000 -> 43 frames = 82,560 samples -> 10,560 samples of context
    assert stream.context_s == pytest.approx(10_560 / SAMPLE_RATE)
    assert round(stream.lead_in_s * SAMPLE_RATE) % FRAME_SIZE == 0


def test_no_context_without_a_recording_or_when_not_asked(scenario):
    assert make_stream(scenario, LEAD).context_s == 0.0
    scenario.context = None
    stream = make_stream(scenario, LEAD, context_s=5.0)
    assert stream.context_s == 0.0 and stream.partner is None and stream.lead_in_s == LEAD
    with pytest.raises(ValueError, match="context_s must be >= 0"):
        make_stream(scenario, LEAD, context_s=-1.0)


def play(env, scenario, context_s, speech):
    """Emits a word in the frames whose scenario time lies in ``speech``; returns reward, info."""
    _, info = env.reset(seed=0, options={"scenario": scenario, "context_s": context_s})
    t, done = info["t"], False
    while not done:
        action = np.zeros(9, dtype=np.int64)
        action[0] = WORD if any(s - 1e-9 <= t < e - 1e-9 for s, e in speech) else PAD_ID
        _, reward, done, _, step_info = env.step(action)
        t += FRAME_S
    return reward, info, step_info


def test_rewards_look_at_the_scenario_only(scenario):
    env = FullDuplexEnv("TurnTaking", [scenario])
    answer = [(1.2, 2.6)]  # a 1.4 s reply, 0.2 s after the turn ends at 1.0 s
    plain, info, _ = play(env, scenario, 0.0, answer)
    # without context frames start at -3.0 + 0.08 k: the first at or after 1.2 s is 1.24 s
    assert info["context_s"] == 0.0 and plain == pytest.approx(-0.24, abs=1e-6)
    # with context the scenario starts on a frame boundary: the reply starts at 1.2 s
    one, info_one, last = play(env, scenario, 1.0, [(-0.8, -0.2), *answer])
    assert info_one["context_s"] == 1.0 and info_one["t"] == -4.0
    assert env.last_episode.context_s == 1.0
    assert any(start < 0 for start, _ in last["agent_speech"])  # it talked in the context...
    assert one == pytest.approx(-0.2, abs=1e-6)  # ...which the reward does not see
    # 72,000 + 48,000 = 62.5 frames -> 62 frames: 1.96 s of context
    longer, info_longer, _ = play(env, scenario, 2.0, answer)
    assert info_longer["context_s"] == pytest.approx(1.96) and longer == one


def test_vector_env_takes_one_context_length_per_group(scenario):
    env = FullDuplexVectorEnv(4, "TurnTaking", [scenario], group_size=2)
    _, info = env.reset(seed=0, options={"scenario": scenario.id, "context_s": [1.0, 0.0]})
    np.testing.assert_array_equal(info["context_s"], [1.0, 1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="lists 3 values for 2 groups"):
        env.reset(options={"context_s": [1.0, 0.0, 2.0]})


@pytest.mark.slow
def test_policy_plays_the_partner_and_only_the_scenario_is_trainable(scenario):
    models = tiny_models(seed=3)
    policy = MoshiPolicy(models)
    env = FullDuplexVectorEnv(
        2,
        "TurnTaking",
        [scenario],
        autoreset_mode="Disabled",
        text_card=models.text_card,
        audio_card=models.audio_card,
    )
    result = rollout(policy, env, seed=0, options={"context_s": [1.0, 0.0]})
    audio, first = env.partner_audio()[0]
    assert 1 not in env.partner_audio()  # no context asked for env 1
    with torch.no_grad():
        partner = models.mimi.encode(torch.as_tensor(audio)[None, None])[0, :8]
    frames = partner.shape[1]
    # sequence frame j holds what was said in stream frame j + 1
    said = result.codes[0, :, first - 1 : first - 1 + frames]
    torch.testing.assert_close(said[1:9], partner)
    assert (said[0] == PAD_ID).all()
    assert not torch.equal(result.codes[1, 1:9, first - 1 : first - 1 + frames], partner)
    # trainable: the frames that reach the scenario (after 4.0 s with context, 3.0 s without)
    for env_index, lead in ((0, 4.0), (1, 3.0)):
        trainable = result.trainable[env_index]
        j = torch.arange(trainable.numel())
        played = j < result.lengths[env_index]
        torch.testing.assert_close(trainable, played & ((j + 2) * FRAME_S > lead))


def test_curriculum_draws_contexts_for_half_the_groups_up_to_a_rising_limit(tmp_path):
    register_axis(Quiet)
    try:
        settings = config(iterations=11, groups=64, group_size=1, context_max_s=30.0)
        trainer = GRPOTrainer(settings, hesitant_models(5), tmp_path)
    finally:
        unregister_axis("Quiet")
    assert trainer.context_lengths(0) == [0.0] * 64  # l_max starts at 0
    halfway, last = np.array(trainer.context_lengths(5)), np.array(trainer.context_lengths(10))
    assert halfway.max() <= 15.0 and last.max() <= 30.0  # l_max = 30 * iteration / 10
    assert 0.3 < np.mean(last > 0) < 0.7  # context_prob 0.5
    assert last.max() > 15.0
    assert trainer.context_lengths(10) == last.tolist()  # reproducible


@pytest.mark.slow
def test_trainer_plays_contexts_and_trains_on_the_scenario(tmp_path, scenario):
    register_axis(Quiet)
    try:
        settings = config(iterations=2, groups=1, group_size=4, context_prob=1.0)
        trainer = GRPOTrainer(settings, hesitant_models(5), tmp_path)
    finally:
        unregister_axis("Quiet")
    models = trainer.models
    trainer.env = FullDuplexVectorEnv(
        4,
        "TurnTaking",
        [scenario],
        group_size=4,
        autoreset_mode="Disabled",
        text_card=models.text_card,
        audio_card=models.audio_card,
    )
    first, second = trainer.train_iteration(), trainer.train_iteration()
    assert first["context_s"] == 0.0  # l_max is 0 at the first iteration
    assert second["context_s"] > 0.0 and np.isfinite(second["reward"])


def test_context_file_must_hold_two_channels(tmp_path):
    path = tmp_path / "mono.wav"
    sf.write(path, np.zeros(1920, dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(ValueError, match=r"1 channel\(s\), expected 2 \(user, partner\)"):
        load_context(ContextRef(str(path), 0.08))
    with pytest.raises(FileNotFoundError, match=r"missing\.wav"):
        load_context(ContextRef(str(tmp_path / "missing.wav"), 1.0))
