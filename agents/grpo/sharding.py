"""FSDP for the GRPO trainer: parameters, gradients and AdamW state sharded across ranks.

Full fine-tuning of the 7B needs about 15 GiB of bf16 weights but 92 GiB of fp32 AdamW state and
master gradients; sharded over N GPUs, the state shrinks N-fold. The trainer uses PyTorch's
FSDP2 (``fully_shard``) with one unit, the scorer that wraps the LM: moshi's streaming
transformer layers cannot be wrapped one by one (``fully_shard`` swaps a module's class, and
``StreamingModule`` subclasses refuse a class of a different layout), and some of its linear
weights are read outside their module's ``forward``, which per-leaf wrapping would miss. So a
forward gathers the whole LM (the weights of one replica must fit on a GPU, as they must for
sampling anyway) and the backward reduce-scatters the gradients.

Streaming rollouts call the LM's submodules directly, never the wrapped ``forward``, so they run
inside :func:`unsharded`, which gathers the weights first and frees them after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor

from agents.moshi.logprobs import MoshiScorer

GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)
"""Whole tensors, on rank 0's CPU only (other ranks get an empty dict): the full AdamW state of
the 7B would not fit on one GPU."""
SCATTER = StateDictOptions(full_state_dict=True)
"""Every rank passes the whole state (read from the same file) and keeps its shard."""


def shard(scorer: MoshiScorer) -> None:
    """Shards ``scorer`` (and the LM inside it) across the default process group.

    FSDP initialises itself on the first call of the wrapped module; a one-frame forward does
    that now, before a rollout could reach the LM's submodules first. FSDP re-registers
    parameter objects along the way (the first explicit unshard and reshard does, and the
    module may show others while gathered), so build the optimizer after this returns and
    take the parameters to update from the optimizer, not from the module.
    """
    fully_shard(scorer)
    lm = scorer.lm
    device = next(lm.parameters()).device
    codes = torch.zeros(1, lm.num_codebooks, 1, dtype=torch.long, device=device)
    with torch.no_grad():
        scorer(codes, torch.zeros(1, 1, dtype=torch.bool, device=device))
    with unsharded(scorer):
        pass


def trained_parameter_names(scorer: MoshiScorer) -> set[str]:
    """Names of the parameters the scorer's log-probs depend on (a one-frame backward).

    A text-only objective never reaches the depth transformer; keeping such parameters out of
    the optimizer saves their AdamW state and lets every optimizer entry have a state, which the
    distributed checkpoint functions expect.
    """
    lm = scorer.lm
    device = next(lm.parameters()).device
    codes = torch.zeros(1, lm.num_codebooks, 2, dtype=torch.long, device=device)
    logprob, mask, _ = scorer(codes, torch.ones(1, 2, dtype=torch.bool, device=device))
    torch.where(mask, logprob, 0.0).sum().backward()
    names = {n for n, p in scorer.named_parameters() if p.grad is not None}
    scorer.zero_grad(set_to_none=True)
    return names


def is_sharded(module: torch.nn.Module) -> bool:
    return isinstance(module, FSDPModule)


@contextmanager
def unsharded(module: torch.nn.Module) -> Iterator[None]:
    """Whole weights while inside (a collective: every rank must enter); a no-op without FSDP."""
    if not isinstance(module, FSDPModule):
        yield
        return
    module.unshard()
    try:
        yield
    finally:
        module.reshard()


def global_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all gradients, sharded or not, as a plain scalar tensor (for logs and for
    ``clip_grads_with_norm_``)."""
    norm = torch.nn.utils.get_total_norm(grads)
    return norm.full_tensor() if isinstance(norm, DTensor) else norm


def model_state(module: torch.nn.Module) -> dict[str, Any]:
    """The whole state dict (under FSDP: a collective, and only rank 0 gets it)."""
    if is_sharded(module):
        return get_model_state_dict(module, options=GATHER)
    return module.state_dict()


def load_model_state(module: torch.nn.Module, state: dict[str, Any]) -> None:
    if is_sharded(module):
        set_model_state_dict(module, state, options=SCATTER)
    else:
        module.load_state_dict(state)


def optimizer_state(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Like :func:`model_state`, for the optimizer of ``module``'s parameters."""
    if is_sharded(module):
        return get_optimizer_state_dict(module, optimizer, options=GATHER)
    return optimizer.state_dict()


def load_optimizer_state(
    module: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    if is_sharded(module):
        set_optimizer_state_dict(module, optimizer, state, options=SCATTER)
    else:
        optimizer.load_state_dict(state)
