"""``fdenv-train``: GRPO post-training of Moshi on fdenv's interactivity axes.

    fdenv-train --out runs/grpo                       # tiny base model, all four axes, CPU
    fdenv-train --config my_run.json --out runs/x     # GRPOConfig fields from a JSON file
    fdenv-train --loss-type dapo --epsilon-high 0.28 --lead-in-s 2 --acoustics  # any field
    fdenv-train --hf-repo kyutai/moshiko-pytorch-bf16 --lora-rank 128 --device cuda ...
    torchrun --nproc_per_node 8 -m agents.cli.train --hf-repo ... # one group per rank

Writes ``log.jsonl``, TensorBoard events, ``checkpoint.pt`` (resumed automatically when the
folder already has one, on the settings it was trained with: see ``--resume-with-changes``),
``reward_curve.png``, ``summary.md`` (held-out reward per axis before and after, with 95%
intervals), example episodes under ``episodes/`` and the trained policy as a Moshi checkpoint
under ``moshi_checkpoint/`` (see :mod:`agents.moshi.export`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from contextlib import nullcontext
from pathlib import Path

import torch

from agents.evaluate import HELD_OUT_SEED
from agents.grpo.trainer import RESUMABLE, GRPOConfig, GRPOTrainer
from agents.moshi.export import export_checkpoint
from agents.moshi.lora import add_lora
from agents.moshi.models import MoshiModels, eager_on_cpu, load_checkpoint, tiny_models
from agents.moshi.policy import MoshiPolicy
from agents.moshi.warmstart import tiny_base_models
from agents.report import (
    metric_changes_markdown,
    metrics_markdown,
    plot_metrics,
    plot_rewards,
    results_from_json,
    summary_table,
)
from fdenv.agent import env_for
from fdenv.atomic import FolderLocked, folder_lock
from fdenv.axes import Axis
from fdenv.config import EnvConfig, plain
from fdenv.config_flags import ConfigError, ConfigFlags, load_json
from fdenv.env import FullDuplexEnv
from fdenv.play import play
from fdenv.wrappers import RecordEpisode

CONFIG_FLAGS = ConfigFlags(
    GRPOConfig,
    flatten=("env",),
    skip={
        "env.text_card": "the model's vocabulary",
        "env.audio_card": "the model's vocabulary",
        "env.word_starts": "the model's tokenizer",
    },
)
"""A flag per GRPOConfig field; the env's settings without prefix (``--lead-in-s``)."""


def build_models(args: argparse.Namespace, seed: int) -> MoshiModels:
    """The starting model: the tiny warm-started base, a random tiny model (from ``seed``), or a
    checkpoint."""
    if args.hf_repo or args.moshi_weight:
        return load_checkpoint(
            hf_repo=args.hf_repo,
            moshi_weight=args.moshi_weight,
            mimi_weight=args.mimi_weight,
            tokenizer=args.tokenizer,
            config_path=args.config_path,
            device=args.device,
        )
    if args.model == "tiny-random":
        return tiny_models(seed=seed, device=args.device)
    return tiny_base_models(device=args.device)


def unsharded_copy(
    models: MoshiModels, weights: dict[str, torch.Tensor], lora_rank: int
) -> MoshiModels:
    """A plain LM holding ``weights`` (gathered from FSDP shards), for recording and export."""
    from moshi.models import loaders

    dtype = next(iter(weights.values())).dtype
    lm = loaders.get_moshi_lm(None, lm_kwargs=models.lm_config, device=models.device, dtype=dtype)
    if lora_rank > 0:
        add_lora(lm, rank=lora_rank)
    lm.load_state_dict(weights)
    return dataclasses.replace(models, lm=lm)


def load_config(args: argparse.Namespace) -> GRPOConfig:
    """GRPOConfig from its defaults, then the ``--config`` JSON file, then the flags given; a bad
    file or value ends the command with a message naming the file or flag and the field."""
    try:
        base = load_json(GRPOConfig, args.config) if args.config else None
        return CONFIG_FLAGS.build(args, base)
    except ConfigError as err:
        raise SystemExit(f"fdenv-train: {err}") from None


