"""Offline English speech synthesis in-process through espeak-ng (ctypes binding).

espeak-ng is GPL; fdenv never ships it. The library and its data come from the
``espeakng-loader`` wheel and are loaded at run time only.

espeak-ng keeps function-level static state in its wave generator (pitch flutter phase, glottal
cycle counter, gain control) that no API call resets, so two identical requests in one process
would give slightly different audio. To make every utterance a pure function of its text and
style, :class:`Espeak` loads the library, synthesises one utterance and unloads it again (about
0.3 ms per call, little next to synthesis itself), and fixes the seed of espeak's noise.
"""

from __future__ import annotations

import _ctypes
import bisect
import ctypes
import os
import re
import string
import sys
import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from fdenv.audio.io import resample
from fdenv.constants import SAMPLE_RATE
from fdenv.scenario import Word

# Values from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # without it a missing data directory calls exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EE_OK = 0
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_RAND_SEED = 0
_BUFFER_MS = 200  # bigger callback buffers mean fewer Python round trips per utterance

RATE_LIMITS = (80, 450)
"""espeak's supported speaking rates in words per minute (faster needs libsonic)."""

SILENCE_THRESHOLD = 1e-3
"""Amplitude (about -60 dBFS) below which a sample counts as silence when trimming.

espeak's pauses are exact zeros, so a low threshold keeps quiet fricative tails intact."""

TRIM_MARGIN_S = 0.002
"""Silence kept around the trimmed speech so that it starts and ends without a click."""

ENGLISH_VOICES = ("en-us", "en", "en-gb-x-rp")
"""American, British and British RP English; ``en-gb`` itself is no voice name in espeak-ng."""

_ONSET_GUARD_S = 0.01
_MIN_PAUSE_S = 0.01  # shorter silences are stop closures or quiet stretches inside speech
_VARIANT_PATTERN = re.compile(r"[fm]\d+")
_TOKEN_PATTERN = re.compile(r"\S+")


class _EventId(ctypes.Union):
    _fields_ = (
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    )


class _Event(ctypes.Structure):
    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds since the start of the message
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    )


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class SpeakerStyle:
    voice: str  # espeak voice name incl. variant, e.g. "en-us+f3"
    rate_wpm: int  # words per minute
    pitch: int  # 0-100
    pitch_range: int = 50  # 0-100


@dataclass(frozen=True)
class Speech:
    audio: np.ndarray  # mono float32 at 24 kHz, leading/trailing silence trimmed
    words: tuple[Word, ...]  # word timings, seconds relative to audio[0]
    text: str


_library_lock = threading.Lock()
"""espeak-ng is one global state per process, whichever :class:`Espeak` object drives it."""

_engine: Espeak | None = None
_engine_lock = threading.Lock()


def _reset_after_fork() -> None:
    # Another thread of the parent may have held a lock while forking; the child starts afresh.
    global _library_lock, _engine, _engine_lock
    _library_lock = threading.Lock()
    _engine_lock = threading.Lock()
    _engine = None


os.register_at_fork(after_in_child=_reset_after_fork)


def _unload(handle: int) -> None:
    if sys.platform == "win32":
        _ctypes.FreeLibrary(handle)  # type: ignore[attr-defined]
    else:
        _ctypes.dlclose(handle)  # type: ignore[attr-defined]


def _is_loaded(path: str) -> bool:
    """Whether ``path`` is still mapped, i.e. someone else in this process holds it open."""
    if sys.platform == "win32" or not hasattr(os, "RTLD_NOLOAD"):
        return False
    try:
        handle = _ctypes.dlopen(path, os.RTLD_NOLOAD | os.RTLD_LAZY)  # type: ignore[attr-defined]
    except OSError:
        return False
    _unload(handle)
    return True


@lru_cache(maxsize=8)
def _variant_files(data_path: str) -> frozenset[str]:
    directory = Path(data_path) / "voices" / "!v"
    if not directory.is_dir():
        return frozenset()
    return frozenset(p.name for p in directory.iterdir() if p.is_file())


def _default_paths() -> tuple[str, str]:
    import espeakng_loader

    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


