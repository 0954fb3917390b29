"""A plan's lines synthesised once and laid out as a scenario: the user's clip store.

Each line starts on a frame and is followed by a silent frame, so the simulated user plays a
line by stepping through consecutive rows of the engine's frame bank, and cuts it at the end
of any frame. The store is the scenario's audio; its transcripts hold each line's word times
(exact: espeak reports them), which is where a user that trails off stops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fdenv.audio.espeak import get_engine
from fdenv.constants import FRAME_S, FRAME_SIZE
from fdenv.scenario import Scenario, Utterance, Word
from fdenv.timeline import Interval, intervals_to_mask
from fdenv.user.plan import Line, UserPlan


class ClipStore:
    """A store scenario laid out for the engine's frame bank (what the bank loads of a replay
    stream: whole frames, a speech label per frame)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.num_frames = math.ceil(len(scenario.audio) / FRAME_SIZE)
        self.user_speaking = intervals_to_mask(scenario.user_speech, self.num_frames)

    @property
    def bank_key(self) -> tuple:
        """The store itself: the frame bank loads each store once while it is in use."""
        return ("clips", id(self))

    def write(self, out: np.ndarray) -> None:
        audio = self.scenario.audio
        out[: len(audio)] = audio
        out[len(audio) :] = 0.0


@dataclass(frozen=True)
class StoredLine:
    """Where a line lies in its store, in frames, and the frame after each of its words."""

    offset: int
    frames: int
    word_ends: tuple[int, ...]
    """For each word, the number of frames from the line's start that covers it."""
    duration_s: float
    """How long its sound lasts (the last frame is partly silent)."""
    index: int
    """Its utterance in the store's transcripts."""


def store_scenario(plan: UserPlan, scenario_id: str, axis: str, source: dict) -> Scenario:
    """The scenario that holds ``plan``'s lines (each distinct line once)."""
    lines = list(dict.fromkeys(plan.lines()))
    return lines_scenario(lines, scenario_id, axis, source, plan)


def lines_scenario(
    lines: list[Line], scenario_id: str, axis: str, source: dict, plan: UserPlan | None = None
) -> Scenario:
    """``lines`` spoken one after another, each from a frame boundary, one silent frame apart."""
    engine = get_engine()
    chunks, speech, transcripts, at = [], [], [], 0
    for line in lines:
        spoken = engine.speak(line.text, line.style)
        frames = math.ceil(len(spoken.audio) / FRAME_SIZE)
        chunk = np.zeros((frames + 1) * FRAME_SIZE, dtype=np.float32)
        chunk[: len(spoken.audio)] = spoken.audio * np.float32(line.gain)
        start = at * FRAME_S
        end = start + len(spoken.audio) / (FRAME_SIZE / FRAME_S)
        words = tuple(Word(w.text, w.start + start, w.end + start) for w in spoken.words)
        transcripts.append(Utterance("user", spoken.text, start, end, words))
        if line.is_user_speech:
            speech.append(Interval(start, end))
        chunks.append(chunk)
        at += frames + 1
    return Scenario(
        id=scenario_id,
        axis=axis,
        audio=np.concatenate(chunks),
        user_speech=speech,
        transcripts=transcripts,
        source=source,
        plan=plan,
    )


def stored_lines(scenario: Scenario, lines: list[Line]) -> dict[Line, StoredLine]:
    """Each distinct line of ``lines`` -> where :func:`lines_scenario` put it."""
    distinct = list(dict.fromkeys(lines))
    if len(distinct) != len(scenario.transcripts):
        raise ValueError(
            f"scenario {scenario.id!r} stores {len(scenario.transcripts)} lines, its plan "
            f"has {len(distinct)}: the store was not made from this plan"
        )
    found = {}
    for index, (line, utterance) in enumerate(zip(distinct, scenario.transcripts, strict=True)):
        if utterance.text != line.text:
            raise ValueError(
                f"scenario {scenario.id!r} stores {utterance.text!r} where its plan says "
                f"{line.text!r}: the store was not made from this plan"
            )
        offset = round(utterance.start / FRAME_S)
        frames = max(1, math.ceil((utterance.end - utterance.start) / FRAME_S - 1e-9))
        ends = tuple(
            min(frames, max(1, math.ceil((w.end - utterance.start) / FRAME_S - 1e-9)))
            for w in utterance.words
        )
        duration = utterance.end - utterance.start
        found[line] = StoredLine(offset, frames, ends or (frames,), duration, index)
    return found