def record_examples(
    policy: MoshiPolicy, axes: list[Axis], env: EnvConfig, folder: Path
) -> list[Path]:
    """One recorded held-out episode per axis (stereo WAV, JSON, timeline PNG)."""
    held_out = env.replace(num_scenarios=4, scenario_seed=HELD_OUT_SEED)
    paths: list[Path] = []
    for axis in axes:
        config = env_for(policy, held_out)  # a voice of its own per env
        recorder = RecordEpisode(FullDuplexEnv(axis, config=config), folder, prefix=axis.name)
        play(policy, recorder, seed=0)
        paths += recorder.paths
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fdenv-train",
        description=__doc__.splitlines()[0],
        epilog="A setting is its GRPOConfig default, else the --config file's, else its flag's.",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/grpo"), help="output folder")
    parser.add_argument(
        "--config", type=Path, help="JSON file of GRPOConfig fields (flags given override it)"
    )
    parser.add_argument(
        "--resume-with-changes",
        action="store_true",
        help="resume --out's checkpoint although settings changed (other than "
        f"{', '.join(sorted(RESUMABLE))}, which may always change); the run goes on with the "
        "new ones",
    )
    parser.add_argument("--model", choices=["tiny-base", "tiny-random"], default="tiny-base")
    parser.add_argument("--hf-repo", help="train a real checkpoint from this Hugging Face repo")
    parser.add_argument("--moshi-weight", help="local LM weights (with --mimi-weight, --tokenizer)")
    parser.add_argument("--mimi-weight")
    parser.add_argument("--tokenizer")
    parser.add_argument("--config-path", help="the checkpoint's config.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    CONFIG_FLAGS.add_to(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun
        torch.distributed.init_process_group("nccl" if args.device == "cuda" else "gloo")
        if args.device == "cuda":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    config = load_config(args)  # a bad setting stops here, before --out is made
    # one run at a time writes --out: rank 0 holds its lock (the other ranks are the same run)
    lock = folder_lock(args.out) if int(os.environ.get("RANK", "0")) == 0 else nullcontext()
    try:
        with lock, eager_on_cpu(args.device):
            return train(args, config)
    except FolderLocked as err:
        raise SystemExit(f"fdenv-train: {err}") from None


def train(args: argparse.Namespace, config: GRPOConfig) -> int:
    """Builds the model, trains it (resuming where ``--out`` has a checkpoint) and writes the
    run's results."""
    models = build_models(args, config.seed)
    trainer = GRPOTrainer(config, models, args.out)
    try:
        resumed = trainer.resume(allow_changes=args.resume_with_changes)
    except ValueError as err:
        raise SystemExit(f"fdenv-train: {err}") from None
    if resumed:
        print(f"resumed {args.out} at iteration {trainer.iteration}")
    trainer.run()
    if config.fsdp:  # gather the shards (every rank takes part) into a plain model on rank 0
        weights = trainer.full_lm_state()
        if trainer.rank > 0:
            return 0
        models = unsharded_copy(trainer.models, weights, config.lora_rank)
        policy = MoshiPolicy(models, config.sampling)
    else:
        if trainer.rank > 0:
            return 0
        models, policy = trainer.models, trainer.policy
    (args.out / "config.json").write_text(json.dumps(plain(config), indent=2))
    evals = [r["eval"] for r in trainer.history if "eval" in r]
    before, after = results_from_json(evals[0]), results_from_json(evals[-1])
    compared = {"before": before, "after": after}
    table = (
        summary_table(before, after)
        + "\n\n"
        + metrics_markdown(compared)
        + "\n"
        + metric_changes_markdown(before, after)
    )
    (args.out / "summary.md").write_text(table)
    plot_rewards(trainer.history, args.out / "reward_curve.png")
    plot_metrics(compared, args.out / "metrics.png")
    record_examples(policy, trainer.axes, trainer.eval_env, args.out / "episodes")
    export_checkpoint(models, args.out / "moshi_checkpoint")
    episodes = next(iter(after.values())).episodes
    print(f"\nheld-out reward per axis ({episodes} episodes each, 95% CI):")
    print(table)
    print(
        f"\nwrote {args.out}: summary.md, reward_curve.png, metrics.png, log.jsonl, episodes/, "
        "moshi_checkpoint/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
