"""``fdenv-train`` end to end on a tiny random Moshi, the judge wired into training, and the
plain copy of a sharded model that export and recording use."""

import json
import time

import numpy as np
import pytest
import torch
from chat_server import chat_server, completion
from test_grpo_trainer import Quiet, config, hesitant_models
from test_hardening_data import hold_lock

from agents.cli.train import main, unsharded_copy
from agents.evaluate import AxisResult
from agents.grpo.trainer import GRPOTrainer, JudgeConfig
from agents.moshi.logprobs import MoshiScorer
from agents.moshi.models import tiny_models
from agents.report import eval_json, results_from_json
from fdenv import register_axis
from fdenv.judge.reward import TERM
from fdenv.registration import unregister_axis


@pytest.fixture
def quiet_axis():
    register_axis(Quiet)
    yield
    unregister_axis("Quiet")


@pytest.mark.slow
def test_train_command_writes_summary_curve_episodes_and_checkpoint(tmp_path, quiet_axis, capsys):
    out = tmp_path / "run"
    flags = "--model tiny-random --axes Quiet --iterations 2 --groups 1 --group-size 4"
    assert main([*flags.split(), "--eval-episodes", "2", "--out", str(out)]) == 0
    files = ("summary.md", "reward_curve.png", "metrics.png", "log.jsonl", "config.json")
    for name in (*files, "checkpoint.pt"):
        assert (out / name).is_file(), name
    assert (out / "moshi_checkpoint" / "config.json").is_file()
    assert list((out / "episodes").glob("Quiet*.wav"))
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [0, 1, 2]
    assert "| Quiet |" in (out / "summary.md").read_text()
    assert "held-out reward per axis" in capsys.readouterr().out


def test_judge_flags_need_a_model(tmp_path):
    with pytest.raises(SystemExit, match="--judge-model"):
        main(["--judge-url", "http://127.0.0.1:1/v1", "--out", str(tmp_path)])


def alternating(call, body):
    """Grades 2, 0, 2, 0, ... so the judge term varies within a group."""
    return completion("2" if call % 2 == 0 else "0")


def judged_trainer(tmp_path, url):
    settings = config(
        axes=("TurnTaking",), groups=1, group_size=4, judge=JudgeConfig(url, "test-model")
    )
    return GRPOTrainer(settings, hesitant_models(5), tmp_path)


def test_trainer_adds_the_judge_term_and_normalises_it_apart(tmp_path):
    with chat_server(alternating) as server:
        trainer = judged_trainer(tmp_path, server.url)
        record = trainer.train_iteration()
    assert server.calls == record["llm_scored"] == record["judge_http_calls"] > 0
    assert record["llm_failed"] == 0 and record["updates"] > 0
    assert server.bodies[0]["model"] == "test-model"
    prompt = json.dumps(server.bodies[0]["messages"])
    assert "user" in prompt.lower()  # the user's turn went into the request


def test_judge_failures_leave_the_term_missing_and_training_goes_on(tmp_path):
    with chat_server(lambda call, body: completion("a fine answer")) as server:
        trainer = judged_trainer(tmp_path, server.url)
        result_terms = {}
        advantages = trainer.advantages

        def spy(result):
            result_terms.update(result.reward_terms)
            return advantages(result)

        trainer.advantages = spy
        record = trainer.train_iteration()
    assert server.calls > 0 and record["llm_scored"] == 0
    assert record["llm_failed"] + record["llm_silent"] == 4
    scores = result_terms[TERM]
    assert np.isnan(scores[~np.isin(scores, [0.0])]).all()  # unparsable replies: missing
    assert np.isfinite(record["reward"])


def test_unsharded_copy_holds_the_same_weights():
    models = tiny_models(seed=3)
    with torch.no_grad():
        models.lm.text_linear.weight.mul_(1.5)  # differs from a fresh init
    copy = unsharded_copy(models, models.lm.state_dict(), lora_rank=0)
    assert copy.lm is not models.lm
    codes = torch.randint(0, 100, (1, 17, 6))
    trainable = torch.ones(1, 6, dtype=torch.bool)
    with torch.no_grad():
        expected = MoshiScorer(models.lm)(codes, trainable)[0]
        torch.testing.assert_close(MoshiScorer(copy.lm)(codes, trainable)[0], expected)


def test_logged_evaluations_read_back_with_their_metrics():
    results = {
        "TurnTaking": AxisResult(
            "TurnTaking", (-1.0, -0.5), {"tor": (1.0, 0.0), "latency": (0.25, float("nan"))}
        )
    }
    logged = json.loads(json.dumps(eval_json(results)))  # NaN is written as null
    assert logged["TurnTaking"]["metrics"]["latency"]["values"] == [0.25, None]
    assert logged["TurnTaking"]["metrics"]["latency"]["value"] == 0.25  # over take-overs only
    back = results_from_json(logged)["TurnTaking"]
    assert back.rewards == (-1.0, -0.5) and back.metrics["tor"] == (1.0, 0.0)
    np.testing.assert_array_equal(back.metrics["latency"], [0.25, np.nan])


def test_a_second_run_on_one_out_folder_stops_at_once_naming_the_lock(tmp_path):
    holder = hold_lock(tmp_path / "run")
    try:
        started = time.perf_counter()
        with pytest.raises(SystemExit, match=f"lock held by pid {holder.pid}"):
            main(["--out", str(tmp_path / "run"), "--model", "tiny-random", "--iterations", "1"])
        assert time.perf_counter() - started < 5  # before any model is built
        assert not (tmp_path / "run" / "log.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
