"""Interaction metrics of closed-loop episodes: what happened between a user and the agent.

The user's side comes from what the simulated user actually said (:class:`PlayedLine`s: its
turns, re-prompts, interruptions, backchannels, side talk, background speech); the agent's side
from its speech intervals as the voice reports them (VAD on its audio on the audio path). The
definitions follow tau-voice's (see each function); where they differ it is said.

All times are seconds in scenario time. A talk spurt of the agent is its speech intervals merged
across gaps shorter than ``STOP_GAP_S``, so a breath between two words is not a stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fdenv.timeline import Interval, merge, total_duration
from fdenv.user.events import PlayedLine, UserEvent
from fdenv.user.plan import TALK_THROUGH

STOP_GAP_S = 0.24
"""Silence that ends a talk spurt: the simulated user's default ``stop_s``."""
ANSWER_WINDOW_S = 2.0
"""tau-voice's response window and no-yield window: an answer or a yield later than this is
too late."""
SELECTIVITY_WINDOW_S = 1.0
"""tau-voice's backchannel / non-directed yield window: stopping within it is yielding."""
FLOOR_KINDS = ("turn", "reprompt", "interruption")
"""Lines that hold the user's floor: an agent onset during one is a barge-in."""
MAX_BACKCHANNEL_S = 1.0
"""A talk spurt up to this long is a backchannel, not a barge-in (the paper's backchannel
reward draws the line at 1 s)."""


@dataclass(frozen=True)
class Overlap:
    """An overlap of the user's and the agent's: its kind and how the agent met it."""

    kind: str
    start: float
    agent_talking: bool
    """Whether the agent was talking when it started (else there was nothing to yield)."""
    stop_latency: float | None
    """Seconds until the agent's talk spurt ended; ``None`` if it outlasted the episode."""


def talk_spurts(agent_speech: Sequence[Interval]) -> list[Interval]:
    """The agent's speech merged across gaps shorter than ``STOP_GAP_S`` (a gap of 3 frames
    is a stop whatever float rounding makes of 0.24 s)."""
    return merge(sorted(agent_speech), max_gap=STOP_GAP_S - 1e-6)


def user_turn_ends(lines: Sequence[PlayedLine]) -> list[tuple[float, float]]:
    """(end, next user line start) of each user turn that was said to its end: a planned
    turn's last part or an interruption (re-prompts are the user asking again, not a new
    turn). The next start is ``inf`` when the user said nothing more."""
    spoken = [line for line in lines if line.kind != "background"]
    ends = []
    for i, line in enumerate(spoken):
        if line.cut or line.kind not in ("turn", "interruption"):
            continue
        rest = spoken[i + 1 :]
        if line.kind == "turn" and rest and rest[0].kind == "turn" and rest[0].turn == line.turn:
            continue  # the first part of a turn with a pause: the turn is not over
        ends.append((line.end, rest[0].start if rest else float("inf")))
    return ends


def answer_latencies(
    lines: Sequence[PlayedLine], agent_speech: Sequence[Interval]
) -> list[float | None]:
    """Per user turn (:func:`user_turn_ends`), seconds between its end and the start of the
    agent's answer (tau-voice's L_R); ``None`` if the agent did not answer before the user
    spoke again (unanswered, so not counted by tau-voice's R_R).

    The answer is the first talk spurt longer than a backchannel (``MAX_BACKCHANNEL_S``:
    "mm-hmm" answers nothing) that is still going at the turn's end or starts after it, before
    the user's next line. One that began before the end is charged ``end - start``: barging in
    early costs like answering late, as in the paper's turn-taking reward, so talking through
    the whole turn is no prompt answer."""
    spurts = [s for s in talk_spurts(agent_speech) if s.duration > MAX_BACKCHANNEL_S]
    latencies: list[float | None] = []
    for end, next_start in user_turn_ends(lines):
        answer = next((s for s in spurts if s.end > end and s.start < next_start), None)
        latencies.append(None if answer is None else abs(answer.start - end))
    return latencies


def user_floor(lines: Sequence[PlayedLine], events: Sequence[UserEvent]) -> list[Interval]:
    """When the user holds the floor: its turns, re-prompts and interruptions, and its
    mid-turn pauses (from the pause to the next line it says)."""
    floor = [Interval(x.start, x.end) for x in lines if x.kind in FLOOR_KINDS and x.end > x.start]
    starts = sorted(x.start for x in lines if x.kind != "background")
    for event in events:
        if event.kind == "user_pause":
            resume = next((s for s in starts if s >= event.t), None)
            if resume is not None and resume > event.t:
                floor.append(Interval(event.t, resume))
    return merge(sorted(floor))


