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
import pickle
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, get_args

import numpy as np
import torch
import torch.distributed as dist
from tensordict import TensorDict
from torchrl.objectives import LossModule

from agents.evaluate import AxisResult, evaluate
from agents.grpo.advantages import ScaleRewards, decoupled_advantages, group_advantages
from agents.grpo.loss import GRPOLoss, LossType
from agents.grpo.sharding import (
    global_norm,
    is_sharded,
    load_model_state,
    load_optimizer_state,
    model_state,
    optimizer_state,
    shard,
    trained_parameter_names,
    unsharded,
)
from agents.moshi.logprobs import MoshiScorer
from agents.moshi.lora import ReferenceModel, add_lora
from agents.moshi.models import MoshiModels
from agents.moshi.policy import MoshiPolicy, SamplingConfig
from agents.moshi.rollout import Rollout, rollout, spoken_after
from agents.report import eval_json
from fdenv.agent import env_for
from fdenv.atomic import atomic_path, clean_stale_temporaries
from fdenv.axes import PAPER_AXES, Axis
from fdenv.config import EnvConfig, changed_settings, plain
from fdenv.judge.client import ChatCompletionsJudge, load_rubric
from fdenv.judge.reward import JUDGED_AXES, judge_terms
from fdenv.judge.reward import TERM as JUDGE_TERM
from fdenv.registration import expand_axes, get_axis, registered_axes
from fdenv.vector import FullDuplexVectorEnv

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
RESUMABLE = frozenset(
    {
        "iterations",
        "eval_every",
        "checkpoint_every",
        "judge.url",
        "judge.key_env",
        "judge.concurrency",
        "judge.timeout_s",
    }
)
"""Settings a resumed run may change without ``allow_changes``: how long it runs (more
iterations extend a run; the cosine learning rate and the context curriculum then stretch over
the new length from where the run is), how often it evaluates and checkpoints, and how the
judge's server is reached (not which model grades nor by what rubric)."""


@dataclass
class JudgeConfig:
    """An OpenAI-compatible chat-completions server that grades replies 0-2 (the paper's
    R_llm), added as the reward term ``llm`` and normalised apart from the timing reward."""

    url: str
    """Base URL, for example ``http://127.0.0.1:8000/v1`` (``vllm serve``)."""
    model: str
    """The model name the server serves (``vllm serve``'s ``--served-model-name``)."""
    axes: tuple[str, ...] = tuple(a.name for a in JUDGED_AXES)
    """Names of the judged axes: the trainer judges its env's axis of each name (a registered
    axis it does not train on is never met; an unknown name raises)."""
    key_env: str | None = None
    """Environment variable holding the API key (never logged); ``None`` sends no key."""
    rubric: str = "paper"
    """``paper`` (0-2), ``fdbench`` (0-5 relevance) or a JSON rubric file."""
    concurrency: int = 8
    """Requests in flight at once."""
    timeout_s: float = 30.0
    """Seconds before a request counts as failed (its reward term is then missing)."""


