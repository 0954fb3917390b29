"""The Moshi rollout example and benchmark run end to end on a tiny random model."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# CPU only: on a GPU machine the benchmark would also build a random 7B model
ENV = {**os.environ, "NO_TORCH_COMPILE": "1", "CUDA_VISIBLE_DEVICES": ""}


def run(*args: str) -> subprocess.CompletedProcess:
    """Runs a script; the timeout guards against a hang (a busy 2-core machine took over 120 s)."""
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_moshi_rollout_example_records_every_axis(tmp_path):
    result = run(
        "examples/moshi_rollout.py", "--model", "random", "--episodes", "1", "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert "FullDuplex-Mixed-v0" in result.stdout
    assert len(list(tmp_path.glob("*.wav"))) == 4 and len(list(tmp_path.glob("*.png"))) == 4


@pytest.mark.slow
def test_rollout_benchmark_prints_frames_per_second():
    result = run("benchmarks/rollout.py", "--steps", "5", "--batch-sizes", "1", "2")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "frames/s" in line]
    assert [line.split()[0] for line in lines] == ["B=1", "B=2"]
    assert all("env" in line and "Mimi encode" in line for line in lines)
    assert "skipped, no CUDA GPU" in result.stdout
