"""``fdenv-data mine``: axis scenarios from a two-channel conversation corpus, in one command.

    fdenv-data mine --corpus seamless --root ~/seamless_interaction --out runs/mined --workers 16

writes ``runs/mined/manifest.jsonl`` (pass it to ``gym.make(..., scenarios=...)``), ``audio/``,
``context/``, ``summary.json`` and ``state/`` (what makes a rerun resume). ``--out`` must lie
outside ``--root``; one run at a time writes it (a lock file names the running one's pid).
Every :class:`fdenv.mining.MiningConfig` field is a flag: ``--max-per-axis``, ``--vad``,
``--rules-response-s``, ``--acoustics`` (reverb and noise at their defaults) and
``--acoustics-*``, ...
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from fdenv.config_flags import ConfigFlags
from fdenv.corpora import READERS, get_reader
from fdenv.mining import MiningConfig, mine_corpus

OVERWRITE_HELP = "write into an --out holding another kind of scenario set (replaces its manifest)"


MINING_FLAGS = ConfigFlags(MiningConfig, names={"audio_format": "--format"})
"""A flag per MiningConfig field (``--rules-*``, ``--acoustics-*`` for the nested ones)."""


def add_mine_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("mine", help="mine axis scenarios from a two-channel corpus")
    p.add_argument("--corpus", choices=sorted(READERS), required=True, help="corpus layout")
    p.add_argument("--root", type=Path, required=True, help="corpus folder")
    p.add_argument("--out", type=Path, required=True, help="output folder (resumes if present)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes")
    p.add_argument(
        "--length-tolerance-s",
        type=float,
        default=0.5,
        help="channels whose lengths differ by more are skipped (default 0.5 s)",
    )
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    MINING_FLAGS.add_to(p)
    p.set_defaults(run=mine_command)


def mine_command(args: argparse.Namespace) -> int:
    config = MINING_FLAGS.build(args)
    reader = get_reader(args.corpus)(args.root, length_tolerance_s=args.length_tolerance_s)
    summary = mine_corpus(
        reader, args.out, config, args.workers, not args.no_progress, args.overwrite
    )
    shown = {k: v for k, v in summary.items() if k != "skipped_examples"}
    print(json.dumps(shown, indent=2))
    print(f"summary written to {Path(args.out) / 'summary.json'}")
    return 0
