"""The voice setting reaches every place that builds an env: ``voice="mimi"`` makes the trainer's
rollouts, its evaluations and ``evaluate()`` hear the agent through its own Mimi and Silero (the
paper's way), never silently through the text heuristic."""

import pytest

from agents.baselines import RuleAgent
from agents.evaluate import evaluate
from agents.grpo.trainer import GRPOConfig, GRPOTrainer
from agents.moshi.models import tiny_models
from agents.moshi.policy import MoshiPolicy
from fdenv.agent import env_for
from fdenv.config import EnvConfig
from fdenv.voice import MimiVoice, TextVoice

MIMI = EnvConfig(num_scenarios=1, scenario_seed=1, voice="mimi")


@pytest.fixture(scope="module")
def models():
    return tiny_models(seed=4)


def test_env_for_builds_a_fresh_mimi_voice_per_env(models):
    policy = MoshiPolicy(models)
    first, second = env_for(policy, MIMI), env_for(policy, MIMI)
    assert isinstance(first.voice, MimiVoice) and first.voice is not second.voice
    assert (first.text_card, first.audio_card) == (models.text_card, models.audio_card)
    assert isinstance(env_for(policy, MIMI.replace(voice="text")).make_voice(), TextVoice)


def test_an_agent_without_audio_cannot_have_the_mimi_voice():
    with pytest.raises(ValueError, match="RuleAgent has none"):
        env_for(RuleAgent(), MIMI)
    with pytest.raises(ValueError, match="RuleAgent has none"):
        evaluate(RuleAgent(), ["TurnTaking"], episodes=1, env=MIMI)


def test_the_evaluator_hears_the_agent_through_its_mimi(models):
    result = evaluate(MoshiPolicy(models), ["TurnTaking"], episodes=1, env=MIMI)
    episode = result["TurnTaking"].played[0]
    assert episode.agent_audio is not None  # TextVoice makes no audio


@pytest.mark.slow
def test_the_trainer_rolls_out_and_evaluates_with_the_mimi_voice(models, tmp_path):
    config = GRPOConfig(
        axes=("TurnTaking",),
        iterations=1,
        groups=1,
        group_size=2,
        eval_episodes=1,
        env=MIMI,
    )
    trainer = GRPOTrainer(config, models, tmp_path)
    assert isinstance(trainer.env.voice, MimiVoice)
    assert trainer.eval_env.voice == "mimi"  # each evaluation builds its own
    assert trainer.evaluate()["TurnTaking"].played[0].agent_audio is not None


def test_the_trainer_takes_a_voice_by_name_only():
    with pytest.raises(ValueError, match=r"env\.voice must be a name"):
        GRPOConfig(env=EnvConfig(voice=TextVoice()))
