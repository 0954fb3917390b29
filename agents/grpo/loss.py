"""GRPOLoss: the clipped group-relative policy objective for multistream token policies.

A TorchRL ``LossModule``. Moshi samples several token streams per frame (text and 8 audio
codebooks); each stream can carry its own weight (the paper optimises text only). Per token:
``-min(r A, clip(r, 1 - eps, 1 + eps_high) A) + beta * KL``, with ``r`` the ratio of new to old
probability and KL the k3 estimator against the reference policy (``beta`` one number, or one
per rollout from the batch's ``beta`` key); tokens are then aggregated
the way TRL names it (``grpo``: mean per sequence, then over sequences; ``dapo``: mean over all
tokens of the batch; ``dr_grpo``: sum over the batch divided by a constant, batch size times
maximum length).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.objectives import LossModule

LossType = Literal["grpo", "dapo", "dr_grpo"]


class TokenScorer(Protocol):
    """The actor: log-probabilities ``[B, S, T]`` of recorded tokens, where they count, and
    optionally the entropy ``[B, T]`` of the first stream's distribution (a diagnostic)."""

    def __call__(
        self, tokens: torch.Tensor, trainable: torch.Tensor
    ) -> tuple[torch.Tensor, ...]: ...


class GRPOLoss(LossModule):
    """Clipped-ratio policy loss with a k3 KL penalty, for policies with several token streams.

    Args:
        actor: a module scoring ``tokens`` (see :class:`TokenScorer`); its parameters are trained.
        stream_weights: weight per stream (``S`` values); zero-weight streams are not scored.
        epsilon: lower clip range; ``epsilon_high`` the upper one (default: the same).
        beta: weight of the KL term (0 skips it).
        loss_type: token aggregation, ``grpo`` | ``dapo`` | ``dr_grpo``.

    Input keys (configurable with :meth:`set_keys`): ``tokens``, ``trainable [B, T]``,
    ``advantage [B]`` (or ``[B, T]``, one per frame), ``old_logprob [B, S, T]``, optionally
    ``beta [B]`` (each rollout's KL weight, in place of ``beta``) and, when a KL weight is above
    0, ``ref_logprob``.
    Output: ``loss_objective``, ``loss_kl`` and diagnostics ``kl``, ``clip_fraction``,
    ``ratio_mean``, ``tokens`` and, when the actor reports it, ``entropy``.
    """

    @dataclass
    class _AcceptedKeys:
        tokens: str = "tokens"
        trainable: str = "trainable"
        advantage: str = "advantage"
        old_logprob: str = "old_logprob"
        ref_logprob: str = "ref_logprob"
        beta: str = "beta"

    default_keys = _AcceptedKeys

    def __init__(
        self,
        actor: torch.nn.Module,
        stream_weights: list[float] | torch.Tensor,
        *,
        epsilon: float = 0.2,
        epsilon_high: float | None = None,
        beta: float = 0.01,
        loss_type: LossType = "grpo",
    ) -> None:
        super().__init__()
        if loss_type not in ("grpo", "dapo", "dr_grpo"):
            raise ValueError(f"loss_type must be 'grpo', 'dapo' or 'dr_grpo', got {loss_type!r}")
        if epsilon <= 0 or (epsilon_high is not None and epsilon_high <= 0) or beta < 0:
            raise ValueError("epsilon and epsilon_high must be > 0 and beta >= 0")
        self.actor = actor
        self.register_buffer("stream_weights", torch.as_tensor(stream_weights, dtype=torch.float32))
        self.epsilon = epsilon
        self.epsilon_high = epsilon if epsilon_high is None else epsilon_high
        self.beta = beta
        self.loss_type = loss_type

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        """GRPO has no value estimator: advantages come from the group."""

    def aggregate(self, token_values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Reduces ``[B, S, T]`` token values with token weights ``[B, S, T]``."""
        total = (token_values * weights).sum(dim=(1, 2))
        if self.loss_type == "grpo":
            per_sequence = weights.sum(dim=(1, 2))
            has_tokens = per_sequence > 0
            return (total[has_tokens] / per_sequence[has_tokens]).sum() / has_tokens.sum().clamp(
                min=1
            )
        if self.loss_type == "dapo":
            return total.sum() / weights.sum().clamp(min=1e-8)
        batch, _, length = weights.shape
        return total.sum() / (batch * length * self.stream_weights.sum())

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        keys = self.tensor_keys
        logprob, valid, *extra = self.actor(tensordict[keys.tokens], tensordict[keys.trainable])
        weights = valid.float() * self.stream_weights[None, :, None]
        old = tensordict[keys.old_logprob]
        advantage = token_advantage(tensordict[keys.advantage], logprob)
        log_ratio = torch.where(valid, logprob - old, 0.0)
        ratio = log_ratio.exp()
        clipped = ratio.clamp(1.0 - self.epsilon, 1.0 + self.epsilon_high)
        objective = -torch.minimum(ratio * advantage, clipped * advantage)
        out = {"loss_objective": self.aggregate(objective, weights)}
        out |= kl_penalty(self, tensordict, logprob, valid, weights)
        is_clipped = (ratio * advantage > clipped * advantage).float()
        out["clip_fraction"] = weighted_mean(is_clipped, weights)
        out["ratio_mean"] = weighted_mean(ratio, weights)
        if extra and extra[0] is not None:
            out["entropy"] = weighted_mean(extra[0][:, None], weights[:, :1])
        out["tokens"] = (weights > 0).sum().float()
        return TensorDict(out, batch_size=[])


def token_advantage(advantage: torch.Tensor, logprob: torch.Tensor) -> torch.Tensor:
    """A rollout's advantage ``[B]``, or one per frame ``[B, T]`` (the trainer's
    ``axis_credit``), shaped to multiply the log-probs ``[B, S, T]`` of every stream."""
    advantage = advantage.to(logprob)
    if advantage.dim() == 1:
        return advantage[:, None, None]
    if advantage.shape != (logprob.shape[0], logprob.shape[2]):
        raise ValueError(
            f"advantage must be [B] or [B, T] = {[logprob.shape[0], logprob.shape[2]]}, "
            f"got {list(advantage.shape)}"
        )
    return advantage[:, None, :]


class KLPenalised(Protocol):
    """A loss with a scalar ``beta``, an ``aggregate`` of token values and GRPO's batch keys."""

    beta: float
    tensor_keys: Any

    def aggregate(self, token_values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor: ...


def kl_penalty(
    loss: KLPenalised,
    tensordict: TensorDictBase,
    logprob: torch.Tensor,
    valid: torch.Tensor,
    weights: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """``loss_kl`` (k3 KL to ``ref_logprob``, aggregated as the loss aggregates) and the ``kl``
    diagnostic; empty when no rollout has a KL weight above 0.

    The weight is ``loss.beta``, or per rollout the batch's ``beta [B]`` where it has one (the
    trainer's ``beta_by_axis``), so one batch can hold some behaviour closer to the reference
    than the rest."""
    keys = loss.tensor_keys
    per_rollout = tensordict.get(keys.beta, None)
    if not (loss.beta > 0 if per_rollout is None else bool((per_rollout > 0).any())):
        return {}
    ref_diff = torch.where(valid, tensordict[keys.ref_logprob] - logprob, 0.0)
    kl = ref_diff.exp() - ref_diff - 1.0
    if per_rollout is None:
        penalty = loss.beta * loss.aggregate(kl, weights)
    else:
        penalty = loss.aggregate(kl * per_rollout.to(kl)[:, None, None], weights)
    return {"loss_kl": penalty, "kl": weighted_mean(kl, weights)}


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """A detached weighted mean, for logs."""
    return ((values * weights).sum() / weights.sum().clamp(min=1e-8)).detach()
