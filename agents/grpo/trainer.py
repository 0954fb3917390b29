"""The GRPO trainer: group rollouts of a streaming Moshi, group advantages, clipped updates.

One iteration, as in the paper: draw ``groups`` scenarios (from one or more axes), roll each out
``group_size`` times in one batched streaming model, score every rollout with its axis reward,
turn rewards into group-relative advantages, score the rollouts once under the current (old) and
the reference weights, then update on minibatches of ``rollouts_per_update`` rollouts (the paper
uses 1, so a group of 16 makes 16 updates). Launched with ``torchrun --nproc_per_node N``, each
rank rolls out its own groups and the ranks average their gradients. Hyperparameters live in
:class:`GRPOConfig`, whose defaults are documented CPU settings for the tiny model; the paper's
7B settings are noted per field.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tensordict import TensorDict

from agents.evaluate import AxisResult, evaluate
from agents.grpo.advantages import ScaleRewards, decoupled_advantages, group_advantages
from agents.grpo.loss import GRPOLoss, LossType
from agents.moshi.logprobs import MoshiScorer
from agents.moshi.lora import ReferenceModel, add_lora
from agents.moshi.models import MoshiModels
from agents.moshi.policy import MoshiPolicy, SamplingConfig
from agents.moshi.rollout import Rollout, rollout
from fdenv.atomic import atomic_path
from fdenv.axes import PAPER_AXES
from fdenv.vector import FullDuplexVectorEnv

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"


@dataclass
class GRPOConfig:
    """Settings of a GRPO run. Defaults: the tiny model on 2 CPU cores (paper values noted)."""

    axes: tuple[str, ...] = tuple(a.name for a in PAPER_AXES)
    """Axes to train on; each group draws one uniformly."""
    iterations: int = 40
    """Paper: 100 epochs of 32 segments."""
    groups: int = 4
    """Scenarios (groups) per iteration; paper: 32 segments, one group per GPU."""
    group_size: int = 8
    """Rollouts per scenario, G; paper: 16."""
    rollouts_per_update: int = 2
    """Minibatch size in rollouts; paper: 1 (16 updates per group)."""
    lr: float = 5e-4
    """Peak learning rate; paper: 2e-7 for full fine-tuning of the 7B."""
    warmup_iterations: int = 2
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 2.0
    epsilon: float = 0.2
    epsilon_high: float | None = None
    beta: float = 0.01
    """KL weight against the initial model (paper: 0.01)."""
    loss_type: LossType = "grpo"
    scale_rewards: ScaleRewards = "group"
    stream_weights: tuple[float, ...] = (1.0,) + (0.0,) * 8
    """Text, then 8 audio codebooks; the paper optimises text tokens only."""
    reward_weights: dict[str, float] | None = None
    """Weights for decoupled normalisation when rollouts carry several reward terms."""
    lora_rank: int = 0
    """0 = full fine-tuning with a frozen reference copy; > 0 = LoRA, reference = adapters off."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    num_scenarios: int = 256
    """Training scenarios per axis (synthetic, seed ``scenario_seed``)."""
    scenario_seed: int = 1
    """Seed of the training scenarios: the warm-start uses 0, held-out evaluation 1000."""
    eval_every: int = 20
    eval_episodes: int = 40
    checkpoint_every: int = 5
    seed: int = 0


