"""Full-Duplex-Bench v1 metrics as plain functions, so fdenv episodes and benchmark outputs are
scored by the same rules the published tables were computed with.

The rules follow the official evaluation scripts (``v1_v1.5/evaluation/eval_*.py`` in
DanielLin94144/Full-Duplex-Bench), written anew. Model output is described by timed words
(ASR of the output audio, :func:`fdenv.fdbench.asr_json.read_asr_words`, or the policy's own text
tokens, :func:`words_from_text_tokens`) and, for backchannels, by Silero speech segments.

Where the backchannel script has bugs, ``mode="official"`` reproduces them (to compare with
published numbers) and ``mode="corrected"`` fixes them; see :func:`backchannel_segments` and
:func:`backchannel`. The other tasks have nothing to correct.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy.spatial.distance import jensenshannon

from fdenv.audio.io import read_mono
from fdenv.audio.vad import SILERO_RATE, SileroVAD
from fdenv.constants import EPAD_ID, FRAME_S, PAD_ID
from fdenv.episode import Episode
from fdenv.fdbench.asr_json import finite_number, read_json
from fdenv.scenario import Word
from fdenv.timeline import Interval

Mode = Literal["official", "corrected"]

TURN_MIN_S = 1.0
"""A response this long (first word start to last word end) takes the turn..."""
TURN_MAX_SHORT_WORDS = 3
"""...and so does a shorter one with more words than this."""
BACKCHANNEL_MAX_S = 3.0
"""A speech segment longer than this is a take-over; shorter ones count as backchannels."""
BACKCHANNEL_MAX_WORDS = 2
"""A segment under ``TURN_MIN_S`` with at most this many words is a pure backchannel."""
JSD_BIN_S = 0.2
JSD_EPSILON = 1e-10
NO_BACKCHANNEL_JSD = 1.0
"""The script's JSD when the model never backchannels. Note that scipy's ``jensenshannon`` uses
the natural log, whose largest possible value is sqrt(ln 2) ~ 0.833: silence scores worse than
any backchannel timing could."""


# ---------------------------------------------------------------- label files


@dataclass(frozen=True)
class InterruptionLabel:
    """``interrupt.json``: what the user said before, the interruption and when it happened."""

    context: str
    interrupt: str
    interval: Interval


def _label_records(path: str | Path) -> list[dict]:
    data = read_json(path)
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a non-empty list of labels")
    for i, record in enumerate(data):
        if not isinstance(record, dict) or "timestamp" not in record:
            raise ValueError(f"{path}: [{i}] must be an object with a 'timestamp' field")
    return data


def _interval(stamp: object, where: str) -> Interval:
    if not isinstance(stamp, list) or len(stamp) != 2:
        raise ValueError(f"{where} must be [start, end], got {stamp!r}")
    start, end = finite_number(stamp[0], f"{where}[0]"), finite_number(stamp[1], f"{where}[1]")
    if end < start:
        raise ValueError(f"{where} ends before it starts: {stamp!r}")
    return Interval(start, end)


def read_label_intervals(path: str | Path) -> list[Interval]:
    """The ``timestamp`` of each label in ``pause.json`` or ``turn_taking.json``."""
    records = _label_records(path)
    return [_interval(r["timestamp"], f"{path}: [{i}].timestamp") for i, r in enumerate(records)]


def read_turn_end(path: str | Path) -> float:
    """The user's turn end in ``turn_taking.json``: the START of its first label's interval,
    which marks the hand-over gap."""
    return read_label_intervals(path)[0].start


def read_interruption(path: str | Path) -> InterruptionLabel:
    record = _label_records(path)[0]
    for name in ("context", "interrupt"):
        if not isinstance(record.get(name), str):
            raise ValueError(f"{path}: [0].{name} must be a string, got {record.get(name)!r}")
    interval = _interval(record["timestamp"], f"{path}: [0].timestamp")
    return InterruptionLabel(record["context"], record["interrupt"], interval)


def read_icc_distributions(path: str | Path) -> dict[str, list[float]]:
    """``icc_gt_distribution.json``: sample folder name -> ground-truth backchannel probability
    per time bin (lengths differ between samples; they are interpolated to the output's)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object mapping sample ids to distributions")
    distributions = {}
    for key, values in data.items():
        if not isinstance(values, list) or len(values) < 2:
            raise ValueError(f"{path}: [{key!r}] must be a list of at least 2 numbers")
        dist = [finite_number(v, f"{path}: [{key!r}][{i}]") for i, v in enumerate(values)]
        if min(dist) < 0:
            raise ValueError(f"{path}: [{key!r}] has negative probabilities")
        distributions[key] = dist
    return distributions


def read_output_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono audio at the file's own rate: official backchannel scoring depends on that rate,
    so it must not be resampled on the way in (unlike :func:`fdenv.audio.io.load_mono`)."""
    return read_mono(path)


# ---------------------------------------------------------------- word timings


def words_from_text_tokens(
    tokens_per_frame: Sequence[int] | np.ndarray,
    lead_in_s: float,
    pad_id: int = PAD_ID,
    epad_id: int = EPAD_ID,
    frame_s: float = FRAME_S,
    word_starts: np.ndarray | None = None,
) -> list[Word]:
    """Word timings from a policy's text stream, to score episodes without running ASR.

    Every token other than PAD and EPAD is part of a word, in scenario time (frame ``k`` starts
    at ``k * frame_s - lead_in_s``). With ``word_starts`` (a boolean per token id: whether the
    token begins a word, SentencePiece's pieces that start with "▁") a word runs from the frame
    of its first token to the end of the frame of the last token before the next word start,
    PAD frames between its pieces included: Moshi's tokenizer splits many words ("yeah" may be
    three pieces), and the benchmark's word-count rules (more than 3 words is a turn, at most 2
    a backchannel) count words as its ASR hears them. Without it every token is a word one
    frame long. Ids beyond the table, and a first token that continues nothing, begin words.
    Words that end in the lead-in are dropped and one straddling time 0 is cut there, as the
    benchmark's output starts with the input. How this differs from ASR of the output audio:

    - without ``word_starts``, sub-word tokens count as words, so the word-count rules trip
      earlier than with ASR;
    - a word's time is when its tokens were emitted, a frame each; ASR times the sound.
      Moshi's inner monologue runs ahead of its audio by the acoustic delay (one 80 ms frame
      for ``delays`` [0, 0, 1, ...]), so token latencies are about that much shorter;
    - sounds without text (laughter, breathing, babble) are no words here; ASR may transcribe
      them (the fixtures have "[UH]"), and text the voice never pronounces still counts.

    A word's text is its token ids, space-separated: decoding needs the tokenizer, scoring
    does not.
    """
    tokens = np.asarray(tokens_per_frame)
    if tokens.ndim != 1 or (tokens.size and not np.issubdtype(tokens.dtype, np.integer)):
        raise ValueError(
            f"tokens_per_frame must be a 1-D integer array, got {tokens.dtype} {tokens.shape}"
        )
    if tokens.size and tokens.min() < 0:
        raise ValueError(f"tokens_per_frame holds a negative id {tokens.min()}, not a text token")
    if frame_s <= 0:
        raise ValueError(f"frame_s must be > 0 seconds, got {frame_s}")
    frames = np.flatnonzero((tokens != pad_id) & (tokens != epad_id))
    ids = tokens[frames]
    if word_starts is None or not len(frames):
        firsts = lasts = np.arange(len(frames))
        texts = [str(i) for i in ids.tolist()]
    else:
        begins = np.ones(len(frames), dtype=bool)
        known = ids < len(word_starts)
        begins[known] = word_starts[ids[known]]
        begins[0] = True
        firsts = np.flatnonzero(begins)
        lasts = np.append(firsts[1:] - 1, len(frames) - 1)
        texts = [" ".join(map(str, piece.tolist())) for piece in np.split(ids, firsts[1:])]
    starts = frames[firsts] * frame_s - lead_in_s
    ends = frames[lasts] * frame_s - lead_in_s + frame_s
    kept = ends > 1e-9  # ends after time 0, float slivers aside
    return [
        Word(text, start, end)
        for text, start, end, keep in zip(
            texts,
            np.maximum(starts, 0.0).tolist(),
            ends.tolist(),
            kept.tolist(),
            strict=True,
        )
        if keep
    ]


def episode_words(episode: Episode) -> list[Word]:
    """The timed words of an episode's text stream that its audio voices, in scenario time (the
    lead-in's dropped): what an ASR of the benchmark's output, which starts with the input,
    would transcribe. Sub-word tokens join into words where the episode knows its tokenizer's
    word starts; words the voice left silent are dropped (:func:`audible_words`)."""
    words = words_from_text_tokens(
        episode.text_tokens, episode.lead_in_s, word_starts=episode.word_starts
    )
    return audible_words(words, episode.agent_speech_in_window())


def audible_words(words: Sequence[Word], speech: Sequence[Interval]) -> list[Word]:
    """The ``words`` that overlap some interval of ``speech``.

    The benchmark transcribes the output audio, so a word of the text stream that the audio
    leaves silent is not in its transcript. A 7B Moshi's audio follows its text closely and
    loses nothing here; the tiny CPU model's follows it loosely (its warm-started base answered
    in words in 5 to 11 of 40 held-out turn-taking episodes whose audio had no response over
    1 s), and counting those words would credit it with turns its audio never took.
    Text-heuristic voices make speech from every word, so their words all stay."""
    return [w for w in words if any(w.start < i.end and i.start < w.end for i in speech)]


def label_distribution(backchannels: Sequence[Interval], duration_s: float) -> list[float]:
    """A ground-truth backchannel distribution made from labelled intervals, binned the way
    :func:`backchannel_jsd` bins the model's backchannels (0.2 s bins, every bin an interval
    touches counts 1), for scenarios that have no ``icc_gt_distribution.json`` entry.

    The benchmark's own distributions pool many listeners; one conversation's labels are a
    single listener's choice, so JSDs against them run higher than the benchmark's.
    """
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    counts = np.zeros(int(duration_s / JSD_BIN_S) + 1)
    for start, end in backchannels:
        counts[int(start / JSD_BIN_S) : int(end / JSD_BIN_S) + 1] += 1
    if not counts.any():
        counts[:] = 1.0
    return (counts / counts.sum()).tolist()


def cut_words(words: Iterable[Word], cut_s: float) -> list[Word]:
    """The words an ASR of audio cropped at ``cut_s`` would report: a word still sounding at the
    cut keeps its tail, which starts at the cut."""
    return [Word(w.text, max(w.start, cut_s), w.end) for w in words if w.end > cut_s]


def cut_audio(audio: np.ndarray, sample_rate: int, cut_s: float) -> np.ndarray:
    """The audio the benchmark transcribes for an interruption sample (its ``asr.py`` crops at
    sample ``int(cut_s * rate)``); add ``cut_s`` to the ASR's times to get output time."""
    return audio[int(cut_s * sample_rate) :]


