"""Resuming a run: on the settings it was trained with, and with logs that hold each iteration
once after a kill between checkpoints."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_grpo_trainer import config, hesitant_models, quiet_axis  # noqa: F401

from agents.cli import train as train_cli
from agents.grpo.trainer import LOG, GRPOTrainer
from agents.moshi.models import tiny_models


def test_resuming_on_other_settings_is_refused_naming_them(tmp_path):
    GRPOTrainer(config(), hesitant_models(5), tmp_path).save()
    changed = GRPOTrainer(config(lr=2e-3, lead_in_s=2.0), hesitant_models(5), tmp_path)
    expected = r"was trained with other settings \(env.lead_in_s: 3.0 -> 2.0; lr: 0.001 -> 0.002\)"
    with pytest.raises(ValueError, match=expected):
        changed.resume()
    assert changed.iteration == 0
    assert changed.resume(allow_changes=True)


def test_a_run_may_be_extended_and_evaluate_or_checkpoint_at_another_pace(tmp_path):
    GRPOTrainer(config(), hesitant_models(5), tmp_path).save()
    longer = config(iterations=6, eval_every=2, checkpoint_every=3)
    assert GRPOTrainer(longer, hesitant_models(5), tmp_path).resume()


def test_the_command_refuses_other_settings_unless_told(tmp_path):
    out = tmp_path / "run"
    flags = ["--model", "tiny-random", "--axes", "Quiet", "--groups", "1", "--group-size", "2"]
    flags += ["--num-scenarios", "2", "--eval-episodes", "1", "--out", str(out)]
    settings = train_cli.load_config(train_cli.build_parser().parse_args(flags))
    GRPOTrainer(settings, tiny_models(0), out).save()
    with pytest.raises(SystemExit, match=r"\(lr: 0.0005 -> 0.002\).*--resume-with-changes"):
        train_cli.main([*flags, "--lr", "0.002"])
    assert "--resume-with-changes" in train_cli.build_parser().format_help()


def logged_iterations(folder):
    return [json.loads(line)["iteration"] for line in (folder / LOG).read_text().splitlines()]


def test_a_run_killed_after_its_checkpoint_logs_each_iteration_once_when_resumed(tmp_path):
    settings = config(iterations=4, checkpoint_every=2)
    killed = GRPOTrainer(settings, hesitant_models(5), tmp_path)
    train_iteration = killed.train_iteration

    def killed_after_iteration_3():
        if killed.iteration == 3:  # iteration 3 is logged; the last checkpoint holds 2
            raise KeyboardInterrupt
        return train_iteration()

    killed.train_iteration = killed_after_iteration_3
    with pytest.raises(KeyboardInterrupt):
        killed.run(progress=False)
    assert logged_iterations(tmp_path) == [0, 1, 2, 3]

    resumed = GRPOTrainer(settings, hesitant_models(5), tmp_path)
    assert resumed.resume() and resumed.iteration == 2
    resumed.run(progress=False)
    assert logged_iterations(tmp_path) == [0, 1, 2, 3, 4]
    assert [record["iteration"] for record in resumed.history] == [0, 1, 2, 3, 4]
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [event.step for event in events.Scalars("train/reward")] == [1, 2, 3, 4]
    rewards = [event.value for event in events.Scalars("train/reward")]
    assert rewards[2:] == pytest.approx([r["reward"] for r in resumed.history[3:]])