@dataclass
class GRPOConfig:
    """Settings of a GRPO run. Defaults: the tiny model on 2 CPU cores (paper values noted)."""

    axes: tuple[str | Axis, ...] = tuple(a.name for a in PAPER_AXES)
    """Axes to train on, names or axis objects (an object scores with its own settings); each
    group plays one, uniformly unless ``env.axis_weights`` says otherwise."""
    env: EnvConfig = field(
        default_factory=lambda: EnvConfig(num_scenarios=256, scenario_seed=1, voice="audio")
    )
    """The training env: scenarios (``None``: 256 synthetic per axis from seed 1; the warm start
    uses seed 0 and held-out evaluation 1000), axis weights, acoustics, lead-in, voice (by
    default the paper's audio path: the model's audio tokens decoded, then Silero VAD). Its
    vocabulary sizes are the model's. Evaluation plays the held-out synthetic set in the same
    env settings, without the training scenarios and axis weights."""
    iterations: int = 40
    """Paper: 100 epochs of 32 segments."""
    groups: int = 4
    """Scenarios (groups) per iteration; paper: 32 segments, one group per GPU."""
    balanced_axes: bool = True
    """Split each iteration's groups between the axes by their weights (each axis gets the
    floor or ceiling of its share: one group per axis with 4 groups and 4 axes) instead of
    drawing each group's axis independently (``False``), which leaves most iterations of a few
    groups without some axis, so an update pulls towards the axes that happened to be drawn."""
    group_size: int = 8
    """Rollouts per scenario, G (TRL's ``num_generations``); paper: 16."""
    rollouts_per_update: int = 2
    """Minibatch size in rollouts; paper: 1 (16 updates per group). At most ``groups *
    group_size``; the updates go over every rollout, those of flat groups (advantage 0)
    included, so the last minibatch of an iteration holds what remains when the count does not
    divide."""
    lr: float = 5e-4
    """Peak learning rate; paper: 2e-7 for full fine-tuning of the 7B."""
    warmup_iterations: int = 2
    """Iterations of linear warm-up to ``lr``, then cosine decay to 0 at the last iteration."""
    weight_decay: float = 0.1
    """AdamW's decoupled weight decay."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW's moment decay rates, each in [0, 1)."""
    grad_clip: float = 2.0
    """Largest gradient norm per update (larger gradients are scaled down to it)."""
    epsilon: float = 0.2
    """Clip range of the probability ratio below 1: ``clip(r, 1 - epsilon, 1 + epsilon_high)``."""
    epsilon_high: float | None = None
    """Clip range above 1 (DAPO's clip-higher, e.g. 0.28); ``None``: ``epsilon``."""
    beta: float = 0.04
    """Weight of the k3 KL to the initial model; 0 skips the reference pass. Paper: 0.01, for
    the 7B at lr 2e-7. At this CPU learning rate 0.01 let one of three demo seeds fall silent
    (its groups went flat and the KL did not hold it); 0.04 kept all three near the base."""
    beta_by_axis: dict[str, float] = field(
        default_factory=lambda: {"PauseHandling": 0.4, "Backchannel": 0.4}
    )
    """KL weight for the rollouts of the named axes in place of ``beta`` (registered axis names;
    those not trained on are ignored; ``{}``: ``beta`` everywhere). A group whose rollouts all
    score the same (a pause group where every rollout stays silent) teaches nothing through its
    advantage, while the turn-taking and interruption groups pull the shared weights towards
    speaking sooner; the KL term holds the base's silence in pauses and its short backchannels.
    0.4 kept pause take-overs within noise on seven demo seeds of eight; ``beta`` alone let the
    pause get worse on two seeds of three (README, the demo's results)."""
    loss_type: LossType = "grpo"
    """Token aggregation: ``grpo`` (mean per rollout, then over rollouts), ``dapo`` (mean over
    all tokens) or ``dr_grpo`` (sum over a constant)."""
    scale_rewards: ScaleRewards = "group"
    """Advantage scale: the group's reward std (``group``), the batch's (``batch``) or none
    (``none``, Dr. GRPO)."""
    axis_credit: bool = False
    """Credit each rollout's advantage only to the frames from which its axis' reward is
    decided (:meth:`~fdenv.axes.base.Axis.credit_start`: the turn end for turn-taking, the
    interruption's start for interruptions, the whole scenario for pauses and backchannels);
    earlier frames keep their KL term, and the objective still averages over every frame, so a
    turn-taking rollout's pull shrinks with the share of it credited. ``False``: every frame of
    the scenario, as GRPO and the paper do, so a turn-taking rollout that answered fast also
    reinforces what it said in the user's mid-turn gaps."""
    stream_weights: tuple[float, ...] = (1.0,) + (0.0,) * 8
    """Text, then 8 audio codebooks; the paper optimises text tokens only. Weighing an audio
    codebook runs the depth transformer up to the last one weighted: the semantic codebook
    alone (``1 1 0 0 0 0 0 0 0``) made a demo iteration about 7% longer."""
    reward_weights: dict[str, float] | None = None
    """GDPO: when rollouts carry several reward terms (a judge's ``llm`` beside the timing),
    each is z-scored within its group, then summed with these weights (``None``: equal, as the
    paper)."""
    gdpo_batch_norm: bool = True
    """GDPO's last step: the summed advantage z-scored once more over the whole batch (the GDPO
    paper does; ``False`` keeps the plain sum, the Moshi paper's description). Only used when
    several terms are combined."""
    lora_rank: int = 0
    """0 = full fine-tuning with a frozen reference copy; > 0 = LoRA, reference = adapters off."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    """Moshi's sampler in rollouts; the log-probabilities of the loss are the sampler's too."""
    eval_every: int = 20
    """Held-out evaluation every this many iterations (and before the first, after the last)."""
    eval_episodes: int = 40
    """Held-out episodes per axis in each evaluation."""
    checkpoint_every: int = 5
    """``checkpoint.pt`` every this many iterations (and after the last)."""
    seed: int = 0
    """Seed of the rollouts, the update order and the context curriculum (>= 0)."""
    context_prob: float = 0.5
    """Context curriculum (paper): with this probability a group's scenario is preceded by up
    to ``context_max_s`` of its recorded context (mined scenarios have one; others ignore it)."""
    context_max_s: float = 30.0
    """l_max: a context lasts U[0, l_max] s, l_max rising linearly from 0 to this over the run."""
    judge: JudgeConfig | None = None
    """LLM judge on the turn-taking and interruption axes; ``None``: timing rewards only."""
    fsdp: bool = False
    """Shard weights, gradients and optimizer state across torchrun ranks (see
    :mod:`agents.grpo.sharding`); for full fine-tuning of the 7B. Resume with the same setting."""

    def __post_init__(self) -> None:
        """Checks every setting before a run does any work; a message names the field and what
        it accepts. Lists given for tuples become tuples."""
        for name in ("axes", "betas", "stream_weights"):
            value = getattr(self, name)
            if not isinstance(value, tuple | list):
                raise ValueError(f"GRPOConfig.{name} must be a tuple, got {value!r}")
            setattr(self, name, tuple(value))
        if not self.axes or not all(isinstance(a, str | Axis) for a in self.axes):
            raise ValueError(
                f"GRPOConfig.axes must name at least one axis (names or Axis objects), "
                f"got {self.axes!r}"
            )
        for name, accepted in SETTING_RANGES.items():
            accepted.check(name, getattr(self, name))
        if self.rollouts_per_update > self.groups * self.group_size:
            raise ValueError(
                "GRPOConfig.rollouts_per_update must be at most groups * group_size "
                f"({self.groups * self.group_size}), got {self.rollouts_per_update}"
            )
        if self.epsilon_high is not None:
            Range(float, self.epsilon).check("epsilon_high", self.epsilon_high)
        if len(self.betas) != 2:
            raise ValueError(f"GRPOConfig.betas must be 2 numbers, got {self.betas!r}")
        for value in self.betas:
            UNIT.check("betas", value)
        for value in self.stream_weights:
            WEIGHT.check("stream_weights", value)
        if not any(self.stream_weights):
            raise ValueError("GRPOConfig.stream_weights must weigh at least one stream above 0")
        if self.reward_weights is not None and not isinstance(self.reward_weights, Mapping):
            raise ValueError(
                f"GRPOConfig.reward_weights must be None or a dict of term weights, "
                f"got {self.reward_weights!r}"
            )
        if not isinstance(self.beta_by_axis, Mapping):
            raise ValueError(
                f"GRPOConfig.beta_by_axis must be a dict of axis weights, got {self.beta_by_axis!r}"
            )
        for name in ("reward_weights", "beta_by_axis"):
            for value in (getattr(self, name) or {}).values():
                WEIGHT.check(name, value)
        unknown = sorted(set(self.beta_by_axis) - set(registered_axes()))
        if unknown:
            raise ValueError(
                f"GRPOConfig.beta_by_axis names unknown axes {unknown} "
                f"(registered: {', '.join(sorted(registered_axes()))})"
            )
        for name, choices in (("loss_type", LossType), ("scale_rewards", ScaleRewards)):
            if getattr(self, name) not in get_args(choices):
                raise ValueError(
                    f"GRPOConfig.{name} must be one of {get_args(choices)}, "
                    f"got {getattr(self, name)!r}"
                )
        for name, kind in (
            ("env", EnvConfig),
            ("sampling", SamplingConfig),
            ("fsdp", bool),
            ("gdpo_batch_norm", bool),
        ):
            if not isinstance(getattr(self, name), kind):
                raise ValueError(f"GRPOConfig.{name} must be a {kind.__name__}")
        if self.judge is not None and not isinstance(self.judge, JudgeConfig):
            raise ValueError("GRPOConfig.judge must be None or a JudgeConfig")
        if not isinstance(self.env.voice, str):
            raise ValueError(
                "GRPOConfig.env.voice must be a name ('audio' or 'text'): the trainer builds one "
                "voice for its rollouts and one per evaluation, and a Voice object serves one "
                "env at a time"
            )


class Range(NamedTuple):
    """The values a number setting accepts: ``kind`` (int or float) from ``low`` to ``high``,
    a bound excluded where it is open."""

    kind: type
    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def check(self, name: str, value: Any) -> None:
        """``ValueError`` naming ``GRPOConfig.name`` and the range unless ``value`` is in it."""
        number = isinstance(value, int if self.kind is int else int | float)
        inside = (
            number
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value > self.low if self.low_open else value >= self.low)
            and (value < self.high if self.high_open else value <= self.high)
        )
        if inside:
            return
        what = "an integer" if self.kind is int else "a number"
        bounds = f"{'>' if self.low_open else '>='} {self.low}"
        if self.high < math.inf:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            bounds = f"in {left}{self.low}, {self.high}{right}"
        raise ValueError(f"GRPOConfig.{name} must be {what} {bounds}, got {value!r}")


SETTING_RANGES = {
    "iterations": Range(int, 1),
    "groups": Range(int, 1),
    "group_size": Range(int, 1),
    "rollouts_per_update": Range(int, 1),
    "warmup_iterations": Range(int, 0),
    "lora_rank": Range(int, 0),
    "eval_every": Range(int, 1),
    "eval_episodes": Range(int, 1),
    "checkpoint_every": Range(int, 1),
    "seed": Range(int, 0),
    "lr": Range(float, 0.0, low_open=True),
    "weight_decay": Range(float, 0.0),
    "grad_clip": Range(float, 0.0, low_open=True),
    "epsilon": Range(float, 0.0, low_open=True),
    "beta": Range(float, 0.0),
    "context_prob": Range(float, 0.0, 1.0),
    "context_max_s": Range(float, 0.0),
}
"""GRPOConfig's number fields and their ranges (the seed is a numpy seed: >= 0)."""
UNIT = Range(float, 0.0, 1.0, high_open=True)
"""Each of AdamW's betas."""
WEIGHT = Range(float, 0.0)
"""A stream's or a reward term's weight."""


