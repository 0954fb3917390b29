"""What a simulated user may say in one episode: its turns and the lines it keeps at hand.

A plan is drawn once per scenario (the reactive axes' ``synthesize``) and is shared by every
rollout of a GRPO group; what the user actually says, and when, depends on the agent and is
decided frame by frame by :class:`fdenv.user.simulator.ReactiveUsers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fdenv.audio.espeak import SpeakerStyle

KINDS = ("turn", "reprompt", "backchannel", "side_talk", "background", "interruption")
"""What a line is for. ``side_talk`` is the user speaking to someone else and ``background``
another person's speech near the microphone: an agent should talk through both, as through a
``backchannel``, and yield to an ``interruption`` (Full-Duplex-Bench v1.5's overlap
behaviours, tau-voice's selectivity)."""

TALK_THROUGH = ("backchannel", "side_talk", "background")
"""Overlaps the agent should keep talking through."""

REPROMPTS = ("Are you there?", "Hello? Can you hear me?", "Did you get that?")
SIDE_TALK = (
    "Hold on, I am on a call.",
    "Just leave it on the table, thanks.",
    "One second, I will be right there.",
    "Yes, I will be done in a minute.",
    "Can you close the door, please?",
)
"""Things a user says to someone in the room (written for fdenv)."""


@dataclass(frozen=True)
class Line:
    """One thing the user can say: its text, the voice that says it and its level.

    ``gain`` scales the audio (background speech is quieter than the user). A line that is not
    the user's own speech (``background``) is not labelled as user speech.
    """

    kind: str
    text: str
    style: SpeakerStyle
    gain: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Line.kind must be one of {KINDS}, got {self.kind!r}")
        if not self.text.strip():
            raise ValueError(f"a {self.kind} line needs words, got {self.text!r}")
        if not 0.0 < self.gain <= 1.0:
            raise ValueError(f"Line.gain must lie in (0, 1], got {self.gain}")

    @property
    def is_user_speech(self) -> bool:
        return self.kind != "background"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "voice": self.style.voice, "gain": self.gain}


@dataclass(frozen=True)
class Turn:
    """A user turn: one or two parts with a mid-sentence pause of ``pause_s`` between them.

    ``overlay`` is what happens while the agent answers this turn, ``overlay_after_s`` into the
    answer (the selectivity test); without it the user policy decides (backchannel, cut in, or
    just listen).
    """

    parts: tuple[Line, ...]
    pause_s: float = 0.0
    overlay: Line | None = None
    overlay_after_s: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= len(self.parts) <= 2 or any(p.kind != "turn" for p in self.parts):
            raise ValueError("a Turn has one or two parts, each a line of kind 'turn'")
        if len(self.parts) == 2 and not self.pause_s > 0:
            raise ValueError(f"a two-part turn needs a pause_s > 0, got {self.pause_s}")
        if self.overlay is not None and self.overlay.kind in ("turn", "reprompt"):
            raise ValueError(f"a turn's overlay cannot be a {self.overlay.kind} line")
        if self.overlay_after_s < 0:
            raise ValueError(f"Turn.overlay_after_s must be >= 0, got {self.overlay_after_s}")

    @property
    def text(self) -> str:
        return " ".join(p.text for p in self.parts)


@dataclass(frozen=True)
class UserPlan:
    """The turns a user means to take, in order, and the lines it keeps at hand."""

    turns: tuple[Turn, ...]
    reprompts: tuple[Line, ...]
    backchannels: tuple[Line, ...] = ()
    interruptions: tuple[Line, ...] = ()
    max_duration_s: float = 30.0
    """The episode ends here whatever happens (the user's patience for the whole exchange)."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.turns:
            raise ValueError("a UserPlan needs at least one user turn")
        if not self.reprompts or any(r.kind != "reprompt" for r in self.reprompts):
            raise ValueError("a UserPlan needs reprompt lines, each of kind 'reprompt'")
        for name, kind in (("backchannels", "backchannel"), ("interruptions", "interruption")):
            if any(line.kind != kind for line in getattr(self, name)):
                raise ValueError(f"UserPlan.{name} must hold lines of kind {kind!r}")
        if not self.max_duration_s > 0:
            raise ValueError(f"UserPlan.max_duration_s must be > 0, got {self.max_duration_s}")

    def lines(self) -> list[Line]:
        """Every line of the plan (what the simulator synthesises when the plan starts)."""
        found = [p for t in self.turns for p in t.parts]
        found += [t.overlay for t in self.turns if t.overlay is not None]
        return [*found, *self.reprompts, *self.backchannels, *self.interruptions]

    def to_json(self) -> dict[str, Any]:
        return {
            "turns": [
                {
                    "parts": [p.text for p in t.parts],
                    "pause_s": t.pause_s,
                    "overlay": None if t.overlay is None else t.overlay.to_json(),
                    "overlay_after_s": t.overlay_after_s,
                }
                for t in self.turns
            ],
            "max_duration_s": self.max_duration_s,
        } | self.extra
