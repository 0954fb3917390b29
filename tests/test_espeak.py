"""espeak-ng synthesis: audio format, timing, word labels, reproducibility and errors."""

from __future__ import annotations

import hashlib
import multiprocessing
import re
import subprocess
import sys

import numpy as np
import pytest

from fdenv.audio.espeak import (
    SILENCE_THRESHOLD,
    Espeak,
    SpeakerStyle,
    get_engine,
    random_style,
)
from fdenv.constants import SAMPLE_RATE

STYLE = SpeakerStyle("en-us+f3", rate_wpm=175, pitch=50)
PANGRAM = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def engine() -> Espeak:
    return get_engine()


def test_native_rate(engine: Espeak) -> None:
    assert engine.native_rate == 22050


def test_speech_is_mono_float_audio_in_range(engine: Espeak) -> None:
    speech = engine.speak("  Hello there, how are you?  ", STYLE)
    assert speech.text == "Hello there, how are you?"
    assert speech.audio.dtype == np.float32
    assert speech.audio.ndim == 1
    assert np.all(np.isfinite(speech.audio))
    assert np.abs(speech.audio).max() <= 1.0
    # A five-word sentence at 175 wpm lasts about a second and a half, not milliseconds.
    assert 0.8 < speech.audio.size / SAMPLE_RATE < 3.0


def test_duration_grows_with_text_and_shrinks_with_rate(engine: Espeak) -> None:
    short = engine.speak("Hello there.", STYLE).audio.size
    long = engine.speak(PANGRAM + " " + PANGRAM, STYLE).audio.size
    assert long > 3 * short
    slow = engine.speak(PANGRAM, SpeakerStyle("en-us+f3", 100, 50)).audio.size
    fast = engine.speak(PANGRAM, SpeakerStyle("en-us+f3", 200, 50)).audio.size
    assert slow >= 1.5 * fast


def test_pitch_changes_the_audio(engine: Espeak) -> None:
    low = engine.speak(PANGRAM, SpeakerStyle("en-us", 175, 30)).audio
    high = engine.speak(PANGRAM, SpeakerStyle("en-us", 175, 70)).audio
    assert low.size != high.size or not np.array_equal(low, high)


def test_word_timings_cover_every_word_in_order(engine: Espeak) -> None:
    speech = engine.speak(PANGRAM, STYLE)
    duration = speech.audio.size / SAMPLE_RATE
    assert [w.text for w in speech.words] == re.findall(r"\w+", PANGRAM)
    assert speech.words[0].start == 0.0  # the audio starts at the first word
    assert speech.words[-1].end == pytest.approx(duration, abs=0.05)
    for word, after in zip(speech.words, speech.words[1:], strict=False):
        assert 0.0 <= word.start < word.end <= after.start <= duration


def test_words_espeak_speaks_as_one_unit_still_get_times(engine: Espeak) -> None:
    # espeak announces only "have" for "have been" and only "on" for "on the".
    text = "I have been painting a lot on the weekends."
    words = engine.speak(text, STYLE).words
    assert [w.text for w in words] == re.findall(r"\w+", text)
    assert all(w.end > w.start for w in words)


def test_word_ends_stop_before_a_pause(engine: Espeak) -> None:
    speech = engine.speak("Hello there, how are you?", STYLE)
    there, how = speech.words[1], speech.words[2]
    assert how.start - there.end > 0.01
    gap = speech.audio[round(there.end * SAMPLE_RATE) : round(how.start * SAMPLE_RATE) - 240]
    assert np.abs(gap).max() <= SILENCE_THRESHOLD


def test_leading_and_trailing_silence_is_trimmed(engine: Espeak) -> None:
    # A plosive start and a fricative end: raw espeak output has ~40 ms of zeros before "P".
    audio = engine.speak("Perhaps we could stop for a bite of lunch.", STYLE).audio
    edge = round(0.005 * SAMPLE_RATE)
    assert np.abs(audio[:edge]).max() > SILENCE_THRESHOLD
    assert np.abs(audio[-edge:]).max() > SILENCE_THRESHOLD


def test_same_request_gives_identical_speech(engine: Espeak) -> None:
    style = SpeakerStyle("en-us+f5", 160, 40, 60)  # f5 adds breath noise and echo
    first = engine.speak(PANGRAM, style)
    engine.speak("Something else entirely, to disturb any state.", STYLE)
    second = engine.speak(PANGRAM, style)
    np.testing.assert_array_equal(first.audio, second.audio)
    assert first.words == second.words


def test_fresh_process_speaks_identically(engine: Espeak) -> None:
    # espeak seeds its noise generator per process; the engine must pin it.
    style = "SpeakerStyle('en-us+f3', 175, 50)"
    code = (
        "import hashlib; from fdenv.audio.espeak import SpeakerStyle, get_engine; "
        f"print(hashlib.sha256(get_engine().speak({PANGRAM!r}, {style}).audio.tobytes())"
        ".hexdigest())"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    expected = hashlib.sha256(engine.speak(PANGRAM, STYLE).audio.tobytes()).hexdigest()
    assert child.stdout.strip() == expected


def _speak_pangram(_: int) -> np.ndarray:
    return get_engine().speak(PANGRAM, STYLE).audio


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_forked_worker_speaks_identically(engine: Espeak) -> None:
    expected = engine.speak(PANGRAM, STYLE).audio
    with multiprocessing.get_context("fork").Pool(1) as pool:
        (audio,) = pool.map(_speak_pangram, [0])
    np.testing.assert_array_equal(audio, expected)


def test_random_style_is_seeded_and_in_range(engine: Espeak) -> None:
    styles = [random_style(np.random.default_rng(seed)) for seed in range(30)]
    assert styles == [random_style(np.random.default_rng(seed)) for seed in range(30)]
    assert len(set(styles)) > 20
    for style in styles:
        language, variant = style.voice.split("+")
        assert language in {"en-us", "en", "en-gb-x-rp"}
        assert re.fullmatch(r"[fm]\d+", variant)
        assert 130 <= style.rate_wpm <= 200
        assert 30 <= style.pitch <= 70
        assert 30 <= style.pitch_range <= 70
    assert {s.voice.split("+")[1][0] for s in styles} == {"f", "m"}
    for style in styles[:4]:
        assert engine.speak("Okay, sounds good.", style).audio.size > 0


def test_empty_text_is_rejected(engine: Espeak) -> None:
    for text in ("", "   \n"):
        with pytest.raises(ValueError, match="empty"):
            engine.speak(text, STYLE)


@pytest.mark.parametrize("voice", ["xx-nonexistent", "en-us+nosuchvariant", "+f3"])
def test_unknown_voice_is_rejected(engine: Espeak, voice: str) -> None:
    with pytest.raises(ValueError, match="unknown espeak voice"):
        engine.speak("Hello.", SpeakerStyle(voice, 175, 50))


def test_out_of_range_style_is_rejected(engine: Espeak) -> None:
    with pytest.raises(ValueError, match="rate_wpm"):
        engine.speak("Hello.", SpeakerStyle("en-us", 20, 50))
    with pytest.raises(ValueError, match="pitch"):
        engine.speak("Hello.", SpeakerStyle("en-us", 175, 150))


def test_missing_data_or_library_names_the_path(tmp_path) -> None:
    with pytest.raises(RuntimeError, match=re.escape(str(tmp_path))):
        Espeak(data_path=str(tmp_path))
    missing = tmp_path / "libespeak-ng.so"
    with pytest.raises(RuntimeError, match=re.escape(str(missing))):
        Espeak(library_path=str(missing))
