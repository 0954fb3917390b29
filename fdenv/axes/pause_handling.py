"""Pause handling: stay quiet while the user pauses mid-utterance (R_pause).

Scenario: one user utterance of at least ``min_utterance_s`` with silences of at most 1 s inside
it, during which the partner stays silent. The window ends shortly after the utterance, so
answering once the user is done is not judged here (that is the turn-taking axis' job).

Reward: -1 if the agent has any speech interval longer than ``max_speech_s`` in the window, else 0.
Choice left open by the paper: speech that began in the lead-in counts only from time 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fdenv.axes.base import Axis, AxisScore
from fdenv.episode import Episode
from fdenv.scenario import Scenario
from fdenv.scenarios.sentences import load_sentence_bank, split_at_pause
from fdenv.scenarios.synthetic import new_track, synthetic_source
from fdenv.timeline import Interval


def pause_reward(agent_speech: Sequence[Interval], max_speech_s: float = 1.0) -> float:
    """-1 if any interval is longer than ``max_speech_s`` seconds, else 0."""
    return -1.0 if any(i.duration > max_speech_s for i in agent_speech) else 0.0


@dataclass(frozen=True)
class PauseHandling(Axis):
    name: ClassVar[str] = "PauseHandling"
    required_labels: ClassVar[tuple[str, ...]] = ("user_speech", "pauses")

    max_speech_s: float = 1.0
    """Agent speech longer than this is a takeover (the paper's 1 s)."""
    min_utterance_s: float = 4.0
    """tau_min of the pause axis."""
    pause_s: tuple[float, float] = (0.4, 0.95)
    """Length of the synthetic mid-utterance pauses (a silence over 1 s would end the utterance)."""
    lead_silence_s: tuple[float, float] = (0.3, 0.8)
    tail_s: float = 0.2

    def score(self, episode: Episode) -> AxisScore:
        speech = episode.agent_speech_in_window()
        longest = max((i.duration for i in speech), default=0.0)
        return AxisScore(
            terms={"pause": pause_reward(speech, self.max_speech_s)},
            stats={"longest_agent_speech_s": longest},
        )

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
