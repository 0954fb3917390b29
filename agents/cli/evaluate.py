"""``fdenv-eval``: compare agents on held-out scenarios in Full-Duplex-Bench's terms.

    fdenv-eval --agents silent always-talk rule tiny-base --episodes 32 --out runs/eval
    fdenv-eval --agents tiny-base --fdbench DIR --write-outputs --out runs/eval-fdbench

Every agent plays the same ``--episodes`` held-out synthetic scenarios per axis (or every
labelled sample of a Full-Duplex-Bench folder, ``--fdbench``). The output folder gets
``results.json`` (per-episode values too), ``results.md`` (rewards and FD-Bench v1 metrics with
95% bootstrap intervals), ``metrics.png`` (a bar per agent with its interval, one panel per
reward and metric) and ``timelines/`` (each agent's first episode per axis). ``--write-outputs``
also writes ``output.wav`` and ``output.json`` into the benchmark's sample folders for the
official scripts (one agent only): ``output.wav`` at 24 kHz with the input's duration, as the
official Moshi client writes it (``--output-rate input``: the input's rate and length), after
``--lead-in-s`` of priming silence whose output is dropped (0: no priming, as that client).
``--score-outputs`` scores a folder's ``output.json`` / ``output.wav`` files the official way
(:mod:`fdenv.fdbench.score`; any model's outputs, with or without agents or ``input.wav``).
Runs are deterministic for a ``--seed``. ``--judge-url`` and ``--judge-model`` add a ``judge``
column on the turn-taking and interruption axes: an LLM's grade of each reply
(FD-Bench's 0-5 relevance rubric by default, ``--judge-rubric paper`` for the paper's 0-2).

Every field of :class:`agents.evaluate.EvalConfig` is a flag, the env's among them:
``--scenarios`` plays a manifest's scenarios instead of the held-out synthetic set, and
``--lead-in-s`` and ``--acoustics-*`` change how the env plays them.

Agents: ``silent``, ``always-talk``, ``rule``, ``always-yield`` (scripted), ``tiny-base`` (the
warm-started tiny Moshi, built and cached on first use, about 3 minutes), ``tiny-random``,
``checkpoint:DIR`` (a folder written by ``export_checkpoint``: model.safetensors,
mimi.safetensors, tokenizer.model, config.json) and ``hf:REPO`` (weights from the Hugging Face
hub). ``--axes Conversation Selectivity`` plays the closed-loop envs, whose user reacts; their
table holds the interaction metrics.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.baselines import AlwaysTalkAgent, AlwaysYieldAgent, RuleAgent, SilentAgent
from agents.evaluate import Agent, AxisResult, EvalConfig, compare
from agents.moshi.models import eager_on_cpu, load_checkpoint, tiny_models
from agents.moshi.policy import MoshiPolicy
from agents.moshi.warmstart import tiny_base_models
from agents.report import (
    markdown,
    outputs_json,
    outputs_markdown,
    plot_metrics,
    results_json,
    save_timelines,
)
from fdenv.axes import Axis
from fdenv.config import plain
from fdenv.config_flags import ConfigError, ConfigFlags
from fdenv.fdbench.export import export_folder
from fdenv.fdbench.samples import import_fdbench
from fdenv.fdbench.score import score_folder
from fdenv.judge.client import ChatCompletionsJudge, Judge, load_rubric
from fdenv.judge.reward import JUDGED_AXES, judge_terms

SCRIPTED = ("silent", "always-talk", "rule", "always-yield")
EVAL_FLAGS = ConfigFlags(
    EvalConfig,
    flatten=("env",),
    skip={
        "env.num_scenarios": "--episodes sets it",
        "env.axis_weights": "each axis is evaluated on its own",
        "env.text_card": "each agent's",
        "env.audio_card": "each agent's",
        "env.word_starts": "each agent's tokenizer",
    },
)
PRESETS = ("tiny-base", "tiny-random")


def make_agent(name: str, device: str) -> Agent:
    """The agent a command-line name stands for; ``ValueError`` lists the accepted names."""
    scripted = {
        "silent": SilentAgent,
        "always-talk": AlwaysTalkAgent,
        "rule": RuleAgent,
        "always-yield": AlwaysYieldAgent,
    }
    if name in scripted:
        return scripted[name]()
    if name == "tiny-base":
        return MoshiPolicy(tiny_base_models(device))
    if name == "tiny-random":
        return MoshiPolicy(tiny_models(0, device))
    if name.startswith("hf:"):
        return MoshiPolicy(load_checkpoint(hf_repo=name[3:], device=device))
    if name.startswith("checkpoint:"):
        folder = Path(name[len("checkpoint:") :])
        config = folder / "config.json"
        return MoshiPolicy(
            load_checkpoint(
                moshi_weight=folder / "model.safetensors",
                mimi_weight=folder / "mimi.safetensors",
                tokenizer=folder / "tokenizer.model",
                config_path=config if config.is_file() else None,
                device=device,
            )
        )
    raise ValueError(
        f"unknown agent {name!r}; use one of {', '.join(SCRIPTED + PRESETS)}, "
        "checkpoint:DIR or hf:REPO"
    )


def add_judge_scores(
    results: dict[str, dict[str, AxisResult]],
    agents: dict[str, Agent],
    judge: Judge,
    axes: Sequence[Axis] = JUDGED_AXES,
) -> None:
    """Adds the judge's grade of each reply on ``axes`` as the metric ``judge`` (NaN: silent
    reply, failed request, or an agent without a tokenizer to read its text, such as the
    scripted ones). A grade is better up on any axis, so the axes' directions need no entry."""
    judged = {axis.name: axis for axis in axes}
    for name, by_axis in results.items():
        models = getattr(agents[name], "models", None)
        for axis in [a for a in by_axis if a in judged]:
            result = by_axis[axis]
            scores = np.full(len(result.rewards), np.nan)
            if models is not None:
                scores = judge_terms(
                    judge,
                    result.played,
                    models.tokenizer,
                    axes=[judged[axis]],
                    silence_score=math.nan,
                ).scores
            metrics = result.metrics | {"judge": tuple(float(x) for x in scores)}
            directions = result.directions | {"judge": "up"}
            by_axis[axis] = dataclasses.replace(result, metrics=metrics, directions=directions)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fdenv-eval", description=__doc__.splitlines()[0])
    parser.add_argument("--agents", nargs="*", default=["silent", "always-talk", "rule"])
    parser.add_argument(
        "--fdbench", type=Path, help="evaluate on every labelled sample of this FD-Bench v1 folder"
    )
    parser.add_argument(
        "--write-outputs", action="store_true", help="write output.wav/json into --fdbench"
    )
    parser.add_argument(
        "--output-rate",
        choices=("24000", "input"),
        default="24000",
        help="output.wav's rate: 24000 as the official client (default) or the input's",
    )
    parser.add_argument(
        "--score-outputs", action="store_true", help="score --fdbench's output files (after export)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/eval"), help="output folder")
    parser.add_argument("--timelines", type=int, default=1, help="timeline PNGs per agent/axis")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    judge = parser.add_argument_group("LLM judge column (an OpenAI-compatible server)")
    judge.add_argument("--judge-url", help="base URL, e.g. http://127.0.0.1:8000/v1")
    judge.add_argument("--judge-model", help="model name served there")
    judge.add_argument("--judge-key-env", help="environment variable holding the API key")
    judge.add_argument(
        "--judge-rubric", default="fdbench", help="fdbench (0-5 relevance, default), paper (0-2)"
    )
    EVAL_FLAGS.add_to(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = EVAL_FLAGS.build(args)
    except ConfigError as err:
        parser.error(str(err))
    if args.timelines < 0 or args.threads < 1:
        parser.error("--threads must be >= 1, --timelines >= 0")
    if args.fdbench is not None and config.env.scenarios is not None:
        parser.error("--fdbench and --scenarios name two scenario sets: give one")
    if args.write_outputs and (args.fdbench is None or len(args.agents) != 1):
        parser.error("--write-outputs needs --fdbench and exactly one agent")
    if args.score_outputs and args.fdbench is None:
        parser.error("--score-outputs needs --fdbench")
    if not args.agents and not args.score_outputs:
        parser.error("name at least one agent (or only score outputs with --score-outputs)")
    if (args.judge_url is None) != (args.judge_model is None):
        parser.error("--judge-url and --judge-model go together")
    torch.set_num_threads(args.threads)
    with eager_on_cpu(args.device):
        return run(parser, args, config)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace, config: EvalConfig) -> int:
    """Plays, judges, writes and scores what ``args`` ask for."""
    axes = list(config.axes)
    try:
        agents = {name: make_agent(name, args.device) for name in args.agents}
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    scenarios = None
    episodes = config.episodes
    described = f"{episodes} held-out scenarios per axis (scenario seed {config.env.scenario_seed})"
    if config.env.scenarios is not None:
        described = f"{episodes} scenarios per axis of {config.env.scenarios}"
    if args.fdbench is not None and agents:
        imported = import_fdbench(args.fdbench)
        for folder, reason in imported.skipped:
            print(f"skipped {folder}: {reason}", file=sys.stderr)
        scenarios = imported.scenarios
        axes = [a for a in axes if any(s.axis == a for s in scenarios)]
        if not axes:
            parser.error(f"no labelled samples of the chosen axes in {args.fdbench}")
        episodes = len(scenarios)
        described = f"all {len(scenarios)} labelled samples of {args.fdbench}"
    results = compare(
        agents,
        axes,
        episodes,
        config.env.scenario_seed,
        config.seed,
        scenarios=scenarios,
        env=config.env,
        progress=True,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    if args.judge_url is not None and results:
        with ChatCompletionsJudge(
            args.judge_url,
            args.judge_model,
            api_key_env=args.judge_key_env,
            rubric=load_rubric(args.judge_rubric),
            cache_dir=args.out / "judge_cache",
        ) as judge:
            add_judge_scores(results, agents, judge)
            print(f"judge: {judge.stats.as_dict()}")
    run_args = {k: str(v) for k, v in vars(args).items() if not EVAL_FLAGS.owns(k)}
    record: dict[str, Any] = {"args": run_args, "config": plain(config)}
    table = ""
    if results:
        record["results"] = results_json(results)
        table = markdown(results, f"{described}, seed {config.seed}")
        plot_metrics(results, args.out / "metrics.png")
        save_timelines(results, args.out / "timelines", args.timelines)
    if args.write_outputs:
        agent = next(iter(agents.values()))
        models = getattr(agent, "models", None)  # a Moshi policy speaks and has a tokenizer
        torch.manual_seed(config.seed)
        export_folder(
            agent,
            args.fdbench,
            voice=None if models is None else agent.audio_voice(),
            decode=None if models is None else models.tokenizer.decode,
            lead_in_s=config.env.lead_in_s,
            output_rate=None if args.output_rate == "input" else int(args.output_rate),
            progress=True,
        )
        print(f"wrote output.wav and output.json into the samples of {args.fdbench}")
    if args.score_outputs:
        scores = score_folder(args.fdbench)
        for folder, reason in scores.skipped:
            print(f"not scored {folder}: {reason}", file=sys.stderr)
        record["outputs"] = outputs_json(scores.by_axis)
        table += outputs_markdown(scores.by_axis, args.fdbench)
    (args.out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    (args.out / "results.md").write_text(table)
    print(table)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
