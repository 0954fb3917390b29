"""``fdenv-data``: make scenario sets on disk.

``fdenv-data synth --out DIR`` writes synthetic scenarios of every axis to ``DIR/manifest.jsonl``
and ``DIR/audio/``, in parallel, reproducibly from ``--seed``. ``fdenv-data mine`` mines them
from two-channel conversation corpora (:mod:`fdenv.mining.command`). ``fdenv-data import-fdbench``
turns Full-Duplex-Bench v1 sample folders into one (:mod:`fdenv.fdbench.samples`).

Every command holds a lock in ``--out`` while it runs (a second run on the same folder stops at
once, naming the pid of the first) and refuses an ``--out`` that holds another kind of set
(``synth`` into a mined folder) unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fdenv.audio.acoustics import Acoustics, augment
from fdenv.axes import PAPER_AXES, Axis
from fdenv.fdbench.samples import import_command
from fdenv.manifest import ManifestWriter, write_scenario_audio, writing_set
from fdenv.mining.command import OVERWRITE_HELP, add_mine_parser
from fdenv.registration import get_axis
from fdenv.scenarios.synthetic import make_scenario


def _synth_one(job: tuple[Axis, int, int, str, Acoustics | None, str]) -> dict[str, Any]:
    axis, seed, index, folder, acoustics, audio_format = job
    scenario = make_scenario(axis, seed, index)
    if acoustics is not None:
        rng = np.random.default_rng([seed, index, 1])
        scenario.audio, applied = augment(scenario.audio, scenario.user_speech, acoustics, rng)
        scenario.source["acoustics"] = applied
    return write_scenario_audio(Path(folder), scenario, audio_format)


def synth(args: argparse.Namespace) -> int:
    names = [a.name for a in PAPER_AXES] if args.axes == ["all"] else args.axes
    axes = [get_axis(name) for name in names]
    acoustics = None
    if args.reverb or args.snr_db is not None:
        acoustics = Acoustics(
            reverb_prob=1.0 if args.reverb else 0.0,
            snr_db_range=tuple(args.snr_db) if args.snr_db else None,
        )
    jobs = [
        (axis, args.seed, index, str(args.out), acoustics, args.format)
        for axis in axes
        for index in range(args.num)
    ]
    start = time.perf_counter()
    claim = writing_set(args.out, "synthetic", args.overwrite)
    with claim, ManifestWriter(args.out, args.format) as writer:
        if args.workers <= 1:
            records = map(_synth_one, jobs)
            for record in tqdm(records, total=len(jobs), desc="synthesising", unit="scenario"):
                writer.add_record(record)
        else:
            with ProcessPoolExecutor(args.workers) as pool:
                records = pool.map(_synth_one, jobs, chunksize=8)
                for record in tqdm(records, total=len(jobs), desc="synthesising", unit="scenario"):
                    writer.add_record(record)
    elapsed = time.perf_counter() - start
    print(
        f"wrote {writer.count} scenarios ({args.num} per axis: {', '.join(names)}) "
        f"to {Path(args.out) / 'manifest.jsonl'} in {elapsed:.1f} s"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fdenv-data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("synth", help="write synthetic scenarios to a manifest folder")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--axes", nargs="+", default=["all"], help="axis names, or 'all'")
    p.add_argument("--num", type=int, default=100, help="scenarios per axis (default 100)")
    p.add_argument("--seed", type=int, default=0, help="scenario seed (another seed: held-out)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes")
    p.add_argument("--reverb", action="store_true", help="convolve with a random room RIR")
    p.add_argument(
        "--snr-db", type=float, nargs=2, metavar=("LOW", "HIGH"), help="add noise at this SNR"
    )
    p.add_argument("--format", choices=["flac", "wav"], default="flac")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(run=synth)
    p = commands.add_parser(
        "import-fdbench", help="turn Full-Duplex-Bench v1 sample folders into a manifest folder"
    )
    p.add_argument("--src", type=Path, required=True, help="benchmark folder (input.wav + labels)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--format", choices=["flac", "wav"], default="flac")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(run=import_command)
    add_mine_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "num", 1) < 1:
        print("fdenv-data: --num must be >= 1", file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:  # FolderLocked among them
        print(f"fdenv-data: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
