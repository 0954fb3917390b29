"""Mining throughput: conversation hours labelled per minute per core, and the cost per scenario.

Targets: >= 5,000x real time per core where the corpus ships VAD intervals, >= 300x with
Silero, on every run (the best of ``--repeats`` runs is printed with the worst). Mining has two
passes (fdenv/mining/): labelling scans every conversation (VAD, utterances, candidates: this is
what grows with corpus hours), cutting reads and writes only the chosen scenarios (at most 2,000
per axis whatever the corpus size), so the two are timed apart.
Real time counts conversation seconds (one hour of a two-party conversation is one hour,
although it holds two hours of channels). Silero's labelling is broken down into reading the
files, resampling to 16 kHz (soxr), the network's per-chunk extractor and its recurrence, and
the rest (intervals, utterances, candidates). Also: RIR bank build time and augmentation cost
per scenario.

The corpus is the test suite's 40 s espeak conversation (tests/mining_corpus.py) tiled to
``--minutes`` per conversation, written in the Seamless Interaction layout (48 kHz WAV + JSON).

    python benchmarks/mining.py [--conversations 4] [--minutes 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mining_corpus import DURATION_S, SCRIPT, render, write_seamless

from fdenv.audio.acoustics import Acoustics, RIRBank, RoomConfig, augment
from fdenv.audio.io import resample
from fdenv.audio.vad import SILERO_RATE, BatchedSileroVAD
from fdenv.constants import SAMPLE_RATE
from fdenv.corpora import SeamlessReader
from fdenv.mining import MiningConfig, mine_corpus
from fdenv.mining.label import label_conversation
from fdenv.timeline import Interval

VADS = ("auto", "silero", "webrtc")
TARGETS = {"auto": 5_000, "silero": 300}


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


def run(root: Path, seconds: float, vad: str, cap: int, repeats: int) -> float:
    """Mines the corpus ``repeats`` times; prints the best and worst labelling speed and
    returns the worst."""
    factors, per_scenario, cut = [], 0.0, 0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            config = MiningConfig(vad=vad, max_per_axis=cap)
            summary = mine_corpus(SeamlessReader(root), out, config, workers=1, progress=False)
        factors.append(seconds / summary["label_s"])
        cut = summary["scenarios_cut"]
        per_scenario = summary["cut_s"] / max(cut, 1)
    name = {"auto": "corpus VAD", "silero": "Silero", "webrtc": "webrtc"}[vad]
    print(
        f"| {name} | {max(factors):,.0f}x / {min(factors):,.0f}x | {min(factors) / 60:,.1f} h/min"
        f" | {per_scenario * 1000:.0f} ms ({cut} cut) |"
    )
    return min(factors)


def silero_breakdown(root: Path) -> None:
    """Where Silero labelling spends its time, summed over the corpus' conversations."""
    reader = SeamlessReader(root)
    vad = BatchedSileroVAD()
    spent = dict.fromkeys(("read", "resample", "extractor", "recurrence", "rest"), 0.0)
    total_s = 0.0
    for item in reader.scan().items:
        started = time.perf_counter()
        label_conversation(reader, item, MiningConfig(vad="silero"))
        whole = time.perf_counter() - started
        conversation = reader.open(item)
        total_s += conversation.duration
        files = {ref.path: ref for ref in conversation.channels}
        started = time.perf_counter()
        blocks = [sf.read(path, dtype="float32", always_2d=True) for path in files]
        spent["read"] += (read := time.perf_counter() - started)
        started = time.perf_counter()
        streams = [
            resample(np.ascontiguousarray(block[:, c]), rate, SILERO_RATE, "soxr")
            for block, rate in blocks
            for c in range(block.shape[1])
        ]
        spent["resample"] += (resampled := time.perf_counter() - started)
        with torch.inference_mode():
            started = time.perf_counter()
            features = vad.features(streams)
            spent["extractor"] += (extracted := time.perf_counter() - started)
            started = time.perf_counter()
            vad.recurrence(features)
            spent["recurrence"] += (recurred := time.perf_counter() - started)
        spent["rest"] += max(whole - read - resampled - extracted - recurred, 0.0)
    whole = sum(spent.values())
    print(f"Silero labelling, where the time goes ({total_s / 3600:.2f} h, one thread):")
    for part, cost in spent.items():
        print(f"  {part:<11}{cost:6.2f} s  {cost / whole:4.0%}  ({total_s / cost:,.0f}x real time)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=5.0, help="length of each conversation")
    parser.add_argument("--cap", type=int, default=4, help="scenarios cut per axis")
    parser.add_argument("--repeats", type=int, default=3, help="runs per labelling source")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seconds = build_corpus(root, args.conversations, args.minutes)
        print(f"corpus: {args.conversations} conversations, {seconds / 3600:.2f} h, one process")
        print(
            "| labels from | labelling, x real time (best / worst) |"
            " conversation hours per minute (worst) | cutting, per scenario |"
        )
        print("|---|---|---|---|")
        worst = {vad: run(root, seconds, vad, args.cap, args.repeats) for vad in VADS}
        silero_breakdown(root)
    for vad, target in TARGETS.items():
        met = "met" if worst[vad] >= target else "NOT met"
        print(f"target {vad} >= {target:,}x real time on every run: {met} ({worst[vad]:,.0f}x)")

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