class GRPOTrainer:
    """Trains ``models.lm`` in place; :meth:`run` goes until ``config.iterations``."""

    def __init__(self, config: GRPOConfig, models: MoshiModels, out_dir: str | Path) -> None:
        self.config = config
        self.models = models
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        lm = models.lm
        if config.lora_rank > 0:
            add_lora(lm, rank=config.lora_rank)
        self.reference = ReferenceModel(lm) if config.beta > 0 else None
        self.policy = MoshiPolicy(models, config.sampling)
        self.scorer = MoshiScorer(lm, config.sampling, with_audio=any(config.stream_weights[1:]))
        self.loss = GRPOLoss(
            self.scorer,
            list(config.stream_weights),
            epsilon=config.epsilon,
            epsilon_high=config.epsilon_high,
            beta=config.beta,
            loss_type=config.loss_type,
        )
        params = [p for p in lm.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        self.env = FullDuplexVectorEnv(
            config.groups * config.group_size,
            list(config.axes),
            group_size=config.group_size,
            autoreset_mode="Disabled",
            text_card=models.text_card,
            audio_card=models.audio_card,
            num_scenarios=config.num_scenarios,
            scenario_seed=config.scenario_seed,
        )
        self.iteration = 0
        self.history: list[dict[str, Any]] = []
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if distributed else 0
        self.world = dist.get_world_size() if distributed else 1
        torch.manual_seed(config.seed * 7919 + self.rank)  # sampling differs per rank

    def learning_rate(self, iteration: int) -> float:
        """Linear warm-up, then cosine decay to 0 at the last iteration."""
        warmup = self.config.warmup_iterations
        if iteration < warmup:
            return self.config.lr * (iteration + 1) / (warmup + 1)
        progress = (iteration - warmup) / max(1, self.config.iterations - warmup)
        return self.config.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    # --- one iteration -------------------------------------------------------------------------

    def advantages(self, result: Rollout) -> tuple[np.ndarray, int]:
        """Group-relative advantages; several reward terms are normalised apart (GDPO)."""
        terms = result.reward_terms
        if (
            len({k for k, v in terms.items() if not np.all(np.isnan(v))}) > 1
            and self.config.reward_weights
        ):
            adv = decoupled_advantages(terms, self.config.group_size, self.config.reward_weights)
        else:
            adv = group_advantages(
                result.rewards, self.config.group_size, self.config.scale_rewards
            )
        return adv.values, adv.flat_groups

    def train_iteration(self) -> dict[str, Any]:
        config = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.iteration)
        started = time.perf_counter()
        seed = config.seed * 1_000_003 + self.iteration * self.world + self.rank
        result = rollout(self.policy, self.env, seed=seed)
        rolled = time.perf_counter()
        advantage, flat_groups = self.advantages(result)
        batch = self._batch(result, advantage)
        scored = time.perf_counter()
        losses = self.update(batch)
        self.iteration += 1
        record: dict[str, Any] = {
            "iteration": self.iteration,
            "lr": self.optimizer.param_groups[0]["lr"],
            "reward": float(result.rewards.mean()),
            "reward_by_axis": _by_axis(result),
            "flat_groups": flat_groups,
            "updates": len(losses),
            "time_rollout_s": rolled - started,
            "time_scoring_s": scored - rolled,
            "time_update_s": time.perf_counter() - scored,
        }
        for key in ("loss_objective", "loss_kl", "kl", "clip_fraction", "entropy", "grad_norm"):
            values = [step[key] for step in losses if key in step]
            if values:
                record[key] = float(np.mean(values))
        return record

    def update(self, batch: TensorDict) -> list[dict[str, float]]:
        """Minibatch updates over the rollouts that carry signal (non-zero advantage).

        Under torch.distributed every rank makes the same number of updates, over all its
        rollouts (a flat group's zero advantage gives no gradient anyway), and averages the
        gradients of all ranks before each step, so the ranks' weights stay identical.
        """
        config = self.config
        params = [p for p in self.models.lm.parameters() if p.requires_grad]
        advantage = batch["advantage"].numpy()
        rollouts = np.arange(len(advantage)) if self.world > 1 else np.flatnonzero(advantage)
        order = np.random.default_rng([config.seed, self.iteration, self.rank]).permutation(
            rollouts
        )
        losses = []
        for first in range(0, len(order), config.rollouts_per_update):
            index = torch.as_tensor(order[first : first + config.rollouts_per_update])
            out = self.loss(batch[index])
            total = sum(v for k, v in out.items() if k.startswith("loss_"))
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            if self.world > 1:  # the same parameters get gradients on every rank
                for param in params:
                    if param.grad is not None:
                        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
                        param.grad /= self.world
            grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            self.optimizer.step()
            values = {k: float(v.detach()) for k, v in out.items()}
            losses.append(values | {"grad_norm": float(grad_norm)})
        return losses

    @torch.no_grad()
    def _batch(self, result: Rollout, advantage: np.ndarray) -> TensorDict:
        """The rollouts with their advantages and their old and reference log-probs."""
        old = self.scorer(result.codes, result.trainable)[0]
        data = {
            "tokens": result.codes,
            "trainable": result.trainable,
            "advantage": torch.as_tensor(advantage, dtype=torch.float32),
            "old_logprob": old,
        }
        if self.reference is not None:
            with self.reference.use() as reference_lm:
                scorer = MoshiScorer(reference_lm, self.config.sampling, self.scorer.with_audio)
                ref = scorer(result.codes, result.trainable)[0]
            data["ref_logprob"] = ref
        return TensorDict(data, batch_size=[len(advantage)])

    # --- the run -------------------------------------------------------------------------------

    def evaluate(self) -> dict[str, AxisResult]:
        """Held-out rewards per axis; runs on its own random stream, so how often a run
        evaluates never changes what it trains on."""
        with torch.random.fork_rng():
            torch.manual_seed(self.config.seed)
            return evaluate(self.policy, list(self.config.axes), self.config.eval_episodes)

    def run(self, progress: bool = True) -> list[dict[str, Any]]:
        """Trains until ``config.iterations``, evaluating, logging and checkpointing on the way.

        Under torch.distributed only rank 0 evaluates, logs and writes checkpoints.
        """
        if self.rank > 0:
            while self.iteration < self.config.iterations:
                self.train_iteration()
            return self.history
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        log = (self.out_dir / LOG).open("a", encoding="utf-8")
        self._writer = SummaryWriter(str(self.out_dir / "tensorboard"))
        bar = tqdm(
            total=self.config.iterations,
            initial=self.iteration,
            disable=not progress,
            desc="GRPO",
            unit="it",
        )
        try:
            if self.iteration == 0:
                self._log(log, {"iteration": 0, "eval": _as_json(self.evaluate())})
            while self.iteration < self.config.iterations:
                record = self.train_iteration()
                last = self.iteration == self.config.iterations
                if self.iteration % self.config.eval_every == 0 or last:
                    record["eval"] = _as_json(self.evaluate())
                self._log(log, record)
                if self.iteration % self.config.checkpoint_every == 0 or last:
                    self.save()
                bar.update(1)
                bar.set_postfix(reward=f"{record['reward']:+.2f}", kl=f"{record.get('kl', 0):.3f}")
        finally:
            bar.close()
            log.close()
            self._writer.close()
        return self.history

    def _log(self, log, record: dict[str, Any]) -> None:
        self.history.append(record)
        log.write(json.dumps(record) + "\n")
        log.flush()
        step = record["iteration"]
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "iteration":
                self._writer.add_scalar(f"train/{key}", value, step)
        for axis, value in record.get("reward_by_axis", {}).items():
            self._writer.add_scalar(f"train_reward/{axis}", value, step)
        for axis, result in record.get("eval", {}).items():
            self._writer.add_scalar(f"eval_reward/{axis}", result["mean"], step)

    # --- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "iteration": self.iteration,
            "lm": self.models.lm.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
        }

    def save(self) -> Path:
        """Writes the run's state atomically; :meth:`resume` continues from it exactly."""
        path = self.out_dir / CHECKPOINT
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)
        return path

    def resume(self) -> bool:
        """Loads ``out_dir/checkpoint.pt`` if there is one; returns whether it did."""
        path = self.out_dir / CHECKPOINT
        if not path.is_file():
            return False
        state = torch.load(path, weights_only=False)
        self.models.lm.load_state_dict(state["lm"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        self.iteration = state["iteration"]
        self.history = state["history"]
        return True


def _by_axis(result: Rollout) -> dict[str, float]:
    axes = np.array(result.axes)
    return {axis: float(result.rewards[axes == axis].mean()) for axis in sorted(set(result.axes))}


def _as_json(results: dict[str, AxisResult]) -> dict[str, dict[str, Any]]:
    return {
        a: {"mean": r.mean, "low": r.low, "high": r.high, "rewards": list(r.rewards)}
        for a, r in results.items()
    }
