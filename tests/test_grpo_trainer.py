"""The GRPO trainer end to end on a tiny random Moshi and a throwaway axis with a graded reward."""

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from conftest import noise_scenario

from agents.grpo.trainer import GRPOConfig, GRPOTrainer, scored_audio_codebooks
from agents.moshi.models import tiny_models
from agents.moshi.rollout import rollout
from fdenv import Axis, AxisScore, register_axis
from fdenv.config import EnvConfig
from fdenv.constants import PAD_ID
from fdenv.registration import unregister_axis
from fdenv.timeline import total_duration


@dataclass(frozen=True)
class Quiet(Axis):
    """Reward = minus the seconds of agent speech: every rollout differs, so groups carry signal."""

    name: ClassVar[str] = "Quiet"
    required_labels: ClassVar[tuple[str, ...]] = ("user_speech",)

    def synthesize(self, rng, scenario_id):
        scenario = noise_scenario(self.name, 1.2, [(0.2, 1.0)])
        scenario.id = scenario_id
        return scenario

    def score(self, episode):
        return AxisScore(terms={"quiet": -total_duration(episode.agent_speech_in_window())})


@pytest.fixture(autouse=True)
def quiet_axis():
    register_axis(Quiet)
    yield
    unregister_axis("Quiet")


@dataclass(frozen=True)
class Hush(Quiet):
    """A second axis like Quiet, for runs that mix axes."""

    name: ClassVar[str] = "Hush"


@pytest.fixture
def hush_axis():
    register_axis(Hush)
    yield
    unregister_axis("Hush")


def hesitant_models(seed: int):
    """A tiny random Moshi that pads about half the time, so its rollouts differ in speech time.

    (A random model almost never samples PAD out of 512 tokens: it would talk non-stop and every
    group would be flat.) The PAD bias is an ordinary trainable parameter.
    """
    models = tiny_models(seed=seed)
    bias = torch.zeros(models.text_card)
    bias[PAD_ID] = 4.0
    models.lm.text_linear.bias = torch.nn.Parameter(bias)
    return models


def config(**overrides) -> GRPOConfig:
    """A small run; overrides that are env settings (``scenarios``, ...) go to ``env``."""
    env_fields = {f.name for f in dataclasses.fields(EnvConfig)}
    env = {k: overrides.pop(k) for k in list(overrides) if k in env_fields}
    settings = dict(
        axes=("Quiet",),
        iterations=3,
        groups=2,
        group_size=4,
        rollouts_per_update=2,
        lr=1e-3,
        warmup_iterations=0,
        env=EnvConfig(num_scenarios=2, scenario_seed=1).replace(**env),
        eval_every=100,
        eval_episodes=2,
        checkpoint_every=1,
    )
    return GRPOConfig(**(settings | overrides))


