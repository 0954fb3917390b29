"""GRPOLoss against hand-computed values."""

import math

import pytest
import torch
from tensordict import TensorDict

from agents.grpo.loss import GRPOLoss

L = math.log


class FixedActor(torch.nn.Module):
    """Returns fixed log-probs (a parameter, so gradients can be checked) and a fixed mask."""

    def __init__(self, logprob, valid):
        super().__init__()
        self.logprob = torch.nn.Parameter(torch.tensor(logprob, dtype=torch.float32))
        self.valid = torch.tensor(valid)

    def forward(self, tokens, trainable):
        return self.logprob, self.valid & trainable[:, None, :]


# two rollouts, one stream, two tokens; rollout 1's second token is masked out
OLD = [[[L(0.5), L(0.5)]], [[L(0.25), L(0.25)]]]
NEW = [[[L(0.65), L(0.35)]], [[L(0.25), L(0.5)]]]
VALID = [[[True, True]], [[True, False]]]


def batch(advantage=(1.0, -1.0), ref=OLD):
    return TensorDict(
        {
            "tokens": torch.zeros(2, 1, 2, dtype=torch.long),
            "trainable": torch.ones(2, 2, dtype=torch.bool),
            "advantage": torch.tensor(advantage),
            "old_logprob": torch.tensor(OLD),
            "ref_logprob": torch.tensor(ref),
        },
        batch_size=[2],
    )


def loss_for(loss_type, beta=0.0, **kw):
    return GRPOLoss(FixedActor(NEW, VALID), [1.0], beta=beta, loss_type=loss_type, **kw)


# ratios: rollout 0: 1.3 and 0.7 with A = +1 -> min(1.3, 1.2) = 1.2 (clipped), min(0.7, 0.8) = 0.7
#         rollout 1: 1.0 with A = -1 -> -1 (the masked token does not count)
# token objectives: -1.2, -0.7 | +1.0
@pytest.mark.parametrize(
    ("loss_type", "expected"),
    [
        ("grpo", ((-1.2 - 0.7) / 2 + 1.0) / 2),  # mean per rollout, then over rollouts: 0.025
        ("dapo", (-1.2 - 0.7 + 1.0) / 3),  # over the 3 valid tokens: -0.3
        ("dr_grpo", (-1.2 - 0.7 + 1.0) / (2 * 2)),  # batch 2 x max length 2: -0.225
    ],
)
def test_aggregation_modes(loss_type, expected):
    out = loss_for(loss_type)(batch())
    assert out["loss_objective"].item() == pytest.approx(expected, abs=1e-6)
    assert out["clip_fraction"].item() == pytest.approx(1 / 3)  # only the 1.3 ratio is clipped
    assert out["tokens"].item() == 3


def test_asymmetric_upper_clip():
    # epsilon_high 0.4 lets the 1.3 ratio through: tokens -1.3, -0.7 | +1.0
    out = loss_for("dapo", epsilon_high=0.4)(batch())
    assert out["loss_objective"].item() == pytest.approx((-1.3 - 0.7 + 1.0) / 3, abs=1e-6)
    assert out["clip_fraction"].item() == 0.0


def test_k3_kl_against_the_reference():
    # k3(ref, new) = exp(ref - new) - (ref - new) - 1 per valid token, ref = old here
    def k3(ref, new):
        d = math.log(ref) - math.log(new)
        return math.exp(d) - d - 1

    kls = [k3(0.5, 0.65), k3(0.5, 0.35), k3(0.25, 0.25)]
    out = loss_for("dapo", beta=0.1)(batch())
    assert out["kl"].item() == pytest.approx(sum(kls) / 3, abs=1e-6)
    assert out["loss_kl"].item() == pytest.approx(0.1 * sum(kls) / 3, abs=1e-6)


