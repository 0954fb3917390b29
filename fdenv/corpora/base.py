"""What a corpus reader yields: a two-party conversation as two aligned channels plus labels.

Mining reads far more audio than it keeps (a few segments per conversation), so a
:class:`Conversation` is lazy: opening one reads headers and sidecar labels only, and audio is
read span by span (:meth:`Conversation.read`), resampled on the way. A corpus is one
:class:`CorpusReader` subclass: ``scan`` lists its conversations cheaply in the parent process,
``open`` turns one into a :class:`Conversation` inside a worker. Readers are plain picklable
objects so that a process pool can carry them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import soundfile as sf

from fdenv.audio.io import clip_unit, resample
from fdenv.constants import SAMPLE_RATE
from fdenv.scenario import Utterance
from fdenv.timeline import Interval

READ_MARGIN_S = 0.05
"""Extra audio read on each side of a span so that the resampling filter has real context."""


class SkipItem(Exception):
    """A conversation (or file) that cannot be mined; ``reason`` is the summary's counter key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ChannelRef:
    """One speaker's audio: channel ``channel`` of ``path``, at the file's own rate."""

    path: str
    channel: int
    sample_rate: int
    num_frames: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.sample_rate


@dataclass(frozen=True)
class CorpusItem:
    """A conversation as listed by ``scan``: an id and the files ``open`` needs (picklable)."""

    id: str
    files: tuple[str, ...]


@dataclass
class CorpusScan:
    """The conversations of a corpus, and the files that cannot be one, with their reasons."""

    items: list[CorpusItem] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(path or id, reason)`` pairs."""


@dataclass
class Conversation:
    """Two aligned speakers. Channel ``c`` of ``vad``/``transcripts`` belongs to ``channels[c]``.

    ``vad[c]`` is ``None`` where the corpus ships no VAD (the miner runs one). Transcript
    utterances carry ``speaker`` ``"0"`` or ``"1"``; the miner renames them ``user``/``partner``.
    ``notes`` counts recoverable defects (for example words without times, which are dropped).
    """

    id: str
    channels: tuple[ChannelRef, ChannelRef]
    vad: tuple[list[Interval] | None, list[Interval] | None] = (None, None)
    transcripts: tuple[list[Utterance], list[Utterance]] = field(default_factory=lambda: ([], []))
    source: dict[str, Any] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)

    @property
    def duration(self) -> float:
        """Seconds both channels cover (the shorter one; readers bound the difference)."""
        return min(c.duration for c in self.channels)

    def read(
        self, start_s: float, end_s: float, rate: int = SAMPLE_RATE, method: str = "polyphase"
    ) -> np.ndarray:
        """Both channels over ``[start_s, end_s)``, float32 ``[2, n]`` in [-1, 1] at ``rate``
        (louder samples of float files, and resampling overshoot, are clipped), resampled by
        ``method`` (:func:`fdenv.audio.io.resample`).

        ``n = round((end_s - start_s) * rate)``. A file that holds fewer frames than its header
        promised raises :class:`SkipItem` ``truncated_audio``.
        """
        if not 0.0 <= start_s <= end_s <= self.duration + 1e-6:
            raise ValueError(
                f"conversation {self.id}: span [{start_s}, {end_s}) outside "
                f"[0, {self.duration:.3f}] s"
            )
        n = round((end_s - start_s) * rate)
        out = np.zeros((2, n), dtype=np.float32)
        by_file: dict[str, list[int]] = {}
        for index, ref in enumerate(self.channels):
            by_file.setdefault(ref.path, []).append(index)
        for indices in by_file.values():
            ref = self.channels[indices[0]]
            block, first_frame = _read_frames(ref, start_s, end_s)
            # Where start_s falls in the resampled block (within half an output sample).
            first = round((start_s - first_frame / ref.sample_rate) * rate)
            for index in indices:
                channel = block[:, self.channels[index].channel]
                audio = resample(channel, ref.sample_rate, rate, method)
                piece = audio[first : first + n]
                out[index, : piece.size] = piece
        return clip_unit(out)


def _read_frames(ref: ChannelRef, start_s: float, end_s: float) -> tuple[np.ndarray, int]:
    """Frames ``[n, ch]`` of ``ref``'s file over the span plus :data:`READ_MARGIN_S` each side,
    and the index of the first frame read."""
    rate = ref.sample_rate
    first = max(math.floor((start_s - READ_MARGIN_S) * rate), 0)
    stop = min(math.ceil((end_s + READ_MARGIN_S) * rate), ref.num_frames)
    try:
        with sf.SoundFile(ref.path) as f:
            f.seek(first)
            block = f.read(stop - first, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise SkipItem("unreadable_audio", f"{ref.path}: {err}") from err
    if block.shape[0] < stop - first:
        raise SkipItem(
            "truncated_audio",
            f"{ref.path}: header promises {ref.num_frames} frames, data ends before {stop}",
        )
    if not np.all(np.isfinite(block)):
        raise SkipItem("unreadable_audio", f"{ref.path}: NaN/Inf samples")
    return block, first


def probe(path: str | Path, expected_rates: tuple[int, ...] | None = None) -> sf._SoundFileInfo:
    """Header of an audio file; unreadable files and unexpected rates raise :class:`SkipItem`."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise SkipItem("unreadable_audio", f"{path}: {err}") from err
    if info.frames <= 0:
        raise SkipItem("unreadable_audio", f"{path}: no audio frames")
    missing = missing_bytes(path)
    if missing > 0:
        raise SkipItem("truncated_audio", f"{path}: {missing} bytes shorter than its header says")
    if expected_rates is not None and info.samplerate not in expected_rates:
        raise SkipItem(
            "unexpected_sample_rate",
            f"{path}: {info.samplerate} Hz, this reader accepts {list(expected_rates)} Hz",
        )
    return info


