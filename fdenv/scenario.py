"""The scenario record: one stretch of user audio and the labels the rewards are computed from.

A scenario is what an environment plays to the agent. Its labels come from construction
(synthetic speech), from a corpus's VAD and transcripts (mining) or from a benchmark's files;
the axis that owns the scenario decides which labels it needs (:meth:`fdenv.axes.Axis.validate`).
Times are seconds from the start of the scenario's audio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fdenv.audio.io import check_mono
from fdenv.constants import SAMPLE_RATE
from fdenv.timeline import Interval, as_intervals

LABEL_TOLERANCE_S = 0.05
"""How far a label may run past the end of the audio (rounding in corpora's timestamps)."""


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Utterance:
    """A timed transcript of one utterance; ``speaker`` is ``"user"`` or ``"partner"``.

    ``partner`` lines are what the other side of the source conversation said (the role the
    agent plays); they are context for judges and never audible in the user channel.
    """

    speaker: str
    text: str
    start: float
    end: float
    words: tuple[Word, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "speaker": self.speaker,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "words": [[w.text, w.start, w.end] for w in self.words],
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Utterance:
        words = tuple(
            Word(str(t), float(s), float(e))
            for t, s, e in record.get("words", [])
            if s is not None and e is not None
        )
        return cls(
            str(record["speaker"]),
            str(record["text"]),
            float(record["start"]),
            float(record["end"]),
            words,
        )


@dataclass(frozen=True)
class ContextRef:
    """The recording that precedes a mined scenario, for the context curriculum.

    ``audio`` is a stereo file (channel 0 the user, channel 1 the partner) that ends exactly
    where the scenario starts and lasts ``duration_s`` (up to the miner's ``--context-s``).
    In a manifest the path is relative to the manifest's folder; :class:`fdenv.manifest.Manifest`
    resolves it on load, and :func:`fdenv.manifest.load_context` reads it.
    """

    audio: str
    duration_s: float

    def to_json(self) -> dict[str, Any]:
        return {"audio": self.audio, "duration_s": self.duration_s}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> ContextRef:
        duration = float(record["duration_s"])
        if not duration > 0:
            raise ValueError(f"context.duration_s must be > 0 seconds, got {duration}")
        return cls(str(record["audio"]), duration)


@dataclass
class Scenario:
    """User audio (mono float32, 24 kHz) plus interactivity labels.

    Attributes:
        id: unique name, used in error messages and recordings.
        axis: name of the axis whose reward scores this scenario (for example ``"TurnTaking"``).
        audio: the user channel.
        user_speech: when the user is speaking.
        pauses: silences inside a user utterance that do not end the user's turn.
        turn_end: when the user's turn ends and the agent is expected to answer.
        backchannels: ground-truth listener backchannels (the other side's short utterances).
        interruption: the user utterance that interrupts the agent.
        transcripts: timed transcripts where known.
        source: where the scenario came from (generator and seed, corpus and file,
            ``original_sample_rate`` when the audio was resampled).
        context: the recording before the scenario (mined scenarios), or ``None``.
        plan: for a closed-loop axis, what the simulated user means to say (a
            :class:`fdenv.user.plan.UserPlan`, or ``None``); the audio is
            then the user's clip store (:mod:`fdenv.user.store`), not a recording to replay.
    """

    id: str
    axis: str
    audio: np.ndarray
    user_speech: list[Interval]
    pauses: list[Interval] = field(default_factory=list)
    turn_end: float | None = None
    backchannels: list[Interval] = field(default_factory=list)
    interruption: Interval | None = None
    transcripts: list[Utterance] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    context: ContextRef | None = None
    plan: Any = None  # a fdenv.user.plan.UserPlan (this module is below fdenv.user)

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def validate(self) -> Scenario:
        """Checks audio and labels; a ``ValueError`` names the scenario and the bad field."""
        self.audio = check_mono(self.audio, f"scenario {self.id!r}")
        if len(self.audio) == 0:
            raise ValueError(f"scenario {self.id!r}: audio is empty")
        self.check_labels(self.duration)
        return self

    def check_labels(self, duration: float) -> None:
        """Checks the label times against ``duration`` seconds of audio, so that a manifest can
        check every line when it is opened, before any audio is read."""
        limit = duration + LABEL_TOLERANCE_S
        spans: list[tuple[str, Interval]] = [("user_speech", i) for i in self.user_speech]
        spans += [("pauses", i) for i in self.pauses]
        spans += [("backchannels", i) for i in self.backchannels]
        if self.interruption is not None:
            spans.append(("interruption", self.interruption))
        for name, interval in spans:
            if not 0.0 <= interval.start < interval.end <= limit:
                raise ValueError(
                    f"scenario {self.id!r}: {name} interval {tuple(interval)} must satisfy "
                    f"0 <= start < end <= {duration:.3f} s (the audio's length)"
                )
        if self.turn_end is not None and not 0.0 <= self.turn_end <= limit:
            raise ValueError(
                f"scenario {self.id!r}: turn_end {self.turn_end} outside [0, {duration:.3f}] s"
            )

    def labels_json(self) -> dict[str, Any]:
        """The labels as a JSON-ready dict (the manifest line, minus the audio path)."""
        return {
            "id": self.id,
            "axis": self.axis,
            "duration_s": round(self.duration, 6),
            "user_speech": [list(i) for i in self.user_speech],
            "pauses": [list(i) for i in self.pauses],
            "turn_end": self.turn_end,
            "backchannels": [list(i) for i in self.backchannels],
            "interruption": None if self.interruption is None else list(self.interruption),
            "transcripts": [u.to_json() for u in self.transcripts],
            "source": self.source,
            "context": None if self.context is None else self.context.to_json(),
        }

    @classmethod
    def from_labels(cls, record: dict[str, Any], audio: np.ndarray) -> Scenario:
        """Builds a scenario from a manifest line's labels; missing optional fields are empty."""
        interruption = record.get("interruption")
        turn_end = record.get("turn_end")
        context = record.get("context")
        return cls(
            id=str(record["id"]),
            axis=str(record["axis"]),
            audio=audio,
            user_speech=as_intervals(record.get("user_speech", [])),
            pauses=as_intervals(record.get("pauses", [])),
            turn_end=None if turn_end is None else float(turn_end),
            backchannels=as_intervals(record.get("backchannels", [])),
            interruption=None if interruption is None else Interval(*map(float, interruption)),
            transcripts=[Utterance.from_json(u) for u in record.get("transcripts", [])],
            source=dict(record.get("source", {})),
            context=None if context is None else ContextRef.from_json(context),
        )
