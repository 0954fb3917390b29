"""Pictures of episodes: who spoke when, against the scenario's labels."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from fdenv.atomic import atomic_path
from fdenv.episode import Episode
from fdenv.timeline import Interval

_ROWS = {"user": 2.0, "agent": 1.0, "labels": 0.0}


def _bars(ax: Axes, row: str, spans: list[Interval], color: str, label: str) -> None:
    if spans:
        ax.broken_barh(
            [(s.start, s.duration) for s in spans],
            (_ROWS[row] - 0.35, 0.7),
            facecolors=color,
            label=label,
        )


_LINE_COLORS = {
    "backchannel": "tab:green",
    "side_talk": "tab:purple",
    "background": "tab:olive",
    "interruption": "tab:red",
}
"""User lines other than turns and re-prompts, coloured by kind (turns stay blue)."""
_EVENT_MARKS = {
    "user_turn_end": ("k", "turn end"),
    "user_yield": ("tab:cyan", "user yields"),
    "user_reprompt": ("tab:brown", "re-prompt"),
    "agent_barge_in": ("tab:red", "agent barges in"),
    "agent_yield": ("tab:green", "agent yields"),
    "agent_stops": ("tab:pink", "agent stops (should not)"),
}
"""Events drawn as ticks on the labels row."""


def _events(ax: Axes, episode: Episode) -> None:
    """A closed-loop episode's user lines by kind and its key events as labelled ticks."""
    for kind, color in _LINE_COLORS.items():
        spans = [Interval(x.start, x.end) for x in episode.user_lines if x.kind == kind]
        _bars(ax, "labels", spans, color, kind.replace("_", " "))
    for kind, (color, label) in _EVENT_MARKS.items():
        times = [e.t for e in episode.events if e.kind == kind]
        if times:
            ax.vlines(times, -0.5, 2.5, colors=color, linestyles="--", linewidth=1, label=label)


def draw_timeline(ax: Axes, episode: Episode, title: str | None = None) -> None:
    """Draws user speech, agent speech and the axis labels of an episode on ``ax``."""
    scenario = episode.scenario
    ax.axvspan(-episode.lead_in_s, 0.0, color="0.93", label="lead-in")
    _bars(ax, "user", scenario.user_speech, "tab:blue", "user speech")
    _bars(ax, "agent", episode.agent_speech, "tab:orange", "agent speech")
    _bars(ax, "labels", scenario.pauses, "tab:gray", "pause")
    _bars(ax, "labels", scenario.backchannels, "tab:green", "backchannel (truth)")
    if scenario.interruption is not None and not episode.events:
        _bars(ax, "labels", [scenario.interruption], "tab:red", "interruption")
    if episode.events:
        _events(ax, episode)
    elif scenario.turn_end is not None:
        ax.axvline(scenario.turn_end, color="k", linestyle="--", label="turn end")
    end = episode.num_frames * 0.08 - episode.lead_in_s
    ax.set_xlim(-episode.lead_in_s, max(end, scenario.duration))
    ax.set_ylim(-0.6, 2.6)
    ax.set_yticks(list(_ROWS.values()), list(_ROWS))
    ax.set_xlabel("time in scenario (s)")
    ax.set_title(title or f"{scenario.axis}: {scenario.id}", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


def timeline_figure(episode: Episode, title: str | None = None) -> Figure:
    fig, ax = plt.subplots(figsize=(10, 2.6), dpi=80, layout="constrained")
    draw_timeline(ax, episode, title)
    return fig


def timeline_image(episode: Episode, title: str | None = None) -> np.ndarray:
    """The timeline as an RGB array ``[H, W, 3]`` (what ``render()`` returns)."""
    fig = timeline_figure(episode, title)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def save_timeline(episode: Episode, path: str | Path, title: str | None = None) -> None:
    fig = timeline_figure(episode, title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
