"""What happened in one episode: the scenario played and the agent's speech, ready for scoring."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fdenv.scenario import Scenario
from fdenv.timeline import Interval, clip
from fdenv.user.events import PlayedLine, UserEvent


@dataclass
class Episode:
    """An episode in scenario time (0 = the first sample of the scenario, after the lead-in).

    Attributes:
        scenario: what the user said, with its labels.
        lead_in_s: what was played before the scenario: silence, then ``context_s`` seconds of
            the recording that preceded it (context curriculum; 0 by default).
        agent_speaking: the voice's per-frame activity over the whole stream (lead-in included).
        text_tokens: the agent's text token per frame.
        agent_speech: the agent's speech intervals in scenario time, as the voice reports them;
            intervals in the lead-in have negative times.
        agent_audio: the agent's audio over the whole stream where the voice makes audio.
        events: what happened, each with its cause (closed-loop episodes; empty for a replay,
            whose labels are in the scenario).
        user_lines: the simulated user's lines as it said them (closed-loop episodes).
        word_starts: which text token ids begin a word (``EnvConfig.word_starts``), so that
            word counts join sub-word tokens; ``None``: every token is a word.
    """

    scenario: Scenario
    lead_in_s: float
    agent_speaking: np.ndarray
    text_tokens: np.ndarray
    agent_speech: list[Interval]
    agent_audio: np.ndarray | None = None
    context_s: float = 0.0
    events: list[UserEvent] = field(default_factory=list)
    user_lines: list[PlayedLine] = field(default_factory=list)
    word_starts: np.ndarray | None = field(default=None, repr=False)

    @property
    def axis(self) -> str:
        return self.scenario.axis

    @property
    def num_frames(self) -> int:
        return len(self.agent_speaking)

    def agent_speech_in_window(self) -> list[Interval]:
        """Agent speech cut to the scenario window, where rewards look.

        Speech that started in the lead-in (Moshi's opening phrase) counts only from time 0.
        """
        return clip(self.agent_speech, 0.0, self.scenario.duration)
