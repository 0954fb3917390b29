"""TorchRL PPO on an fdenv env: a small recurrent policy over audio features, no Moshi.

    python examples/ppo_torchrl.py                   # about a minute on one CPU core
    python examples/ppo_torchrl.py --iterations 3    # see --help for the other flags

Everything here is stock TorchRL; fdenv only provides the Gymnasium env:

- ``GymEnv("FullDuplex-TurnTaking-v0", categorical_action_encoding=True)``: the MultiDiscrete
  action (1 text + 8 audio tokens) stays one int64 vector; torchrl 0.10 cannot one-hot encode a
  MultiDiscrete of mixed sizes. ``--envs`` copies run in a ``SerialEnv``, so the policy acts on
  a batch.
- Transforms: :class:`FrameEnergy` turns each 80 ms frame (1920 samples) into 8 log-energies of
  10 ms; ``InitTracker`` flags episode starts (the GRU resets there), ``StepCounter`` gives the
  critic the time, and the GRU's primer adds its hidden state to the env's specs.
- The actor is a ``GRUModule`` and a linear head giving a 2-way ``Categorical`` (``speak``: stay
  silent or say a word); a deterministic module maps it to the env's action (a word token or PAD,
  audio tokens 0). ``ClipPPOLoss`` reads the ``speak`` key and its log-prob, found from the actor.
- The critic is feed-forward over the frame's features and the time in the episode: a
  state-dependent baseline that needs no recurrent state of its own, so ``GAE`` can call it on the
  collected frames and on their successors alike. It cannot see what the agent said before, so
  ``GAE``'s lambda defaults to 1 (the return minus the baseline): a shorter horizon would lean on
  its values and bias the advantages.
- A ``SyncDataCollector`` gathers ``--frames`` frames per iteration; each PPO epoch runs the GRU
  over the whole batch in recurrent mode (it splits the batch into episodes at ``is_init``).

The reward is fdenv's turn-taking reward, minus the seconds between the end of the user's turn and
the start of the agent's answer, paid on an episode's last frame; each iteration prints the mean
reward of the episodes it finished.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torchrl.collectors import SyncDataCollector
from torchrl.data import Unbounded
from torchrl.envs import Compose, GymEnv, InitTracker, SerialEnv, StepCounter, TransformedEnv
from torchrl.envs.transforms import Transform
from torchrl.modules import GRUModule, ProbabilisticActor, set_recurrent_mode
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

import fdenv  # noqa: F401  (registers the environments)
from fdenv.constants import FRAME_SIZE, NUM_CODEBOOKS, PAD_ID

WORD_ID = 4
"""Any text token but PAD (3) and EPAD (0) is a word for the env's voice."""
SUBFRAMES = 8
EPISODE_FRAMES = 200.0
"""Scale of the step count fed to the critic (turn-taking episodes are ~150-190 frames)."""