def barge_ins(
    lines: Sequence[PlayedLine], events: Sequence[UserEvent], agent_speech: Sequence[Interval]
) -> int:
    """Agent talk spurts longer than a backchannel (``MAX_BACKCHANNEL_S``) that start while
    the user holds the floor (:func:`user_floor`). tau-voice's I_A counts every onset during
    user speech; here a mid-turn pause counts too, as in Full-Duplex-Bench's pause task, and a
    backchannel does not, as in the paper's backchannel reward."""
    floor = user_floor(lines, events)
    spurts = talk_spurts(agent_speech)
    onsets = [s.start for s in spurts if s.duration > MAX_BACKCHANNEL_S]
    return sum(any(f.start <= t < f.end for f in floor) for t in onsets)


def overlaps(
    lines: Sequence[PlayedLine], agent_speech: Sequence[Interval], episode_end: float
) -> list[Overlap]:
    """Every interruption, backchannel, side talk and background speech of the user's, with
    when the agent's talk spurt going at its start ended (:class:`Overlap`)."""
    spurts = talk_spurts(agent_speech)
    found = []
    for line in lines:
        if line.kind != "interruption" and line.kind not in TALK_THROUGH:
            continue
        spurt = next((s for s in spurts if s.start <= line.start < s.end), None)
        if spurt is None:
            found.append(Overlap(line.kind, line.start, False, 0.0))
            continue
        latency = None if spurt.end >= episode_end else spurt.end - line.start
        found.append(Overlap(line.kind, line.start, True, latency))
    return found


def yielded(overlap: Overlap, window_s: float) -> bool:
    """The agent stopped within ``window_s`` of the overlap's start (or was not talking)."""
    return overlap.stop_latency is not None and overlap.stop_latency <= window_s


def overlap_ratio(lines: Sequence[PlayedLine], agent_speech: Sequence[Interval]) -> float:
    """Seconds both talk over seconds either talks (user speech: everything but background
    speech); 0 when nobody talks."""
    user = merge(sorted(Interval(x.start, x.end) for x in lines if x.kind != "background"))
    agent = merge(sorted(agent_speech))
    either = total_duration(merge(sorted([*user, *agent])))
    if either == 0:
        return 0.0
    both = sum(max(0.0, min(u.end, a.end) - max(u.start, a.start)) for u in user for a in agent)
    return both / either


def interaction_metrics(
    lines: Sequence[PlayedLine],
    events: Sequence[UserEvent],
    agent_speech: Sequence[Interval],
    episode_end: float,
) -> dict[str, float]:
    """One episode's interaction metrics; NaN where the episode has nothing to measure.

    - ``answer_latency`` (L_R): mean over answered user turns of :func:`answer_latencies`.
    - ``response_rate`` (R_R): answered user turns over user turns said to their end.
    - ``agent_interruptions`` (I_A): :func:`barge_ins` per user turn started.
    - ``yield_rate`` (R_Y): interruptions the agent stopped within 2 s of, over interruptions.
    - ``yield_latency`` (L_Y): mean seconds to that stop, over interruptions it stopped for.
    - ``bc_selectivity``, ``side_talk_selectivity``, ``background_selectivity`` (S_BC,
      S_ND): share of those overlaps that the agent, talking at their start, talked through
      (did not stop within 1 s); overlaps that found the agent silent are not counted.
    - ``reprompts``: the user's re-prompts.
    - ``overlap_ratio``: :func:`overlap_ratio`.
    """
    latencies = answer_latencies(lines, agent_speech)
    answered = [x for x in latencies if x is not None]
    turns = len({x.turn for x in lines if x.kind in ("turn", "interruption")})
    found = overlaps(lines, agent_speech, episode_end)
    cut_ins = [o for o in found if o.kind == "interruption"]
    stops = [o.stop_latency for o in cut_ins if yielded(o, ANSWER_WINDOW_S)]
    metrics = {
        "answer_latency": _mean(answered),
        "response_rate": len(answered) / len(latencies) if latencies else float("nan"),
        "agent_interruptions": barge_ins(lines, events, agent_speech) / turns
        if turns
        else float("nan"),
        "yield_rate": len(stops) / len(cut_ins) if cut_ins else float("nan"),
        "yield_latency": _mean([s for s in stops if s is not None]),
    }
    for kind, name in (
        ("backchannel", "bc"),
        ("side_talk", "side_talk"),
        ("background", "background"),
    ):
        tested = [o for o in found if o.kind == kind and o.agent_talking]
        kept = [o for o in tested if not yielded(o, SELECTIVITY_WINDOW_S)]
        metrics[f"{name}_selectivity"] = len(kept) / len(tested) if tested else float("nan")
    metrics["reprompts"] = float(sum(e.kind == "user_reprompt" for e in events))
    metrics["overlap_ratio"] = overlap_ratio(lines, agent_speech)
    return metrics


METRIC_DIRECTIONS = {
    "answer_latency": "down",
    "response_rate": "up",
    "agent_interruptions": "down",
    "yield_rate": "up",
    "yield_latency": "down",
    "bc_selectivity": "up",
    "side_talk_selectivity": "up",
    "background_selectivity": "up",
    "reprompts": "down",
    "overlap_ratio": "down",
}
"""Which way each interaction metric is better."""


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")