def test_kl_weight_per_rollout_replaces_beta():
    def k3(ref, new):
        d = math.log(ref) - math.log(new)
        return math.exp(d) - d - 1

    per_rollout = [(k3(0.5, 0.65) + k3(0.5, 0.35)) / 2, k3(0.25, 0.25)]  # grpo: mean per rollout
    weighted = batch()
    weighted["beta"] = torch.tensor([0.3, 0.0])
    out = loss_for("grpo", beta=0.1)(weighted)  # the batch's weights, not 0.1
    assert out["loss_kl"].item() == pytest.approx((0.3 * per_rollout[0] + 0.0) / 2, abs=1e-6)
    unweighted = batch()
    unweighted["beta"] = torch.zeros(2)
    assert "loss_kl" not in loss_for("grpo", beta=0.1)(unweighted)  # every weight 0: no KL


def test_gradient_pushes_up_positive_advantage_tokens():
    loss = loss_for("dapo")
    out = loss(batch(advantage=(1.0, 1.0)))
    (out["loss_objective"]).backward()
    grad = loss.actor.logprob.grad
    # unclipped tokens with A > 0 get d(-r A)/d(logp) = -r A < 0; the clipped one gets none
    assert grad[0, 0, 0] == 0.0
    assert grad[0, 0, 1].item() == pytest.approx(-0.7 / 3, abs=1e-6)
    assert grad[1, 0, 0].item() == pytest.approx(-1.0 / 3, abs=1e-6)
    assert grad[1, 0, 1] == 0.0  # masked


def test_stream_weights_and_keys():
    actor = FixedActor([[[L(0.5)], [L(0.5)]]], [[[True], [True]]])
    loss = GRPOLoss(actor, [1.0, 0.0], beta=0.0, loss_type="dapo")
    loss.set_keys(advantage="adv")
    td = TensorDict(
        {
            "tokens": torch.zeros(1, 2, 1, dtype=torch.long),
            "trainable": torch.ones(1, 1, dtype=torch.bool),
            "adv": torch.tensor([2.0]),
            "old_logprob": torch.tensor([[[L(0.5)], [L(0.25)]]]),
        },
        batch_size=[1],
    )
    # stream 1 (ratio 2) has weight 0: only stream 0 (ratio 1, A = 2) counts
    assert loss(td)["loss_objective"].item() == pytest.approx(-2.0)
    with pytest.raises(ValueError, match="not an accepted tensordict key"):
        loss.set_keys(reward="r")


def test_entropy_is_reported_over_valid_tokens():
    class ActorWithEntropy(FixedActor):
        def forward(self, tokens, trainable):
            logprob, valid = super().forward(tokens, trainable)
            return logprob, valid, torch.tensor([[1.0, 2.0], [3.0, 100.0]])

    loss = GRPOLoss(ActorWithEntropy(NEW, VALID), [1.0], beta=0.0, loss_type="dapo")
    # the masked token's 100 does not count: (1 + 2 + 3) / 3
    assert loss(batch())["entropy"].item() == pytest.approx(2.0)


def test_bad_settings():
    with pytest.raises(ValueError, match="loss_type"):
        loss_for("ppo")
    with pytest.raises(ValueError, match="epsilon"):
        loss_for("grpo", epsilon=0.0)


def test_an_advantage_per_frame_credits_only_its_frames():
    # advantage [B, T]: rollout 0's first token (the clipped 1.3) gets 0, its second +1;
    # tokens -0.0, -0.7 | +1.0 (the masked token does not count)
    out = loss_for("dapo")(batch(advantage=[[0.0, 1.0], [-1.0, -1.0]]))
    assert out["loss_objective"].item() == pytest.approx((0.0 - 0.7 + 1.0) / 3, abs=1e-6)
    broadcast = loss_for("grpo")(batch(advantage=[[1.0, 1.0], [-1.0, -1.0]]))
    per_rollout = loss_for("grpo")(batch())
    assert broadcast["loss_objective"].item() == per_rollout["loss_objective"].item()


def test_an_advantage_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"advantage must be \[B\] or \[B, T\]"):
        loss_for("grpo")(batch(advantage=[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))
