"""Env frames per second (single and vector env) and scenario synthesis time.

Targets: >= 100k frames/s for the vector env with TextVoice on one core;
>= 2,000 scenarios per axis in under 5 minutes on 2 cores.

    python benchmarks/env_throughput.py [--seconds 3] [--synth-num 200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import gymnasium as gym
import numpy as np

import fdenv
from fdenv.axes import PAPER_AXES
from fdenv.constants import PAD_ID
from fdenv.scenarios.synthetic import make_scenario

AXIS = "FullDuplex-Mixed-v0"
AXES = ("PauseHandling", "TurnTaking", "Backchannel", "UserInterruption")
POOL = 16
SYNTH = [sys.executable, "-m", "fdenv.cli", "synth"]


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


def single_env_fps(seconds: float) -> float:
    env = gym.make(AXIS, num_scenarios=POOL).unwrapped
    warm(env)
    env.reset(seed=0)
    quiet, word = constant_action(1)[0], constant_action(1)[0].copy()
    word[0] = 1000
    frames, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            _, _, done, _, _ = env.step(word if frames % 8 == 0 else quiet)
            frames += 1
            if done:
                env.reset()
    return frames / (time.perf_counter() - start)


def vector_env_fps(num_envs: int, seconds: float) -> float:
    env = fdenv.FullDuplexVectorEnv(num_envs, "Mixed", num_scenarios=POOL)
    warm(env)
    env.reset(seed=0)
    quiet, word = constant_action(num_envs), constant_action(num_envs)
    word[:, 0] = 1000
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            env.step(word if steps % 8 == 0 else quiet)
            steps += 1
    return steps * num_envs / (time.perf_counter() - start)


def synthesis_ms(count: int) -> float:
    start = time.perf_counter()
    for index in range(count):
        make_scenario(PAPER_AXES[index % 4], 7, index)
    return (time.perf_counter() - start) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per measurement")
    parser.add_argument("--synth-num", type=int, default=200, help="scenarios per axis to write")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}; numpy {np.__version__}; one process, one thread of stepping")
    print(f"single env ({AXIS}, TextVoice):   {single_env_fps(args.seconds):>12,.0f} frames/s")
    for n in (16, 64):
        fps = vector_env_fps(n, args.seconds)
        print(f"vector env N={n:<3} (TextVoice):    {fps:>12,.0f} frames/s")
    print(f"synthesis, one process:            {synthesis_ms(40):>12.1f} ms per scenario")
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [*SYNTH, "--out", out, "--num", str(args.synth_num), "--workers", "2"],
            check=True,
            capture_output=True,
        )
        elapsed = time.perf_counter() - start
    total = 4 * args.synth_num
    per_2000 = elapsed / total * 2000 * 4
    print(
        f"fdenv-data synth, 2 workers:       {total / elapsed:>12.1f} scenarios/s "
        f"({total} written, FLAC); 2,000 per axis (8,000) would take {per_2000 / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
