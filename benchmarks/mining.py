"""Mining throughput: conversation hours labelled per minute per core, and the cost per scenario.

Targets: >= 5,000x real time per core where the corpus ships VAD intervals, >= 300x with
Silero. Mining has two passes (fdenv/mining/): labelling scans every conversation (VAD,
utterances, candidates: this is what grows with corpus hours), cutting reads and writes only the
chosen scenarios (at most 2,000 per axis whatever the corpus size), so the two are timed apart.
Real time counts conversation seconds (one hour of a two-party conversation is one hour,
although it holds two hours of channels). Also: RIR bank build time and augmentation cost per
scenario.

The corpus is the test suite's 40 s espeak conversation (tests/mining_corpus.py) tiled to
``--minutes`` per conversation, written in the Seamless Interaction layout (48 kHz WAV + JSON).

    python benchmarks/mining.py [--conversations 4] [--minutes 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mining_corpus import DURATION_S, SCRIPT, render, write_seamless

from fdenv.audio.acoustics import Acoustics, RIRBank, RoomConfig, augment
from fdenv.constants import SAMPLE_RATE
from fdenv.corpora import SeamlessReader
from fdenv.mining import MiningConfig, mine_corpus
from fdenv.timeline import Interval


def build_corpus(root: Path, conversations: int, minutes: float) -> float:
    """Writes the corpus; returns its duration in seconds."""
    repeats = max(round(minutes * 60 / DURATION_S), 1)
    script = tuple(
        tuple((s + k * DURATION_S, e + k * DURATION_S) for k in range(repeats) for s, e in ipus)
        for ipus in SCRIPT
    )
    audio = np.tile(render(rate=48_000), repeats)
    for index in range(conversations):
        write_seamless(root, prefix=f"V00_S0001_I{index:08d}", script=script, audio=audio)
    return conversations * repeats * DURATION_S


def run(root: Path, seconds: float, vad: str, cap: int) -> None:
    with tempfile.TemporaryDirectory() as out:
        config = MiningConfig(vad=vad, max_per_axis=cap)
        summary = mine_corpus(SeamlessReader(root), out, config, workers=1, progress=False)
    factor = seconds / summary["label_s"]
    per_scenario = summary["cut_s"] / max(summary["scenarios_cut"], 1)
    name = {"auto": "corpus VAD", "silero": "Silero (batched)", "webrtc": "webrtc"}[vad]
    print(
        f"| {name} | {factor:,.0f}x | {factor / 60:,.1f} h/min | "
        f"{per_scenario * 1000:.0f} ms ({summary['scenarios_cut']} cut) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=5.0, help="length of each conversation")
    parser.add_argument("--cap", type=int, default=4, help="scenarios cut per axis")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seconds = build_corpus(root, args.conversations, args.minutes)
        print(f"corpus: {args.conversations} conversations, {seconds / 3600:.2f} h, one process")
        print(
            "| labels from | labelling, x real time | conversation hours per minute |"
            " cutting, per scenario |"
        )
        print("|---|---|---|---|")
        for vad in ("auto", "silero", "webrtc"):
            run(root, seconds, vad, args.cap)

    started = time.perf_counter()
    bank = RIRBank.build(RoomConfig(num_rirs=32, seed=12345))
    print(f"RIR bank, {len(bank)} rooms (max order 12): {time.perf_counter() - started:.1f} s")
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(10 * SAMPLE_RATE)).astype(np.float32)
    acoustics = Acoustics(room=RoomConfig(num_rirs=32, seed=12345))
    speech = [Interval(1.0, 9.0)]
    augment(audio, speech, acoustics, rng)
    started = time.perf_counter()
    for _ in range(20):
        augment(audio, speech, acoustics, rng)
    cost = (time.perf_counter() - started) / 20
    print(f"augmentation (reverb + pink noise) of a 10 s scenario: {cost * 1000:.1f} ms")


if __name__ == "__main__":
    main()
