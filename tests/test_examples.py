"""The example scripts run end to end, as a user would start them."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_play_baselines_runs_and_records(tmp_path):
    result = subprocess.run(
        [sys.executable, "examples/play_baselines.py", "--episodes", "1", "--out", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "NO_TORCH_COMPILE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Rule" in result.stdout and str(tmp_path) in result.stdout
    assert list(tmp_path.glob("*.wav")) and list(tmp_path.glob("*.png"))


def run_example(script: str, *args: str) -> str:
    """Runs ``examples/<script>`` with ``args``; returns its stdout (fails on a non-zero exit)."""
    result = subprocess.run(
        [sys.executable, f"examples/{script}", *args],
        cwd=ROOT,
        env={**os.environ, "NO_TORCH_COMPILE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def curve(stdout: str) -> list[list[str]]:
    """The learning curve's rows: the printed lines that start with an iteration number."""
    return [line.split() for line in stdout.splitlines() if line.strip()[:1].isdigit()]


def test_custom_axis_example_registers_and_trains(tmp_path):
    out = run_example(
        "custom_axis.py",
        *("--iterations", "2", "--groups", "1", "--group-size", "4"),
        *("--eval-episodes", "2", "--out", str(tmp_path)),
    )
    assert "registered FullDuplex-Greeting-v0" in out
    assert [row[0] for row in curve(out)] == ["1", "2"]
    assert out.count("held-out") == 2 and "greeted" in out and "overlap_s" in out
    assert (tmp_path / "checkpoint.pt").is_file()


def test_ppo_torchrl_example_prints_its_learning_curve():
    out = run_example(
        "ppo_torchrl.py", "--iterations", "2", "--frames", "400", "--envs", "2", "--epochs", "1"
    )
    rows = curve(out)
    assert [row[0] for row in rows] == ["1", "2"]
    assert all(int(row[1]) >= 1 for row in rows)  # 200 frames per env: an episode ends in each
    assert "mean reward, first 1 iterations" in out


def test_cleanrl_example_prints_its_learning_curve():
    out = run_example(
        "cleanrl_reinforce.py", "--iterations", "3", "--groups", "2", "--group-size", "2"
    )
    rows = curve(out)
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert all(float(row[1]) <= 0.0 for row in rows)  # turn-taking rewards are -latency
    assert "mean reward, first 1 iterations" in out
