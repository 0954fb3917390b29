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