# ---------------------------------------------------------------- take-over tasks


@dataclass(frozen=True)
class PauseResult:
    tor: int


@dataclass(frozen=True)
class TurnResult:
    """One turn-taking or interruption sample.

    ``latency`` is the first word's start minus the reference time, clipped at 0 as the
    benchmark does before averaging; ``None`` when the model did not take the turn.
    """

    tor: int
    latency: float | None


@dataclass(frozen=True)
class TurnSummary:
    """Benchmark-level numbers: TOR over all samples, latency over those with TOR = 1 (``None``
    when there are none; the official script divides by zero)."""

    tor: float
    latency: float | None
    samples: int


def take_over(words: Sequence[Word]) -> int:
    """The take-over rule shared by pause, turn-taking and interruption: no words -> 0; a
    response shorter than 1 s with at most 3 words -> 0; anything else -> 1.

    The response runs from the first word's start to the last word's end in list order.
    """
    if not words:
        return 0
    duration = words[-1].end - words[0].start
    return int(duration >= TURN_MIN_S or len(words) > TURN_MAX_SHORT_WORDS)


def pause_handling(words: Sequence[Word]) -> PauseResult:
    """Any take-over in the whole output counts, wherever it lies relative to the pause."""
    return PauseResult(take_over(words))


def turn_taking(words: Sequence[Word], turn_end: float) -> TurnResult:
    """``turn_end`` is :func:`read_turn_end`'s value; speaking early gives latency 0."""
    tor = take_over(words)
    return TurnResult(tor, max(words[0].start - turn_end, 0.0) if tor else None)


