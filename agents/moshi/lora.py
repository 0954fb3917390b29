"""LoRA adapters on a Moshi LM, and the frozen reference policy a KL penalty is measured against.

The adapters are moshi's own ``LoRALinear`` (``moshi.modules.lora``), so a trained policy saves
and loads with moshi's loaders and serves with ``moshi.server --lora-weight``. With LoRA the
reference policy costs no memory: it is the same LM with its adapters switched off. A fully
fine-tuned policy needs a frozen copy instead; :class:`ReferenceModel` hides the difference.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from moshi.models.lm import LMModel
from moshi.modules.lora import LoRALinear, replace_all_linear_with_lora

DEFAULT_RANK = 8
"""Small enough for tiny CPU models to train in seconds. Kyutai fine-tunes the 7B at rank 128
(moshi's ``lora_rank`` default); the rank scales the adapters' size, not the model's."""

DEFAULT_SCALING = 2.0
"""Moshi's default: keep it and sweep the learning rate when changing the rank."""

LORA_WEIGHTS = ("lora_A.weight", "lora_B.weight")


def lora_layers(lm: torch.nn.Module) -> list[LoRALinear]:
    return [module for module in lm.modules() if isinstance(module, LoRALinear)]


def has_lora(lm: torch.nn.Module) -> bool:
    return bool(lora_layers(lm))


def is_lora_weight(name: str) -> bool:
    return name.endswith(LORA_WEIGHTS)


def add_lora(lm: LMModel, rank: int = DEFAULT_RANK, scaling: float = DEFAULT_SCALING) -> LMModel:
    """Wraps every linear layer of ``lm`` (in place) in a LoRA adapter and freezes the rest.

    moshi initialises both adapter matrices at random; ``lora_B`` is zeroed here, as in the LoRA
    paper, so that training starts from the unchanged policy. Only the adapters require grad.
    """
    if has_lora(lm):
        raise ValueError("the LM already has LoRA adapters")
    if rank < 1:
        raise ValueError(f"LoRA rank must be positive, got {rank}")
    replace_all_linear_with_lora(lm, rank, scaling)
    for layer in lora_layers(lm):
        torch.nn.init.zeros_(layer.lora_B.weight)
    for name, parameter in lm.named_parameters():
        parameter.requires_grad_(is_lora_weight(name))
    return lm


@contextmanager
def adapters_disabled(lm: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Makes every ``LoRALinear`` compute exactly its frozen layer inside the block.

    A zero scaling adds an exact zero to the frozen output. The scalings come back even if the
    block raises, so a failed reference pass cannot silently train a different policy.
    Compiled or CUDA-graphed code may have captured the scaling: use it in eager passes.
    """
    layers = lora_layers(lm)
    scalings = [layer.scaling for layer in layers]
    try:
        for layer in layers:
            layer.scaling = 0.0
        yield lm
    finally:
        for layer, scaling in zip(layers, scalings, strict=True):
            layer.scaling = scaling


def frozen_copy(lm: LMModel) -> LMModel:
    """A deep copy that no optimizer can move: the reference for full fine-tuning."""
    frozen = copy.deepcopy(lm).eval()
    frozen.requires_grad_(False)
    return frozen


class ReferenceModel:
    """The policy as it was before training, to score rollouts with for a KL penalty.

    ``mode="adapters"`` (the default for an LM with LoRA) shares the policy's weights and turns
    its adapters off while in use; ``mode="copy"`` (the default otherwise) keeps a frozen copy
    taken now, so build it before the first optimizer step. Score under ``torch.no_grad()``.
    """

    def __init__(self, lm: LMModel, mode: Literal["adapters", "copy"] | None = None):
        mode = mode or ("adapters" if has_lora(lm) else "copy")
        if mode == "adapters" and not has_lora(lm):
            raise ValueError("mode='adapters' needs an LM with LoRA adapters (see add_lora)")
        if mode not in ("adapters", "copy"):
            raise ValueError(f"unknown reference mode {mode!r}; use 'adapters' or 'copy'")
        self.mode = mode
        self.policy = lm
        self.frozen = frozen_copy(lm) if mode == "copy" else None

    @contextmanager
    def use(self) -> Iterator[LMModel]:
        """Yields the LM to call for reference scores, whichever way they are kept."""
        if self.frozen is not None:
            yield self.frozen
            return
        with adapters_disabled(self.policy):
            yield self.policy
