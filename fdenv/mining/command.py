"""``fdenv-data mine``: axis scenarios from a two-channel conversation corpus, in one command.

    fdenv-data mine --corpus seamless --root ~/seamless_interaction --out runs/mined --workers 16

writes ``runs/mined/manifest.jsonl`` (pass it to ``gym.make(..., scenarios=...)``), ``audio/``,
``context/``, ``summary.json`` and ``state/`` (what makes a rerun resume). ``--out`` must lie
outside ``--root``; one run at a time writes it (a lock file names the running one's pid).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from fdenv.audio.acoustics import Acoustics, RoomConfig
from fdenv.axes import PAPER_AXES
from fdenv.corpora import READERS, get_reader
from fdenv.mining import VAD_BACKENDS, VAD_MODES, MiningConfig, mine_corpus
from fdenv.segments import MiningRules

OVERWRITE_HELP = "write into an --out holding another kind of scenario set (replaces its manifest)"


def add_mine_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("mine", help="mine axis scenarios from a two-channel corpus")
    p.add_argument("--corpus", choices=sorted(READERS), required=True, help="corpus layout")
    p.add_argument("--root", type=Path, required=True, help="corpus folder")
    p.add_argument("--out", type=Path, required=True, help="output folder (resumes if present)")
    p.add_argument("--axes", nargs="+", default=["all"], help="axis names, or 'all'")
    p.add_argument("--max-per-axis", type=int, default=2_000, help="cap per axis (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="which candidates the cap keeps")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes")
    p.add_argument(
        "--vad",
        choices=VAD_MODES,
        default="auto",
        help="auto: the corpus's VAD where present, else --fallback-vad; or always run a backend",
    )
    p.add_argument("--fallback-vad", choices=VAD_BACKENDS, default="silero")
    p.add_argument("--context-s", type=float, default=30.0, help="preceding recording kept (s)")
    p.add_argument(
        "--length-tolerance-s",
        type=float,
        default=0.5,
        help="channels whose lengths differ by more are skipped (default 0.5 s)",
    )
    p.add_argument("--reverb", action="store_true", help="convolve user audio with a room RIR")
    p.add_argument(
        "--snr-db", type=float, nargs=2, metavar=("LOW", "HIGH"), help="add noise at this SNR"
    )
    p.add_argument("--rir-bank-size", type=int, default=RoomConfig.num_rirs, help="RIRs in bank")
    p.add_argument(
        "--rt60",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=RoomConfig.rt60_range,
        help="RT60 range of the bank's rooms (s)",
    )
    p.add_argument("--rir-seed", type=int, default=RoomConfig.seed, help="seed of the RIR bank")
    p.add_argument("--format", choices=["flac", "wav"], default="flac")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=mine_command)


def mine_command(args: argparse.Namespace) -> int:
    axes = tuple(a.name for a in PAPER_AXES) if args.axes == ["all"] else tuple(args.axes)
    acoustics = None
    if args.reverb or args.snr_db is not None:
        acoustics = Acoustics(
            reverb_prob=1.0 if args.reverb else 0.0,
            snr_db_range=tuple(args.snr_db) if args.snr_db else None,
            room=RoomConfig(
                num_rirs=args.rir_bank_size, rt60_range=tuple(args.rt60), seed=args.rir_seed
            ),
        )
    config = MiningConfig(
        axes=axes,
        max_per_axis=args.max_per_axis,
        seed=args.seed,
        rules=MiningRules(),
        vad=args.vad,
        fallback_vad=args.fallback_vad,
        context_s=args.context_s,
        acoustics=acoustics,
        audio_format=args.format,
    )
    reader = get_reader(args.corpus)(args.root, length_tolerance_s=args.length_tolerance_s)
    summary = mine_corpus(
        reader, args.out, config, args.workers, not args.no_progress, args.overwrite
    )
    shown = {k: v for k, v in summary.items() if k != "skipped_examples"}
    print(json.dumps(shown, indent=2))
    print(f"summary written to {Path(args.out) / 'summary.json'}")
    return 0
