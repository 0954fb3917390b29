"""ReinforceLoss against hand-computed values, and swapped into the GRPO trainer."""

import math

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from test_grpo_loss import FixedActor
from test_grpo_trainer import Quiet, config, hesitant_models

from agents.grpo.reinforce import ReinforceLoss, reinforce_loss
from agents.grpo.trainer import GRPOTrainer
from agents.moshi.rollout import rollout
from fdenv import register_axis
from fdenv.registration import unregister_axis

L = math.log
NAN = float("nan")


# two rollouts, one stream, two tokens; rollout 1's second token is masked out and holds NaN,
# as Moshi's scorer leaves delayed positions
OLD = [[[L(0.5), L(0.5)]], [[L(0.25), L(0.25)]]]
NEW = [[[L(0.65), L(0.35)]], [[L(0.25), NAN]]]
VALID = [[[True, True]], [[True, False]]]


def batch(advantage=(1.0, -1.0)):
    return TensorDict(
        {
            "tokens": torch.zeros(2, 1, 2, dtype=torch.long),
            "trainable": torch.ones(2, 2, dtype=torch.bool),
            "advantage": torch.tensor(advantage),
            "old_logprob": torch.tensor(OLD),
            "ref_logprob": torch.tensor(OLD),
        },
        batch_size=[2],
    )


# per-token -A log p: rollout 0 (A = +1): -ln .65, -ln .35; rollout 1 (A = -1): +ln .25
@pytest.mark.parametrize(
    ("reduction", "expected", "grads"),
    [
        # mean per rollout, then over rollouts: (0.7403 - 1.3863) / 2 = -0.3230
        ("mean", (-(L(0.65) + L(0.35)) / 2 + L(0.25)) / 2, [-0.25, -0.25, 0.5]),
        # sum per rollout, then mean over rollouts: (1.4806 - 1.3863) / 2 = 0.0472
        ("sum", (-(L(0.65) + L(0.35)) + L(0.25)) / 2, [-0.5, -0.5, 0.5]),
    ],
)
def test_objective_and_gradient(reduction, expected, grads):
    loss = ReinforceLoss(FixedActor(NEW, VALID), [1.0], reduction=reduction)
    out = loss(batch())
    assert out["loss_objective"].item() == pytest.approx(expected, abs=1e-6)
    assert "loss_kl" not in out
    out["loss_objective"].backward()
    grad = loss.actor.logprob.grad
    # d loss / d log p = -A / (tokens of the rollout, for "mean") / (rollouts)
    assert grad[0, 0, 0].item() == pytest.approx(grads[0])
    assert grad[0, 0, 1].item() == pytest.approx(grads[1])
    assert grad[1, 0, 0].item() == pytest.approx(grads[2])
    assert grad[1, 0, 1].item() == 0.0  # masked: no gradient, and the NaN does not leak
    assert out["tokens"].item() == 3
    # diagnostics: ratios 1.3, 0.7, 1.0 over the valid tokens
    assert out["ratio_mean"].item() == pytest.approx(1.0)


def test_zero_advantage_gives_no_gradient():
    loss = ReinforceLoss(FixedActor(NEW, VALID), [1.0])
    loss(batch(advantage=(0.0, 0.0)))["loss_objective"].backward()
    assert torch.all(loss.actor.logprob.grad == 0.0)


def test_an_advantage_per_frame_credits_only_its_frames():
    # rollout 0's first frame gets no credit: no gradient there, the rest as with A per rollout
    loss = ReinforceLoss(FixedActor(NEW, VALID), [1.0])
    loss(batch(advantage=[[0.0, 1.0], [-1.0, -1.0]]))["loss_objective"].backward()
    grad = loss.actor.logprob.grad
    assert grad[0, 0, 0].item() == 0.0
    assert grad[0, 0, 1].item() == pytest.approx(-0.25)
    assert grad[1, 0, 0].item() == pytest.approx(0.5)


