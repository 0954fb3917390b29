"""GPU benchmark kit: Moshi 7B (random bf16 weights, no download) in the project's own code paths.

One command measures, each on one line with its peak GPU memory (``max_memory_allocated``,
reset before each measure):

1. the streaming step, ``MoshiPolicy.act`` on a batch of B user frames (Mimi encode, ``LMGen``
   step, actions back on the host), at B = 1, 16 and 64: ms per step and the real-time factor
   per stream (0.08 s / step time). moshi CUDA-graphs ``LMGen``'s two transformers and Mimi's
   streaming encoder by itself on CUDA (``MoshiPolicy`` has no switch; ``NO_CUDA_GRAPH=1``
   turns them off); the header says whether they are on;
2. the memory-bandwidth bound of one B=1 step (every LM weight read once at 3.0 TB/s, as
   ``benchmarks/rollout.py`` computes it) and the measured / bound ratio;
3. the teacher-forced log-prob pass (the trainer's ``MoshiScorer``) over one group of rollouts
   recorded by the trainer's own rollout (a TurnTaking scenario replayed G times);
4. one GRPO update with LoRA (rank 128 on 7b): ``GRPOTrainer.update`` on one rollout (the
   paper's minibatch), i.e. ``GRPOLoss`` forward, backward, gradient clipping and AdamW step;
5. the same update with every weight trained (a fresh model, with the frozen reference copy
   full fine-tuning keeps), or "did not fit" and the memory it wanted;
6. a summary of the peak memory of each measure.

Targets (the project's): the B=1 step within 1.5x of the weight-bandwidth bound; the B=16 step
at most 1.3x the B=1 step; the whole kit under 8 minutes on one GPU. On a machine without CUDA
``--preset 7b`` (the default) says the kit needs a GPU and exits 0, so ``make bench`` stays
usable; ``--preset tiny`` runs the project's tiny random Moshi (fp32) anywhere, which the tests
do on the CPU so that the kit cannot rot. ``make bench`` sets ``NO_TORCH_COMPILE=1``: moshi's
few ``torch.compile``'d functions (activation, rope) then run eagerly; the header says so.

    python benchmarks/gpu.py [--preset {7b,tiny}] [--device cuda] [--steps 100]
        [--batch-sizes 1 16 64] [--lora-rank 128] [--group-size 16]
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import numpy as np
import torch
from moshi.modules.streaming import StreamingModule
from moshi.utils import compile as moshi_compile
from rollout import HBM_BYTES_PER_S, random_7b  # benchmarks/rollout.py, next to this file

from agents.grpo.trainer import GRPOConfig, GRPOTrainer
from agents.moshi.models import MoshiModels, tiny_models
from agents.moshi.policy import MoshiPolicy
from agents.moshi.rollout import Rollout
from agents.moshi.rollout import rollout as record_rollout
from fdenv.axes import TurnTaking
from fdenv.config import EnvConfig
from fdenv.constants import FRAME_S, FRAME_SIZE
from fdenv.scenarios.synthetic import make_scenario

WARMUP_STEPS = 5
"""Untimed streaming steps per batch size: moshi captures its CUDA graphs on the second call."""
MAX_REPEATS = 3
"""Timed repeats of the log-prob pass and of each update (after one untimed call)."""
BOUND_RATIO_TARGET = 1.5
BATCH_RATIO_TARGET = 1.3
TOTAL_TARGET_S = 8 * 60
AXIS = "TurnTaking"


@dataclass(frozen=True)
class Preset:
    description: str
    build: Callable[[torch.device], MoshiModels]
    steps: int
    batch_sizes: tuple[int, ...]
    lora_rank: int
    group_size: int


def build_7b(device: torch.device) -> MoshiModels:
    torch.cuda.set_device(device)  # random_7b builds on "cuda", the current device
    torch.manual_seed(0)
    return random_7b()


def build_tiny(device: torch.device) -> MoshiModels:
    return tiny_models(seed=0, device=device)


PRESETS = {
    "7b": Preset("Moshi 7B architecture, random weights", build_7b, 100, (1, 16, 64), 128, 16),
    "tiny": Preset("the project's tiny Moshi, random weights", build_tiny, 20, (1, 16, 64), 8, 4),
}


class Measure:
    """Times calls on the device and keeps the peak memory of the measure."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.peak_bytes: float | None = None
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def time(self, fn: Callable[[], Any]) -> float:
        """Seconds one call of ``fn`` takes, the device's queue drained on both sides."""
        self.sync()
        start = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - start

    def done(self) -> Measure:
        if self.cuda:
            self.peak_bytes = torch.cuda.max_memory_allocated()
        return self

    def peak(self) -> str:
        return "peak n/a on cpu" if self.peak_bytes is None else f"peak {gib(self.peak_bytes)}"


