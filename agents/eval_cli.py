"""``fdenv-eval``: compare agents on held-out scenarios in Full-Duplex-Bench's terms.

    fdenv-eval --agents silent always-talk rule tiny-base --episodes 32 --out runs/eval
    fdenv-eval --agents tiny-base --fdbench DIR --write-outputs --out runs/eval-fdbench

Every agent plays the same ``--episodes`` held-out synthetic scenarios per axis (or every
labelled sample of a Full-Duplex-Bench folder, ``--fdbench``). The output folder gets
``results.json`` (per-episode values too), ``results.md`` (rewards and FD-Bench v1 metrics with
95% bootstrap intervals), ``metrics.png`` (a bar per agent with its interval, one panel per
reward and metric) and ``timelines/`` (each agent's first episode per axis). ``--write-outputs``
also writes ``output.wav`` and ``output.json`` into the benchmark's sample folders for the
official scripts (one agent only), and ``--score-outputs`` scores a folder's ``output.json`` /
``output.wav`` files the official way (:mod:`fdenv.fdbench_score`; any model's outputs, with or
without agents). Runs are deterministic for a ``--seed``. ``--judge-url`` and ``--judge-model``
add a ``judge`` column on the turn-taking and interruption axes: an LLM's grade of each reply
(FD-Bench's 0-5 relevance rubric by default, ``--judge-rubric paper`` for the paper's 0-2).

Agents: ``silent``, ``always-talk``, ``rule`` (scripted), ``tiny-base`` (the warm-started tiny
Moshi, built and cached on first use, about 3 minutes), ``tiny-random``, ``checkpoint:DIR`` (a
folder written by ``export_checkpoint``: model.safetensors, mimi.safetensors, tokenizer.model,
config.json) and ``hf:REPO`` (weights from the Hugging Face hub).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluate import HELD_OUT_SEED, Agent, AxisResult, compare, summarize_metric
from fdenv.judge import Judge

DIRECTIONS = {
    ("PauseHandling", "tor"): "down",
    ("TurnTaking", "tor"): "up",
    ("TurnTaking", "latency"): "down",
    ("Backchannel", "tor"): "down",
    ("Backchannel", "frequency"): "up",
    ("Backchannel", "jsd"): "down",
    ("UserInterruption", "tor"): "up",
    ("UserInterruption", "latency"): "down",
    ("TurnTaking", "judge"): "up",
    ("UserInterruption", "judge"): "up",
}
"""Which way each FD-Bench metric is better, as the benchmark's tables mark it."""
ARROWS = {"up": "↑", "down": "↓"}
SCRIPTED = ("silent", "always-talk", "rule")
PRESETS = ("tiny-base", "tiny-random")


def make_agent(name: str, device: str) -> Agent:
    """The agent a command-line name stands for; ``ValueError`` lists the accepted names."""
    from agents.baselines import AlwaysTalkAgent, RuleAgent, SilentAgent

    scripted = {"silent": SilentAgent, "always-talk": AlwaysTalkAgent, "rule": RuleAgent}
    if name in scripted:
        return scripted[name]()
    from agents.moshi.models import load_checkpoint, tiny_models
    from agents.moshi.policy import MoshiPolicy

    if name == "tiny-base":
        from agents.moshi.warmstart import tiny_base_models

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
    results: dict[str, dict[str, AxisResult]], agents: dict[str, Agent], judge: Judge
) -> None:
    """Adds the judge's grade of each reply as the metric ``judge`` (NaN: silent reply, failed
    request, or an agent without a tokenizer to read its text, such as the scripted ones)."""
    from agents.judge_reward import JUDGED_AXES, judge_terms

    for name, by_axis in results.items():
        models = getattr(agents[name], "models", None)
        for axis in [a for a in by_axis if a in JUDGED_AXES]:
            result = by_axis[axis]
            scores = np.full(len(result.rewards), np.nan)
            if models is not None:
                judged = judge_terms(
                    judge, result.played, models.tokenizer, axes=[axis], silence_score=math.nan
                )
                scores = judged.scores
            metrics = result.metrics | {"judge": tuple(float(x) for x in scores)}
            by_axis[axis] = dataclasses.replace(result, metrics=metrics)


def _number(value: float) -> float | None:
    """JSON has no NaN: a missing value is null."""
    return None if math.isnan(value) else value


