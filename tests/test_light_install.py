"""``pip install fdenv`` (no extras) gives working environments.

The core install has no torch, moshi, torchrl, tensordict, silero-vad, webrtcvad or httpx
(see pyproject.toml). This machine has them all, so a subprocess hides them behind a meta-path
finder that refuses to import them, then imports fdenv, plays every registered env and imports
every fdenv module. No module may need an extra at import: a feature that needs one imports it
where it is used, with :func:`fdenv.optional.require`, whose error names the extra; the calls
below check those errors. ``.ci/run`` also installs the core into a fresh venv and plays an env;
``tests/test_layout.py`` checks on the source that fdenv never imports agents.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = (
    "agents",
    "httpx",
    "moshi",
    "silero_vad",
    "tensorboard",
    "tensordict",
    "torch",
    "torchrl",
    "webrtcvad",
)
"""Top-level modules that only the extras (or the agents package) provide."""

SCRIPT = """
import importlib, importlib.abc, json, pkgutil, sys, traceback

BLOCKED = set(sys.argv[1].split(","))


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed (blocked by test_light_install)")
        return None


sys.meta_path.insert(0, Blocker())

import gymnasium as gym
import numpy as np

import fdenv
from fdenv.audio.vad import SileroVAD, WebRTCVAD
from fdenv.judge.client import ChatCompletionsJudge


def error(call):
    try:
        call()
    except Exception:
        return traceback.format_exc(limit=-1)
    return None


def play(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    for _ in range(5):
        env.step(env.action_space.sample())
    env.close()


envs = {i: error(lambda i=i: play(i)) for i in gym.registry if i.startswith("FullDuplex-")}
modules = {
    m.name: error(lambda m=m: importlib.import_module(m.name))
    for m in pkgutil.walk_packages(fdenv.__path__, "fdenv.")
}
extras = {
    "vad": [
        error(lambda: SileroVAD().speech_intervals(np.zeros(24_000, np.float32))),
        error(lambda: WebRTCVAD().speech_intervals_batch([np.zeros(16_000, np.float32)])),
    ],
    "judge": [error(lambda: ChatCompletionsJudge("http://127.0.0.1:8000/v1", "m"))],
}
print(json.dumps({"envs": envs, "modules": modules, "extras": extras}))
"""


@pytest.fixture(scope="module")
def light() -> dict:
    """What the subprocess without the extras found: an error (traceback) or None per check."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(BLOCKED)],
        cwd=ROOT,
        env={**os.environ, "NO_TORCH_COMPILE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_every_env_resets_and_steps_without_the_extras(light):
    assert len(light["envs"]) >= 5, light["envs"]
    failed = {env_id: err for env_id, err in light["envs"].items() if err}
    assert not failed, "\n".join(f"{k}:\n{v}" for k, v in failed.items())


def test_every_fdenv_module_imports_without_the_extras(light):
    assert "fdenv.env" in light["modules"]
    failed = {name: err for name, err in light["modules"].items() if err}
    assert not failed, "\n".join(f"{k}:\n{v}" for k, v in failed.items())


def test_features_that_need_an_extra_say_which(light):
    for extra, errors in light["extras"].items():
        for err in errors:
            assert err is not None and "ImportError" in err, err
            assert f"pip install 'fdenv[{extra}]'" in err, err
