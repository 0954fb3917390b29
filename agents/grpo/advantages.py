"""Group-relative advantages: how much better a rollout did than its group's other rollouts.

GRPO replaces a learned critic with the group: G rollouts of the same scenario, each rollout's
advantage its reward relative to the group. Several reward terms (a timing reward and an LLM
judge, say) can be normalised apart before they are summed (decoupled normalisation, GDPO), so
that a term with a large spread does not drown the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

ScaleRewards = Literal["group", "batch", "none"]
EPS = 1e-4


@dataclass(frozen=True)
class Advantages:
    """Per-rollout advantages, and how many groups gave no signal (all rewards equal)."""

    values: np.ndarray
    flat_groups: int
    groups: int


def _groups(values: np.ndarray, group_size: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or group_size < 1 or len(values) % group_size:
        raise ValueError(
            f"expected a 1-D array whose length ({values.shape}) is a multiple of group_size "
            f"({group_size})"
        )
    return values.reshape(-1, group_size)


def group_advantages(
    rewards: np.ndarray, group_size: int, scale_rewards: ScaleRewards = "group"
) -> Advantages:
    """``r - mean(group)``, divided by the group's std (``"group"``, the GRPO paper), the whole
    batch's std (``"batch"``) or nothing (``"none"``, Dr. GRPO). Stds are unbiased (n - 1), as
    TRL computes them; a group with one rollout has no spread.
    """
    grouped = _groups(rewards, group_size)
    centred = grouped - grouped.mean(axis=1, keepdims=True)
    spread = (
        grouped.std(axis=1, ddof=1, keepdims=True)
        if group_size > 1
        else np.zeros_like(centred[:, :1])
    )
    flat = int(np.sum(np.all(centred == 0.0, axis=1)))
    if scale_rewards == "group":
        centred = centred / (spread + EPS)
    elif scale_rewards == "batch":
        centred = centred / (np.std(grouped, ddof=1) + EPS if grouped.size > 1 else 1.0)
    elif scale_rewards != "none":
        raise ValueError(f"scale_rewards must be 'group', 'batch' or 'none', got {scale_rewards!r}")
    return Advantages(centred.reshape(-1), flat, grouped.shape[0])


def decoupled_advantages(
    terms: dict[str, np.ndarray],
    group_size: int,
    weights: dict[str, float] | None = None,
    batch_norm: bool = True,
) -> Advantages:
    """Each reward term z-scored within its group, then summed with ``weights`` (default 1),
    and with ``batch_norm`` the sum z-scored once more over the whole batch (GDPO, arXiv
    2601.05242: it keeps the advantage's scale the same however many terms are summed). The
    batch step uses the unbiased std, as the group step does.

    A missing value (NaN: a judge request that failed, a term the rollout's axis does not have)
    takes no part in its group's mean and std, and that rollout gets 0 for the term: neither
    better nor worse than its group on something that was not measured, which is also what the
    group's mean rollout gets. Its other terms still count. So a term missing from a whole group
    (or present in one rollout only, which has nothing to be compared with) drops out of that
    group, and a group whose every term drops out is flat. ``+-inf`` is rejected: it is not a
    missing value but a broken reward.
    """
    if not terms:
        raise ValueError("no reward terms to normalise")
    lengths = {name: np.shape(values) for name, values in terms.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"reward terms must have the same shape, got {lengths}")
    infinite = sorted(name for name, values in terms.items() if np.isinf(values).any())
    if infinite:
        raise ValueError(f"reward terms {infinite} hold +-inf; use NaN for a missing value")
    weights = weights or {}
    unknown = set(weights) - set(terms)
    if unknown:
        raise ValueError(
            f"weights for unknown reward terms {sorted(unknown)}; terms: {sorted(terms)}"
        )
    total: np.ndarray | None = None
    for name, values in terms.items():
        grouped = _groups(values, group_size)
        present = ~np.isnan(grouped)
        count = present.sum(axis=1, keepdims=True)
        filled = np.where(present, grouped, 0.0)
        mean = filled.sum(axis=1, keepdims=True) / np.maximum(count, 1)
        var = np.where(present, (filled - mean) ** 2, 0.0).sum(axis=1, keepdims=True)
        std = np.sqrt(var / np.maximum(count - 1, 1))
        z = np.where(present, (filled - mean) / (std + EPS), 0.0)
        z = weights.get(name, 1.0) * z
        total = z if total is None else total + z
    assert total is not None
    flat_rows = np.all(np.abs(total) < 1e-12, axis=1)
    if batch_norm and total.size > 1:
        spread = np.std(total, ddof=1)
        total = (total - total.mean()) / (spread + EPS)
        total[flat_rows] = 0.0  # a group with nothing measured stays without signal
    return Advantages(total.reshape(-1), int(flat_rows.sum()), total.shape[0])
