"""Moshi as an fdenv policy: models, checkpoints, batched streaming rollouts, log-probabilities."""

from agents.moshi.logprobs import SequenceLogProbs, sequence_logprobs
from agents.moshi.models import MoshiModels, load_checkpoint, tiny_models
from agents.moshi.policy import MoshiPolicy, SamplingConfig
from agents.moshi.rollout import Rollout, rollout

__all__ = [
    "MoshiModels",
    "MoshiPolicy",
    "Rollout",
    "SamplingConfig",
    "SequenceLogProbs",
    "load_checkpoint",
    "rollout",
    "sequence_logprobs",
    "tiny_models",
]
