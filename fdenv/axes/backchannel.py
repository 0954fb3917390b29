"""Backchanneling: short "mm-hmm"s at the right moments, no takeovers (R_bc).

Scenario: a long user utterance (at least ``min_utterance_s``) during which the partner only made
short utterances; those are the ground-truth backchannels.

Reward: F1 of the agent's backchannels. An agent speech interval of at most ``max_backchannel_s``
is a backchannel, a longer one a takeover. A backchannel whose start lies within
``tolerance_s`` of a ground-truth backchannel's start is a true positive (one-to-one matching);
other backchannels and every takeover are false positives. F1 = 2 TP / (predicted + true).

Choices left open by the paper: times are compared at the starts of the intervals; an episode
with no ground truth and no agent speech scores 1 (nothing to do, nothing done wrong).

The paper's rule looks at durations only, so a short interval of many words is a backchannel
to it, and a take-over to Full-Duplex-Bench (more than 2 words in a segment). With
``max_backchannel_words`` set (the benchmark's 2), an interval with more words than that (the
agent's text tokens within it, counted the benchmark's way) is a takeover too. Off by default:
the paper's rule.

F1 charges a takeover no more than one spare backchannel (with one true backchannel, a hit plus
a takeover scores 0.67, as does a hit plus an extra "mm-hmm"), while the benchmark's TOR fails
the whole episode on any take-over. With ``takeover_score`` set, an episode with a takeover
scores that instead of its F1: 0 fails it as the benchmark's TOR does, but so does saying
nothing (F1 0 whenever the user makes room for a backchannel), so a group of a base that mostly
stays silent cannot tell a take-over from silence; -1 ranks a take-over below silence, as
R_pause charges a take-over in a pause. Off by default: the paper's rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import ClassVar

import numpy as np

from fdenv.axes.base import Axis, AxisScore
from fdenv.axes.reference import AgentLine, ReferencePartner
from fdenv.episode import Episode
from fdenv.fdbench import metrics as fdbench
from fdenv.scenario import Scenario
from fdenv.scenarios.sentences import load_sentence_bank, unmarked
from fdenv.scenarios.synthetic import new_track, synthetic_source
from fdenv.segments import ConversationLabels, MiningRules, Segment, at_least, at_most
from fdenv.timeline import Interval, clip


def match_count(predicted: Sequence[float], truth: Sequence[float], tolerance_s: float) -> int:
    """Size of the largest one-to-one matching of times that differ by at most ``tolerance_s``.

    Scanning both sorted lists and pairing each prediction with the earliest unmatched truth in
    reach is optimal for points on a line with a symmetric window.
    """
    truth = sorted(truth)
    matched, j = 0, 0
    for t in sorted(predicted):
        while j < len(truth) and truth[j] < t - tolerance_s:
            j += 1
        if j < len(truth) and truth[j] <= t + tolerance_s:
            matched += 1
            j += 1
    return matched


def backchannel_f1(
    agent_speech: Sequence[Interval],
    truth: Sequence[Interval],
    max_backchannel_s: float = 1.0,
    tolerance_s: float = 1.0,
    too_wordy: Sequence[bool] | None = None,
    takeover_score: float | None = None,
) -> tuple[float, dict[str, float]]:
    """Returns F1 and its counts (true positives, backchannels, takeovers, ground truth).
    ``too_wordy`` marks intervals that are takeovers whatever their length; with
    ``takeover_score`` any takeover makes the score that instead of F1."""
    wordy = list(too_wordy) if too_wordy is not None else [False] * len(agent_speech)
    short = [
        i.duration <= max_backchannel_s and not w for i, w in zip(agent_speech, wordy, strict=True)
    ]
    backchannels = [i.start for i, ok in zip(agent_speech, short, strict=True) if ok]
    takeovers = len(short) - len(backchannels)
    hits = match_count(backchannels, [i.start for i in truth], tolerance_s)
    predicted = len(backchannels) + takeovers
    total = predicted + len(truth)
    f1 = 1.0 if total == 0 else 2.0 * hits / total
    if takeover_score is not None and takeovers:
        f1 = float(takeover_score)
    counts = {
        "true_positives": float(hits),
        "backchannels": float(len(backchannels)),
        "takeovers": float(takeovers),
        "ground_truth": float(len(truth)),
    }
    return f1, counts


@dataclass(frozen=True)
class Backchannel(Axis):
    name: ClassVar[str] = "Backchannel"
    required_labels: ClassVar[tuple[str, ...]] = ("user_speech", "backchannels")
    metric_directions: ClassVar[Mapping[str, str]] = {
        "tor": "down",
        "frequency": "up",
        "jsd": "down",
    }

    max_backchannel_s: float = 1.0
    """Longest agent interval that still counts as a backchannel (the paper's 1 s)."""
    tolerance_s: float = 1.0
    """Matching window around a ground-truth backchannel (the paper's +-1 s)."""
    max_backchannel_words: int | None = None
    """``None``: the paper's rule (durations only); a number (the benchmark's 2): an interval
    holding more of the agent's word tokens than this is a takeover."""
    takeover_score: float | None = None
    """``None``: the paper's F1; a number: what an episode with any takeover scores instead (0:
    failed, as the benchmark's TOR counts it; -1: below saying nothing)."""
    min_utterance_s: float = 5.0
    """tau_min of the backchannel axis."""
    sentence_gap_s: tuple[float, float] = (0.35, 0.9)
    backchannel_delay_s: tuple[float, float] = (0.05, 0.25)
    """Where in a gap the partner's backchannel starts."""
    lead_silence_s: tuple[float, float] = (0.3, 0.8)
    tail_s: float = 0.2

    def __post_init__(self) -> None:
        words = self.max_backchannel_words
        if words is not None and (isinstance(words, bool) or not isinstance(words, int)):
            raise ValueError(f"max_backchannel_words must be None or an integer, got {words!r}")
        if words is not None and words < 1:
            raise ValueError(f"max_backchannel_words must be >= 1, got {words}")
        score = self.takeover_score
        if score is not None and (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not math.isfinite(score)
        ):
            raise ValueError(f"takeover_score must be None or a finite number, got {score!r}")

    def score(self, episode: Episode) -> AxisScore:
        speech = episode.agent_speech_in_window()
        wordy = None
        if self.max_backchannel_words is not None:
            words = fdbench.episode_words(episode)
            limit = self.max_backchannel_words
            wordy = [fdbench.words_in_segment(i, words) > limit for i in speech]
        f1, counts = backchannel_f1(
            speech,
            episode.scenario.backchannels,
            self.max_backchannel_s,
            self.tolerance_s,
            wordy,
            self.takeover_score,
        )
        return AxisScore(terms={"backchannel": f1}, stats=counts)

    def metrics(self, episode: Episode) -> dict[str, float]:
        """FD-Bench backchannel TOR (lower is better), frequency per second (higher) and JSD
        (lower), ``corrected`` mode. The speech segments are the voice's (Silero on the audio
        for :class:`~fdenv.voice.MimiVoice`, as the benchmark does); the ground truth is
        ``source["icc_gt_distribution"]`` where the scenario has one, else its labels."""
        scenario = episode.scenario
        gt = scenario.source.get("icc_gt_distribution") or fdbench.label_distribution(
            scenario.backchannels, scenario.duration
        )
        result = fdbench.backchannel(
            episode.agent_speech_in_window(),
            fdbench.episode_words(episode),
            scenario.duration,
            gt,
            mode="corrected",
        )
        return {"tor": float(result.tor), "frequency": result.frequency, "jsd": result.jsd}

    def reference_lines(self, scenario: Scenario, partner: ReferencePartner) -> list[AgentLine]:
        """A one-word backchannel at the start of each ground-truth one."""
        return [AgentLine(partner.backchannel(), truth.start) for truth in scenario.backchannels]

    def mine(self, labels: ConversationLabels, user: int, rules: MiningRules) -> list[Segment]:
        """D_bc: a user utterance >= ``min_utterance_s`` during which the partner makes at least
        one utterance and only utterances of at most ``max_backchannel_s``: the ground truth.

        Window: ``rules.lead_s`` before the utterance to ``rules.tail_s`` after it.
        """
        x, y = labels.channels[user], labels.channels[1 - user]
        segments = []
        for u in x.utterances:
            if not at_least(u.duration, self.min_utterance_s):
                continue
            during = y.utterances_overlapping(u.span)
            if not during or not all(at_most(v.duration, self.max_backchannel_s) for v in during):
                continue
            window = labels.window(u.span.start - rules.lead_s, u.span.end + rules.tail_s)
            truth = tuple(clip((v.span for v in during), window.start, window.end))
            segments.append(
                Segment(self.name, user, window, backchannels=truth, evidence={"x": list(u.span)})
            )
        return segments

    def synthesize(self, rng: np.random.Generator, scenario_id: str) -> Scenario:
        bank = load_sentence_bank()
        lines = [unmarked(s) for s in bank.statements]
        track = new_track(rng, self.lead_silence_s)
        spans = track.say_until(
            self.min_utterance_s,
            lambda: lines[rng.integers(len(lines))],
            lambda: rng.uniform(*self.sentence_gap_s),
        )
        if len(spans) == 1:  # a single long sentence has no gap to backchannel in
            track.silence(rng.uniform(*self.sentence_gap_s))
            spans.append(track.say(lines[rng.integers(len(lines))]))
        track.silence(self.tail_s)
        gaps = [Interval(a.end, b.start) for a, b in pairwise(spans)]
        chosen = [g for g in gaps if rng.random() < 0.8] or [gaps[rng.integers(len(gaps))]]
        backchannels = []
        for gap in chosen:
            start = gap.start + rng.uniform(*self.backchannel_delay_s)
            end = start + rng.uniform(0.3, 0.6)
            backchannels.append(Interval(start, end))
        return Scenario(
            id=scenario_id,
            axis=self.name,
            audio=track.audio(),
            user_speech=track.speech,
            backchannels=backchannels,
            transcripts=track.transcripts,
            source=synthetic_source(track) | {"backchannel_words": list(bank.backchannels)},
        )