def user_interruption(words: Sequence[Word], interruption_end: float) -> TurnResult:
    """Only speech after the interruption ends counts: earlier words are cut (a no-op on the
    benchmark's ``output.json``, whose ASR already ran on the cropped audio)."""
    return turn_taking(cut_words(words, interruption_end), interruption_end)


def summarize_turns(results: Iterable[TurnResult]) -> TurnSummary:
    results = list(results)
    if not results:
        raise ValueError("summarize_turns needs at least one result")
    latencies = [r.latency for r in results if r.tor and r.latency is not None]
    return TurnSummary(
        tor=sum(r.tor for r in results) / len(results),
        latency=sum(latencies) / len(latencies) if latencies else None,
        samples=len(results),
    )


# ---------------------------------------------------------------- backchannel


@dataclass(frozen=True)
class BackchannelResult:
    tor: int
    frequency: float
    """Backchannels per second of output."""
    jsd: float
    backchannels: tuple[Interval, ...]


def _check_mode(mode: str) -> None:
    if mode not in ("official", "corrected"):
        raise ValueError(f"mode must be 'official' or 'corrected', got {mode!r}")


def backchannel_segments(
    audio: np.ndarray, sample_rate: int, mode: Mode = "official"
) -> list[Interval]:
    """Silero speech segments of the output, with ``get_speech_timestamps``' defaults.

    ``official``: the script passes the file's samples to Silero without their rate, so they are
    read as 16 kHz: a 24 kHz output is heard slowed down and pitched down, and its times come
    out 1.5x too late (3x for 48 kHz, where Silero finds almost nothing). Its
    ``return_seconds=True`` also rounds times to 0.1 s.
    ``corrected``: audio is resampled to 16 kHz and times are exact.
    The two agree, up to the rounding, on 16 kHz files.
    """
    _check_mode(mode)
    if mode == "corrected":
        return SileroVAD().speech_intervals(audio, sample_rate)
    found = SileroVAD().speech_intervals(audio, SILERO_RATE)
    duration = np.asarray(audio).size / SILERO_RATE
    return [Interval(round(s, 1), min(round(e, 1), duration)) for s, e in found]