def gib(n: float) -> str:
    """Bytes in GiB, or in MiB below one GiB (the tiny model's weights)."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def did_not_fit(err: torch.cuda.OutOfMemoryError) -> str:
    """What an out-of-memory error says the measure wanted, read before anything is freed."""
    allocated = torch.cuda.memory_allocated()
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    asked = re.search(r"Tried to allocate ([\d.]+) ([KMG])iB", str(err))
    if asked is None:
        return f"did not fit ({gib(allocated)} allocated of {gib(total)})"
    more = float(asked.group(1)) * 2 ** {"K": 10, "M": 20, "G": 30}[asked.group(2)]
    return (
        f"did not fit: it wanted at least {gib(allocated + more)} ({gib(allocated)} allocated, "
        f"then {gib(more)} more) on a {gib(total)} GPU"
    )


def attempt(fn: Callable[[], str]) -> str:
    """``fn()``'s line, or "did not fit" with the memory it wanted."""
    try:
        return fn()
    except torch.cuda.OutOfMemoryError as err:
        line = did_not_fit(err)
    free_memory()  # after the except block, which keeps the failed frames alive
    return line


# --- 1-2: the streaming step -------------------------------------------------------------------


def user_frames() -> np.ndarray:
    """Synthetic user speech, ``[N, 1920]`` float32 frames, that the streaming rows cycle over."""
    audio = make_scenario(TurnTaking(), 0, 0).audio
    return audio[: len(audio) // FRAME_SIZE * FRAME_SIZE].reshape(-1, FRAME_SIZE)


def streaming_step(
    policy: MoshiPolicy, batch: int, steps: int, frames: np.ndarray
) -> tuple[float, Measure]:
    """Mean seconds of ``policy.act`` on ``batch`` envs (each row its own audio), over ``steps``
    steps after the warm-up, and the measure."""
    measure = Measure(policy.device)
    offsets = np.arange(batch) * 7  # rows hear different frames, so Mimi encodes each
    times = []
    try:
        policy.start(batch)
        for step in range(WARMUP_STEPS + steps):
            rows = frames[(step + offsets) % len(frames)]
            seconds = measure.time(lambda rows=rows: policy.act(rows))
            if step >= WARMUP_STEPS:
                times.append(seconds)
    except torch.cuda.OutOfMemoryError:
        policy.stop()
        drop_streaming_states(policy)
        raise
    policy.stop()
    return float(np.mean(times)), measure.done()


def drop_streaming_states(policy: MoshiPolicy) -> None:
    """Takes every module of the policy out of streaming mode after an out-of-memory error.

    moshi sets a module's streaming state before its children's, and a child that fails to
    allocate its cache (B=64's KV cache on a smaller GPU) leaves its parents streaming with no
    context to exit: the next ``streaming()`` would fail on "already streaming"."""
    for module in [*policy.modules(), *policy.models.mimi.modules()]:
        if isinstance(module, StreamingModule):
            module._streaming_state = None


def streaming_lines(
    models: MoshiModels, args: argparse.Namespace, bound_s: float, on_7b_gpu: bool
) -> dict[str, str]:
    """Prints measures 1 and 2; returns the peak memory per batch size."""
    policy = MoshiPolicy(models)
    frames = user_frames()
    step_s: dict[int, float] = {}
    peaks: dict[str, str] = {}
    for batch in args.batch_sizes:

        def line(batch: int = batch) -> str:
            seconds, measure = streaming_step(policy, batch, args.steps, frames)
            step_s[batch] = seconds
            peaks[f"B={batch}"] = measure.peak().removeprefix("peak ")
            text = (
                f"{seconds * 1000:8.2f} ms/step, RTF per stream {FRAME_S / seconds:6.2f}, "
                f"total {batch * FRAME_S / seconds:7.1f}; {measure.peak()}"
            )
            if batch != 1 and 1 in step_s:
                ratio = seconds / step_s[1]
                text += f"; {ratio:.2f}x the B=1 step"
                if batch == 16:
                    text += verdict(ratio, BATCH_RATIO_TARGET, on_7b_gpu)
            return text

        print(f"[1] streaming step B={batch:<3}: " + attempt(line), flush=True)
        peaks.setdefault(f"B={batch}", "did not fit")
    if 1 in step_s:
        ratio = step_s[1] / bound_s
        bound = (
            f"B=1 step {step_s[1] * 1000:.2f} ms / bound {bound_s * 1000:.3f} ms = {ratio:.2f}x"
            + verdict(ratio, BOUND_RATIO_TARGET, on_7b_gpu)
        )
    else:
        bound = "no B=1 step measured (add 1 to --batch-sizes)"
    print(f"[2] bandwidth bound     : {bound}", flush=True)
    return peaks


def verdict(ratio: float, target: float, on_7b_gpu: bool) -> str:
    if not on_7b_gpu:
        return f" (target <= {target}x is for 7b on a GPU)"
    return f" (target <= {target}x: {'met' if ratio <= target else 'MISSED'})"


# --- 3-5: scoring and updates through the trainer ----------------------------------------------


def trainer_for(
    models: MoshiModels, args: argparse.Namespace, lora_rank: int, out: str
) -> GRPOTrainer:
    """The project's trainer on one group of ``--group-size`` rollouts of one scenario, updating
    on one rollout at a time (the paper's minibatch); the env hears the agent through its text
    tokens (the voice is not what is measured). ``lora_rank`` 0 trains every weight."""
    config = GRPOConfig(
        axes=(AXIS,),
        env=EnvConfig(num_scenarios=1, scenario_seed=1, voice="text"),
        iterations=1,
        groups=1,
        group_size=args.group_size,
        rollouts_per_update=1,
        lora_rank=lora_rank,
    )
    return GRPOTrainer(config, models, out)


def repeats(args: argparse.Namespace) -> int:
    return max(1, min(args.steps, MAX_REPEATS))


def logprob_pass(
    trainer: GRPOTrainer, result: Rollout, args: argparse.Namespace
) -> tuple[str, Measure]:
    def score() -> None:
        with torch.no_grad():
            trainer.scorer(result.codes, result.trainable)

    measure = Measure(trainer.models.device)
    score()  # warm-up
    seconds = np.mean([measure.time(score) for _ in range(repeats(args))])
    batch, _, frames = result.codes.shape
    line = (
        f"{seconds * 1000:8.1f} ms for {batch} rollouts x {frames} frames ({AXIS}, recorded by "
        f"the trainer's rollout; text only, the default stream weights; the trainer runs it "
        f"twice per iteration, old and reference); {measure.done().peak()}"
    )
    return line, measure


def update(
    trainer: GRPOTrainer, result: Rollout, advantage: np.ndarray, args: argparse.Namespace
) -> tuple[str, Measure]:
    """Times ``trainer.update`` on the first rollout, after one untimed update (AdamW's state)."""
    measure = Measure(trainer.models.device)
    one = trainer._batch(result, advantage)[:1]  # old and reference log-probs, as the trainer
    trainer.update(one)
    seconds = np.mean([measure.time(lambda: trainer.update(one)) for _ in range(repeats(args))])
    trained = sum(p.numel() for g in trainer.optimizer.param_groups for p in g["params"])
    line = (
        f"{seconds * 1000:8.1f} ms for 1 rollout x {one['tokens'].shape[2]} frames (loss forward, "
        f"backward, clip, AdamW step); {trained / 1e6:,.2f}M trained parameters; "
        f"{measure.done().peak()}"
    )
    return line, measure


def grpo_lines(
    built: list[MoshiModels],
    build: Callable[[], MoshiModels],
    weights: int,
    args: argparse.Namespace,
) -> dict[str, str]:
    """Prints measures 3 to 5; returns their peak memory. ``built`` holds the model the
    streaming measures used (taken out, so that it is freed before the full update's model is
    built); LoRA is added to it in place."""
    peaks = {"log-prob pass": "did not fit", f"LoRA r={args.lora_rank} update": "did not fit"}
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as out:

        def lora() -> str:
            trainer = trainer_for(built.pop(), args, args.lora_rank, out)
            result = record_rollout(trainer.rollout_policy, trainer.env, seed=0)
            found["result"], found["advantage"] = result, trainer.advantages(result)[0]
            line, measure = logprob_pass(trainer, result, args)
            print(f"[3] log-prob pass       : {line}", flush=True)
            peaks["log-prob pass"] = measure.peak().removeprefix("peak ")
            line, measure = update(trainer, result, found["advantage"], args)
            peaks[f"LoRA r={args.lora_rank} update"] = measure.peak().removeprefix("peak ")
            return line

        line = attempt(lora)
        if "result" not in found:  # out of memory before the log-prob line
            print(f"[3] log-prob pass       : {line}", flush=True)
        print(f"[4] GRPO update, LoRA r={args.lora_rank}: {line}", flush=True)
        free_memory()

        def full() -> str:
            if "result" not in found:
                return "not measured: no recorded rollouts"
            trainer = trainer_for(build(), args, 0, out)
            line, measure = update(trainer, found["result"], found["advantage"], args)
            peaks["full update"] = measure.peak().removeprefix("peak ")
            return line

        line = attempt(full)
        if "did not fit" in line:
            line += (
                f"; weights, gradients, AdamW's 2 moments and the frozen reference copy alone "
                f"take {gib(5 * weights)}"
            )
        print(f"[5] full-parameter update: {line}", flush=True)
        peaks.setdefault("full update", "did not fit")
        free_memory()
    return peaks


# --- the kit -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="7b")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu"
    )
    parser.add_argument("--steps", type=int, help=f"timed streaming steps after {WARMUP_STEPS}")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="streaming batch sizes")
    parser.add_argument("--lora-rank", type=int, help="rank of the LoRA update (7b: 128)")
    parser.add_argument(
        "--group-size", type=int, help="rollouts recorded and scored, G (7b: 16, the paper's)"
    )
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    for name in ("steps", "batch_sizes", "lora_rank", "group_size"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(preset, name))
    if args.steps < 1 or args.lora_rank < 1 or args.group_size < 1 or min(args.batch_sizes) < 1:
        parser.error("--steps, --batch-sizes, --lora-rank and --group-size must be >= 1")
    return args


