"""The log of what happened in a closed-loop episode, each entry with its cause.

Rewards and interaction metrics read the user's side of the log (when its turns ended, when it
cut in, backchannelled or spoke to someone else): facts the user made happen, not plans. The
agent's side (barge-ins, answers, yields) is logged as the user perceived it frame by frame,
for the record and the timeline; rewards measure the agent from its speech intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EVENT_KINDS = {
    "user_turn_start": "the user starts a turn (a planned one, or its repetition)",
    "user_turn_end": "the user's turn is over and it waits for an answer",
    "user_pause": "the user pauses mid-sentence (its turn is not over)",
    "user_yield": "the user stops mid-sentence because the agent talks over it",
    "user_continues": "the user is talked over and finishes its sentence anyway",
    "user_resume": "the user takes up its turn again after yielding or being cut off",
    "user_reprompt": "the user asks whether the agent is there after an unanswered turn",
    "user_gives_up": "the user drops an unanswered turn after its re-prompts",
    "user_backchannel": "the user says mm-hmm while the agent talks",
    "user_side_talk": "the user speaks to someone else while the agent talks",
    "background_speech": "another person speaks near the microphone while the agent talks",
    "user_interruption": "the user cuts in on the agent to say something",
    "agent_barge_in": "the agent starts talking while the user is mid-turn",
    "agent_response": "the agent starts talking after the user's turn ended",
    "agent_yield": "the agent stops after the user cut in",
    "agent_stops": "the agent stops during an overlap it should talk through",
    "episode_end": "the episode is over",
}
"""Every event kind with what it means."""


@dataclass(frozen=True)
class UserEvent:
    """Something that happened at ``t`` seconds (scenario time: 0 is the end of the lead-in)."""

    t: float
    kind: str
    cause: str
    turn: int = -1
    """The user turn it belongs to (0-based, counting repetitions once); -1 for none."""

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}; known: {list(EVENT_KINDS)}")

    def to_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 6), "kind": self.kind, "cause": self.cause, "turn": self.turn}


@dataclass(frozen=True)
class PlayedLine:
    """A line as the user actually said it: from ``start`` to ``end`` seconds (scenario time),
    ``cut`` when it trailed off before its last word."""

    kind: str
    text: str
    start: float
    end: float
    cut: bool = False
    turn: int = -1

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "text": self.text,
            "start": round(self.start, 6),
            "end": round(self.end, 6),
            "cut": self.cut,
            "turn": self.turn,
        }
