import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fdenv.constants import FRAME_S, FRAME_SIZE, PAD_ID, SAMPLE_RATE
from fdenv.scenario import Scenario
from fdenv.timeline import Interval
from fdenv.voice import Voice, VoiceFrame

# moshi reads this when it is first imported (by the test modules, after this file)
os.environ.setdefault("NO_TORCH_COMPILE", "1")
# tiny models are fastest on one thread; a second one contends with everything else on 2 cores
torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures" / "fdbench_v1"
WORD = 1000
"""A text token that is a word (anything but PAD 3 and EPAD 0)."""


def noise_scenario(axis: str, duration: float, speech: list[tuple[float, float]], **labels):
    """A scenario whose 'speech' is noise at the labelled times: no TTS needed, labels exact."""
    rng = np.random.default_rng(0)
    audio = np.zeros(round(duration * SAMPLE_RATE), dtype=np.float32)
    for start, end in speech:
        a, b = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
        audio[a:b] = rng.uniform(-0.1, 0.1, b - a)
    return Scenario(
        id=f"hand-{axis}",
        axis=axis,
        audio=audio,
        user_speech=[Interval(*s) for s in speech],
        **labels,
    )


def frame_start(t: float, lead_in_s: float) -> float:
    """Scenario time at which the frame containing scenario time ``t`` starts."""
    return np.floor((t + lead_in_s) / FRAME_S + 1e-9) * FRAME_S - lead_in_s


def play_oracle(env, scenario: Scenario, speech: list[tuple[float, float]]):
    """Plays a pinned scenario, emitting a word token in every frame that starts inside ``speech``.

    With ``TextVoice(hold_frames=1)`` the agent then speaks exactly in those frames.
    Returns (reward, last info).
    """
    env.reset(seed=0, options={"scenario": scenario})
    lead = env.unwrapped.lead_in_s
    done, k = False, 0
    while not done:
        t = k * FRAME_S - lead
        action = np.zeros(9, dtype=np.int64)
        action[0] = WORD if any(s - 1e-9 <= t < e - 1e-9 for s, e in speech) else PAD_ID
        _, reward, done, _, info = env.step(action)
        k += 1
    return reward, info


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is not available")
    return FIXTURES


class LevelVoice(Voice):
    """A test voice that makes audio: it speaks in frames with a word token, and its audio in a
    frame is the constant ``level(actions)`` ``[N, 1]`` of that frame's actions."""

    makes_audio = True

    def __init__(self, level) -> None:
        self.level = level

    def reset(self, num_envs: int) -> None:
        pass

    def reset_envs(self, mask: np.ndarray) -> None:
        pass

    def step(self, actions: np.ndarray) -> VoiceFrame:
        audio = np.repeat(self.level(actions), FRAME_SIZE, axis=1).astype(np.float32)
        return VoiceFrame(actions[:, 0] != PAD_ID, audio)