def test_k3_kl_against_the_reference():
    def k3(ref, new):
        d = math.log(ref) - math.log(new)
        return math.exp(d) - d - 1

    loss = ReinforceLoss(FixedActor(NEW, VALID), [1.0], beta=0.1)
    out = loss(batch())
    # "mean": per rollout first, then over rollouts
    per_rollout = [(k3(0.5, 0.65) + k3(0.5, 0.35)) / 2, k3(0.25, 0.25)]
    assert out["loss_kl"].item() == pytest.approx(0.1 * sum(per_rollout) / 2, abs=1e-6)
    assert out["kl"].item() == pytest.approx((k3(0.5, 0.65) + k3(0.5, 0.35)) / 3, abs=1e-6)
    weighted = batch()
    weighted["beta"] = torch.tensor([0.0, 0.2])  # per rollout, in place of beta
    out = loss(weighted)
    assert out["loss_kl"].item() == pytest.approx(0.2 * per_rollout[1] / 2, abs=1e-6)


def test_stream_weights_keys_and_empty_rollouts():
    # rollout 0: stream 0 log .5 (weight 1), stream 1 log .25 (weight .5); rollout 1: no tokens
    actor = FixedActor([[[L(0.5)], [L(0.25)]], [[NAN], [NAN]]], [[[True], [True]], [[False]] * 2])
    loss = ReinforceLoss(actor, [1.0, 0.5])
    loss.set_keys(advantage="adv")
    td = TensorDict(
        {
            "tokens": torch.zeros(2, 2, 1, dtype=torch.long),
            "trainable": torch.ones(2, 1, dtype=torch.bool),
            "adv": torch.tensor([2.0, 5.0]),
            "old_logprob": torch.zeros(2, 2, 1),
        },
        batch_size=[2],
    )
    # -2 (1 ln .5 + .5 ln .25) / 1.5 = -(8/3) ln .5 = 1.8484; the empty rollout is left out
    assert loss(td)["loss_objective"].item() == pytest.approx(-(8 / 3) * L(0.5), abs=1e-6)
    with pytest.raises(ValueError, match="not an accepted tensordict key"):
        loss.set_keys(reward="r")


def test_bad_settings():
    with pytest.raises(ValueError, match="reduction"):
        ReinforceLoss(FixedActor(NEW, VALID), [1.0], reduction="max")
    with pytest.raises(ValueError, match="beta"):
        ReinforceLoss(FixedActor(NEW, VALID), [1.0], beta=-1.0)


# --- swapped into the trainer -------------------------------------------------------------------


@pytest.fixture
def quiet_axis():
    register_axis(Quiet)
    yield
    unregister_axis("Quiet")


def test_trainer_takes_the_reinforce_loss(quiet_axis, tmp_path):
    trainer = GRPOTrainer(
        config(beta=0.0, rollouts_per_update=8),
        hesitant_models(5),
        tmp_path,
        make_loss=reinforce_loss,
    )
    assert isinstance(trainer.loss, ReinforceLoss)
    result = rollout(trainer.policy, trainer.env, seed=0)
    batch = trainer._batch(result, np.array([1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
    losses = trainer.update(batch)
    assert len(losses) == 1 and "clip_fraction" not in losses[0]
    with torch.no_grad():
        new, mask, _ = trainer.scorer(result.codes, result.trainable)
    change = ((new - batch["old_logprob"]) * mask).sum(dim=(1, 2))
    assert change[0] > 0 > change[1]  # up for A = +1, down for A = -1


def test_a_short_reinforce_run_trains_and_logs(quiet_axis, tmp_path):
    trainer = GRPOTrainer(
        config(iterations=2, beta=0.01), hesitant_models(5), tmp_path, make_loss=reinforce_loss
    )
    before = {k: v.clone() for k, v in trainer.models.lm.state_dict().items()}
    history = trainer.run(progress=False)
    records = [r for r in history if "updates" in r]
    assert len(records) == 2 and sum(r["updates"] for r in records) > 0
    assert all(np.isfinite(r["loss_objective"]) and r["kl"] >= 0 for r in records if r["updates"])
    moved = [k for k, v in trainer.models.lm.state_dict().items() if not torch.equal(v, before[k])]
    assert moved
