"""The simulated user's cost: closed-loop env frames per second, and its share of a Moshi step.

Targets: the vector env with N = 64 and a scripted agent >= 50k frames/s on one core (the user
acts once per frame for every env; utterances are synthesised once per plan, before timing);
the env's share of a tiny-Moshi rollout step under 5%.

Frames per second count env time only (``env.step`` and resets; the scripted agent's own time
is printed apart), best and median of ``--repeats`` runs, with the load average: on a shared
machine the best is the nearest to what the code can do.

    NO_TORCH_COMPILE=1 python benchmarks/closed_loop.py [--seconds 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from rollout import timed

import fdenv
from agents.baselines import RuleAgent
from agents.moshi.models import tiny_models
from agents.moshi.policy import MoshiPolicy
from fdenv.constants import FRAME_S

POOL = 16
"""Plans per axis, synthesised before timing."""
AXES = ("Conversation", "Selectivity")
FPS_TARGET = 50_000
SHARE_TARGET = 5.0


def make_env(axis: str, n: int, **settings) -> fdenv.FullDuplexVectorEnv:
    env = fdenv.FullDuplexVectorEnv(n, axis, num_scenarios=POOL, **settings)
    for choices in env.sampler._choices.values():
        for source, index in choices:
            source[index]  # the plan's lines synthesised now, not in a timed reset
    return env


def scripted_fps(env: fdenv.FullDuplexVectorEnv, seconds: float) -> tuple[float, float]:
    """Env frames per second of env time, and the agent's share of the loop (autoreset)."""
    agent = RuleAgent()
    agent.start(env.num_envs)
    obs, _ = env.reset(seed=0)
    env_s = agent_s = 0.0
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        before = time.perf_counter()
        actions = agent.act(obs)
        acted = time.perf_counter()
        obs, _, done, _, _ = env.step(actions)
        stepped = time.perf_counter()
        if done.any():
            agent.reset(done)
        env_s += stepped - acted
        agent_s += acted - before
        steps += 1
    return steps * env.num_envs / env_s, 100 * agent_s / (env_s + agent_s)


def moshi_share(axis: str, batch: int, steps: int) -> tuple[float, float]:
    """ms per rollout step and the env's share of it, tiny Moshi on its own closed-loop env."""
    policy = MoshiPolicy(tiny_models(0))
    env = make_env(axis, batch, autoreset_mode="Disabled", text_card=policy.text_card)
    parts = {"step": 0.0}
    obs, _ = env.reset(seed=0)
    policy.start(batch)
    env_s = 0.0
    with timed(policy.lm_gen, "step", parts, lambda: None):
        start = time.perf_counter()
        for _ in range(steps):
            actions = policy.act(obs)
            acted = time.perf_counter()
            obs, _, done, _, _ = env.step(actions)
            if done.any():
                obs, _ = env.reset(options={"reset_mask": done})
                policy.reset(done)
            env_s += time.perf_counter() - acted
        wall = time.perf_counter() - start
    policy.stop()
    return wall / steps * 1000, 100 * env_s / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--moshi-steps", type=int, default=150)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"closed-loop envs, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    for axis in AXES:
        for n in (1, 64):
            env = make_env(axis, n)
            runs = [scripted_fps(env, args.seconds) for _ in range(args.repeats)]
            fps = [r[0] for r in runs]
            verdict = "" if n == 1 else f" (target >= {FPS_TARGET:,})"
            print(
                f"  {axis:<13} N={n:<3} env {max(fps):>9,.0f} frames/s best, "
                f"{statistics.median(fps):>9,.0f} median{verdict}; the Rule agent's own time: "
                f"{statistics.median(r[1] for r in runs):.0f}% of the loop"
            )
    print(f"tiny Moshi (random, fp32, 1 thread) on its closed-loop env, {args.moshi_steps} steps:")
    for axis in AXES:
        ms, share = moshi_share(axis, 16, args.moshi_steps)
        print(
            f"  {axis:<13} B=16 {ms:6.1f} ms/step, RTF per stream {FRAME_S * 1000 / ms:5.2f}; "
            f"env {share:.1f}% of the step (target < {SHARE_TARGET:.0f}%)"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
