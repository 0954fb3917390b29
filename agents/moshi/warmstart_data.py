"""The warm start's training data: what a good partner says, laid frame by frame over an env
stream as Moshi's 17-stream sequence.

Each axis says what a good partner says in its scenarios (:meth:`fdenv.axes.Axis.reference_lines`)
through a :class:`~fdenv.axes.ReferencePartner`; :class:`WarmstartPartner` is the warm start's,
with sentence-bank lines and random reply delays. espeak speaks the lines and its word timings
pace the text tokens, which land in the frames :class:`~agents.moshi.policy.MoshiPolicy` would
have recorded them in, next to the streaming Mimi's codes of the user's and the agent's audio.
The recipe that turns these into a base model is :mod:`agents.moshi.warmstart`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sentencepiece as spm
import torch
from moshi.models.compression import MimiModel

from fdenv.audio.espeak import SpeakerStyle, get_engine
from fdenv.axes import AgentLine
from fdenv.constants import EPAD_ID, FRAME_S, FRAME_SIZE, PAD_ID, SAMPLE_RATE
from fdenv.engine import make_stream
from fdenv.scenario import Scenario, Word
from fdenv.scenarios.sentences import load_sentence_bank, unmarked

# ---------------------------------------------------------------------------------------------
# What the agent says

AGENT_STYLE = SpeakerStyle("en-us+m3", 120, pitch=50)
"""The voice the warm start speaks the agent's lines in (a rate of 120 words per minute paces
its text at about 2.9 words per second); its codes are the ones the tiny LM learns to emit."""


class WarmstartPartner:
    """The warm start's :class:`~fdenv.axes.ReferencePartner`: statements and one-word
    backchannels from the sentence bank, reply delays in ``reply_delay_s`` and cut-offs
    ``stop_after_frames`` frames after the cut-in, all drawn from ``rng`` as the axis asks."""

    def __init__(
        self,
        rng: np.random.Generator,
        reply_delay_s: tuple[float, float],
        stop_after_frames: tuple[int, int],
    ) -> None:
        bank = load_sentence_bank()
        self.rng = rng
        self.reply_delay_s = reply_delay_s
        self.stop_after_frames = stop_after_frames
        self.statements = [unmarked(s) for s in bank.statements]
        self.backchannels = [b for b in bank.backchannels if " " not in b and "-" not in b]

    def statement(self) -> str:
        return self.statements[self.rng.integers(len(self.statements))]

    def backchannel(self) -> str:
        return self.backchannels[self.rng.integers(len(self.backchannels))]

    def reply_at(self, t: float) -> float:
        return t + self.rng.uniform(*self.reply_delay_s)

    def stop_at(self, t: float) -> float:
        low, high = self.stop_after_frames
        return t + int(self.rng.integers(low, high + 1)) * FRAME_S


@dataclass(frozen=True)
class SpokenLine:
    """A line as spoken: its words in scenario seconds and its audio from the first word on."""

    words: tuple[Word, ...]
    audio: np.ndarray | None = None
    stop: float | None = None


def speak(line: AgentLine, style: SpeakerStyle) -> SpokenLine:
    """Speaks ``line`` with espeak, whose word timings pace the text tokens."""
    speech = get_engine().speak(line.text, style)
    words = tuple(Word(w.text, w.start + line.start, w.end + line.start) for w in speech.words)
    return SpokenLine(words, speech.audio, line.stop)


# ---------------------------------------------------------------------------------------------
# Env frames -> Moshi's 17 streams


def frame_of(t: float, lead_in_s: float) -> int:
    """The env frame that contains scenario time ``t`` (frame ``k`` starts at ``0.08 k - lead``)."""
    return math.floor((t + lead_in_s) / FRAME_S + 1e-9)


def text_track(
    lines: Sequence[SpokenLine],
    num_frames: int,
    lead_in_s: float,
    tokenizer: spm.SentencePieceProcessor,
) -> np.ndarray:
    """The agent's text token per env frame, Moshi's way: a word's pieces in consecutive frames
    from the frame its speech starts in, EPAD in the frame before, PAD everywhere else.

    A word whose frame is still taken by the previous word's pieces (or EPAD) starts later. A
    line is cut before the frame of its ``stop``, mid-word if need be, the way a person breaks
    off; an EPAD is only kept when a piece of its word follows.
    """
    text = np.full(num_frames, PAD_ID, dtype=np.int64)
    free = 0  # first frame not yet taken
    for line in lines:
        stop = num_frames if line.stop is None else frame_of(line.stop, lead_in_s)
        stop = min(stop, num_frames)
        for word in line.words:
            first = max(frame_of(word.start, lead_in_s), free + 1)
            if first >= stop:
                break
            pieces = tokenizer.encode(word.text)[: stop - first]
            text[first - 1] = EPAD_ID
            text[first : first + len(pieces)] = pieces
            free = first + len(pieces)
    return text


@dataclass
class Dialogue:
    """A training dialogue in env frames, before Mimi: the agent's text token per frame, the
    env's user stream, and the agent's speech as ``(first frame, whole-frame audio)`` clips (only
    speech is encoded; the agent's silence gets Mimi's silence codes)."""

    text: np.ndarray
    user_audio: np.ndarray
    clips: list[tuple[int, np.ndarray]]


def make_dialogue(
    scenario: Scenario,
    lines: Sequence[SpokenLine],
    tokenizer: spm.SentencePieceProcessor,
    lead_in_s: float,
) -> Dialogue:
    """Lays the agent's ``lines`` over the env stream of ``scenario``.

    A clip runs from the frame of its first word to a frame past its speech (or to the frame of
    its ``stop``), so its codes cover the frames where the text says the agent talks.
    """
    stream = make_stream(scenario, lead_in_s)
    clips = []
    for line in lines:
        if line.audio is None:
            continue
        first = frame_of(line.words[0].start, lead_in_s)
        stop = first + math.ceil(len(line.audio) / FRAME_SIZE) + 1
        if line.stop is not None:
            stop = min(stop, frame_of(line.stop, lead_in_s))
        stop = min(stop, stream.num_frames)
        if stop > first:
            clip = np.zeros((stop - first) * FRAME_SIZE, dtype=np.float32)
            offset = round((line.words[0].start + lead_in_s) * SAMPLE_RATE) - first * FRAME_SIZE
            speech = line.audio[: len(clip) - offset]
            clip[offset : offset + len(speech)] = speech
            clips.append((first, clip))
    text = text_track(lines, stream.num_frames, lead_in_s, tokenizer)
    return Dialogue(text, stream.audio, clips)


@torch.no_grad()
def encode(
    mimi: MimiModel, tracks: Sequence[np.ndarray], batch_size: int = 64
) -> list[torch.Tensor]:
    """Mimi codes ``[8, frames]`` of whole-frame tracks, computed as the policy computes them.

    The policy encodes a batch of envs frame by frame with a streaming Mimi; so does this, over
    batches of tracks of similar length. One non-streaming pass per track is no shortcut: it is
    slower on a CPU, and the tiny Mimi's nearest-centroid search is not bit-stable (codes of
    near-duplicate centroids flip with the shape of the distance matmul, so a few percent of
    codes differ, as they do between a batch of one and a larger batch). Batches therefore
    have at least two rows (a lone track gets a silent companion), like the rollouts.
    """
    order = sorted(range(len(tracks)), key=lambda i: len(tracks[i]))
    codes: list[torch.Tensor] = [torch.empty(0)] * len(tracks)
    device = next(mimi.parameters()).device
    for first in range(0, len(order), batch_size):
        chunk = order[first : first + batch_size]
        frames = max(len(tracks[i]) for i in chunk) // FRAME_SIZE
        audio = torch.zeros(max(len(chunk), 2), 1, frames * FRAME_SIZE)
        for row, i in enumerate(chunk):
            audio[row, 0, : len(tracks[i])] = torch.from_numpy(tracks[i])
        audio = audio.to(device)
        with mimi.streaming(len(audio)):
            out = torch.cat(
                [
                    mimi.encode(audio[..., k * FRAME_SIZE : (k + 1) * FRAME_SIZE])
                    for k in range(frames)
                ],
                dim=2,
            ).cpu()
        for row, i in enumerate(chunk):
            codes[i] = out[row, :, : len(tracks[i]) // FRAME_SIZE]
    return codes


@torch.no_grad()
def silence_codes(mimi: MimiModel) -> torch.Tensor:
    """The codes ``[8]`` a streaming Mimi settles on for silence (what the policy's step 0 says)."""
    device = next(mimi.parameters()).device
    with mimi.streaming(1):
        for _ in range(2):
            codes = mimi.encode(torch.zeros(1, 1, FRAME_SIZE, device=device))
    return codes[0, :, 0].cpu()


def encode_dialogues(mimi: MimiModel, dialogues: Sequence[Dialogue]) -> list[torch.Tensor]:
    """Moshi's ``[17, frames - 1]`` sequence of each dialogue.

    Moshi frame ``j`` holds what the agent says in env frame ``j + 1`` and the user codes of env
    frame ``j + 1`` (see :class:`MoshiPolicy`); env frame 0 belongs to no Moshi frame.
    """
    clips = [
        (d, first, clip) for d, dialogue in enumerate(dialogues) for first, clip in dialogue.clips
    ]
    codes = encode(mimi, [d.user_audio for d in dialogues] + [clip for _, _, clip in clips])
    user, spoken = codes[: len(dialogues)], codes[len(dialogues) :]
    silence = silence_codes(mimi)[:, None]
    agent = [silence.repeat(1, len(d.text)) for d in dialogues]
    for (d, first, _), clip_codes in zip(clips, spoken, strict=True):
        agent[d][:, first : first + clip_codes.shape[1]] = clip_codes
    return [
        torch.cat([torch.as_tensor(dialogue.text)[None], agent[d], user[d]])[:, 1:]
        for d, dialogue in enumerate(dialogues)
    ]


def pad_sequences(sequences: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[17, T_i]`` sequences as one ``[N, 17, max T]`` batch, ``-1`` (the zero token) after."""
    out = torch.full((len(sequences), 17, max(s.shape[1] for s in sequences)), -1)
    for i, sequence in enumerate(sequences):
        out[i, :, : sequence.shape[1]] = sequence
    return out