def test_one_update_raises_the_probability_of_a_better_rollout(tmp_path):
    trainer = GRPOTrainer(config(beta=0.0, rollouts_per_update=8), hesitant_models(5), tmp_path)
    result = rollout(trainer.policy, trainer.env, seed=0)
    advantage = np.array([1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    batch = trainer._batch(result, advantage)
    losses = trainer.update(batch)
    assert len(losses) == 1 and np.isfinite(losses[0]["loss_objective"])
    with torch.no_grad():
        new, mask, _ = trainer.scorer(result.codes, result.trainable)
    old = batch["old_logprob"]
    change = ((new - old) * mask).sum(dim=(1, 2))
    assert change[0] > 0 > change[1]  # up for A = +1, down for A = -1


@dataclass(frozen=True)
class LateQuiet(Quiet):
    """Quiet, with the reward decided from 0.6 s into the scenario on."""

    name: ClassVar[str] = "LateQuiet"

    def credit_start(self, scenario):
        return 0.6


@pytest.mark.parametrize("axis_credit", [False, True])
def test_axis_credit_gives_the_advantage_to_frames_from_the_axis_credit_start(
    tmp_path, axis_credit
):
    register_axis(LateQuiet)
    try:
        trainer = GRPOTrainer(
            config(axes=("LateQuiet",), axis_credit=axis_credit, lead_in_s=0.4),
            hesitant_models(5),
            tmp_path,
        )
        result = rollout(trainer.policy, trainer.env, seed=0)
        advantage = np.linspace(-1.0, 1.0, 8)
        batch = trainer._batch(result, advantage)
    finally:
        unregister_axis("LateQuiet")
    if not axis_credit:
        assert batch["advantage"].tolist() == pytest.approx(advantage.tolist())
        return
    # lead-in 0.4 s + credit start 0.6 s: Moshi frame j is heard until (j + 2) * 0.08 s, so
    # frames 0-10 (heard until 0.96 s at most) get nothing and frame 11 on the advantage
    credited = batch["advantage"]
    assert credited.shape == result.trainable.shape
    assert torch.all(credited[:, :11] == 0.0)
    expected = torch.tensor(advantage, dtype=torch.float32)[:, None]
    assert torch.all(credited[:, 11:] == expected.expand(-1, credited.shape[1] - 11))
    losses = trainer.update(batch)
    assert all(np.isfinite(step["loss_objective"]) for step in losses)


@pytest.mark.parametrize(
    ("weights", "codebooks"),
    [((1.0,) + (0.0,) * 8, 0), ((1.0, 1.0) + (0.0,) * 7, 1), ((0.0,) * 3 + (0.5,) + (0.0,) * 5, 3)],
)
def test_the_scorer_scores_audio_up_to_the_last_weighted_codebook(weights, codebooks):
    assert scored_audio_codebooks(weights) == codebooks


def test_a_weighted_semantic_codebook_is_trained(tmp_path):
    """With the semantic codebook weighted, an update raises its log-probabilities on a better
    rollout and lowers them on a worse one; the other codebooks are not scored."""
    trainer = GRPOTrainer(
        config(beta=0.0, rollouts_per_update=8, stream_weights=(0.0, 1.0) + (0.0,) * 7),
        hesitant_models(5),
        tmp_path,
    )
    result = rollout(trainer.policy, trainer.env, seed=0)
    batch = trainer._batch(result, np.array([1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
    trainer.update(batch)
    with torch.no_grad():
        new, mask, _ = trainer.scorer(result.codes, result.trainable)
    assert mask[:, 1].any() and not mask[:, 2:].any()
    change = ((new - batch["old_logprob"])[:, 1] * mask[:, 1]).sum(dim=1)
    assert change[0] > 0 > change[1]


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    straight = GRPOTrainer(config(), hesitant_models(5), tmp_path / "a")
    straight.run(progress=False)

    first = GRPOTrainer(config(), hesitant_models(5), tmp_path / "b")
    first.history = [first.train_iteration(), first.train_iteration()]
    first.save()
    del first  # the run "dies" after its checkpoint at iteration 2
    resumed = GRPOTrainer(config(), hesitant_models(5), tmp_path / "b")
    assert resumed.resume() and resumed.iteration == 2
    resumed.run(progress=False)

    assert sum(r.get("updates", 0) for r in straight.history) > 0
    for name, value in straight.models.lm.state_dict().items():
        torch.testing.assert_close(resumed.models.lm.state_dict()[name], value, rtol=0, atol=0)
    rewards = [r["reward"] for r in straight.history if "reward" in r]
    assert rewards == [r["reward"] for r in resumed.history if "reward" in r]


@pytest.mark.slow
def test_grpo_learns_to_be_quieter(tmp_path):
    """The whole loop learns: the graded 'quiet' reward rises over a few iterations.

    Groups of 8: with groups of 4 a run can fall into talking all the time early on, where
    every group is flat and only the KL term pulls it back."""
    trainer = GRPOTrainer(
        config(iterations=6, groups=4, group_size=8), hesitant_models(5), tmp_path
    )
    history = trainer.run(progress=False)
    rewards = [r["reward"] for r in history if "reward" in r]
    assert np.mean(rewards[-3:]) > np.mean(rewards[:3]) + 0.2, rewards


def test_zero_advantage_rollouts_still_update_towards_the_reference(tmp_path):
    # With beta > 0 and no reward signal at all, the update is the KL term's alone: a policy
    # moved away from its reference is pulled back (weight decay off, so nothing else moves it).
    trainer = GRPOTrainer(
        config(beta=0.5, weight_decay=0.0, rollouts_per_update=4), hesitant_models(5), tmp_path
    )
    with torch.no_grad():
        trainer.models.lm.text_linear.bias[PAD_ID] -= 2.0  # the reference keeps +4
    result = rollout(trainer.policy, trainer.env, seed=0)
    batch = trainer._batch(result, np.zeros(8))
    before = trainer.models.lm.text_linear.bias[PAD_ID].item()
    losses = trainer.update(batch)
    assert len(losses) == 2  # every rollout, 4 per update
    assert losses[0]["kl"] > 0
    assert trainer.models.lm.text_linear.bias[PAD_ID].item() > before  # back towards +4


@pytest.mark.parametrize("hush_beta", [0.0, 0.5])
def test_beta_by_axis_weighs_each_rollouts_kl(tmp_path, hush_axis, hush_beta):
    # beta 0 and no reward signal: only Hush's rollouts, when weighted, pull towards the reference
    trainer = GRPOTrainer(
        config(
            axes=("Quiet", "Hush"),
            beta=0.0,
            beta_by_axis={"Hush": hush_beta},
            weight_decay=0.0,
            rollouts_per_update=8,
        ),
        hesitant_models(5),
        tmp_path,
    )
    with torch.no_grad():
        trainer.models.lm.text_linear.bias[PAD_ID] -= 2.0  # the reference keeps +4
    result = rollout(trainer.policy, trainer.env, seed=0, options={"axis": ["Quiet", "Hush"]})
    batch = trainer._batch(result, np.zeros(8))
    expected = [hush_beta if axis == "Hush" else 0.0 for axis in result.axes]
    assert result.axes == ["Quiet"] * 4 + ["Hush"] * 4
    assert batch["beta"].tolist() == expected
    before = trainer.models.lm.text_linear.bias[PAD_ID].item()
    trainer.update(batch)
    after = trainer.models.lm.text_linear.bias[PAD_ID].item()
    assert after > before if hush_beta else after == before


def test_kl_weights_of_axes_not_trained_on_are_ignored(tmp_path):
    # the default beta_by_axis names PauseHandling and Backchannel; this run trains Quiet alone
    trainer = GRPOTrainer(config(beta=0.0), hesitant_models(5), tmp_path)
    assert trainer.kl_weights == {"Quiet": 0.0} and trainer.reference is None
    batch = trainer._batch(rollout(trainer.policy, trainer.env, seed=0), np.zeros(8))
    assert batch.get("beta", None) is None and batch.get("ref_logprob", None) is None


def test_every_iteration_makes_the_same_number_of_updates(tmp_path):
    trainer = GRPOTrainer(config(rollouts_per_update=3), hesitant_models(5), tmp_path)
    assert trainer.train_iteration()["updates"] == 3  # 8 rollouts: 3 + 3 + 2


def test_balanced_axes_play_every_axis_in_every_iteration(tmp_path, hush_axis):
    trainer = GRPOTrainer(
        config(axes=("Quiet", "Hush"), iterations=4), hesitant_models(5), tmp_path
    )
    played = [sorted(trainer.train_iteration()["reward_by_axis"]) for _ in range(4)]
    assert played == [["Hush", "Quiet"]] * 4


def test_group_rollouts_share_the_user_encoding_only_where_the_user_replays(tmp_path):
    """A replayed scenario is the same audio for a whole group, so Mimi encodes it once per
    group; a user who reacts hears each rollout, so the sharing switches itself off (the env
    test of groups shows their audio part as the agents' actions differ)."""
    replay = GRPOTrainer(config(), hesitant_models(1), tmp_path / "replay")
    assert replay.rollout_policy.shared_inputs == 4
    closed = GRPOTrainer(
        config(axes=("Selectivity",), groups=1, group_size=2, lead_in_s=0.4),
        hesitant_models(1),
        tmp_path / "closed",
    )
    assert closed.rollout_policy.shared_inputs == 1
    result = rollout(closed.rollout_policy, closed.env, seed=0)
    assert [e.axis for e in result.episodes] == ["Selectivity", "Selectivity"]
