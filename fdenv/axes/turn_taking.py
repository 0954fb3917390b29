"""Turn-taking: answer promptly once the user's turn ends (R_turn).

Scenario: a user turn of at least ``min_utterance_s`` (short gaps inside), then silence in which
the partner would answer. ``turn_end`` marks the end of the user's turn.

Reward: -d, d = seconds between the turn end and the start of the agent's response, the first
agent utterance longer than ``min_response_s`` that is still going at the turn end or starts
after it. If there is none, d = the rest of the window after the turn end.

Choice left open by the paper: a response that began before the turn end (the agent talked over
the end of the user's turn) is charged ``|start - turn_end|``, so barging in early costs as much
as answering late, and a slight overlap costs little. Utterances that end before the turn end
are pauses handled badly, the pause axis' business; they are not the response.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fdenv.axes.base import Axis, AxisScore
from fdenv.episode import Episode
from fdenv.scenario import Scenario
from fdenv.scenarios.sentences import load_sentence_bank, unmarked
from fdenv.scenarios.synthetic import new_track, synthetic_source
from fdenv.timeline import Interval


def response_delay(
    agent_speech: Sequence[Interval],
    turn_end: float,
    window_end: float,
    min_response_s: float = 1.0,
) -> tuple[float, bool]:
    """Returns (d, responded): the delay of the first response longer than ``min_response_s``."""
    for interval in sorted(agent_speech):
        if interval.end > turn_end and interval.duration > min_response_s:
            return abs(interval.start - turn_end), True
    return max(window_end - turn_end, 0.0), False


@dataclass(frozen=True)
class TurnTaking(Axis):
    name: ClassVar[str] = "TurnTaking"
    required_labels: ClassVar[tuple[str, ...]] = ("user_speech", "turn_end")

    min_response_s: float = 1.0
    """Only agent utterances longer than this count as taking the turn (the paper's 1 s)."""
    min_utterance_s: float = 5.0
    """tau_min of the turn-taking axis."""
    sentence_gap_s: tuple[float, float] = (0.2, 0.6)
    lead_silence_s: tuple[float, float] = (0.3, 0.8)
    response_window_s: tuple[float, float] = (5.0, 6.0)
    """Silence after the turn end, where the partner answered."""

    def score(self, episode: Episode) -> AxisScore:
        scenario = episode.scenario
        assert scenario.turn_end is not None
        delay, responded = response_delay(
            episode.agent_speech_in_window(),
            scenario.turn_end,
            scenario.duration,
            self.min_response_s,
        )
        return AxisScore(
            terms={"turn": -delay},
            stats={"latency_s": delay, "responded": float(responded)},
        )

    def synthesize(self, rng: np.random.Generator, scenario_id: str) -> Scenario:
        bank = load_sentence_bank()
        track = new_track(rng, self.lead_silence_s)
        lines = [unmarked(s) for s in bank.statements]
        questions = [unmarked(s) for s in bank.questions]
        spans = track.say_until(
            self.min_utterance_s / 2,
            lambda: lines[rng.integers(len(lines))],
            lambda: rng.uniform(*self.sentence_gap_s),
        )
        track.silence(rng.uniform(*self.sentence_gap_s))
        spans.append(track.say(questions[rng.integers(len(questions))]))
        while spans[-1].end - spans[0].start < self.min_utterance_s:
            track.silence(rng.uniform(*self.sentence_gap_s))
            spans.append(track.say(lines[rng.integers(len(lines))]))
        turn_end = track.now
        track.silence(rng.uniform(*self.response_window_s))
        return Scenario(
            id=scenario_id,
            axis=self.name,
            audio=track.audio(),
            user_speech=track.speech,
            turn_end=turn_end,
            transcripts=track.transcripts,
            source=synthetic_source(track),
        )