def missing_bytes(path: str | Path) -> int:
    """How many bytes of audio data a WAV or SPHERE header promises beyond the file's end.

    libsndfile silently reports a truncated file's shorter length, which would pass for a
    short recording (or a length mismatch); the header still says how long it was meant to be.
    Other formats (and headers that leave the size open) give 0.
    """
    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        offset = 12
        while offset + 8 <= len(head):
            chunk, length = (
                head[offset : offset + 4],
                int.from_bytes(head[offset + 4 : offset + 8], "little"),
            )
            if chunk == b"data":
                if length in (0, 0xFFFFFFFF):  # streaming writers leave the size open
                    return 0
                return max(offset + 8 + length - size, 0)
            offset += 8 + length + (length & 1)
        return 0
    if head[:8] == b"NIST_1A\n":
        fields = {}
        for line in head[:1024].decode("ascii", errors="replace").splitlines():
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[2].strip().isdigit():  # -i and -sN fields alike
                fields[parts[0]] = int(parts[2])
        if "shorten" in head[:1024].decode("ascii", errors="replace"):
            return 0  # compressed: the sample count says nothing about the file size
        needed = fields.get("sample_count", 0) * fields.get("channel_count", 1)
        needed *= fields.get("sample_n_bytes", 2)
        return max(1024 + needed - size, 0)
    return 0


def check_lengths(
    conversation_id: str, channels: tuple[ChannelRef, ChannelRef], tol: float
) -> None:
    """Raises ``length_mismatch`` when the channels' durations differ by more than ``tol`` s."""
    a, b = (c.duration for c in channels)
    if abs(a - b) > tol:
        raise SkipItem(
            "length_mismatch",
            f"{conversation_id}: channels last {a:.3f} s and {b:.3f} s, "
            f"more than the {tol} s tolerance apart",
        )


class CorpusReader(ABC):
    """Lists and opens the conversations of one corpus layout under ``root``.

    ``length_tolerance_s``: channels whose lengths differ by more than this are skipped
    (``length_mismatch``); within it, the shorter length is used.
    """

    name: ClassVar[str]

    def __init__(self, root: str | Path, length_tolerance_s: float = 0.5) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"corpus root {self.root} is not a folder")
        if length_tolerance_s < 0:
            raise ValueError(f"length_tolerance_s must be >= 0, got {length_tolerance_s}")
        self.length_tolerance_s = length_tolerance_s

    @abstractmethod
    def scan(self) -> CorpusScan:
        """Every conversation under ``root`` in a fixed (sorted) order, plus unusable files."""

    @abstractmethod
    def open(self, item: CorpusItem) -> Conversation:
        """Reads headers and labels of one conversation; raises :class:`SkipItem` if unusable."""
