"""The GPU benchmark kit runs end to end at the tiny size on the CPU, so that it cannot rot."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# CPU only, as on a machine without a GPU
ENV = {**os.environ, "NO_TORCH_COMPILE": "1", "CUDA_VISIBLE_DEVICES": ""}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "benchmarks/gpu.py", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_tiny_kit_prints_every_measure_on_cpu():
    result = run(
        "--preset", "tiny", "--device", "cpu", "--steps", "2", "--batch-sizes", "1", "2",
        "--lora-rank", "4",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines[0]
    assert "preset tiny" in header and "device cpu" in header and "dtype float32" in header
    assert lines[1].startswith("bound:") and "ms/step" in lines[1]
    measures = {
        "[1] streaming step B=1 ": "ms/step",
        "[1] streaming step B=2 ": "x the B=1 step",
        "[2] bandwidth bound": "x (target",
        "[3] log-prob pass": "rollouts x",
        "[4] GRPO update, LoRA r=4": "trained parameters",
        "[5] full-parameter update": "trained parameters",
        "[6] peak memory": "n/a on cpu",
    }
    for prefix, content in measures.items():
        found = [line for line in lines if line.startswith(prefix)]
        assert len(found) == 1, (prefix, result.stdout)
        assert content in found[0] and "did not fit" not in found[0], found[0]
    assert lines[-1].startswith("total:")


def test_7b_kit_without_cuda_says_it_needs_a_gpu(monkeypatch, capsys):
    """In-process (the guard runs before any model is built): exit 0, nothing measured."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.setattr(sys, "argv", ["gpu.py", "--preset", "7b", "--device", "cpu"])
    gpu = importlib.import_module("gpu")
    assert gpu.main() == 0
    out = capsys.readouterr().out
    assert "the 7B kit needs a CUDA GPU" in out
    assert "[1]" not in out  # nothing measured