LossFactory = Callable[[MoshiScorer, "GRPOConfig"], LossModule]
"""Builds the policy loss from the trainer's scorer and config (see :func:`grpo_loss`)."""


def scored_audio_codebooks(stream_weights: tuple[float, ...]) -> int:
    """How many leading audio codebooks the scorer must score: up to the last one weighted."""
    weighted = [k for k, weight in enumerate(stream_weights[1:], start=1) if weight > 0]
    return max(weighted, default=0)


def grpo_loss(scorer: MoshiScorer, config: GRPOConfig) -> LossModule:
    """The default loss: :class:`GRPOLoss` with the config's clip, KL and aggregation."""
    return GRPOLoss(
        scorer,
        list(config.stream_weights),
        epsilon=config.epsilon,
        epsilon_high=config.epsilon_high,
        beta=config.beta,
        loss_type=config.loss_type,
    )


class GRPOTrainer:
    """Trains ``models.lm`` in place; :meth:`run` goes until ``config.iterations``.

    ``make_loss`` swaps the objective (for example REINFORCE) while keeping the rollouts, the
    advantages and the update loop: the loss gets a TensorDict with ``tokens``, ``trainable``,
    ``advantage``, ``old_logprob``, ``beta`` (each rollout's KL weight) when
    ``config.beta_by_axis`` names a trained axis, and, when a KL weight is above 0,
    ``ref_logprob``, and returns ``loss_*`` entries that are summed and minimised.
    """

    def __init__(
        self,
        config: GRPOConfig,
        models: MoshiModels,
        out_dir: str | Path,
        make_loss: LossFactory = grpo_loss,
    ) -> None:
        self.config = config
        self.models = models
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        lm = models.lm
        if config.lora_rank > 0:
            add_lora(lm, rank=config.lora_rank)
        self.axes = expand_axes(list(config.axes))
        self.kl_weights = {a.name: config.beta_by_axis.get(a.name, config.beta) for a in self.axes}
        """Each trained axis' KL weight: ``beta`` unless ``beta_by_axis`` names the axis."""
        self.reference = ReferenceModel(lm) if any(self.kl_weights.values()) else None
        self.policy = MoshiPolicy(models, config.sampling)
        self.scorer = MoshiScorer(
            lm, config.sampling, scored_audio_codebooks(config.stream_weights)
        )
        self.loss = make_loss(self.scorer, config)
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if distributed else 0
        self.world = dist.get_world_size() if distributed else 1
        self._trained = trained_parameter_names(self.scorer)
        if config.fsdp:
            if not distributed:
                raise ValueError("fsdp=True needs torch.distributed (launch with torchrun)")
            shard(self.scorer)
        self.optimizer = torch.optim.AdamW(
            self._parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        self.env = FullDuplexVectorEnv(
            config.groups * config.group_size,
            self.axes,
            group_size=config.group_size,
            autoreset_mode="Disabled",
            config=env_for(self.policy, config.env),
        )
        shared = config.group_size if self.env.group_inputs_shared else 1
        self.rollout_policy = MoshiPolicy(models, config.sampling, shared_inputs=shared)
        """The same model for group rollouts: a group that replays one scenario hears the same
        user audio, so Mimi encodes it once per group; a user who reacts to each rollout
        (closed-loop axes) is heard per rollout."""
        self.eval_env = config.env.replace(
            scenarios=None,
            axis_weights=None,
            text_card=models.text_card,
            audio_card=models.audio_card,
        )
        """The held-out evaluations' env settings (each evaluation builds its own voice)."""
        self.judge = None
        self.judged_axes: list[Axis] = []
        if config.judge is not None:
            trained = {a.name: a for a in self.axes}
            self.judged_axes = [trained.get(n) or get_axis(n) for n in config.judge.axes]
            self.judge = ChatCompletionsJudge(
                config.judge.url,
                config.judge.model,
                api_key_env=config.judge.key_env,
                rubric=load_rubric(config.judge.rubric),
                max_concurrency=config.judge.concurrency,
                timeout_s=config.judge.timeout_s,
                cache_dir=self.out_dir / "judge_cache",
            )
        self.iteration = 0
        self.history: list[dict[str, Any]] = []
        torch.manual_seed(config.seed * 7919 + self.rank)  # sampling differs per rank

    def _parameters(self) -> list[torch.nn.Parameter]:
        """The parameters the objective trains (FSDP's shards once sharded)."""
        return [p for n, p in self.scorer.named_parameters() if n in self._trained]

    def learning_rate(self, iteration: int) -> float:
        """Linear warm-up, then cosine decay to 0 at the last iteration."""
        warmup = self.config.warmup_iterations
        if iteration < warmup:
            return self.config.lr * (iteration + 1) / (warmup + 1)
        progress = (iteration - warmup) / max(1, self.config.iterations - warmup)
        return self.config.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    # --- one iteration -------------------------------------------------------------------------

    def context_lengths(self, iteration: int) -> list[float]:
        """Seconds of recorded context to play before each group's scenario this iteration."""
        config = self.config
        l_max = config.context_max_s * iteration / max(1, config.iterations - 1)
        rng = np.random.default_rng([config.seed, iteration, self.rank, 1])
        used = rng.random(config.groups) < config.context_prob
        return np.where(used, rng.uniform(0.0, l_max, config.groups), 0.0).tolist()

    def advantages(self, result: Rollout) -> tuple[np.ndarray, int]:
        """Group-relative advantages; with the judge on or ``reward_weights`` set, each reward
        term is normalised apart and then summed (GDPO)."""
        terms = result.reward_terms
        if self.judge is not None or (
            len({k for k, v in terms.items() if not np.all(np.isnan(v))}) > 1
            and self.config.reward_weights
        ):
            adv = decoupled_advantages(
                terms,
                self.config.group_size,
                self.config.reward_weights,
                batch_norm=self.config.gdpo_batch_norm,
            )
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
        options: dict[str, Any] = {"context_s": self.context_lengths(self.iteration)}
        if config.balanced_axes:
            axis_rng = np.random.default_rng([config.seed, self.iteration, self.rank, 2])
            options["axis"] = self.env.sampler.balanced_axes(config.groups, axis_rng)
        with unsharded(self.scorer):
            result = rollout(self.rollout_policy, self.env, seed=seed, options=options)
        rolled = time.perf_counter()
        judged: dict[str, Any] = {}
        if self.judge is not None:
            terms = judge_terms(
                self.judge, result.episodes, self.models.tokenizer, axes=self.judged_axes
            )
            result.reward_terms[JUDGE_TERM] = terms.scores
            judged = terms.as_dict() | self.judge.stats.as_dict()
            judged["time_judge_s"] = time.perf_counter() - rolled
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
            "context_s": float(np.mean([e.context_s for e in result.episodes])),
            "time_rollout_s": rolled - started,
            "time_scoring_s": scored - rolled,
            "time_update_s": time.perf_counter() - scored,
        } | judged
        for key in ("loss_objective", "loss_kl", "kl", "clip_fraction", "entropy", "grad_norm"):
            values = [step[key] for step in losses if key in step]
            if values:
                record[key] = float(np.mean(values))
        return record

    def update(self, batch: TensorDict) -> list[dict[str, float]]:
        """Minibatch updates over all the rollouts, in a seeded random order.

        A rollout of a flat group (advantage 0) still takes its update, as TRL and the paper's
        16 updates per group do: with ``beta > 0`` it carries the KL gradient, and every update
        is an AdamW step (momentum and weight decay move the weights even at zero gradient). So
        the number of updates per iteration is fixed, and one process and torchrun train alike:
        under torch.distributed every rank makes the same number of updates and averages the
        gradients of all ranks before each step, so the ranks' weights stay identical.
        """
        config = self.config
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        advantage = batch["advantage"].numpy()
        order = np.random.default_rng([config.seed, self.iteration, self.rank]).permutation(
            len(advantage)
        )
        losses = []
        for first in range(0, len(order), config.rollouts_per_update):
            index = torch.as_tensor(order[first : first + config.rollouts_per_update])
            out = self.loss(batch[index])
            total = sum(v for k, v in out.items() if k.startswith("loss_"))
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            if self.world > 1 and not is_sharded(self.scorer):  # FSDP reduces by itself
                for param in params:
                    if param.grad is not None:
                        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
                        param.grad /= self.world
            grad_norm = global_norm([p.grad for p in params if p.grad is not None])
            torch.nn.utils.clip_grads_with_norm_(params, config.grad_clip, grad_norm)
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
        if self.config.axis_credit:
            data["advantage"] = data["advantage"][:, None] * self.credited(result)
        if set(self.kl_weights) & set(self.config.beta_by_axis):
            betas = [self.kl_weights[axis] for axis in result.axes]
            data["beta"] = torch.tensor(betas, dtype=torch.float32)
        if self.reference is not None:
            with self.reference.use() as reference_lm:
                scorer = (
                    self.scorer  # LoRA: the policy itself with its adapters off
                    if reference_lm is self.models.lm
                    else MoshiScorer(
                        reference_lm, self.config.sampling, self.scorer.audio_codebooks
                    )
                )
                ref = scorer(result.codes, result.trainable)[0]
            data["ref_logprob"] = ref
        return TensorDict(data, batch_size=[len(advantage)])

    def credited(self, result: Rollout) -> torch.Tensor:
        """``[B, T]`` 1.0 for the frames from each rollout's ``Axis.credit_start`` on."""
        axes = {axis.name: axis for axis in self.axes}
        starts = torch.tensor(
            [e.lead_in_s + axes[e.axis].credit_start(e.scenario) for e in result.episodes]
        )
        return spoken_after(starts, result.codes.shape[2]).float()

    # --- the run -------------------------------------------------------------------------------

    def evaluate(self) -> dict[str, AxisResult]:
        """Held-out rewards per axis; runs on its own random stream, so how often a run
        evaluates never changes what it trains on."""
        with torch.random.fork_rng(), unsharded(self.scorer):
            torch.manual_seed(self.config.seed)
            return evaluate(self.policy, self.axes, self.config.eval_episodes, env=self.eval_env)

    def run(self, progress: bool = True) -> list[dict[str, Any]]:
        """Trains until ``config.iterations``, evaluating, logging and checkpointing on the way.

        Under torch.distributed only rank 0 logs and writes files. Only rank 0 evaluates, unless
        the weights are sharded (FSDP): then every rank must take part in gathering them.

        The logs continue :attr:`history`: a run killed after its last checkpoint logged
        iterations that the resumed run does again, so ``log.jsonl`` is rewritten to the history
        first and TensorBoard drops the events of the steps to come (``purge_step``).
        """
        lead = self.rank == 0
        self._log_file = None
        if lead:
            from torch.utils.tensorboard import SummaryWriter

            with atomic_path(self.out_dir / LOG) as tmp:
                tmp.write_text("".join(json.dumps(r) + "\n" for r in self.history))
            self._log_file = (self.out_dir / LOG).open("a", encoding="utf-8")
            first_step = self.iteration + 1 if self.iteration else 0
            self._writer = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=first_step)
        from tqdm import tqdm

        bar = tqdm(
            total=self.config.iterations,
            initial=self.iteration,
            disable=not (progress and lead),
            desc="GRPO",
            unit="it",
        )
        try:
            if self.iteration == 0:
                self._log({"iteration": 0} | self._evaluation())
            while self.iteration < self.config.iterations:
                record = self.train_iteration()
                last = self.iteration == self.config.iterations
                if self.iteration % self.config.eval_every == 0 or last:
                    record |= self._evaluation()
                self._log(record)
                if self.iteration % self.config.checkpoint_every == 0 or last:
                    self.save()
                bar.update(1)
                bar.set_postfix(reward=f"{record['reward']:+.2f}", kl=f"{record.get('kl', 0):.3f}")
        finally:
            bar.close()
            if self._log_file is not None:
                self._log_file.close()
                self._writer.close()
        return self.history

    def _evaluation(self) -> dict[str, Any]:
        """``{"eval": ...}`` for the log, on the ranks that evaluate (see :meth:`run`)."""
        if self.rank == 0 or is_sharded(self.scorer):
            results = self.evaluate()
            if self.rank == 0:
                return {"eval": eval_json(results)}
        return {}

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self._log_file is None:
            return
        self._log_file.write(json.dumps(record) + "\n")
        self._log_file.flush()
        step = record["iteration"]
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "iteration":
                self._writer.add_scalar(f"train/{key}", value, step)
        for axis, value in record.get("reward_by_axis", {}).items():
            self._writer.add_scalar(f"train_reward/{axis}", value, step)
        for axis, result in record.get("eval", {}).items():
            self._writer.add_scalar(f"eval_reward/{axis}", result["mean"], step)
            for name, metric in result["metrics"].items():
                if metric["value"] is not None:
                    self._writer.add_scalar(f"eval_metric/{axis}/{name}", metric["value"], step)

    # --- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The run's whole state; under torch.distributed a collective (every rank calls it),
        and under FSDP only rank 0 gets the weights. Each rank's random state is kept.

        Everything in it is tensors or plain data (the history as JSON data), the only things
        :meth:`resume` loads."""
        rng = torch.get_rng_state()
        rngs = [rng]
        if self.world > 1:
            rngs = [None] * self.world
            dist.all_gather_object(rngs, rng)
        return {
            "config": plain(self.config),
            "iteration": self.iteration,
            "lm": model_state(self.scorer),
            "optimizer": optimizer_state(self.scorer, self.optimizer),
            "torch_rng": rngs,
            "history": json.loads(json.dumps(self.history)),  # no numpy scalars: plain data
        }

    def save(self) -> Path:
        """Writes the run's state atomically (rank 0); :meth:`resume` continues from it exactly.
        Every rank must call it."""
        path = self.out_dir / CHECKPOINT
        state = self.state_dict()
        if self.rank == 0:
            with atomic_path(path) as tmp:
                torch.save(state, tmp)
        if self.world > 1:  # every rank returns once the file is there
            dist.barrier()
        return path

    def resume(self, allow_changes: bool = False) -> bool:
        """Loads ``out_dir/checkpoint.pt`` if there is one; returns whether it did.

        A run goes on with the settings it was trained with: the checkpoint records its config,
        and settings other than :data:`RESUMABLE` that differ now are a ``ValueError`` naming
        them, before anything is loaded, unless ``allow_changes`` (``fdenv-train
        --resume-with-changes``).

        An output folder may come from elsewhere, so the checkpoint is data, never code: it is
        loaded with ``weights_only=True`` (tensors and plain data; a pickled object that would
        run code is refused), and a file that is not a checkpoint of this trainer is a
        ``ValueError`` naming it. Temporaries that a killed run left are removed first."""
        clean_stale_temporaries(self.out_dir)
        path = self.out_dir / CHECKPOINT
        if not path.is_file():
            return False
        state = load_checkpoint(path)
        if len(state["torch_rng"]) != self.world:
            raise ValueError(
                f"{path} was written by {len(state['torch_rng'])} rank(s); resume it with as "
                f"many, not {self.world}"
            )
        if not allow_changes:
            self._check_settings(path, state.get("config"))
        load_model_state(self.scorer, state["lm"])
        load_optimizer_state(self.scorer, self.optimizer, state["optimizer"])
        torch.set_rng_state(state["torch_rng"][self.rank])
        self.iteration = state["iteration"]
        self.history = state["history"]
        return True

    def _check_settings(self, path: Path, recorded: Any) -> None:
        """Refuses to resume the run recorded in ``path`` with other settings than
        :data:`RESUMABLE` changed."""
        changed = changed_settings(recorded, plain(self.config))
        refused = {k: v for k, v in changed.items() if k not in RESUMABLE}
        if refused:
            listed = "; ".join(f"{k or 'config'}: {a!r} -> {b!r}" for k, (a, b) in refused.items())
            raise ValueError(
                f"{path} was trained with other settings ({listed}). Resume with the settings "
                "it was trained with, or continue on the new ones with --resume-with-changes "
                "(GRPOTrainer.resume(allow_changes=True))"
            )

    def full_lm_state(self) -> dict[str, torch.Tensor]:
        """The trained LM's weights under their usual names, on every rank without FSDP and on
        rank 0 with it (a collective then)."""
        prefix = "lm."
        return {k.removeprefix(prefix): v for k, v in model_state(self.scorer).items()}


CHECKPOINT_FIELDS: dict[str, tuple[type, str]] = {
    "iteration": (int, "an integer"),
    "lm": (dict, "a dict of tensors"),
    "optimizer": (dict, "an optimizer state dict"),
    "torch_rng": (list, "a list of random states"),
    "history": (list, "a list of log records"),
}


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by :meth:`GRPOTrainer.save`, loaded as tensors and plain data only;
    ``ValueError`` naming ``path`` for anything else (including pickled code, which never runs)."""
    try:
        state = torch.load(path, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        first = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().split("\n")[0]
        reason = (
            f"it refers to {found.group(1)}, which loading would call"
            if found
            else first or type(err).__name__
        )
        raise ValueError(
            f"{path}: cannot load it as a checkpoint ({reason}). Checkpoints are loaded as "
            "tensors and plain data only, never as code; move the file away to start afresh"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a checkpoint of this trainer: not a dict")
    for name, (kind, what) in CHECKPOINT_FIELDS.items():
        value = state.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(
                f"{path}: not a checkpoint of this trainer: {name!r} must be {what}, "
                f"got {type(value).__name__}"
            )
    if not all(isinstance(rng, torch.Tensor) for rng in state["torch_rng"]):
        raise ValueError(f"{path}: not a checkpoint of this trainer: 'torch_rng' holds non-tensors")
    return state


def _by_axis(result: Rollout) -> dict[str, float]:
    axes = np.array(result.axes)
    return {axis: float(result.rewards[axes == axis].mean()) for axis in sorted(set(result.axes))}
