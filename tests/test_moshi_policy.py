"""MoshiPolicy on a tiny random model: streaming actions, recorded sequences, exact log-probs."""

import copy

import numpy as np
import pytest
import torch
from conftest import noise_scenario

import fdenv
from agents.moshi.logprobs import leading_audio_logits, sampler_logprobs, sequence_logprobs
from agents.moshi.models import tiny_models
from agents.moshi.policy import MoshiPolicy
from agents.moshi.rollout import rollout
from fdenv.constants import PAD_ID


@pytest.fixture(scope="module")
def models():
    return tiny_models(seed=3)


class SamplingProbe:
    """Captures, step by step, the logits the streaming sampler drew each token from."""

    def __init__(self, policy: MoshiPolicy):
        self.text: list[torch.Tensor] = []
        self.audio: list[list[torch.Tensor]] = []
        policy.lm_gen.on_text_logits_hook = lambda logits: self.text.append(logits[:, 0, 0].clone())
        lm = policy.models.lm
        original = lm.forward_depformer

        def recording(cb_index, sequence, transformer_out):
            logits = original(cb_index, sequence, transformer_out)
            if cb_index == 0:
                self.audio.append([])
            self.audio[-1].append(logits[:, 0, 0].clone())
            return logits

        lm.forward_depformer = recording
        self.restore = lambda: delattr(lm, "forward_depformer")


def noise(rng, batch):
    return rng.uniform(-0.3, 0.3, (batch, 1920)).astype(np.float32)


def test_first_step_is_silent_and_actions_are_in_range(models):
    policy = MoshiPolicy(models)
    first = policy.act(np.zeros((2, 1920), np.float32))
    assert first.shape == (2, 9) and first.dtype == np.int64
    assert (first[:, 0] == PAD_ID).all()
    for _ in range(5):
        actions = policy.act(np.zeros((2, 1920), np.float32))
        assert (actions[:, 0] < models.text_card).all() and (actions[:, 1:] < 2048).all()
        assert (actions >= 0).all()
    policy.stop()


def test_teacher_forced_logprobs_match_sampling_time_to_1e4(models):
    """Text and audio log-probs of the sampled tokens, streaming vs one forward pass (fp32)."""
    policy = MoshiPolicy(models)
    probe = SamplingProbe(policy)
    rng = np.random.default_rng(0)
    policy.start(3)
    try:
        for _ in range(25):
            policy.act(noise(rng, 3))
    finally:
        probe.restore()
    policy.stop()
    codes, lengths = policy.sequences()
    assert codes.shape == (3, 17, 24) and lengths.tolist() == [24, 24, 24]
    s = policy.sampling
    with torch.no_grad():
        scored = sequence_logprobs(models.lm, codes, s, audio_codebooks=8)
    # frame j's text and first codebook were sampled at step j, codebooks 1-7 at step j + 1
    # (Moshi's acoustic delay); the pass cannot score codebooks 1-7 of the last frame
    text = torch.stack(
        [
            sampler_logprobs(probe.text[j], codes[:, 0, j], s.temp_text, s.top_k_text)
            for j in range(24)
        ],
        dim=1,
    )
    audio = torch.stack(
        [
            torch.stack(
                [
                    sampler_logprobs(
                        probe.audio[j + (k > 0)][k], codes[:, 1 + k, j], s.temp_audio, s.top_k_audio
                    )
                    for k in range(8)
                ],
                dim=1,
            )
            for j in range(23)
        ],
        dim=2,
    )
    assert scored.text_mask.all()
    torch.testing.assert_close(scored.text, text, atol=1e-4, rtol=0)
    assert scored.audio_mask[:, 0].all() and scored.audio_mask[:, 1:, :23].all()
    assert not scored.audio_mask[:, 1:, 23].any()
    torch.testing.assert_close(scored.audio[:, :, :23], audio, atol=1e-4, rtol=0)
    assert torch.isfinite(scored.text).all() and (scored.text < 0).all()


def test_resetting_one_env_restarts_its_sequence_only(models):
    policy = MoshiPolicy(models)
    probe = SamplingProbe(policy)
    rng = np.random.default_rng(1)
    policy.start(2)
    try:
        for step in range(20):
            if step == 8:
                policy.reset(np.array([False, True]))
            policy.act(noise(rng, 2))
    finally:
        probe.restore()
    policy.stop()
    codes, lengths = policy.sequences()
    assert lengths.tolist() == [19, 11]  # env 1 restarted at step 8: steps 8..19, minus step 0
    assert (codes[1, :, 11:] == -1).all()  # padded with Moshi's zero token
    with torch.no_grad():
        scored = sequence_logprobs(models.lm, codes)
    s = policy.sampling
    env0 = [
        sampler_logprobs(probe.text[j][0], codes[0, 0, j], s.temp_text, s.top_k_text)
        for j in range(19)
    ]
    env1 = [
        sampler_logprobs(probe.text[8 + j][1], codes[1, 0, j], s.temp_text, s.top_k_text)
        for j in range(11)
    ]
    torch.testing.assert_close(scored.text[0], torch.stack(env0), atol=1e-4, rtol=0)
    torch.testing.assert_close(scored.text[1, :11], torch.stack(env1), atol=1e-4, rtol=0)
    assert not scored.text_mask[1, 11:].any()


