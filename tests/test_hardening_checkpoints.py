"""A run folder from elsewhere is data, never code: checkpoints and caches load tensors only."""

import builtins
import os
import subprocess
import sys

import pytest
import torch
from test_grpo_trainer import config, hesitant_models, quiet_axis  # noqa: F401

from agents.grpo.trainer import CHECKPOINT, GRPOTrainer


class Planted:
    """Runs code when unpickled, as a checkpoint planted in an output folder could."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('x')",))


def test_a_planted_checkpoint_is_refused_without_running_its_code(tmp_path):
    marker = tmp_path / "pk_RAN"
    out = tmp_path / "pk"
    out.mkdir()
    torch.save({"torch_rng": [Planted(marker)]}, out / CHECKPOINT)
    trainer = GRPOTrainer(config(), hesitant_models(5), out)
    expected = rf"{out / CHECKPOINT}: cannot load it as a checkpoint \(it refers to exec, which"
    with pytest.raises(ValueError, match=expected):
        trainer.resume()
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"not a checkpoint", "cannot load it as a checkpoint"),
        (None, "not a checkpoint of this trainer: 'iteration' must be"),
    ],
)
def test_a_corrupt_or_foreign_checkpoint_names_the_file(tmp_path, content, expected):
    path = tmp_path / CHECKPOINT
    if content is None:
        torch.save({"iteration": "3", "torch_rng": []}, path)
    else:
        path.write_bytes(content)
    trainer = GRPOTrainer(config(), hesitant_models(5), tmp_path)
    with pytest.raises(ValueError, match=f"{path}: {expected}"):
        trainer.resume()


def test_a_saved_run_resumes_through_the_safe_loader(tmp_path):
    trainer = GRPOTrainer(config(iterations=1), hesitant_models(5), tmp_path)
    trainer.run(progress=False)  # evaluation, one iteration, a checkpoint
    trainer.history[-1]["nan"] = float("nan")
    trainer.save()
    resumed = GRPOTrainer(config(iterations=1), hesitant_models(5), tmp_path)
    assert resumed.resume() and resumed.iteration == 1
    assert resumed.history[0] == trainer.history[0]
    assert resumed.history[-1]["reward"] == trainer.history[-1]["reward"]


def test_stale_checkpoint_temporaries_of_a_killed_run_are_removed_on_resume(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    stale = tmp_path / f".tmp-{process.pid}-0123abcd-{CHECKPOINT}"
    live = tmp_path / f".tmp-{os.getpid()}-0123abcd-{CHECKPOINT}"
    stale.write_bytes(b"half a checkpoint")
    live.write_bytes(b"being written")
    trainer = GRPOTrainer(config(), hesitant_models(5), tmp_path)
    assert not trainer.resume()
    assert not stale.exists() and live.exists()
