"""Seconds per GRPO iteration, split into rollout, log-prob pass and update.

For the tiny base model on CPU at G = 4, 8, 16 (two groups per iteration, the tiny defaults
otherwise). The rollout includes the envs' reward scoring (microseconds: the rewards are
interval arithmetic at the episode's end); the log-prob pass scores every rollout under the old
and the reference weights; the update is the minibatch backward passes and optimizer steps.
Each G runs twice: with the group's user audio encoded once per group (the trainer's way) and
once per rollout (``shared encode`` no), on the same rollout seeds.

    NO_TORCH_COMPILE=1 python benchmarks/grpo_step.py [--group-sizes 4 8 16] [--iterations 2]
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch

from agents.grpo.trainer import GRPOConfig, GRPOTrainer
from agents.moshi.warmstart import tiny_base_models


def measure(group_size: int, iterations: int, shared: bool) -> dict[str, float]:
    config = GRPOConfig(groups=2, group_size=group_size, iterations=iterations + 1)
    with tempfile.TemporaryDirectory() as out:
        trainer = GRPOTrainer(config, tiny_base_models(), out)
        if not shared:
            trainer.rollout_policy = trainer.policy  # Mimi encodes every rollout's audio
        trainer.train_iteration()  # warm-up: scenario synthesis, first allocations
        records = [trainer.train_iteration() for _ in range(iterations)]
    keys = ("time_rollout_s", "time_scoring_s", "time_update_s", "updates")
    return {k: float(np.mean([r[k] for r in records])) for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group-sizes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--iterations", type=int, default=2, help="measured iterations each")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"tiny base model, CPU, {args.threads} torch thread(s); 2 groups per iteration")
    print(
        f"{'G':>3} {'rollouts':>8} {'shared encode':>13} {'rollout s':>10} {'log-prob s':>11} "
        f"{'update s':>9} {'updates':>8} {'total s':>8}"
    )
    for g in args.group_sizes:
        for shared in (True, False):
            t = measure(g, args.iterations, shared)
            total = t["time_rollout_s"] + t["time_scoring_s"] + t["time_update_s"]
            print(
                f"{g:>3} {2 * g:>8} {'yes' if shared else 'no':>13} {t['time_rollout_s']:>10.2f} "
                f"{t['time_scoring_s']:>11.2f} {t['time_update_s']:>9.2f} {t['updates']:>8.1f} "
                f"{total:>8.2f}"
            )
    print("7B-sized model on GPU: not measured by this script yet (benchmarks/rollout.py times")
    print("the 7B streaming step when a GPU is present)")


if __name__ == "__main__":
    main()
