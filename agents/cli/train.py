"""``fdenv-train``: GRPO post-training of Moshi on fdenv's interactivity axes.

    fdenv-train --out runs/grpo                       # tiny base model, all four axes, CPU
    fdenv-train --config my_run.json --out runs/x     # any GRPOConfig field from a JSON file
    fdenv-train --hf-repo kyutai/moshiko-pytorch-bf16 --lora-rank 128 --device cuda ...
    torchrun --nproc_per_node 8 -m agents.cli.train --hf-repo ... # one group per rank

Writes ``log.jsonl``, TensorBoard events, ``checkpoint.pt`` (resumed automatically when the
folder already has one), ``reward_curve.png``, ``summary.md`` (held-out reward per axis before
and after, with 95% intervals), example episodes under ``episodes/`` and the trained policy as a
Moshi checkpoint under ``moshi_checkpoint/`` (see :mod:`agents.moshi.export`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from agents.evaluate import HELD_OUT_SEED
from agents.grpo.trainer import GRPOConfig, GRPOTrainer, JudgeConfig
from agents.moshi.export import export_checkpoint
from agents.moshi.lora import add_lora
from agents.moshi.models import MoshiModels, load_checkpoint, tiny_models
from agents.moshi.policy import MoshiPolicy, SamplingConfig
from agents.report import (
    metrics_markdown,
    plot_metrics,
    plot_rewards,
    results_from_json,
    summary_table,
)
from fdenv.axes import Axis
from fdenv.config import EnvConfig, plain
from fdenv.env import FullDuplexEnv
from fdenv.play import play
from fdenv.wrappers import RecordEpisode


def build_models(args: argparse.Namespace) -> MoshiModels:
    """The starting model: the tiny warm-started base, a random tiny model, or a checkpoint."""
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
        return tiny_models(seed=args.seed or 0, device=args.device)
    from agents.moshi.warmstart import tiny_base_models

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


def judge_config(args: argparse.Namespace) -> JudgeConfig | None:
    """The ``--judge-*`` flags; ``--judge-url`` turns the judge on."""
    if args.judge_url is None:
        return None
    if args.judge_model is None:
        raise SystemExit("--judge-url needs --judge-model (the model name the server serves)")
    optional = {
        "axes": tuple(args.judge_axes) if args.judge_axes else None,
        "key_env": args.judge_key_env,
        "rubric": args.judge_rubric,
    }
    return JudgeConfig(
        args.judge_url, args.judge_model, **{k: v for k, v in optional.items() if v is not None}
    )


def load_config(args: argparse.Namespace) -> GRPOConfig:
    """GRPOConfig from defaults, then the JSON file, then explicit flags."""
    values: dict[str, Any] = {}
    if args.config:
        values = json.loads(Path(args.config).read_text())
        known = {f.name for f in dataclasses.fields(GRPOConfig)}
        unknown = set(values) - known
        if unknown:
            raise SystemExit(f"{args.config}: unknown GRPOConfig fields {sorted(unknown)}")
        if "sampling" in values:
            values["sampling"] = SamplingConfig(**values["sampling"])
        for key in ("axes", "betas", "stream_weights"):
            if key in values:
                values[key] = tuple(values[key])
        if values.get("judge") is not None:
            values["judge"] = JudgeConfig(**values["judge"])
        if "env" in values:
            values["env"] = GRPOConfig().env.replace(**values["env"])
    flags = {
        "axes": tuple(args.axes) if args.axes else None,
        "iterations": args.iterations,
        "groups": args.groups,
        "group_size": args.group_size,
        "lr": args.lr,
        "beta": args.beta,
        "lora_rank": args.lora_rank,
        "eval_episodes": args.eval_episodes,
        "seed": args.seed,
        "fsdp": args.fsdp or None,
        "judge": judge_config(args),
    }
    values |= {k: v for k, v in flags.items() if v is not None}
    config = GRPOConfig(**values)
    if args.scenarios is not None:
        config = dataclasses.replace(config, env=config.env.replace(scenarios=str(args.scenarios)))
    return config


def record_examples(
    policy: MoshiPolicy, axes: list[Axis], env: EnvConfig, folder: Path
) -> list[Path]:
    """One recorded held-out episode per axis (stereo WAV, JSON, timeline PNG)."""
    held_out = env.replace(text_card=policy.text_card, num_scenarios=4, scenario_seed=HELD_OUT_SEED)
    paths: list[Path] = []
    for axis in axes:
        recorder = RecordEpisode(FullDuplexEnv(axis, config=held_out), folder, prefix=axis.name)
        play(policy, recorder, seed=0)
        paths += recorder.paths
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fdenv-train", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/grpo"), help="output folder")
    parser.add_argument("--config", type=Path, help="JSON file of GRPOConfig fields")
    parser.add_argument("--model", choices=["tiny-base", "tiny-random"], default="tiny-base")
    parser.add_argument("--hf-repo", help="train a real checkpoint from this Hugging Face repo")
    parser.add_argument("--moshi-weight", help="local LM weights (with --mimi-weight, --tokenizer)")
    parser.add_argument("--mimi-weight")
    parser.add_argument("--tokenizer")
    parser.add_argument("--config-path", help="the checkpoint's config.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--axes", nargs="+", help="axes to train on (default: the paper's four)")
    parser.add_argument(
        "--scenarios", type=Path, help="train on this manifest (default: synthetic scenarios)"
    )
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--groups", type=int, help="scenarios per iteration")
    parser.add_argument("--group-size", type=int, help="rollouts per scenario (G)")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--beta", type=float, help="KL weight")
    parser.add_argument("--lora-rank", type=int, help="0 = full fine-tuning")
    parser.add_argument("--eval-episodes", type=int, help="held-out episodes per axis")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--fsdp", action="store_true", help="under torchrun: shard weights and optimizer state"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    judge = parser.add_argument_group("LLM judge (an OpenAI-compatible server, e.g. vLLM)")
    judge.add_argument("--judge-url", help="base URL, e.g. http://127.0.0.1:8000/v1")
    judge.add_argument("--judge-model", help="model name served there")
    judge.add_argument("--judge-axes", nargs="+", help="default: TurnTaking UserInterruption")
    judge.add_argument("--judge-key-env", help="environment variable holding the API key")
    judge.add_argument("--judge-rubric", help="paper (0-2, default), fdbench (0-5) or a JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun
        torch.distributed.init_process_group("nccl" if args.device == "cuda" else "gloo")
        if args.device == "cuda":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    config = load_config(args)
    models = build_models(args)
    trainer = GRPOTrainer(config, models, args.out)
    if trainer.resume():
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
    table = summary_table(before, after) + "\n\n" + metrics_markdown(compared)
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
