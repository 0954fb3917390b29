"""Small two-party conversations with known timing, written in each corpus layout.

Every inter-pausal unit (IPU) is espeak speech cut to an exact length and placed at an exact
time, so the IPUs, and therefore every axis segment, are known by construction. The script
``SCRIPT`` holds one segment of each axis with channel 0 as the user (see ``EXPECTED``) and
none with channel 1 as the user.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from fdenv.audio.espeak import SpeakerStyle, get_engine
from fdenv.audio.io import resample
from fdenv.constants import SAMPLE_RATE

DURATION_S = 40.0
SCRIPT: tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]] = (
    # channel 0 (A)
    (
        (1.0, 3.0),  # utterance U1 = [1.0, 6.0] with the pause [3.0, 3.6]
        (3.6, 6.0),
        (13.5, 20.0),  # U2, during which B backchannels twice
        (22.0, 26.0),  # X1 of the interruption
        (29.5, 33.0),  # X2: starts before B's Y1 ends
    ),
    # channel 1 (B)
    (
        (6.3, 12.0),  # answers U1 after a 0.3 s gap
        (15.0, 15.4),  # backchannel
        (17.5, 18.1),  # backchannel
        (26.2, 31.0),  # Y1
        (34.0, 38.0),  # Y2
    ),
)
EXPECTED = {
    # axis: (user channel, window) with the default MiningRules (lead 0.5, tail 0.2, response 5)
    "PauseHandling": (0, (0.5, 6.2)),
    "TurnTaking": (0, (0.5, 11.0)),
    "Backchannel": (0, (13.0, 20.2)),
    "UserInterruption": (0, (21.5, 38.0)),
}
SENTENCES = (
    "The weather was lovely when we walked along the river to the old mill.",
    "I think the train leaves at seven, but we should check the timetable first.",
    "Mm hmm.",
    "My sister bought a bicycle last week and rides it to work every day.",
)
STYLES = (SpeakerStyle("en-us", 170, 50), SpeakerStyle("en-us+f3", 160, 60))


def speech(seconds: float, channel: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Espeak speech cut (or looped) to exactly ``seconds`` at ``rate``."""
    engine = get_engine()
    pieces, total = [], 0
    k = channel
    while total < seconds * SAMPLE_RATE:
        audio = engine.speak(SENTENCES[k % len(SENTENCES)], STYLES[channel]).audio
        pieces.append(audio)
        total += audio.size
        k += 1
    clip = np.concatenate(pieces)[: round(seconds * SAMPLE_RATE)]
    return resample(clip, SAMPLE_RATE, rate)


@functools.lru_cache(maxsize=8)
def render(script=SCRIPT, duration_s: float = DURATION_S, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The conversation as float32 ``[2, n]`` at ``rate``, silence outside the IPUs (cached:
    do not modify the result)."""
    out = np.zeros((2, round(duration_s * rate)), dtype=np.float32)
    for channel, ipus in enumerate(script):
        for start, end in ipus:
            clip = speech(end - start, channel, rate)
            first = round(start * rate)
            out[channel, first : first + clip.size] = clip[: out.shape[1] - first]
    return out


def transcript(ipus, channel: int) -> list[dict]:
    """Seamless-style transcript segments, one per IPU, two words each (times known)."""
    segments = []
    for start, end in ipus:
        mid = (start + end) / 2
        words = [
            {"word": "hello", "start": start, "end": mid, "score": 0.9},
            {"word": f"ch{channel}", "start": mid, "end": end, "score": 0.9},
        ]
        segments.append(
            {"transcript": f"hello ch{channel}", "start": start, "end": end, "words": words}
        )
    return segments


def write_seamless(
    root: Path,
    prefix: str = "V00_S0001_I00000001",
    script=SCRIPT,
    audio: np.ndarray | None = None,
    participants: tuple[str, str] = ("P0001A", "P0002"),
) -> list[Path]:
    """Writes one interaction in the Seamless Interaction layout (48 kHz WAV + JSON each)."""
    audio = render(script, rate=48_000) if audio is None else audio
    folder = root / "improvised" / "train" / "0000"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for channel, participant in enumerate(participants):
        stem = folder / f"{prefix}_{participant}"
        sf.write(stem.with_suffix(".wav"), audio[channel], 48_000, subtype="PCM_16")
        record = {
            "id": stem.name,
            "metadata:vad": [{"start": s, "end": e} for s, e in script[channel]],
            "metadata:transcript": transcript(script[channel], channel),
        }
        stem.with_suffix(".json").write_text(json.dumps(record))
        paths.append(stem.with_suffix(".wav"))
    return paths


def write_folder(root: Path, name: str = "conv1", script=SCRIPT, sidecar: bool = True) -> Path:
    """Writes one stereo FLAC at 24 kHz, with a sidecar JSON of VAD and transcripts."""
    path = root / f"{name}.flac"
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, render(script).T, SAMPLE_RATE)
    if sidecar:
        channels = [
            {
                "vad": [list(i) for i in script[c]],
                "transcript": [
                    {
                        "text": s["transcript"],
                        "start": s["start"],
                        "end": s["end"],
                        "words": [[w["word"], w["start"], w["end"]] for w in s["words"]],
                    }
                    for s in transcript(script[c], c)
                ],
            }
            for c in (0, 1)
        ]
        path.with_suffix(".json").write_text(json.dumps({"channels": channels}))
    return path


def write_fisher(root: Path, name: str = "fe_03_00001", subtype: str = "PCM_16") -> Path:
    """Writes one two-channel 8 kHz SPHERE file plus an LDC-style transcript."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}.sph"
    sf.write(path, render(rate=8_000).T, 8_000, format="NIST", subtype=subtype)
    lines = [f"{s:.2f} {e:.2f} {'AB'[c]}: hello there" for c in (0, 1) for s, e in SCRIPT[c]]
    (root / f"{name}.txt").write_text("# fe_03_00001.sph\n\n" + "\n".join(lines) + "\n")
    return path
