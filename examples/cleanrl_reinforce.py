"""CleanRL-style REINFORCE with a group baseline on the raw fdenv vector env, in one file.

    python examples/cleanrl_reinforce.py                 # about 10 s on one CPU core
    python examples/cleanrl_reinforce.py --iterations 5  # any field of Args is a flag

The loop reads top to bottom, as CleanRL's do: hyperparameters in one dataclass, then the policy,
then rollout -> advantages -> update, printing one line of the learning curve per iteration.

The policy is deliberately small: a GRU over the log-energy of the 80 ms frame it hears (8
sub-frames of 10 ms) and what it did last frame; each frame it chooses to speak (a word token)
or stay silent (PAD). The env's default voice counts a word as speech for 0.4 s, so "speak" in
consecutive frames is one utterance. No Moshi is involved: the same env that trains Moshi trains
any policy that emits the MultiDiscrete action.

The baseline is GRPO's: ``group_size`` consecutive envs play the same scenario, and a rollout's
advantage is its reward minus its group's mean, divided by the group's spread. Rewards are
terminal (the axis reward arrives on an episode's last step), so every frame of a rollout shares
its advantage.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

import fdenv  # noqa: F401  (registers the environments)
from fdenv.constants import FRAME_SIZE, NUM_CODEBOOKS, PAD_ID

WORD_ID = 4
"""Any text token but PAD (3) and EPAD (0) is a word for the env's voice."""
SUBFRAMES = 8


@dataclass
class Args:
    env_id: str = "FullDuplex-TurnTaking-v0"
    """Any fdenv id; turn-taking gives a graded reward (minus the response latency)."""
    iterations: int = 40
    groups: int = 4
    """Scenarios per iteration."""
    group_size: int = 8
    """Rollouts per scenario: the baseline is their mean reward."""
    lr: float = 1e-2
    hidden: int = 32
    entropy_coef: float = 0.01
    """Keeps the policy exploring while the group still disagrees."""
    lead_in_s: float = 1.0
    """Silence before each scenario; shorter than the paper's 3 s (for Moshi's opening phrase),
    since this policy has none to say and shorter episodes train faster."""
    num_scenarios: int = 64
    """Synthetic training scenarios (built once, about 15 ms each)."""
    seed: int = 1
    threads: int = 1


def parse_args() -> Args:
    """Every Args field is a ``--flag`` with its default (CleanRL uses tyro for the same)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in dataclasses.fields(Args):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default
        )
    return Args(**vars(parser.parse_args()))


def frame_features(obs: np.ndarray) -> torch.Tensor:
    """``[N, 1920]`` audio -> ``[N, 8]`` log-energies of 10 ms sub-frames, roughly in [-1, 1]."""
    power = np.square(obs.reshape(len(obs), SUBFRAMES, FRAME_SIZE // SUBFRAMES)).mean(axis=2)
    return torch.from_numpy((np.log10(power + 1e-8) + 4.0) / 4.0).float()


class Policy(torch.nn.Module):
    """GRU over (frame features, last action) -> probability of speaking this frame."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.gru = torch.nn.GRUCell(SUBFRAMES + 1, hidden)
        self.head = torch.nn.Linear(hidden, 1)

    def forward(
        self, features: torch.Tensor, last_speak: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.distributions.Bernoulli, torch.Tensor]:
        state = self.gru(torch.cat([features, last_speak[:, None]], dim=1), state)
        return torch.distributions.Bernoulli(logits=self.head(state)[:, 0]), state


def to_actions(speak: torch.Tensor) -> np.ndarray:
    """Speak/silent per env -> the env's ``[N, 9]`` action: a word or PAD, audio tokens 0."""
    actions = np.zeros((len(speak), 1 + NUM_CODEBOOKS), dtype=np.int64)
    actions[:, 0] = np.where(speak.numpy() > 0, WORD_ID, PAD_ID)
    return actions


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    num_envs = args.groups * args.group_size
    envs = gym.make_vec(
        args.env_id,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        group_size=args.group_size,
        autoreset_mode="Disabled",  # a finished env idles until the next reset
        lead_in_s=args.lead_in_s,
        num_scenarios=args.num_scenarios,
    )
    policy = Policy(args.hidden)
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.lr)
    print(f"{args.env_id}: {args.groups} groups x {args.group_size} rollouts per iteration")
    print(" iter  mean reward  speaking   flat groups   s")
    curve = []
    started = time.perf_counter()
    for iteration in range(args.iterations):
        # --- rollout: every env plays one episode; groups share a scenario ---
        obs, _ = envs.reset(seed=args.seed + iteration * num_envs)
        state = torch.zeros(num_envs, args.hidden)
        last_speak = torch.zeros(num_envs)
        alive = np.ones(num_envs, dtype=bool)
        rewards = np.zeros(num_envs)
        logprobs, entropies, masks, spoke = [], [], [], []
        while alive.any():
            dist, state = policy(frame_features(obs), last_speak, state)
            speak = dist.sample()
            obs, reward, terminated, _, _ = envs.step(to_actions(speak))
            mask = torch.from_numpy(alive.astype(np.float32))  # frames of running episodes
            logprobs.append(dist.log_prob(speak) * mask)
            entropies.append(dist.entropy() * mask)
            masks.append(mask)
            spoke.append(speak * mask)
            rewards += reward
            alive &= ~terminated
            last_speak = speak

        # --- advantages: reward relative to the group of rollouts of the same scenario ---
        grouped = rewards.reshape(args.groups, args.group_size)
        centred = grouped - grouped.mean(axis=1, keepdims=True)
        advantage = centred / (grouped.std(axis=1, ddof=1, keepdims=True) + 1e-4)
        advantage = torch.from_numpy(advantage.reshape(-1)).float()

        # --- update: REINFORCE, log-probs summed over each episode's frames ---
        frames = torch.stack(masks).sum()
        policy_loss = -(torch.stack(logprobs).sum(dim=0) * advantage).sum() / frames
        entropy = torch.stack(entropies).sum() / frames
        loss = policy_loss - args.entropy_coef * entropy
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()

        curve.append(float(rewards.mean()))
        speaking = float(torch.stack(spoke).sum() / frames)
        flat = int(np.sum(np.all(centred == 0, axis=1)))
        elapsed = time.perf_counter() - started
        print(
            f"{iteration + 1:5d}  {curve[-1]:+11.3f}  {speaking:8.2f}  {flat:12d}  {elapsed:4.0f}"
        )
    window = max(1, min(5, len(curve) // 2))
    print(
        f"mean reward, first {window} iterations: {np.mean(curve[:window]):+.3f}; "
        f"last {window}: {np.mean(curve[-window:]):+.3f}"
    )


if __name__ == "__main__":
    main()
