"""Result writing: the tables, JSON records and plots of evaluations and training runs.

Command lines (``fdenv-eval``, ``fdenv-train``) and the trainer call these; nothing here parses
arguments. Arrows in headers come from each axis' :attr:`fdenv.axes.Axis.metric_directions`,
which an :class:`~agents.evaluate.AxisResult` carries; a metric without a direction is an error,
not a header without an arrow.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluate import (
    MIN_VERDICT_PAIRS,
    AxisResult,
    paired_change,
    paired_metric_changes,
    summarize_metric,
)
from fdenv.plotting import save_timeline
from fdenv.registration import get_axis

ARROWS = {"up": "↑", "down": "↓"}


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
                "directions": dict(r.directions),
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


def metric_directions(results: dict[str, dict[str, AxisResult]]) -> dict[str, dict[str, str]]:
    """Each axis' metric directions, as the agents' results carry them."""
    directions: dict[str, dict[str, str]] = {}
    for by_axis in results.values():
        for axis, r in by_axis.items():
            directions.setdefault(axis, {}).update(r.directions)
    return directions


def _sources(results: Iterable[Mapping[str, AxisResult]]) -> str:
    """What the metrics of ``results`` measure, each source once, capitalised."""
    sources = dict.fromkeys(r.source for by_axis in results for r in by_axis.values() if r.source)
    text = "; ".join(sources) or "Metrics"
    return text[0].upper() + text[1:]


def _header(axis: str, metric: str, directions: Mapping[str, str]) -> str:
    """``axis metric arrow``; ``ValueError`` if ``directions`` (the axis') lacks the metric."""
    direction = directions.get(metric)
    if direction is None:
        raise ValueError(f"axis {axis}'s metric_directions has no entry for {metric!r}")
    if direction not in ARROWS:
        raise ValueError(
            f"axis {axis}'s metric_directions gives {metric!r} the direction {direction!r}, "
            f"not one of {sorted(ARROWS)}"
        )
    return f"{axis} {metric} {ARROWS[direction]}"


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
    directions = metric_directions(results)
    headers = [_header(axis, metric, directions[axis]) for axis, metric in columns]
    lines = [
        f"{_sources(results.values())} (arrows: better direction).",
        "",
        "| agent | " + " | ".join(headers) + " |",
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
    """One row per axis: its metrics over the folder's output files (arrows from the
    registered axis of each name)."""
    lines = [
        "",
        f"Full-Duplex-Bench v1 metrics of the output files in {root} (official rules).",
        "",
        "| axis | samples | metrics |",
        "|---|---|---|",
    ]
    for axis, samples in by_axis.items():
        names = list(dict.fromkeys(k for _, m in samples for k in m))
        directions = get_axis(axis).metric_directions
        cells = [
            f"{_header(axis, n, directions).removeprefix(axis + ' ')} "
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
    directions = metric_directions(results)
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
        title = f"{axis} reward" if metric == "reward" else _header(axis, metric, directions[axis])
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    for ax in grid[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_timelines(results: dict[str, dict[str, AxisResult]], folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for agent, by_axis in results.items():
        for axis, r in by_axis.items():
            for i, (episode, reward) in enumerate(zip(r.played[:count], r.rewards, strict=False)):
                title = f"{agent}, {axis}: {episode.scenario.id}, reward {reward:+.3f}"
                save_timeline(episode, folder / f"{agent}-{axis}-{i}.png", title)


def summary_table(before: dict[str, AxisResult], after: dict[str, AxisResult]) -> str:
    """Markdown: held-out mean reward per axis before and after (95% intervals), and the
    change measured scenario by scenario (95% interval). Where an axis was scored with a
    remedy instead of the paper's rule, rows below score the same episodes by the paper's."""
    lines = ["| axis | before | after | paired change |", "|---|---|---|---|"]
    lines += _change_rows(before, after, "", "mean over axes")
    remedied = [a for a, r in before.items() if r.paper_rewards]
    if remedied:
        lines += _change_rows(
            paper_scored(before),
            paper_scored(after),
            ", paper's rule",
            "mean over axes, paper's rules",
            remedied,
        )
    return "\n".join(lines)


def paper_scored(results: dict[str, AxisResult]) -> dict[str, AxisResult]:
    """``results`` with each remedied axis' rewards replaced by the paper's rule's on the same
    episodes (:attr:`AxisResult.paper_rewards`)."""
    return {
        a: dataclasses.replace(r, rewards=r.paper_rewards) if r.paper_rewards else r
        for a, r in results.items()
    }


def _change_rows(
    before: dict[str, AxisResult],
    after: dict[str, AxisResult],
    suffix: str,
    mean_label: str,
    axes: list[str] | None = None,
) -> list[str]:
    change = paired_change(before, after)
    lines = []
    for axis in axes or before:
        mean, low, high = change[axis]
        lines.append(
            f"| {axis}{suffix} | {before[axis]} | {after[axis]} | "
            f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] |"
        )
    mean, low, high = change["mean"]
    mean_before = np.mean([r.mean for r in before.values()])
    mean_after = np.mean([r.mean for r in after.values()])
    lines.append(
        f"| {mean_label} | {mean_before:+.3f} | {mean_after:+.3f} | "
        f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] |"
    )
    return lines


def metric_changes_markdown(before: dict[str, AxisResult], after: dict[str, AxisResult]) -> str:
    """Markdown: each FD-Bench metric's paired change, before to after (95% intervals of the
    per-episode differences, the verdict in the metric's direction), and a count of verdicts."""
    changes = paired_metric_changes(before, after)
    lines = [
        f"{_sources([before])}: paired change after - before per held-out episode (95% "
        "bootstrap interval; a latency over the episodes where both have one; better / worse: "
        "beyond noise in the metric's direction, same: within noise, too few: under "
        f"{MIN_VERDICT_PAIRS} episodes with both values, no verdict).",
        "",
        "| metric | paired change | episodes |",
        "|---|---|---|",
    ]
    for (axis, metric), change in changes.items():
        header = _header(axis, metric, before[axis].directions)
        lines.append(f"| {header} | {change} | {change.pairs} |")
    verdicts = [c.verdict for c in changes.values() if c.pairs]
    lines += [
        "",
        f"Better beyond noise: {verdicts.count('better')} of {len(changes)}; worse beyond noise: "
        f"{verdicts.count('worse')}.",
    ]
    return "\n".join(lines) + "\n"


def plot_rewards(history: list[dict[str, Any]], path: Path) -> None:
    """Training reward per axis (thin) and held-out reward with its interval (markers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100, layout="constrained")
    train = [r for r in history if "reward_by_axis" in r]
    evals = [r for r in history if "eval" in r]
    axes = sorted({a for r in evals for a in r["eval"]})
    for color, axis in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], axes, strict=False):
        points = [
            (r["iteration"], r["reward_by_axis"][axis])
            for r in train
            if axis in r["reward_by_axis"]
        ]
        if points:
            ax.plot(*zip(*points, strict=True), color=color, alpha=0.35, linewidth=1)
        xs = [r["iteration"] for r in evals]
        means = np.array([r["eval"][axis]["mean"] for r in evals])
        lows = np.array([r["eval"][axis]["low"] for r in evals])
        highs = np.array([r["eval"][axis]["high"] for r in evals])
        ax.errorbar(
            xs,
            means,
            yerr=[means - lows, highs - means],
            color=color,
            marker="o",
            capsize=3,
            label=f"{axis} (held-out)",
        )
    ax.set_xlabel("iteration")
    ax.set_ylabel("reward")
    ax.set_title("GRPO: training reward (lines) and held-out reward with 95% interval")
    ax.legend(fontsize=8)
    fig.savefig(path)
    plt.close(fig)


def eval_json(results: dict[str, AxisResult]) -> dict[str, dict[str, Any]]:
    """Held-out rewards and FD-Bench metrics (per-episode values kept, so runs can be paired)."""
    return {
        a: {
            "mean": r.mean,
            "low": r.low,
            "high": r.high,
            "rewards": list(r.rewards),
            "metrics": {name: metric_json(values) for name, values in r.metrics.items()},
            "directions": dict(r.directions),
        }
        | ({"paper_rewards": list(r.paper_rewards)} if r.paper_rewards else {})
        for a, r in results.items()
    }


def results_from_json(logged: dict[str, dict[str, Any]]) -> dict[str, AxisResult]:
    """The inverse of :func:`eval_json`, for a logged evaluation (logs older than the metrics'
    directions restore none)."""
    return {
        axis: AxisResult(
            axis,
            tuple(entry["rewards"]),
            {
                name: tuple(np.nan if x is None else x for x in metric["values"])
                for name, metric in entry.get("metrics", {}).items()
            },
            directions=dict(entry.get("directions", {})),
            paper_rewards=tuple(entry.get("paper_rewards", ())),
        )
        for axis, entry in logged.items()
    }
