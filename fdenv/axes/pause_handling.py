"""Pause handling: stay quiet while the user pauses mid-utterance (R_pause).

Scenario: one user utterance of at least ``min_utterance_s`` with silences of at most 1 s inside
it, during which the partner stays silent. The window ends shortly after the utterance, so
answering once the user is done is not judged here (that is the turn-taking axis' job).

Reward: -1 if the agent has any speech interval longer than ``max_speech_s`` in the window, else 0.
Choice left open by the paper: speech that began in the lead-in counts only from time 0.

The paper's rule looks at one interval at a time, so a policy can talk through a pause in
bursts each shorter than 1 s and lose nothing; Full-Duplex-Bench looks at the whole output
(first word to last) and counts that as a take-over. ``rule="span"`` rewards the benchmark's
way: -1 if the agent's speech, from the start of its first interval in the window to the end
of its last, spans more than ``max_speech_s``. The paper's rule stays the default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

import numpy as np

from fdenv.axes.base import Axis, AxisScore
from fdenv.axes.reference import AgentLine, ReferencePartner
from fdenv.episode import Episode
from fdenv.fdbench import metrics as fdbench
from fdenv.scenario import Scenario
from fdenv.scenarios.sentences import load_sentence_bank, split_at_pause
from fdenv.scenarios.synthetic import new_track, synthetic_source
from fdenv.segments import ConversationLabels, MiningRules, Segment, at_least
from fdenv.timeline import Interval

PauseRule = Literal["interval", "span"]


def check_pause_rule(rule: object) -> None:
    if rule not in get_args(PauseRule):
        raise ValueError(f"the pause rule must be 'interval' or 'span', got {rule!r}")


def pause_reward(
    agent_speech: Sequence[Interval], max_speech_s: float = 1.0, rule: PauseRule = "interval"
) -> float:
    """-1 if any interval is longer than ``max_speech_s`` seconds (``"interval"``, the paper's
    rule), or if the intervals together span more than that from the first start to the last
    end (``"span"``, the benchmark's view of the whole output); else 0."""
    if rule == "span":
        if not agent_speech:
            return 0.0
        span = max(i.end for i in agent_speech) - min(i.start for i in agent_speech)
        return -1.0 if span > max_speech_s else 0.0
    check_pause_rule(rule)
    return -1.0 if any(i.duration > max_speech_s for i in agent_speech) else 0.0


@dataclass(frozen=True)
class PauseHandling(Axis):
    name: ClassVar[str] = "PauseHandling"
    required_labels: ClassVar[tuple[str, ...]] = ("user_speech", "pauses")
    metric_directions: ClassVar[Mapping[str, str]] = {"tor": "down"}

    max_speech_s: float = 1.0
    """Agent speech longer than this is a takeover (the paper's 1 s)."""
    rule: PauseRule = "interval"
    """``"interval"``: the paper's (any one interval longer than ``max_speech_s``); ``"span"``:
    the benchmark's (all the agent's speech in the window, first start to last end)."""
    min_utterance_s: float = 4.0
    """tau_min of the pause axis."""
    pause_s: tuple[float, float] = (0.4, 0.95)
    """Length of the synthetic mid-utterance pauses (a silence over 1 s would end the utterance)."""
    lead_silence_s: tuple[float, float] = (0.3, 0.8)
    tail_s: float = 0.2

    def __post_init__(self) -> None:
        check_pause_rule(self.rule)

    def score(self, episode: Episode) -> AxisScore:
        speech = episode.agent_speech_in_window()
        longest = max((i.duration for i in speech), default=0.0)
        return AxisScore(
            terms={"pause": pause_reward(speech, self.max_speech_s, self.rule)},
            stats={"longest_agent_speech_s": longest},
        )

    def metrics(self, episode: Episode) -> dict[str, float]:
        """FD-Bench pause TOR: any take-over anywhere in the output (lower is better)."""
        return {"tor": float(fdbench.pause_handling(fdbench.episode_words(episode)).tor)}

    def reference_lines(self, scenario: Scenario, partner: ReferencePartner) -> list[AgentLine]:
        """Nothing: a good partner lets the user finish."""
        return []

    def mine(self, labels: ConversationLabels, user: int, rules: MiningRules) -> list[Segment]:
        """D_pause: a user utterance >= ``min_utterance_s`` with at least one internal pause
        (a silence of at most ``rules.max_pause_s``) while the partner is silent throughout.

        Window: ``rules.lead_s`` before the utterance to ``rules.tail_s`` after it.
        """
        x, y = labels.channels[user], labels.channels[1 - user]
        segments = []
        for u in x.utterances:
            if not at_least(u.duration, self.min_utterance_s) or not u.pauses:
                continue
            if y.speaks_during(u.span):
                continue
            window = labels.window(u.span.start - rules.lead_s, u.span.end + rules.tail_s)
            segments.append(
                Segment(self.name, user, window, pauses=u.pauses, evidence={"x": list(u.span)})
            )
        return segments

    def synthesize(self, rng: np.random.Generator, scenario_id: str) -> Scenario:
        bank = load_sentence_bank()
        splittable = [s for s in bank.statements + bank.questions if "|" in s]
        track = new_track(rng, self.lead_silence_s)
        pauses: list[Interval] = []
        start = track.now
        while track.now - start < self.min_utterance_s:
            if pauses or track.speech:
                pauses.append(self._pause(track, rng))
            first, second = split_at_pause(splittable[rng.integers(len(splittable))])
            track.say(first)
            if second is not None:
                pauses.append(self._pause(track, rng))
                track.say(second)
        track.silence(self.tail_s)
        return Scenario(
            id=scenario_id,
            axis=self.name,
            audio=track.audio(),
            user_speech=track.speech,
            pauses=pauses,
            transcripts=track.transcripts,
            source=synthetic_source(track),
        )

    def _pause(self, track, rng: np.random.Generator) -> Interval:
        start = track.now
        track.silence(rng.uniform(*self.pause_s))
        return Interval(start, track.now)