def main() -> int:
    started = time.perf_counter()
    args = parse_args()
    device = torch.device(args.device)
    if args.preset == "7b" and (device.type != "cuda" or not torch.cuda.is_available()):
        print(
            f"GPU kit: the 7B kit needs a CUDA GPU (device {args.device}, CUDA available: "
            f"{torch.cuda.is_available()}); nothing measured. On a CPU run "
            "`python benchmarks/gpu.py --preset tiny --device cpu`."
        )
        return 0
    if device.type == "cpu":
        torch.set_num_threads(1)  # the tiny model's ops are too small to gain from more
    preset = PRESETS[args.preset]
    models = preset.build(device)
    weights = sum(p.numel() * p.element_size() for p in models.lm.parameters())
    bound_s = weights / HBM_BYTES_PER_S
    dtype = str(next(models.lm.parameters()).dtype).removeprefix("torch.")
    on_7b_gpu = args.preset == "7b" and device.type == "cuda"
    where = f"{device}" + (
        f" ({torch.cuda.get_device_name(device)}, "
        f"{gib(torch.cuda.get_device_properties(device).total_memory)})"
        if device.type == "cuda"
        else f" ({os.cpu_count()} cores, torch.set_num_threads({torch.get_num_threads()}))"
    )
    graphs = (
        "on (moshi graphs LMGen's transformers and Mimi's encoder by itself on CUDA; "
        "MoshiPolicy has no switch, NO_CUDA_GRAPH=1 turns them off)"
        if device.type == "cuda" and moshi_compile._is_cuda_graph_enabled()
        else "off" + (" (cpu)" if device.type == "cpu" else " (NO_CUDA_GRAPH is set)")
    )
    compiled = "off (NO_TORCH_COMPILE set)" if os.environ.get("NO_TORCH_COMPILE") else "on"
    print(
        f"GPU kit: preset {args.preset} ({preset.description}), device {where}, dtype {dtype}; "
        f"torch {torch.__version__}, moshi {version('moshi')}"
    )
    print(
        f"bound: {gib(weights)} of LM weights read once per step at "
        f"{HBM_BYTES_PER_S / 1e12:.1f} TB/s = {bound_s * 1000:.3f} ms/step"
        + ("" if device.type == "cuda" else " (an HBM GPU's bound; on a CPU for reference only)")
    )
    print(
        f"CUDA graphs: {graphs}; torch.compile: {compiled}; {args.steps} timed streaming steps "
        f"after {WARMUP_STEPS} warm-up; updates and log-prob pass: mean of {repeats(args)} after 1",
        flush=True,
    )
    peaks = streaming_lines(models, args, bound_s, on_7b_gpu)
    built = [models]
    del models  # grpo_lines frees it before it builds the full update's model
    peaks |= grpo_lines(built, lambda: preset.build(device), weights, args)
    if device.type == "cuda":
        print("[6] peak memory        : " + ", ".join(f"{k} {v}" for k, v in peaks.items()))
    else:
        print("[6] peak memory        : n/a on cpu (torch.cuda.max_memory_allocated is CUDA's)")
    total = time.perf_counter() - started
    note = f"target under {TOTAL_TARGET_S // 60} min" + (
        f": {'met' if total < TOTAL_TARGET_S else 'MISSED'}" if on_7b_gpu else " is for 7b"
    )
    print(f"total: {total:.0f} s ({note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