class FrameEnergy(Transform):
    """``observation [1920]`` -> ``features [8]``: log-energies of 10 ms sub-frames, ~[-1, 1].

    An env transform, so the features exist for every frame and its successor (``next``), which
    is what the collector stores and what GAE reads.
    """

    def __init__(self) -> None:
        super().__init__(in_keys=["observation"], out_keys=["features"])

    def _apply_transform(self, obs: torch.Tensor) -> torch.Tensor:
        frames = obs.reshape(*obs.shape[:-1], SUBFRAMES, FRAME_SIZE // SUBFRAMES)
        return (torch.log10(frames.square().mean(dim=-1) + 1e-8) + 4.0) / 4.0

    def _reset(self, tensordict, tensordict_reset):
        return self._call(tensordict_reset)

    def transform_observation_spec(self, observation_spec):
        observation_spec["features"] = Unbounded(
            shape=(*observation_spec.shape, SUBFRAMES), dtype=torch.float32
        )
        return observation_spec


def speak_to_action(speak: torch.Tensor) -> torch.Tensor:
    """0/1 per frame -> the env's action ``[..., 9]``: PAD or a word, audio tokens 0."""
    action = torch.zeros(*speak.shape, 1 + NUM_CODEBOOKS, dtype=torch.int64)
    action[..., 0] = torch.where(speak > 0, WORD_ID, PAD_ID)
    return action


class Critic(torch.nn.Module):
    """Value from the frame's features and the time in the episode."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(SUBFRAMES + 1, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1)
        )

    def forward(self, features: torch.Tensor, step_count: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([features, step_count.float() / EPISODE_FRAMES], dim=-1))


def make_env(args: argparse.Namespace) -> TransformedEnv:
    """``--envs`` copies of the env stepped in turn, so the policy acts on a batch."""

    def gym_env() -> GymEnv:
        return GymEnv(
            args.env_id,
            categorical_action_encoding=True,
            lead_in_s=args.lead_in_s,
            num_scenarios=args.num_scenarios,
        )

    return TransformedEnv(
        SerialEnv(args.envs, gym_env), Compose(FrameEnergy(), InitTracker(), StepCounter())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="FullDuplex-TurnTaking-v0")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--envs", type=int, default=8, help="envs stepped together")
    parser.add_argument("--frames", type=int, default=4800, help="frames per iteration")
    parser.add_argument("--epochs", type=int, default=4, help="PPO epochs per batch")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--lmbda", type=float, default=1.0, help="GAE lambda")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--lead-in-s", type=float, default=1.0, help="silence before a scenario")
    parser.add_argument("--num-scenarios", type=int, default=64, help="synthetic scenarios")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the networks are too small to gain from more threads
    torch.manual_seed(args.seed)

    env = make_env(args)
    env.set_seed(args.seed)
    gru = GRUModule(
        input_size=SUBFRAMES,
        hidden_size=args.hidden,
        in_keys=["features", "gru_state"],
        out_keys=["embedding", ("next", "gru_state")],
    )
    env.append_transform(gru.make_tensordict_primer())  # the hidden state travels with the env
    head = TensorDictModule(
        torch.nn.Linear(args.hidden, 2), in_keys=["embedding"], out_keys=["logits"]
    )
    actor = ProbabilisticActor(
        TensorDictSequential(gru, head),
        in_keys=["logits"],
        out_keys=["speak"],
        distribution_class=torch.distributions.Categorical,
        return_log_prob=True,
    )
    critic = TensorDictModule(
        Critic(args.hidden), in_keys=["features", "step_count"], out_keys=["state_value"]
    )
    policy = TensorDictSequential(
        actor, TensorDictModule(speak_to_action, in_keys=["speak"], out_keys=["action"])
    )
    advantage = GAE(gamma=1.0, lmbda=args.lmbda, value_network=critic)  # episodic, terminal reward
    loss = ClipPPOLoss(
        actor, critic, clip_epsilon=0.2, entropy_coeff=0.01, normalize_advantage=True
    )
    optimizer = torch.optim.Adam(loss.parameters(), lr=args.lr)
    collector = SyncDataCollector(
        env, policy, frames_per_batch=args.frames, total_frames=args.frames * args.iterations
    )

    print(f"{args.env_id}: PPO, {args.frames} frames per iteration")
    print(" iter  episodes  mean reward  speaking   s")
    curve: list[float] = []
    started = time.perf_counter()
    for iteration, batch in enumerate(collector):
        with torch.no_grad():
            advantage(batch)
        for _ in range(args.epochs):
            with set_recurrent_mode(True):
                losses = loss(batch)
            total = losses["loss_objective"] + losses["loss_critic"] + losses["loss_entropy"]
            optimizer.zero_grad()
            total.backward()
            torch.nn.utils.clip_grad_norm_(loss.parameters(), 1.0)
            optimizer.step()
        collector.update_policy_weights_()

        finished = batch["next", "done"].squeeze(-1)
        rewards = batch["next", "reward"].squeeze(-1)[finished]
        if len(rewards):
            curve.append(float(rewards.mean()))
        speaking = float(batch["speak"].float().mean())
        mean = f"{curve[-1]:+11.3f}" if len(rewards) else f"{'-':>11}"
        elapsed = time.perf_counter() - started
        print(f"{iteration + 1:5d}  {len(rewards):8d}  {mean}  {speaking:8.2f}  {elapsed:4.0f}")
    collector.shutdown()
    window = max(1, min(5, len(curve) // 2))
    print(
        f"mean reward, first {window} iterations: {np.mean(curve[:window]):+.3f}; "
        f"last {window}: {np.mean(curve[-window:]):+.3f}"
    )


if __name__ == "__main__":
    main()
