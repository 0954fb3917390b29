"""Env frames per second (single and vector env) and scenario synthesis time.

Targets, for a scripted agent with TextVoice in one process: >= 100k frames/s for the single
env and >= 500k frames/s for the vector env at N = 64 (copying 1,920 floats per frame, the
bound, allows over 1M); >= 2,000 scenarios per axis in under 5 minutes on 2 cores.

Each figure is measured ``--repeats`` times, round robin, printed as the best and the median
together with the load average over the runs: on a shared machine the best is the one nearest
to what the code can do, and the load says how far to trust the rest. "Per CPU-s" counts frames
per second of this process' CPU time, which other processes' turns on the cores do not lower
(their use of caches and memory still does). The single env is measured raw (``FullDuplexEnv``)
and as ``gym.make`` gives it (with Gymnasium's checking wrappers).

    python benchmarks/env_throughput.py [--seconds 3] [--repeats 5] [--synth-num 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

import fdenv
from fdenv.axes import PAPER_AXES
from fdenv.constants import PAD_ID
from fdenv.scenarios.synthetic import make_scenario

AXIS = "FullDuplex-Mixed-v0"
POOL = 16
SYNTH = [sys.executable, "-m", "fdenv.cli", "synth"]
SINGLE_TARGET = 100_000
VECTOR_TARGET = 500_000
SYNTH_TARGET_MIN = 5.0


def constant_action(n: int) -> np.ndarray:
    """Silence (PAD) in every env; the loops below swap in a word every 8th frame."""
    actions = np.zeros((n, 9), dtype=np.int64)
    actions[:, 0] = PAD_ID
    return actions


def warm(env) -> None:
    """Synthesises the whole scenario pool first, so that timing sees only stepping."""
    for choices in env.unwrapped.sampler._choices.values():
        for source, index in choices:
            source[index]


def single_env_fps(env: gym.Env, seconds: float) -> tuple[float, float]:
    """Frames per second of wall time and of this process' CPU time, stepping ``env`` (reset)."""
    quiet, word = constant_action(1)[0], constant_action(1)[0].copy()
    word[0] = 1000
    frames, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            _, _, done, _, _ = env.step(word if frames % 8 == 0 else quiet)
            frames += 1
            if done:
                env.reset()
    return frames / (time.perf_counter() - start), frames / (time.process_time() - cpu)


def vector_env_fps(env: fdenv.FullDuplexVectorEnv, seconds: float) -> tuple[float, float]:
    """As :func:`single_env_fps`, for the vector env (autoreset)."""
    quiet, word = constant_action(env.num_envs), constant_action(env.num_envs)
    word[:, 0] = 1000
    steps, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            env.step(word if steps % 8 == 0 else quiet)
            steps += 1
    frames = steps * env.num_envs
    return frames / (time.perf_counter() - start), frames / (time.process_time() - cpu)


def measures(seconds: float) -> dict[str, Callable[[], tuple[float, float]]]:
    """The figures to measure, each on an env built (and its scenario pool made) once."""
    made = gym.make(AXIS, num_scenarios=POOL)
    warm(made)
    made.reset(seed=0)
    runs = {
        "single env N=1, FullDuplexEnv": lambda: single_env_fps(made.unwrapped, seconds),
        "single env N=1, gym.make": lambda: single_env_fps(made, seconds),
    }
    bare = fdenv.FullDuplexEnv("Mixed", num_scenarios=POOL, info_metrics=False)
    warm(bare)
    bare.reset(seed=0)
    runs["single env N=1, no info metrics"] = lambda: single_env_fps(bare, seconds)
    for n, info_metrics in ((16, True), (64, True), (64, False)):
        vector = fdenv.FullDuplexVectorEnv(
            n, "Mixed", num_scenarios=POOL, info_metrics=info_metrics
        )
        warm(vector)
        vector.reset(seed=0)
        name = f"vector env N={n}" + ("" if info_metrics else ", no info metrics")
        runs[name] = lambda vector=vector: vector_env_fps(vector, seconds)
    return runs


def synthesis_ms(count: int) -> float:
    axes = [axis() for axis in PAPER_AXES]
    start = time.perf_counter()
    for index in range(count):
        make_scenario(axes[index % 4], 7, index)
    return (time.perf_counter() - start) / count * 1000


def synth_minutes(count: int) -> float:
    """Minutes that ``fdenv-data synth`` with 2 workers would take for 2,000 per axis, from
    writing ``count`` per axis."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [*SYNTH, "--out", out, "--num", str(count), "--workers", "2"],
            check=True,
            capture_output=True,
        )
        elapsed = time.perf_counter() - start
    total = 4 * count
    print(f"fdenv-data synth, 2 workers: {total / elapsed:.1f} scenarios/s ({total} written)")
    return elapsed / total * 2000 * 4 / 60


def verdict(name: str, value: float, target: float, unit: str, higher: bool = True) -> str:
    met = value >= target if higher else value <= target
    sign = ">=" if higher else "<="
    return (
        f"target {name} {sign} {target:,.0f} {unit}: {'met' if met else 'NOT met'} ({value:,.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per figure")
    parser.add_argument(
        "--synth-num", type=int, default=200, help="scenarios per axis to write (0: skip)"
    )
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}; numpy {np.__version__}; one process, one thread of stepping")
    print(f"load average at start (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    runs = measures(args.seconds)
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeats):  # round robin, so that changes in load hit every figure alike
        for name, run in runs.items():
            per_wall_s, per_cpu_s = run()
            wall[name].append(per_wall_s)
            cpu[name].append(per_cpu_s)
            loads.append(os.getloadavg()[0])
    print(f"frames/s (TextVoice), best and median of {args.repeats}; the 1-minute load average")
    print(f"over the runs was {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} cores")
    print(f"{'':<36}{'best':>10}{'median':>10}{'best per CPU-s':>16}")
    best = {}
    for name in runs:
        best[name] = max(wall[name])
        median = statistics.median(wall[name])
        print(f"{name:<36}{best[name]:>10,.0f}{median:>10,.0f}{max(cpu[name]):>16,.0f}")
    print(f"synthesis, one process: {synthesis_ms(40):.1f} ms per scenario")
    targets = [
        verdict("single env, raw", best["single env N=1, FullDuplexEnv"], SINGLE_TARGET, "fps"),
        verdict("single env, gym.make", best["single env N=1, gym.make"], SINGLE_TARGET, "fps"),
        verdict("vector env N=64", best["vector env N=64"], VECTOR_TARGET, "fps"),
        verdict(
            "single env, no info metrics",
            best["single env N=1, no info metrics"],
            SINGLE_TARGET,
            "fps",
        ),
        verdict(
            "vector env N=64, no info metrics",
            best["vector env N=64, no info metrics"],
            VECTOR_TARGET,
            "fps",
        ),
    ]
    if args.synth_num > 0:
        minutes = synth_minutes(args.synth_num)
        targets.append(verdict("2,000 scenarios per axis", minutes, SYNTH_TARGET_MIN, "min", False))
    print(f"load average at end (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"targets (best of {args.repeats}; a loaded machine reads low):")
    for line in targets:
        print(f"  {line}")


if __name__ == "__main__":
    main()
