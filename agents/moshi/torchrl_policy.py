"""MoshiPolicy as a TorchRL module: ``observation`` and ``is_init`` in, ``action`` out.

TorchRL resets envs on its own (``env.rollout(..., break_when_any_done=False)`` restarts a
finished env in the middle of a rollout) and only tells the policy through the tensordict, so
the module needs the ``is_init`` flag that :class:`~torchrl.envs.InitTracker` sets on every reset:
where it is true, that env's streaming Moshi starts over before it hears the new frame.

The env must use ``GymEnv(..., categorical_action_encoding=True)``: its action is then the
MultiDiscrete vector itself, int64 ``[9]`` (``[B, 9]`` batched), exactly what Moshi emits.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from gymnasium import spaces
from tensordict.nn import TensorDictModule
from torchrl.data import MultiCategorical
from torchrl.envs import EnvBase

from agents.moshi.policy import MoshiPolicy
from fdenv.constants import FRAME_SIZE

INIT_KEY = "is_init"


class _MoshiStep(torch.nn.Module):
    """Resets the envs flagged by ``is_init``, then acts on one frame per env."""

    def __init__(self, policy: MoshiPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, observation: torch.Tensor, is_init: torch.Tensor) -> torch.Tensor:
        frames = observation.reshape(-1, FRAME_SIZE)
        starting = is_init.reshape(-1).cpu().numpy()
        if starting.all():  # a new rollout (or the first): a fresh session at this batch size
            self.policy.start(frames.shape[0])
        else:
            self.policy.reset(starting)
        actions = torch.from_numpy(self.policy.act(frames)).to(observation.device)
        return actions.reshape(*observation.shape[:-1], actions.shape[-1])


class MoshiTorchRLPolicy(TensorDictModule):
    """A :class:`MoshiPolicy` that TorchRL can roll out over an fdenv ``GymEnv``.

    ``env`` is checked up front (vocabulary sizes, action encoding, the ``is_init`` flag):
    a mismatch would otherwise surface mid-rollout as out-of-range tokens, or not at all (a
    512-token model in a 32000-token env plays tokens the env reads with the wrong meaning).
    """

    def __init__(self, policy: MoshiPolicy, env: EnvBase) -> None:
        check_torchrl_env(policy, env)
        super().__init__(_MoshiStep(policy), in_keys=["observation", INIT_KEY], out_keys=["action"])

    @property
    def policy(self) -> MoshiPolicy:
        return self.module.policy


def check_torchrl_env(policy: MoshiPolicy, env: EnvBase) -> None:
    """Raises ``ValueError`` unless ``env`` can be played by ``policy`` through the module."""
    spec = env.action_spec
    if not isinstance(spec, MultiCategorical):
        raise ValueError(
            f"expected a MultiCategorical action spec, got {type(spec).__name__}; make the env "
            "with GymEnv(..., categorical_action_encoding=True)"
        )
    if INIT_KEY not in env.observation_spec:
        raise ValueError(
            f"the env's tensordicts carry no '{INIT_KEY}' flag, so the policy cannot tell when an "
            "episode starts; wrap it: TransformedEnv(env, InitTracker())"
        )
    for nvec in spec.nvec.reshape(-1, spec.nvec.shape[-1]).unique(dim=0):
        # MoshiPolicy.check_env reads a Gymnasium action space; view the spec as one
        policy.check_env(SimpleNamespace(action_space=spaces.MultiDiscrete(nvec.numpy())))
