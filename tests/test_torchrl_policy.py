import functools

import pytest
import torch
from conftest import noise_scenario
from torchrl.envs import GymEnv, InitTracker, SerialEnv, TransformedEnv

from agents.moshi.models import tiny_models
from agents.moshi.policy import MoshiPolicy
from agents.moshi.tokenizer import TINY_VOCAB
from agents.moshi.torchrl_policy import MoshiTorchRLPolicy
from fdenv.constants import AUDIO_CARD, PAD_ID

LEAD_IN_S = 0.4


def gym_env(duration: float, text_card: int = TINY_VOCAB, **kwargs) -> GymEnv:
    """A TurnTaking env pinned to one noise scenario: ``(0.4 s + duration) / 80 ms`` frames."""
    scenario = noise_scenario("TurnTaking", duration, [(0.2, 1.0)], turn_end=1.0)
    return GymEnv(
        "FullDuplex-TurnTaking-v0",
        categorical_action_encoding=kwargs.pop("categorical_action_encoding", True),
        text_card=text_card,
        scenarios=[scenario],
        lead_in_s=LEAD_IN_S,
        **kwargs,
    )


@pytest.fixture(scope="module")
def policy() -> MoshiPolicy:
    return MoshiPolicy(tiny_models())


def is_silence(actions: torch.Tensor, policy: MoshiPolicy) -> torch.Tensor:
    """What MoshiPolicy says on the first step after a reset: PAD and Mimi's silence codes."""
    silence = policy._silence.to(actions.device)
    return (actions[..., 0] == PAD_ID) & (actions[..., 1:] == silence[1:]).all(-1)


def check_actions(actions: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert actions.shape == shape
    assert actions.dtype == torch.int64
    assert (actions >= 0).all()
    assert (actions[..., 0] < TINY_VOCAB).all()
    assert (actions[..., 1:] < AUDIO_CARD).all()


def test_rollout_restarts_moshi_at_each_episode(policy):
    env = TransformedEnv(gym_env(1.6), InitTracker())  # 25 frames per episode
    module = MoshiTorchRLPolicy(policy, env)
    td = env.rollout(60, policy=module, break_when_any_done=False)
    check_actions(td["action"], (60, 9))
    starts = td["is_init"][:, 0].nonzero()[:, 0].tolist()
    assert starts == [0, 25, 50]
    assert td["next", "done"][:, 0].nonzero()[:, 0].tolist() == [24, 49]
    # the first step of every episode is a fresh Moshi's, and only those
    assert is_silence(td["action"], policy).nonzero()[:, 0].tolist() == starts
    # 10 steps since the last reset: 9 finished frames (see MoshiPolicy.sequences)
    assert policy.sequences()[1].tolist() == [9]


def test_batched_envs_restart_one_at_a_time(policy):
    makers = [functools.partial(gym_env, d) for d in (1.6, 2.4)]  # 25 and 35 frames
    env = TransformedEnv(SerialEnv(2, makers), InitTracker())
    module = MoshiTorchRLPolicy(policy, env)
    td = env.rollout(60, policy=module, break_when_any_done=False)
    check_actions(td["action"], (2, 60, 9))
    assert td["is_init"][0, :, 0].nonzero()[:, 0].tolist() == [0, 25, 50]
    assert td["is_init"][1, :, 0].nonzero()[:, 0].tolist() == [0, 35]
    assert is_silence(td["action"][0], policy).nonzero()[:, 0].tolist() == [0, 25, 50]
    assert is_silence(td["action"][1], policy).nonzero()[:, 0].tolist() == [0, 35]
    assert policy.sequences()[1].tolist() == [60 - 50 - 1, 60 - 35 - 1]


def test_vocabulary_mismatch_fails_before_the_first_step(policy):
    env = TransformedEnv(gym_env(1.6, text_card=32_000), InitTracker())
    with pytest.raises(ValueError, match=r"text_card=512"):
        MoshiTorchRLPolicy(policy, env)


def test_env_without_init_tracker_or_categorical_actions_is_refused(policy):
    with pytest.raises(ValueError, match=r"InitTracker\(\)"):
        MoshiTorchRLPolicy(policy, gym_env(1.6))
    one_hot = TransformedEnv(gym_env(1.6, categorical_action_encoding=False), InitTracker())
    with pytest.raises(ValueError, match="categorical_action_encoding=True"):
        MoshiTorchRLPolicy(policy, one_hot)