def test_leading_codebooks_score_as_the_full_pass(models):
    """Running the depth transformer k codebooks deep gives lm(codes)'s logits for those k,
    padded frames and the acoustic delay included; the other codebooks stay 0 and masked."""
    generator = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 2048, (2, 17, 30), generator=generator)
    codes[:, 0] = torch.randint(0, models.text_card, (2, 30), generator=generator)
    codes[1, :, 21:] = -1
    with torch.no_grad():
        full = models.lm(codes)
        for k in (1, 3):
            text, logits, valid = leading_audio_logits(models.lm, codes, k)
            assert torch.equal(valid, full.mask[:, :k])
            torch.testing.assert_close(logits[valid], full.logits[:, :k][valid], atol=1e-5, rtol=0)
            torch.testing.assert_close(text, full.text_logits[:, 0].nan_to_num(), atol=1e-5, rtol=0)
        semantic = sequence_logprobs(models.lm, codes, audio_codebooks=1)
        every = sequence_logprobs(models.lm, codes, audio_codebooks=8)
    assert semantic.audio_mask[:, 0].tolist() == every.audio_mask[:, 0].tolist()
    assert semantic.audio_mask[1, 0, 21:].sum() == 0 and semantic.audio_mask[0, 0].all()
    torch.testing.assert_close(semantic.audio[:, 0], every.audio[:, 0])
    assert not semantic.audio_mask[:, 1:].any() and (semantic.audio[:, 1:] == 0).all()
    with pytest.raises(ValueError, match=r"codebooks must be in \[1, 8\], got 9"):
        leading_audio_logits(models.lm, codes, 9)


def test_streaming_lm_refuses_teacher_forcing(models):
    policy = MoshiPolicy(models)
    policy.act(np.zeros((1, 1920), np.float32))
    with pytest.raises(RuntimeError, match="still streaming"):
        sequence_logprobs(models.lm, policy.sequences()[0])
    policy.stop()


def test_vocabulary_mismatch_is_a_clear_error(models):
    policy = MoshiPolicy(models)
    env = fdenv.FullDuplexVectorEnv(2, "TurnTaking", num_scenarios=1, autoreset_mode="Disabled")
    with pytest.raises(ValueError, match="text_card=512, audio_card=2048"):
        rollout(policy, env)


def test_rollout_lengths_and_trainable_frames(models):
    scenario = noise_scenario("TurnTaking", 2.0, [(0.2, 1.2)], turn_end=1.2)
    env = fdenv.FullDuplexVectorEnv(
        2, "TurnTaking", [scenario], autoreset_mode="Disabled", text_card=models.text_card
    )
    result = rollout(MoshiPolicy(models), env, seed=0)
    # 3 s lead-in + 2 s = 62.5 frames -> 63 env steps -> 62 Moshi frames
    assert result.lengths.tolist() == [62, 62]
    # Moshi frame j is heard in env frame j + 1, which ends at 0.08 (j + 2) s: > 3.0 from j = 36
    assert result.trainable[0].nonzero()[0].item() == 36
    assert result.trainable.sum(1).tolist() == [26, 26]
    assert set(result.reward_terms) == {"turn"} and result.rewards.shape == (2,)


def _user_codes(policy: MoshiPolicy) -> torch.Tensor:
    """The user codes ``[B, 8]`` of the policy's last step."""
    return policy._history[-1][:, 9:]


def test_a_group_that_hears_the_same_audio_shares_its_encoding(models):
    rng = np.random.default_rng(0)
    a, b = (0.1 * rng.standard_normal((3, 1920))).astype(np.float32)[:2]
    shared = MoshiPolicy(models, shared_inputs=2)
    alone = MoshiPolicy(copy.deepcopy(models))  # a Mimi streams for one policy at a time
    shared.start(4)
    alone.start(2)
    for _ in range(3):  # streaming: the groups' Mimi state carries over
        shared.act(np.stack([a, a, b, b]))
        alone.act(np.stack([a, b]))
        codes = _user_codes(shared)
        torch.testing.assert_close(codes[::2], _user_codes(alone), rtol=0, atol=0)
        torch.testing.assert_close(codes[1::2], codes[::2], rtol=0, atol=0)
    shared.reset(np.array([True, True, False, False]))  # a whole group restarts
    with pytest.raises(ValueError, match="whole groups of 2"):
        shared.reset(np.array([True, False, False, False]))
    with pytest.raises(ValueError, match="heard different user audio"):
        shared.act(np.stack([a, b, b, b]))
    with pytest.raises(ValueError, match="does not split into groups of 2"):
        shared.start(3)
    shared.stop()
    alone.stop()
    with pytest.raises(ValueError, match="shared_inputs must be >= 1"):
        MoshiPolicy(models, shared_inputs=0)