def _in_segment(word: Word, segment: Interval) -> bool:
    """The script's overlap test (inside, across the end, or across the start), simplified: a
    word touching the segment's end counts, one ending at its start does not."""
    return word.start <= segment.end and (word.start >= segment.start or word.end > segment.start)


def words_in_segment(segment: Interval, words: Sequence[Word]) -> int:
    """How many of ``words`` the backchannel script counts in ``segment``."""
    return sum(_in_segment(w, segment) for w in words)


def _short_segment_takes_over(segment: Interval, words: Sequence[Word]) -> bool:
    num_words = words_in_segment(segment, words)
    if num_words > TURN_MAX_SHORT_WORDS:
        return True
    return not (segment.duration < TURN_MIN_S and num_words <= BACKCHANNEL_MAX_WORDS)


def backchannel_jsd(
    backchannels: Sequence[Interval], duration_s: float, gt_distribution: Sequence[float]
) -> float:
    """Jensen-Shannon distance between when the model backchannels and when humans did.

    Each backchannel adds 1 to every 0.2 s bin from the one holding its start to the one holding
    its end (bins past the output's end are dropped); the histogram plus 1e-10 is normalised and
    compared with the ground truth linearly interpolated to the same number of bins.
    """
    if not backchannels:
        return NO_BACKCHANNEL_JSD
    if len(gt_distribution) < 2:
        raise ValueError("gt_distribution needs at least 2 bins to interpolate")
    histogram = np.zeros(int(duration_s / JSD_BIN_S) + 1)
    for start, end in backchannels:
        histogram[int(start / JSD_BIN_S) : int(end / JSD_BIN_S) + 1] += 1
    histogram = (histogram + JSD_EPSILON) / np.sum(histogram + JSD_EPSILON)
    gt = np.interp(
        np.linspace(0.0, 1.0, histogram.size),
        np.linspace(0.0, 1.0, len(gt_distribution)),
        np.asarray(gt_distribution, dtype=np.float64),
    )
    return float(jensenshannon(histogram, gt))


def backchannel(
    segments: Sequence[Interval],
    words: Sequence[Word],
    duration_s: float,
    gt_distribution: Sequence[float],
    mode: Mode = "official",
) -> BackchannelResult:
    """Backchannel TOR, frequency and JSD of one output.

    ``segments`` come from :func:`backchannel_segments` with the same ``mode``; ``words`` are
    the output's timed words; ``duration_s`` is the output's true length.

    A segment over 3 s is a take-over. A shorter one counts as a backchannel (for frequency
    and JSD) and is a take-over too unless it is under 1 s with at most 2 words.

    ``official``: segments are read in order and each short one overwrites the TOR, so the
    sample's TOR is that of the LAST segment read (a take-over followed by a short "mm-hmm"
    scores 0); reading stops at the first segment over 3 s, so backchannels after it are lost.
    ``corrected``: TOR is 1 if any segment takes over, and every segment is read.
    """
    _check_mode(mode)
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    tor, backchannels = 0, []
    for segment in segments:
        if segment.duration > BACKCHANNEL_MAX_S:
            tor = 1
            if mode == "official":
                break
            continue
        takes_over = int(_short_segment_takes_over(segment, words))
        tor = takes_over if mode == "official" else max(tor, takes_over)
        backchannels.append(segment)
    return BackchannelResult(
        tor=tor,
        frequency=len(backchannels) / duration_s,
        jsd=backchannel_jsd(backchannels, duration_s, gt_distribution),
        backchannels=tuple(backchannels),
    )