def metric_json(values: tuple[float, ...]) -> dict[str, Any]:
    """A metric's FD-Bench aggregate, its interval and the per-sample values (null: none)."""
    summary = summarize_metric(values)
    return {
        "value": _number(summary.value),
        "low": _number(summary.low),
        "high": _number(summary.high),
        "samples": summary.samples,
        "values": [_number(v) for v in values],
    }


def results_json(results: dict[str, dict[str, AxisResult]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for agent, by_axis in results.items():
        out[agent] = {}
        for axis, r in by_axis.items():
            out[agent][axis] = {
                "reward": {"mean": r.mean, "low": r.low, "high": r.high, "values": r.rewards},
                "metrics": {name: metric_json(values) for name, values in r.metrics.items()},
                "scenarios": [e.scenario.id for e in r.played],
            }
    return out


def metric_columns(results: dict[str, dict[str, AxisResult]]) -> list[tuple[str, str]]:
    """(axis, metric) pairs in axis order, as the agents' results have them."""
    columns: list[tuple[str, str]] = []
    for by_axis in results.values():
        for axis, r in by_axis.items():
            columns += [(axis, m) for m in r.metrics if (axis, m) not in columns]
    return columns


def _header(axis: str, metric: str) -> str:
    arrow = ARROWS.get(DIRECTIONS.get((axis, metric), ""), "")
    return f"{axis} {metric} {arrow}".strip()


def markdown(results: dict[str, dict[str, AxisResult]], episodes: str) -> str:
    """Two tables: mean reward per axis, and FD-Bench metrics; 95% bootstrap intervals."""
    axes = list(next(iter(results.values())))
    lines = [
        f"Mean reward per axis [95% bootstrap interval], {episodes}.",
        "",
        "| agent | " + " | ".join(axes) + " |",
        "|---|" + "---|" * len(axes),
    ]
    for agent, by_axis in results.items():
        lines.append(f"| {agent} | " + " | ".join(str(by_axis[a]) for a in axes) + " |")
    return "\n".join(lines) + "\n\n" + metrics_markdown(results)


def metrics_markdown(results: dict[str, dict[str, AxisResult]]) -> str:
    """The FD-Bench metrics table: one row per agent, one column per (axis, metric)."""
    columns = metric_columns(results)
    lines = [
        "Full-Duplex-Bench v1 metrics from the agents' text tokens (latency over take-overs "
        "only; arrows: better direction).",
        "",
        "| agent | " + " | ".join(_header(*c) for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for agent, by_axis in results.items():
        cells = [str(by_axis[a].metric_summary[m]) if a in by_axis else "" for a, m in columns]
        lines.append(f"| {agent} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def outputs_json(by_axis: dict[str, list[tuple[str, dict[str, float]]]]) -> dict[str, Any]:
    """Per axis: each metric's FD-Bench aggregate with its interval, and per-sample values."""
    out: dict[str, Any] = {}
    for axis, samples in by_axis.items():
        names = list(dict.fromkeys(k for _, m in samples for k in m))
        out[axis] = {
            "samples": [name for name, _ in samples],
            "metrics": {n: metric_json(tuple(m[n] for _, m in samples)) for n in names},
        }
    return out


def outputs_markdown(by_axis: dict[str, list[tuple[str, dict[str, float]]]], root: Path) -> str:
    """One row per axis: its metrics over the folder's output files."""
    lines = [
        "",
        f"Full-Duplex-Bench v1 metrics of the output files in {root} (official rules).",
        "",
        "| axis | samples | metrics |",
        "|---|---|---|",
    ]
    for axis, samples in by_axis.items():
        names = list(dict.fromkeys(k for _, m in samples for k in m))
        cells = [
            f"{_header(axis, n).removeprefix(axis + ' ')} "
            f"{summarize_metric(tuple(m[n] for _, m in samples))}"
            for n in names
        ]
        lines.append(f"| {axis} | {len(samples)} | {'; '.join(cells)} |")
    return "\n".join(lines) + "\n"


def plot_metrics(results: dict[str, dict[str, AxisResult]], path: Path) -> None:
    """One panel per axis reward and per FD-Bench metric, a bar per agent with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = list(next(iter(results.values())))
    panels = [(a, "reward") for a in axes] + metric_columns(results)
    cols = 4
    rows = math.ceil(len(panels) / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.4 * rows), dpi=80)
    grid = [ax for row in (grid if rows > 1 else [grid]) for ax in row]
    agents = list(results)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (axis, metric) in zip(grid, panels, strict=False):
        values, errors = [], [[], []]
        for x, agent in enumerate(agents):
            r = results[agent][axis]
            if metric == "reward":
                mean, low, high = r.mean, r.low, r.high
            else:
                s = r.metric_summary[metric]
                mean, low, high = s.value, s.low, s.high
            if math.isnan(mean):  # no sample has the metric (latency without take-overs)
                ax.text(x, 0.0, "n/a", ha="center", va="bottom", fontsize=7)
                mean = low = high = 0.0
            values.append(mean)
            errors[0].append(mean - low)
            errors[1].append(high - mean)
        ax.bar(range(len(agents)), values, yerr=errors, color=colors[: len(agents)], capsize=3)
        ax.set_xticks(range(len(agents)), agents, rotation=30, ha="right", fontsize=7)
        ax.set_title(_header(axis, metric), fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    for ax in grid[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_timelines(results: dict[str, dict[str, AxisResult]], folder: Path, count: int) -> None:
    from fdenv.plotting import save_timeline

    folder.mkdir(parents=True, exist_ok=True)
    for agent, by_axis in results.items():
        for axis, r in by_axis.items():
            for i, (episode, reward) in enumerate(zip(r.played[:count], r.rewards, strict=False)):
                title = f"{agent}, {axis}: {episode.scenario.id}, reward {reward:+.3f}"
                save_timeline(episode, folder / f"{agent}-{axis}-{i}.png", title)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fdenv-eval", description=__doc__.splitlines()[0])
    parser.add_argument("--agents", nargs="*", default=["silent", "always-talk", "rule"])
    parser.add_argument("--axes", nargs="+", help="axis names (default: the paper's four)")
    parser.add_argument("--episodes", type=int, default=32, help="held-out scenarios per axis")
    parser.add_argument("--scenario-seed", type=int, default=HELD_OUT_SEED)
    parser.add_argument("--seed", type=int, default=0, help="episode and sampling seed")
    parser.add_argument("--fdbench", type=Path, help="evaluate on this FD-Bench v1 folder")
    parser.add_argument(
        "--write-outputs", action="store_true", help="write output.wav/json into --fdbench"
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.timelines < 0 or args.threads < 1:
        parser.error("--episodes and --threads must be >= 1, --timelines >= 0")
    if args.write_outputs and (args.fdbench is None or len(args.agents) != 1):
        parser.error("--write-outputs needs --fdbench and exactly one agent")
    if args.score_outputs and args.fdbench is None:
        parser.error("--score-outputs needs --fdbench")
    if not args.agents and not args.score_outputs:
        parser.error("name at least one agent (or only score outputs with --score-outputs)")
    if (args.judge_url is None) != (args.judge_model is None):
        parser.error("--judge-url and --judge-model go together")
    os.environ.setdefault("NO_TORCH_COMPILE", "1")
    import torch

    from fdenv.axes import PAPER_AXES

    torch.set_num_threads(args.threads)
    axes = args.axes or [a.name for a in PAPER_AXES]
    try:
        agents = {name: make_agent(name, args.device) for name in args.agents}
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    scenarios = None
    episodes = args.episodes
    described = f"{episodes} held-out scenarios per axis (scenario seed {args.scenario_seed})"
    if args.fdbench is not None and agents:
        from fdenv.scenarios.fdbench import import_fdbench

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
        agents, axes, episodes, args.scenario_seed, args.seed, scenarios=scenarios, progress=True
    )
    args.out.mkdir(parents=True, exist_ok=True)
    if args.judge_url is not None and results:
        from fdenv.judge import ChatCompletionsJudge, load_rubric

        with ChatCompletionsJudge(
            args.judge_url,
            args.judge_model,
            api_key_env=args.judge_key_env,
            rubric=load_rubric(args.judge_rubric),
            cache_dir=args.out / "judge_cache",
        ) as judge:
            add_judge_scores(results, agents, judge)
            print(f"judge: {judge.stats.as_dict()}")
    record: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    table = ""
    if results:
        record["results"] = results_json(results)
        table = markdown(results, f"{described}, seed {args.seed}")
        plot_metrics(results, args.out / "metrics.png")
        save_timelines(results, args.out / "timelines", args.timelines)
    if args.write_outputs:
        from agents.fdbench_export import export_folder

        export_folder(next(iter(agents.values())), args.fdbench, seed=args.seed, progress=True)
        print(f"wrote output.wav and output.json into the samples of {args.fdbench}")
    if args.score_outputs:
        from fdenv.fdbench_score import score_folder

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