class Espeak:
    """Speaks English text through espeak-ng; use :func:`get_engine` for the process's instance.

    All instances share one lock, since espeak-ng is a single global state per process. The
    library is loaded and initialised afresh for every utterance (see the module docstring), so
    an instance holds no library state and stays valid in forked children.
    """

    def __init__(self, library_path: str | None = None, data_path: str | None = None) -> None:
        if library_path is None or data_path is None:
            default_library, default_data = _default_paths()
            library_path = library_path or default_library
            data_path = data_path or default_data
        self._library_path = str(library_path)
        self._data_path = str(data_path)
        self._chunks: list[np.ndarray] = []
        self._word_events: list[tuple[int, int]] = []  # (character index, milliseconds)
        self._callback = _SynthCallback(self._on_synth)
        self._warned_shared = False
        with _library_lock:
            lib, self._native_rate = self._load()
            lib.espeak_Terminate()
            _unload(lib._handle)

    @property
    def native_rate(self) -> int:
        return self._native_rate

    def speak(self, text: str, style: SpeakerStyle) -> Speech:
        """Synthesises ``text`` and returns it trimmed to the speech, with word timings."""
        text = text.strip()
        if not text:
            raise ValueError("cannot speak empty text")
        if "\x00" in text:
            raise ValueError(f"text contains a NUL character: {text!r}")
        self._check_style(style)
        with _library_lock:
            raw, events = self._synthesize(text, style)
        return self._finish(text, raw, events)

    def _check_style(self, style: SpeakerStyle) -> None:
        base, _, variant = style.voice.partition("+")
        if not base:
            raise ValueError(f"unknown espeak voice {style.voice!r}: no language part")
        if variant and variant not in _variant_files(self._data_path):
            raise ValueError(
                f"unknown espeak voice variant {variant!r} in {style.voice!r}; "
                f"variants live in {Path(self._data_path) / 'voices' / '!v'}"
            )
        low, high = RATE_LIMITS
        if not low <= style.rate_wpm <= high:
            raise ValueError(f"rate_wpm must be in [{low}, {high}], got {style.rate_wpm}")
        for name in ("pitch", "pitch_range"):
            value = getattr(style, name)
            if not 0 <= value <= 100:
                raise ValueError(f"{name} must be in [0, 100], got {value}")

    def _load(self) -> tuple[ctypes.CDLL, int]:
        """Loads and initialises a fresh library state (call under the lock); returns its rate."""
        try:
            lib = ctypes.CDLL(self._library_path)
        except OSError as err:
            raise RuntimeError(
                f"cannot load the espeak-ng library {self._library_path}: {err}"
            ) from err
        lib.espeak_Initialize.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
        lib.espeak_Initialize.restype = ctypes.c_int
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS,
            _BUFFER_MS,
            self._data_path.encode(),
            _INITIALIZE_DONT_EXIT,
        )
        if rate <= 0:
            _unload(lib._handle)
            raise RuntimeError(
                f"espeak-ng could not be initialised with the data directory {self._data_path} "
                f"(library {self._library_path})"
            )
        # Breath noise comes from a generator seeded per process; fix it for reproducibility.
        lib.espeak_ng_SetRandSeed.argtypes = (ctypes.c_long,)
        lib.espeak_ng_SetRandSeed(_RAND_SEED)
        lib.espeak_SetSynthCallback(self._callback)
        return lib, rate

    def _synthesize(
        self, text: str, style: SpeakerStyle
    ) -> tuple[np.ndarray, list[tuple[int, int]]]:
        self._chunks = []
        self._word_events = []
        lib, _ = self._load()
        try:
            lib.espeak_SetVoiceByName.argtypes = (ctypes.c_char_p,)
            if lib.espeak_SetVoiceByName(style.voice.encode()) != _EE_OK:
                raise ValueError(f"unknown espeak voice {style.voice!r}")
            lib.espeak_SetParameter.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int)
            lib.espeak_SetParameter(_PARAM_RATE, style.rate_wpm, 0)
            lib.espeak_SetParameter(_PARAM_PITCH, style.pitch, 0)
            lib.espeak_SetParameter(_PARAM_RANGE, style.pitch_range, 0)
            lib.espeak_Synth.argtypes = (
                ctypes.c_char_p,
                ctypes.c_size_t,
                ctypes.c_uint,
                ctypes.c_int,
                ctypes.c_uint,
                ctypes.c_uint,
                ctypes.c_void_p,
                ctypes.c_void_p,
            )
            encoded = text.encode()
            status = lib.espeak_Synth(
                encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            if status != _EE_OK:
                raise RuntimeError(f"espeak_Synth failed with status {status} for {text!r}")
        finally:
            lib.espeak_Terminate()
            _unload(lib._handle)
        if not self._warned_shared and _is_loaded(self._library_path):
            self._warned_shared = True
            warnings.warn(
                f"{self._library_path} is also loaded elsewhere in this process, so espeak's "
                "state survives between utterances and synthesis is not exactly reproducible",
                RuntimeWarning,
                stacklevel=3,
            )
        raw = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return raw, self._word_events

    def _on_synth(self, wav: ctypes._Pointer, count: int, events: ctypes._Pointer) -> int:
        # Runs inside espeak_Synth; it must not raise, so it only copies data out.
        if count > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_WORD:
                self._word_events.append((event.text_position - 1, event.audio_position))
            i += 1
        return 0

    def _finish(self, text: str, raw: np.ndarray, events: list[tuple[int, int]]) -> Speech:
        audio = resample(raw.astype(np.float32) / 32768.0, self._native_rate, SAMPLE_RATE)
        np.clip(audio, -1.0, 1.0, out=audio)  # resampling may overshoot a full-scale peak
        loud = np.flatnonzero(np.abs(audio) > SILENCE_THRESHOLD)
        if loud.size == 0:
            raise ValueError(f"espeak produced no audible speech for {text!r}")
        margin = round(TRIM_MARGIN_S * SAMPLE_RATE)
        first = max(int(loud[0]) - margin, 0)
        last = min(int(loud[-1]) + 1 + margin, audio.size)
        audio = np.ascontiguousarray(audio[first:last])
        loud = loud - first
        words = _word_timings(text, events, loud, first / SAMPLE_RATE, audio.size)
        return Speech(audio=audio, words=words, text=text)


def _word_timings(
    text: str,
    events: list[tuple[int, int]],
    loud: np.ndarray,
    offset_s: float,
    n_samples: int,
) -> tuple[Word, ...]:
    """One word per whitespace token, timed from espeak's word events.

    espeak speaks some word pairs as one unit (``on the``, ``have been``) and announces only the
    first, so tokens without an event share their group's time in proportion to their length.
    A group ends at its last sound before a pause, or where the next group starts.
    """
    spans = [m.span() for m in _TOKEN_PATTERN.finditer(text)]
    names = [text[a:b].strip(string.punctuation) or text[a:b] for a, b in spans]
    duration = n_samples / SAMPLE_RATE
    onsets = _token_onsets([a for a, _ in spans], events)
    if not onsets:
        return ()
    anchors = sorted(onsets)
    onsets[0] = onsets.pop(anchors[0])  # tokens before the first event join its group
    anchors[0] = 0
    words = []
    for k, first in enumerate(anchors):
        last = anchors[k + 1] if k + 1 < len(anchors) else len(spans)
        start = min(max(onsets[first] / 1000.0 - offset_s, 0.0), duration)
        end = duration
        if k + 1 < len(anchors):
            end = min(max(onsets[last] / 1000.0 - offset_s, start), duration)
        end = _end_of_sound(loud, start, end, n_samples)
        group = [first] + [i for i in range(first + 1, last) if any(c.isalnum() for c in names[i])]
        weights = np.cumsum([0] + [len(names[i]) for i in group], dtype=float)
        bounds = start + (end - start) * weights / weights[-1]
        bounds[-1] = end  # exactly, so that consecutive groups never overlap by rounding
        timed = zip(group, bounds[:-1], bounds[1:], strict=True)
        words += [Word(names[i], float(a), float(b)) for i, a, b in timed]
    return tuple(words)


def _token_onsets(token_starts: list[int], events: list[tuple[int, int]]) -> dict[int, int]:
    """Maps word events (character index, ms) to the token each one starts.

    Numbers give several events inside one token; the second word of a pair spoken as a unit
    (``too many``) is reported at a position inside the first, so an extra event goes to the
    next token when that one has no event of its own.
    """

    def token_of(char_index: int) -> int:
        return max(bisect.bisect_right(token_starts, char_index) - 1, 0)

    announced = {token_of(index) for index, _ in events}
    onsets: dict[int, int] = {}
    latest = -1
    for index, ms in events:
        token = token_of(index)
        if token in onsets and token + 1 < len(token_starts) and token + 1 not in announced:
            token += 1
            announced.add(token)
        if token > latest:
            onsets[token] = ms
            latest = token
    return onsets


def _end_of_sound(loud: np.ndarray, start: float, end: float, n_samples: int) -> float:
    """``end`` moved back to the last sound before it if a pause precedes it.

    Event times have millisecond resolution and may trail the next onset slightly, hence the
    guard before ``end``; short silences are stop closures inside speech, not pauses.
    """
    j = int(np.searchsorted(loud, round((end - _ONSET_GUARD_S) * SAMPLE_RATE))) - 1
    if j >= 0 and loud[j] >= round(start * SAMPLE_RATE):
        silence_end = int(loud[j + 1]) if j + 1 < loud.size else n_samples
        if silence_end - int(loud[j]) > _MIN_PAUSE_S * SAMPLE_RATE:
            return min(end, (int(loud[j]) + 1) / SAMPLE_RATE)
    return end


def get_engine() -> Espeak:
    """The process's engine, created on first use (so in each worker, not in its parent)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = Espeak()
        return _engine


@lru_cache(maxsize=1)
def _human_variants() -> tuple[str, ...]:
    _, data_path = _default_paths()
    names = [n for n in _variant_files(data_path) if _VARIANT_PATTERN.fullmatch(n)]
    if not names:
        raise RuntimeError(f"no f*/m* voice variants in {Path(data_path) / 'voices' / '!v'}")
    return tuple(sorted(names, key=lambda n: (n[0], int(n[1:]))))


def random_style(rng: np.random.Generator) -> SpeakerStyle:
    """A random English speaker: accent, female or male variant, rate, pitch and range."""
    variants = _human_variants()
    voice = ENGLISH_VOICES[rng.integers(len(ENGLISH_VOICES))]
    variant = variants[rng.integers(len(variants))]
    return SpeakerStyle(
        voice=f"{voice}+{variant}",
        rate_wpm=int(rng.integers(130, 201)),
        pitch=int(rng.integers(30, 71)),
        pitch_range=int(rng.integers(30, 71)),
    )
