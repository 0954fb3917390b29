"""Frames per second of batched Moshi rollouts, and how the wall time splits between env and model.

An env frame is 80 ms of conversation. The real-time factor (RTF) is seconds of conversation per
wall-clock second: per stream it is steps/s x 0.08 (above 1 is faster than real time, which a
live conversation needs); in total it is frames/s x 0.08, summed over the B streams of a batch.
Env and model time are the two calls of the rollout loop: ``env.step`` (with the resets of
finished envs) and ``policy.act`` (with the policy's resets); the model time is split further
into Mimi encoding, the LM step and the rest of ``act``. Target: the env takes <= 5% of the time.

The tiny preset runs on the CPU; with a GPU, a randomly initialised Moshi 7B (bf16, Mimi at its
default config) runs too, next to the memory-bandwidth bound of one step: every LM weight read
once at ~3 TB/s (an H100's HBM3).

    NO_TORCH_COMPILE=1 python benchmarks/rollout.py [--steps 200] [--batch-sizes 1 4 16]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from moshi.models import loaders

import fdenv
from agents.moshi.models import MoshiModels, tiny_models
from agents.moshi.policy import MoshiPolicy
from fdenv.constants import FRAME_S

WARMUP_STEPS = 10
NUM_SCENARIOS = 4
"""Scenarios per axis: a small pool, synthesised before timing, so that resets only copy audio."""
HBM_BYTES_PER_S = 3.0e12
BIG_BATCH_SIZES = (1, 16)


@dataclass(frozen=True)
class Timing:
    """Seconds spent in ``steps`` batched steps of ``batch`` envs, by where they went."""

    batch: int
    steps: int
    wall: float
    env: float
    model: float
    parts: dict[str, float]

    @property
    def ms_per_step(self) -> float:
        return self.wall / self.steps * 1000

    def line(self) -> str:
        fps = self.steps * self.batch / self.wall
        split = ", ".join(f"{name} {self.share(t)}" for name, t in self.parts.items())
        rest = self.share(self.model - sum(self.parts.values()))
        return (
            f"B={self.batch:<3}{fps:>9,.0f} frames/s {self.ms_per_step:7.1f} ms/step  RTF per "
            f"stream {self.steps * FRAME_S / self.wall:6.2f}, total {fps * FRAME_S:7.1f} | env "
            f"{self.share(self.env)}, model {self.share(self.model)} ({split}, rest {rest})"
        )

    def share(self, seconds: float) -> str:
        return f"{100 * seconds / self.wall:.1f}%"


@contextmanager
def timed(
    obj: object, name: str, totals: dict[str, float], sync: Callable[[], None]
) -> Iterator[None]:
    """Adds the duration of every call of ``obj.name`` to ``totals[name]`` inside the block."""
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        out = original(*args, **kwargs)
        sync()  # CUDA calls return before the work is done
        totals[name] += time.perf_counter() - start
        return out

    setattr(obj, name, wrapper)
    try:
        yield
    finally:
        delattr(obj, name)


def make_env(batch: int, text_card: int) -> fdenv.FullDuplexVectorEnv:
    env = fdenv.FullDuplexVectorEnv(
        batch, "Mixed", num_scenarios=NUM_SCENARIOS, autoreset_mode="Disabled", text_card=text_card
    )
    for choices in env.sampler._choices.values():
        for source, index in choices:
            source[index]  # synthesised now, not in a timed reset
    return env


def measure(policy: MoshiPolicy, batch: int, steps: int) -> Timing:
    """Runs the rollout loop, restarting envs as they finish, and times its last ``steps`` steps."""
    env = make_env(batch, policy.text_card)
    sync = torch.cuda.synchronize if policy.device.type == "cuda" else lambda: None
    parts = {"encode": 0.0, "step": 0.0}
    obs, _ = env.reset(seed=0)
    policy.start(batch)
    env_s = model_s = started = 0.0
    with (
        timed(policy.models.mimi, "encode", parts, sync),
        timed(policy.lm_gen, "step", parts, sync),
    ):
        for step in range(WARMUP_STEPS + steps):
            if step == WARMUP_STEPS:
                env_s = model_s = parts["encode"] = parts["step"] = 0.0
                started = time.perf_counter()
            before = time.perf_counter()
            actions = policy.act(obs)
            acted = time.perf_counter()
            obs, _, done, _, _ = env.step(actions)
            if done.any():
                obs, _ = env.reset(options={"reset_mask": done})
            stepped = time.perf_counter()
            if done.any():
                policy.reset(done)
            model_s += acted - before + time.perf_counter() - stepped
            env_s += stepped - acted
    wall = time.perf_counter() - started
    policy.stop()
    named = {"Mimi encode": parts["encode"], "LM step": parts["step"]}
    return Timing(batch, steps, wall, env_s, model_s, named)


def random_7b() -> MoshiModels:
    """Moshi 7B's architecture with random weights: the speed of the real model, no download."""
    lm = loaders.get_moshi_lm(
        None, lm_kwargs=loaders._lm_kwargs, device="cuda", dtype=torch.bfloat16
    )
    mimi = loaders.get_mimi(None, device="cuda")
    # no tokenizer: the policy never decodes text
    return MoshiModels(lm, mimi, None, dict(loaders._lm_kwargs))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help=f"timed steps after {WARMUP_STEPS}")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; the tiny model's ops are too small to gain from more",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}; {os.cpu_count()} cores, torch.set_num_threads"
        f"({torch.get_num_threads()}); "
        f"{args.steps} timed steps after {WARMUP_STEPS} warm-up, Mixed env, "
        f"{NUM_SCENARIOS} scenarios per axis; RTF = conversation s per wall s"
    )
    print("tiny Moshi (random, fp32) on cpu:")
    policy = MoshiPolicy(tiny_models(seed=0))
    for batch in args.batch_sizes:
        print("  " + measure(policy, batch, args.steps).line())
    if not torch.cuda.is_available():
        print("Moshi 7B (random, bf16): skipped, no CUDA GPU")
        return
    models = random_7b()
    weights = sum(p.numel() * p.element_size() for p in models.lm.parameters())
    bound_ms = weights / HBM_BYTES_PER_S * 1000
    print(
        f"Moshi 7B (random, bf16) on {torch.cuda.get_device_name()}: {weights / 2**30:.1f} GiB of "
        f"LM weights, bandwidth bound {bound_ms:.1f} ms/step at {HBM_BYTES_PER_S / 1e12:.0f} TB/s"
    )
    policy = MoshiPolicy(models)
    for batch in BIG_BATCH_SIZES:
        timing = measure(policy, batch, args.steps)
        print(f"  {timing.line()}; {timing.ms_per_step / bound_ms:.1f}x the bound")


if __name__ == "__main__":
    main()
