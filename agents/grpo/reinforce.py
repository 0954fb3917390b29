"""ReinforceLoss: plain REINFORCE with a group baseline, as a drop-in for :class:`GRPOLoss`.

REINFORCE maximises ``A * log pi(token)`` over the tokens a rollout sampled, with no ratio and
no clipping. The baseline is already inside the advantage: the trainer's group advantages are
each rollout's reward minus its group's mean (optionally divided by the group's spread), which
is the classic REINFORCE baseline where the group plays the role of the value function.

It reads the same TensorDict as GRPOLoss, so ``GRPOTrainer(..., make_loss=reinforce_loss)`` swaps
the objective and keeps the rollouts, advantages and update loop. Without clipping, several
updates on the same rollouts drift off-policy unchecked; ``ratio_mean`` (new over old
probability) shows how far, which is why ``old_logprob`` is still read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.objectives import LossModule

from agents.grpo.loss import GRPOLoss, kl_penalty, token_advantage, weighted_mean

if TYPE_CHECKING:
    from agents.grpo.trainer import GRPOConfig

Reduction = Literal["mean", "sum"]


class ReinforceLoss(LossModule):
    """``-A * log pi`` over the weighted token streams of each rollout, plus an optional KL.

    Args:
        actor: a module scoring ``tokens`` (see :class:`agents.grpo.loss.TokenScorer`): it
            returns log-probs ``[B, S, T]``, their validity mask and optionally an entropy.
        stream_weights: weight per stream (``S`` values); zero-weight streams do not count.
        beta: weight of the k3 KL penalty against ``ref_logprob`` (0 skips it).
        reduction: how a rollout's tokens combine: ``"mean"`` (weighted mean, as GRPO does, so a
            learning rate means the same for short and long rollouts) or ``"sum"`` (the textbook
            REINFORCE gradient, which grows with the rollout's length). Rollouts are then
            averaged; a rollout with no valid token is left out.

    Input keys (configurable with :meth:`set_keys`): ``tokens``, ``trainable [B, T]``,
    ``advantage [B]`` (or ``[B, T]``), ``old_logprob [B, S, T]``, optionally ``beta [B]`` (each
    rollout's KL weight, in place of ``beta``) and, when a KL weight is above 0, ``ref_logprob``.
    Output: ``loss_objective``, ``loss_kl`` (when a KL weight is above 0) and diagnostics ``kl``,
    ``ratio_mean``, ``tokens`` and, when the actor reports it, ``entropy``.
    """

    _AcceptedKeys = GRPOLoss._AcceptedKeys  # the same batch as GRPO's, so the trainer swaps them
    default_keys = _AcceptedKeys

    def __init__(
        self,
        actor: torch.nn.Module,
        stream_weights: list[float] | torch.Tensor,
        *,
        beta: float = 0.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.actor = actor
        self.register_buffer("stream_weights", torch.as_tensor(stream_weights, dtype=torch.float32))
        self.beta = beta
        self.reduction = reduction

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        """REINFORCE with a group baseline has no value estimator."""

    def aggregate(self, token_values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Reduces ``[B, S, T]`` token values per rollout (mean or sum), then over rollouts."""
        per_rollout = (token_values * weights).sum(dim=(1, 2))
        tokens = weights.sum(dim=(1, 2))
        has_tokens = tokens > 0
        if self.reduction == "mean":
            per_rollout = per_rollout[has_tokens] / tokens[has_tokens]
        else:
            per_rollout = per_rollout[has_tokens]
        return per_rollout.sum() / has_tokens.sum().clamp(min=1)

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        keys = self.tensor_keys
        logprob, valid, *extra = self.actor(tensordict[keys.tokens], tensordict[keys.trainable])
        weights = valid.float() * self.stream_weights[None, :, None]
        # invalid positions may hold NaN: select, never multiply, or NaN reaches the gradient
        logprob = torch.where(valid, logprob, 0.0)
        advantage = token_advantage(tensordict[keys.advantage], logprob)
        out = {"loss_objective": self.aggregate(-advantage * logprob, weights)}
        out |= kl_penalty(self, tensordict, logprob, valid, weights)
        old = tensordict[keys.old_logprob]
        out["ratio_mean"] = weighted_mean(torch.where(valid, logprob - old, 0.0).exp(), weights)
        if extra and extra[0] is not None:
            out["entropy"] = weighted_mean(extra[0][:, None], weights[:, :1])
        out["tokens"] = (weights > 0).sum().float()
        return TensorDict(out, batch_size=[])


def reinforce_loss(scorer: torch.nn.Module, config: GRPOConfig) -> ReinforceLoss:
    """A ``make_loss`` for :class:`~agents.grpo.trainer.GRPOTrainer`: REINFORCE with the
    config's stream weights and KL weight (``epsilon`` and ``loss_type`` do not apply)."""
    return ReinforceLoss(scorer, list(config.stream_weights), beta=config.beta)
