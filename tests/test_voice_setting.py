"""The voice setting reaches every place that builds an env: ``voice="audio"`` (the trainer's
default) makes the trainer's rollouts, its evaluations and ``evaluate()`` hear the agent through
its decoded audio and Silero (the paper's way), never silently through the text heuristic."""

import dataclasses
import json

import numpy as np
import pytest

from agents.baselines import RuleAgent
from agents.evaluate import EvalConfig, evaluate
from agents.grpo.trainer import GRPOConfig, GRPOTrainer
from agents.moshi.codebook_voice import audio_voice, has_trained_decoder
from agents.moshi.models import tiny_models
from agents.moshi.policy import MoshiPolicy
from fdenv.agent import env_for
from fdenv.config import EnvConfig, plain
from fdenv.voice import CodebookVoice, DecodingVoice, MimiVoice, TextVoice

AUDIO = EnvConfig(num_scenarios=1, scenario_seed=1, voice="audio")


@pytest.fixture(scope="module")
def models():
    return tiny_models(seed=0)


def test_env_for_builds_a_fresh_audio_voice_per_env(models):
    policy = MoshiPolicy(models)
    first, second = env_for(policy, AUDIO), env_for(policy, AUDIO)
    assert isinstance(first.voice, CodebookVoice) and first.voice is not second.voice
    assert (first.text_card, first.audio_card) == (models.text_card, models.audio_card)
    assert isinstance(env_for(policy, AUDIO.replace(voice="text")).make_voice(), TextVoice)


def test_a_trained_mimi_decodes_with_mimi_and_the_tiny_one_with_its_table(models):
    assert not has_trained_decoder(models)
    as_loaded = dataclasses.replace(models, mimi_config=_json_round_trip(models.mimi_config))
    assert isinstance(audio_voice(as_loaded), CodebookVoice)  # a tiny checkpoint read back
    real = dataclasses.replace(models, mimi_config=None)  # Kyutai's Mimi: no config file
    assert has_trained_decoder(real) and isinstance(audio_voice(real), MimiVoice)


def test_auto_is_audio_for_a_model_and_text_for_a_scripted_agent(models):
    auto = AUDIO.replace(voice="auto")
    assert isinstance(env_for(MoshiPolicy(models), auto).voice, CodebookVoice)
    assert env_for(RuleAgent(), auto).make_voice().__class__ is TextVoice


def test_an_agent_without_audio_cannot_have_the_audio_voice():
    with pytest.raises(ValueError, match="RuleAgent has none"):
        env_for(RuleAgent(), AUDIO)
    with pytest.raises(ValueError, match="RuleAgent has none"):
        evaluate(RuleAgent(), ["TurnTaking"], episodes=1, env=AUDIO)


def test_a_model_hands_its_word_starts_to_the_env(models):
    pieces = [models.tokenizer.id_to_piece(i) for i in range(models.tokenizer.vocab_size())]
    starts = models.word_starts
    assert starts.shape == (models.text_card,)
    assert starts[: len(pieces)].tolist() == [p.startswith("\u2581") for p in pieces]
    assert starts[len(pieces) :].all()  # ids past the vocabulary begin words
    assert 0 < starts.sum() < len(pieces)
    config = env_for(MoshiPolicy(models), AUDIO)
    assert np.array_equal(config.word_starts, starts)
    assert env_for(RuleAgent(), AUDIO.replace(voice="text")).word_starts is None
    mine = np.ones(models.text_card, dtype=bool)
    assert env_for(MoshiPolicy(models), AUDIO.replace(word_starts=mine)).word_starts.all()
    episode = evaluate(MoshiPolicy(models), ["TurnTaking"], episodes=1)["TurnTaking"].played[0]
    assert np.array_equal(episode.word_starts, starts)


@pytest.mark.parametrize("bad", [np.ones((2, 2), dtype=bool), np.ones(4, dtype=np.int64)])
def test_word_starts_must_be_one_boolean_per_token(bad):
    with pytest.raises(ValueError, match="word_starts must be None or a 1-D boolean"):
        EnvConfig(word_starts=bad)
    kept = EnvConfig(word_starts=np.array([True, False])).word_starts
    assert not kept.flags.writeable


def test_a_run_record_names_the_word_starts_without_listing_them():
    record = plain(EnvConfig(word_starts=np.array([True, False, True])))
    assert record["word_starts"] == "bool array of 3"
    assert plain(EnvConfig())["word_starts"] is None


def test_models_are_heard_through_their_audio_by_default(models):
    assert GRPOConfig().env.voice == "audio" and EvalConfig().env.voice == "auto"
    result = evaluate(MoshiPolicy(models), ["TurnTaking"], episodes=1)
    episode = result["TurnTaking"].played[0]
    assert episode.agent_audio is not None  # TextVoice makes no audio


@pytest.mark.slow
def test_the_trainer_rolls_out_and_evaluates_on_the_audio_path(models, tmp_path):
    config = GRPOConfig(
        axes=("TurnTaking",),
        iterations=1,
        groups=1,
        group_size=2,
        eval_episodes=1,
        env=GRPOConfig().env.replace(num_scenarios=1),
    )
    trainer = GRPOTrainer(config, models, tmp_path)
    assert isinstance(trainer.env.voice, DecodingVoice)
    assert np.array_equal(trainer.env.config.word_starts, models.word_starts)
    assert trainer.eval_env.voice == "audio"  # each evaluation builds its own
    assert trainer.evaluate()["TurnTaking"].played[0].agent_audio is not None
    assert trainer.train_iteration()["updates"] > 0


def test_the_trainer_takes_a_voice_by_name_only():
    with pytest.raises(ValueError, match=r"env\.voice must be a name"):
        GRPOConfig(env=EnvConfig(voice=TextVoice()))


def _json_round_trip(value):
    return json.loads(json.dumps(value))
