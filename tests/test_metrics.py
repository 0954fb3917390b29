"""Full-Duplex-Bench v1 metrics: fidelity on the benchmark's own example files, rule edges on
hand-made words, and bad input.

Fixture numbers are worked out by hand from the files (arithmetic in the comments). The
backchannel numbers were also checked once against the official ``eval_backchannel.py`` run on
the same files (identical segments, word lists, TOR, frequency and JSD).
"""

import json
import math

import numpy as np
import pytest
import soundfile as sf

from fdenv.audio.io import resample
from fdenv.fdbench.asr_json import parse_asr_words, read_asr_words
from fdenv.fdbench.metrics import (
    NO_BACKCHANNEL_JSD,
    TurnResult,
    audible_words,
    backchannel,
    backchannel_jsd,
    backchannel_segments,
    cut_audio,
    pause_handling,
    read_icc_distributions,
    read_interruption,
    read_label_intervals,
    read_output_wav,
    read_turn_end,
    summarize_turns,
    take_over,
    turn_taking,
    user_interruption,
    words_from_text_tokens,
    words_in_segment,
)
from fdenv.scenario import Word
from fdenv.timeline import Interval

PAUSE = "pause_handling_example/1"
TURN = "smooth_turn_taking_example/1"
INTERRUPT = "user_interruption_example/1"


def words(*spans: tuple[float, float]) -> list[Word]:
    return [Word(f"w{i}", s, e) for i, (s, e) in enumerate(spans)]


def hand_jsd(counts: list[int], gt: list[float]) -> float:
    """The JSD written out: normalised counts + 1e-10 vs the interpolated ground truth, natural
    log, square root of the mean KL to the midpoint."""
    p = np.asarray(counts, dtype=np.float64) + 1e-10
    p /= p.sum()
    q = np.interp(np.linspace(0, 1, len(p)), np.linspace(0, 1, len(gt)), gt)
    q /= q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:  # with 0 * log 0 = 0
        a, b = a[a > 0], m[a > 0]
        return float(np.sum(a * np.log(a / b)))

    return math.sqrt((kl(p) + kl(q)) / 2)


def assert_segments(found: list[Interval], expected: list[tuple[float, float]], tol: float):
    assert len(found) == len(expected), found
    for segment, (start, end) in zip(found, expected, strict=True):
        assert segment.start == pytest.approx(start, abs=tol)
        assert segment.end == pytest.approx(end, abs=tol)


# ---------------------------------------------------------------- fixtures: take-over tasks


def test_pause_handling_fixture(fixtures_dir):
    assert read_label_intervals(fixtures_dir / PAUSE / "pause.json") == [
        Interval(3.319999999999993, 4.0)
    ]
    output = read_asr_words(fixtures_dir / PAUSE / "output.json")
    # 12 words: " A" starts 0.0, " had." ends 4.68 -> 4.68 s >= 1 s -> TOR 1 (the model talks
    # over the whole pause; it even started before the pause at 3.32 s, which also counts).
    assert len(output) == 12
    assert (output[0].start, output[-1].end) == (0.0, 4.68)
    assert pause_handling(output).tor == 1


def test_turn_taking_fixture(fixtures_dir):
    turn_end = read_turn_end(fixtures_dir / TURN / "turn_taking.json")
    assert turn_end == 2.0100000000000016  # [0].timestamp[0]: the user's "this" ends here
    output = read_asr_words(fixtures_dir / TURN / "output.json")
    # 22 words: "Yes," starts 3.36, "assist." ends 10.38 -> 7.02 s >= 1 s -> TOR 1;
    # latency 3.36 - 2.01 = 1.35 s (the official script prints 1.3499999999999983).
    assert len(output) == 22
    result = turn_taking(output, turn_end)
    assert result.tor == 1
    assert result.latency == pytest.approx(1.35)


def test_user_interruption_fixture(fixtures_dir):
    label = read_interruption(fixtures_dir / INTERRUPT / "interrupt.json")
    assert label.interrupt == "Can we talk about something else? How about fiction books?"
    assert label.interval == Interval(10.530666666666667, 13.144)
    output = read_asr_words(fixtures_dir / INTERRUPT / "output.json")
    # The ASR ran on audio cropped at 13.144 s, so all 32 words start after it and the cut
    # changes nothing. "One," starts 17.224, "Manteen." ends 28.124 -> 10.9 s -> TOR 1;
    # latency 17.224 - 13.144 = 4.08 s.
    assert len(output) == 32
    assert (output[0].start, output[-1].end) == (17.224, 28.124000000000002)
    result = user_interruption(output, label.interval.end)
    assert result.tor == 1
    assert result.latency == pytest.approx(4.08)


def test_icc_distribution_fixture(fixtures_dir):
    distributions = read_icc_distributions(fixtures_dir / "icc_gt_distribution.json")
    # 55 samples "0".."54" of different lengths; sample "1" has 143 bins summing to 1.
    assert sorted(distributions, key=int) == [str(i) for i in range(55)]
    assert len(distributions["1"]) == 143
    assert sum(distributions["1"]) == pytest.approx(1.0)


# ---------------------------------------------------------------- fixtures: backchannel


@pytest.fixture
def gt_1(fixtures_dir) -> list[float]:
    return read_icc_distributions(fixtures_dir / "icc_gt_distribution.json")["1"]


def test_backchannel_fixture_pause_output(fixtures_dir, gt_1):
    audio, rate = read_output_wav(fixtures_dir / PAUSE / "output.wav")
    output = read_asr_words(fixtures_dir / PAUSE / "output.json")
    assert (rate, audio.size) == (16_000, 75_200)  # 4.7 s
    official = backchannel_segments(audio, rate, "official")
    corrected = backchannel_segments(audio, rate, "corrected")
    # Silero finds samples 26144-31712 and 35872-75200; official rounds to 0.1 s.
    assert official == [Interval(1.6, 2.0), Interval(2.2, 4.7)]
    assert_segments(corrected, [(1.634, 1.982), (2.242, 4.7)], tol=1e-9)

    result = backchannel(official, output, 4.7, gt_1, "official")
    # [1.6, 2.0]: " A" [0.0, 1.64] crosses its start, " [UH]" [1.64, 2.14] starts inside ->
    #   2 words in 0.4 s (< 1 s, <= 2 words) -> backchannel, TOR 0.
    # [2.2, 4.7]: 2.5 s <= 3 s, " abert" [2.14, 2.58] .. " had." [4.18, 4.68] -> 10 words > 3
    #   -> TOR 1, and it still counts as a backchannel. Last segment's TOR -> 1.
    # Frequency 2 / 4.7 = 0.4255. Histogram: int(4.7 / 0.2) + 1 = 24 bins; [1.6, 2.0] fills
    # bins 8..10, [2.2, 4.7] bins 11..23 -> counts 0 x 8, 1 x 16.
    assert (result.tor, result.frequency) == (1, pytest.approx(2 / 4.7))
    assert result.jsd == pytest.approx(hand_jsd([0] * 8 + [1] * 16, gt_1))
    assert result.backchannels == (Interval(1.6, 2.0), Interval(2.2, 4.7))
    assert result.jsd == pytest.approx(0.4125986075436097)  # the official script's printout

    result = backchannel(corrected, output, 4.7, gt_1, "corrected")
    # Same words and verdicts; [1.634, 1.982] only fills bins 8..9 (int(1.982 / 0.2) = 9),
    # [2.242, 4.7] bins 11..23 -> counts 0 x 8, 1, 1, 0, 1 x 13.
    assert (result.tor, result.frequency) == (1, pytest.approx(2 / 4.7))
    assert result.jsd == pytest.approx(hand_jsd([0] * 8 + [1, 1, 0] + [1] * 13, gt_1))


def test_backchannel_fixture_last_segment_quirk(fixtures_dir, gt_1):
    """The turn-taking output cut at 9.0 s ends with a short "so please"."""
    audio, rate = read_output_wav(fixtures_dir / TURN / "output.wav")
    audio = audio[: 9 * rate]
    output = read_asr_words(fixtures_dir / TURN / "output.json")
    segments = backchannel_segments(audio, rate, "official")
    assert segments == [
        Interval(3.4, 3.8),
        Interval(4.5, 6.4),
        Interval(7.0, 8.2),
        Interval(8.4, 9.0),
    ]
    # [3.4, 3.8] 0.4 s: "Yes," [3.36, 3.9] -> 1 word -> 0
    # [4.5, 6.4] 1.9 s: "it" [4.46, 4.69] .. "this." [5.97, 6.38] -> 7 words -> 1
    # [7.0, 8.2] 1.2 s: "I'm" [6.92, 7.24] .. "you," [7.82, 8.14] -> 5 words -> 1
    # [8.4, 9.0] 0.6 s: "so" [8.4, 8.67], "please" [8.67, 9.01] -> 2 words, < 1 s -> 0
    # ("let" starts at 9.01 > 9.0). Official keeps the last verdict: TOR 0; corrected: 1.
    # All four are <= 3 s: frequency 4 / 9.0 in both modes.
    official = backchannel(segments, output, 9.0, gt_1, "official")
    assert (official.tor, official.frequency) == (0, pytest.approx(4 / 9.0))
    # bins: int(9.0 / 0.2) + 1 = 46; 17..18 (3.8 / 0.2 = 18.999... -> 18), 22..32, 35..40
    # (8.2 / 0.2 = 40.999... -> 40), 42..45
    counts = [0] * 46
    for first, last in ((17, 18), (22, 32), (35, 40), (42, 45)):
        counts[first : last + 1] = [1] * (last - first + 1)
    assert official.jsd == pytest.approx(hand_jsd(counts, gt_1))

    corrected_segments = backchannel_segments(audio, rate, "corrected")
    assert_segments(
        corrected_segments, [(3.394, 3.838), (4.546, 6.398), (6.978, 8.158), (8.45, 9.0)], 1e-9
    )
    # Same word counts per segment (1, 7, 5, 2): "so" [8.4, 8.67] crosses 8.45.
    corrected = backchannel(corrected_segments, output, 9.0, gt_1, "corrected")
    assert (corrected.tor, corrected.frequency) == (1, pytest.approx(4 / 9.0))


def test_backchannel_fixture_early_stop_quirk(fixtures_dir, gt_1):
    """The interruption output (28.16 s) speaks for 4.3 s early on."""
    audio, rate = read_output_wav(fixtures_dir / INTERRUPT / "output.wav")
    output = read_asr_words(fixtures_dir / INTERRUPT / "output.json")
    duration = audio.size / rate
    assert duration == 28.16
    segments = backchannel_segments(audio, rate, "official")
    # The last end rounds to 28.2 and is capped at the audio's 28.16 s.
    assert segments[:2] == [Interval(4.0, 4.8), Interval(4.9, 9.2)]
    assert segments[-1] == Interval(27.7, 28.16)
    # Official: [4.0, 4.8] has no words (they start at 17.224) -> backchannel; [4.9, 9.2] is
    # 4.3 s > 3 s -> TOR 1 and reading stops: 1 backchannel, frequency 1 / 28.16 = 0.0355.
    official = backchannel(segments, output, duration, gt_1, "official")
    assert official.tor == 1 and official.backchannels == (Interval(4.0, 4.8),)
    assert official.frequency == pytest.approx(1 / 28.16)
    # 141 bins (28.16 / 0.2 = 140.8); 4.0 -> bin 20, 4.8 / 0.2 = 23.999... -> bin 23.
    assert official.jsd == pytest.approx(hand_jsd([0] * 20 + [1] * 4 + [0] * 117, gt_1))
    # Corrected reads on: of 9 segments, [4.93, 9.214] (4.28 s) and [20.162, 26.366] (6.2 s)
    # are long, the other 7 are backchannels -> frequency 7 / 28.16 = 0.2486.
    corrected = backchannel(
        backchannel_segments(audio, rate, "corrected"), output, duration, gt_1, "corrected"
    )
    assert corrected.tor == 1 and len(corrected.backchannels) == 7
    assert corrected.frequency == pytest.approx(7 / 28.16)


def test_backchannel_fixture_resampling_quirk(fixtures_dir, gt_1):
    """The turn-taking output as a 24 kHz file, Moshi's rate."""
    audio, rate = read_output_wav(fixtures_dir / TURN / "output.wav")
    output = read_asr_words(fixtures_dir / TURN / "output.json")
    audio24 = resample(audio, rate, 24_000)
    # Read as 16 kHz the audio lasts 15.6 s instead of 10.4 s, and times stretch by 1.5
    # (3.394 * 1.5 = 5.09). The 4.546-6.398 and 8.45-10.4 turns now end at 9.5 and 15.6.
    official_segments = backchannel_segments(audio24, 24_000, "official")
    assert official_segments == [
        Interval(5.1, 5.7),
        Interval(6.8, 9.5),
        Interval(10.5, 12.2),
        Interval(12.7, 15.6),
    ]
    # Words keep real times, so they land in the wrong segments:
    # [5.1, 5.7] 0.6 s: "first" [5.04, 5.35], "time", "doing" [5.65, 5.97] -> 3 words -> 1
    # [6.8, 9.5] 2.7 s: "I'm" [6.92, 7.24] .. "know" [9.33, 9.52] -> 10 words -> 1
    # [10.5, 12.2] 1.7 s: after the last word (10.38) -> 0 words, >= 1 s -> 1
    # [12.7, 15.6] 2.9 s: 0 words -> 1
    # TOR 1, 4 backchannels / 10.4 s; bins 63..78 of [12.7, 15.6] fall past bin 52 and drop.
    official = backchannel(official_segments, output, 10.4, gt_1, "official")
    assert (official.tor, official.frequency) == (1, pytest.approx(4 / 10.4))
    # bins 25..28 (5.1 / 0.2 = 25.4999...), 34..47, 52..52 (10.5 -> 52, 12.2 -> 60 cut at 52)
    counts = [0] * 53
    for first, last in ((25, 28), (34, 47), (52, 52)):
        counts[first : last + 1] = [1] * (last - first + 1)
    assert official.jsd == pytest.approx(hand_jsd(counts, gt_1))
    # Corrected resamples to 16 kHz and finds the 16 kHz file's segments again.
    corrected = backchannel_segments(audio24, 24_000, "corrected")
    assert_segments(
        corrected, [(3.394, 3.838), (4.546, 6.398), (6.978, 8.158), (8.45, 10.4)], tol=0.04
    )


def test_backchannel_fixture_48khz_is_silent_officially(fixtures_dir, gt_1):
    audio, rate = read_output_wav(fixtures_dir / PAUSE / "output.wav")
    audio48 = resample(audio, rate, 48_000)
    # Read as 16 kHz, a 48 kHz voice is 3x slower and an octave and a half lower: Silero hears
    # no speech, so TOR 0 and JSD 1, a take-over scored as a perfect listener.
    assert backchannel_segments(audio48, 48_000, "official") == []
    result = backchannel([], [], 4.7, gt_1, "official")
    assert (result.tor, result.frequency, result.jsd) == (0, 0.0, 1.0)
    assert_segments(
        backchannel_segments(audio48, 48_000, "corrected"), [(1.634, 1.982), (2.242, 4.7)], 0.04
    )


# ---------------------------------------------------------------- take-over rule edges


@pytest.mark.parametrize(
    ("spans", "tor"),
    [
        ((), 0),  # no words
        (((0.0, 0.2), (0.3, 0.5), (0.6, 0.9)), 0),  # 0.9 s, 3 words
        (((2.0, 2.5),), 0),  # 0.5 s, 1 word
        (((0.5, 1.5),), 1),  # exactly 1 s
        (((0.0, 0.75), (0.75, 1.0)), 1),  # exactly 1 s across two words
        (((0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4)), 1),  # 4 words in 0.4 s
    ],
)
def test_take_over_edges(spans, tor):
    assert take_over(words(*spans)) == tor
    assert pause_handling(words(*spans)).tor == tor


def test_take_over_uses_first_and_last_word_in_file_order():
    # The benchmark reads chunks[0] and chunks[-1]: 0.5 - 0.0 = 0.5 s with 3 words -> 0, although
    # the middle word runs to 4.0 s.
    assert take_over(words((0.0, 0.2), (3.0, 4.0), (0.4, 0.5))) == 0


def test_turn_taking_latency():
    # first word 1.0 s before the turn end -> -1.0 clipped to 0
    assert turn_taking(words((1.0, 2.5)), 2.0) == TurnResult(1, 0.0)
    # 2.34 - 2.01 = 0.33
    assert turn_taking(words((2.34, 5.12)), 2.01).latency == pytest.approx(0.33)
    # no take-over, no latency
    assert turn_taking(words((3.0, 3.2)), 2.0) == TurnResult(0, None)
    assert turn_taking([], 2.0) == TurnResult(0, None)


def test_user_interruption_cuts_words_before_the_interruption_end():
    spoken = words((1.0, 1.5), (1.8, 2.4), (2.6, 3.0))
    # cut at 2.0: the first word goes, the second keeps its tail [2.0, 2.4]
    # -> 3.0 - 2.0 = 1.0 s -> TOR 1, latency 2.0 - 2.0 = 0
    assert user_interruption(spoken, 2.0) == TurnResult(1, 0.0)
    # cut at 2.5: only [2.6, 3.0] is left -> 0.4 s, 1 word -> TOR 0
    assert user_interruption(spoken, 2.5) == TurnResult(0, None)
    # nothing after the cut
    assert user_interruption(spoken, 3.0) == TurnResult(0, None)


def test_cut_audio_matches_the_asr_crop():
    audio = np.arange(100, dtype=np.float32)
    # int(0.0355 * 1000) = 35: the crop starts at sample 35
    assert cut_audio(audio, 1000, 0.0355)[0] == 35.0


def test_summarize_turns():
    # TOR 2 / 3; latency over the TOR = 1 samples only: (0.5 + 0.0) / 2 = 0.25
    summary = summarize_turns([TurnResult(1, 0.5), TurnResult(0, None), TurnResult(1, 0.0)])
    assert (summary.tor, summary.latency, summary.samples) == (pytest.approx(2 / 3), 0.25, 3)
    assert summarize_turns([TurnResult(0, None)]).latency is None
    with pytest.raises(ValueError, match="at least one"):
        summarize_turns([])


# ---------------------------------------------------------------- words from text tokens


def test_words_from_text_tokens():
    # frames 2, 5, 6 hold words; frame k starts at k * 0.08 - 0.16
    tokens = [3, 0, 1000, 3, 0, 1001, 1002, 3]
    found = words_from_text_tokens(tokens, lead_in_s=0.16)
    assert [w.text for w in found] == ["1000", "1001", "1002"]
    assert [w.start for w in found] == pytest.approx([0.0, 0.24, 0.32])
    assert [w.end for w in found] == pytest.approx([0.08, 0.32, 0.40])
    # two sub-word tokens are two words: 0.32 .. 0.40 -> 0.16 s, 2 words -> TOR 0
    assert take_over(found[1:]) == 0


def test_words_from_text_tokens_drop_the_lead_in():
    # lead-in 0.2 s: frame 1 [-0.12, -0.04) is dropped, frame 2 [-0.04, 0.04) is cut at 0
    found = words_from_text_tokens(np.array([3, 7, 8, 9]), lead_in_s=0.2)
    assert [(w.text, round(w.start, 6), round(w.end, 6)) for w in found] == [
        ("8", 0.0, 0.04),
        ("9", 0.04, 0.12),
    ]


def test_words_from_text_tokens_lead_in_of_whole_frames():
    # lead-in 0.08 s = 1 frame: frame 0 [-0.08, 0) is dropped, frame 1 is [0, 0.08)
    found = words_from_text_tokens([7, 8], lead_in_s=0.08)
    assert [(w.text, w.start) for w in found] == [("8", pytest.approx(0.0))]
    assert words_from_text_tokens([], lead_in_s=0.08) == []


# ids 10 and 12 begin words, 11 and 13 continue them (SentencePiece pieces without "▁")
WORD_STARTS = np.array([False] * 10 + [True, False, True, False])


def test_words_from_text_tokens_join_the_pieces_of_a_word():
    # frames 1-3 hold 10 11 13: one word [0.08, 0.32); 12 at frame 5 and 11 at frame 7 (a PAD
    # between the pieces) are one word [0.40, 0.64)
    tokens = [3, 10, 11, 13, 3, 12, 3, 11, 3]
    found = words_from_text_tokens(tokens, lead_in_s=0.0, word_starts=WORD_STARTS)
    assert [w.text for w in found] == ["10 11 13", "12 11"]
    assert [w.start for w in found] == pytest.approx([0.08, 0.40])
    assert [w.end for w in found] == pytest.approx([0.32, 0.64])
    # without the table each token is a word, as before
    assert len(words_from_text_tokens(tokens, lead_in_s=0.0)) == 5


def test_words_from_text_tokens_edge_pieces():
    # a first token that continues nothing, and an id past the table, begin words
    found = words_from_text_tokens([11, 3, 10, 20, 11], 0.0, word_starts=WORD_STARTS)
    assert [(w.text, round(w.start, 6), round(w.end, 6)) for w in found] == [
        ("11", 0.0, 0.08),
        ("10", 0.16, 0.24),
        ("20 11", 0.24, 0.4),
    ]
    # a word begun in the lead-in is cut at 0; one that ends in it is dropped
    found = words_from_text_tokens([10, 11, 11, 3], 0.16, word_starts=WORD_STARTS)
    assert [(w.text, round(w.start, 6), round(w.end, 6)) for w in found] == [
        ("10 11 11", 0.0, 0.08)
    ]
    found = words_from_text_tokens([10, 11, 3, 12], 0.24, word_starts=WORD_STARTS)
    assert [(w.text, round(w.start, 6)) for w in found] == [("12", 0.0)]
    assert words_from_text_tokens([3, 0], 0.0, word_starts=WORD_STARTS) == []


def test_a_three_piece_backchannel_is_one_word_to_the_benchmark():
    # "yeah" as three pieces in frames 1-3 within a 0.4 s segment: three words are a take-over
    # (more than 2), one word is a backchannel
    tokens = [3, 10, 11, 11, 3, 3]
    segment = [Interval(0.08, 0.48)]
    for starts, tor in ((None, 1), (WORD_STARTS, 0)):
        words = words_from_text_tokens(tokens, 0.0, word_starts=starts)
        assert backchannel(segment, words, 1.0, [0.5, 0.5], mode="corrected").tor == tor


def test_audible_words_are_those_the_speech_overlaps():
    W = Word
    words = [W("a", 0.0, 0.08), W("b", 0.40, 0.56), W("c", 1.00, 1.08), W("d", 2.00, 2.08)]
    speech = [Interval(0.05, 0.30), Interval(1.08, 1.50), Interval(1.90, 2.01)]
    # a overlaps [0.05, 0.30); b lies in silence; c ends where speech starts (no overlap);
    # d overlaps the last interval's final 0.01 s
    assert [w.text for w in audible_words(words, speech)] == ["a", "d"]
    assert audible_words(words, []) == []
    assert audible_words([], speech) == []


def test_a_turn_taken_in_text_but_not_in_audio_is_not_taken():
    # a 1.2 s answer in the text stream after a turn end at 1.0 s: a take-over if voiced,
    # nothing to the benchmark's ASR if the audio stays silent
    tokens = [3] * 13 + [1000 + k for k in range(15)] + [3] * 4
    words = words_from_text_tokens(tokens, 0.0)
    assert turn_taking(words, 1.0).tor == 1
    assert turn_taking(audible_words(words, []), 1.0).tor == 0
    voiced = audible_words(words, [Interval(1.04, 2.30)])
    assert voiced == words and turn_taking(voiced, 1.0).latency == pytest.approx(0.04)


def test_words_from_text_tokens_bad_input():
    with pytest.raises(ValueError, match="1-D integer"):
        words_from_text_tokens(np.zeros((2, 3), dtype=np.int64), 0.0)
    with pytest.raises(ValueError, match="1-D integer"):
        words_from_text_tokens(np.array([3.0, 1000.0]), 0.0)
    with pytest.raises(ValueError, match="negative"):
        words_from_text_tokens([3, -1], 0.0)


# ---------------------------------------------------------------- backchannel rule edges

GT = [0.25, 0.25, 0.25, 0.25]


def test_backchannel_segment_over_3s_takes_over_and_is_no_backchannel():
    # 3.5 s > 3 s -> TOR 1 whatever the words; not a backchannel -> frequency 0, JSD 1
    result = backchannel([Interval(1.0, 4.5)], [], 10.0, GT)
    assert (result.tor, result.frequency, result.jsd) == (1, 0.0, NO_BACKCHANNEL_JSD)


@pytest.mark.parametrize(
    ("segment", "spans", "tor"),
    [
        ((1.0, 1.9), ((1.0, 1.3), (1.4, 1.8)), 0),  # 0.9 s, 2 words: a backchannel
        ((1.0, 1.9), ((1.0, 1.3), (1.3, 1.6), (1.6, 1.8)), 1),  # 3 words
        ((1.0, 2.0), (), 1),  # exactly 1 s, even silent in the ASR
        ((1.0, 4.0), (), 1),  # exactly 3 s: short, but >= 1 s
        ((1.0, 3.0), ((0.5, 1.2), (1.2, 1.4), (1.4, 1.6), (1.6, 1.9)), 1),  # 4 words
        ((1.0, 1.5), ((0.5, 1.0), (1.1, 1.2), (1.3, 1.4)), 0),  # a word ending at the start: out
        ((1.0, 1.5), ((1.1, 1.2), (1.3, 1.4), (1.5, 1.7)), 1),  # one starting at the end: in
    ],
)
def test_backchannel_short_segment_rule(segment, spans, tor):
    result = backchannel([Interval(*segment)], words(*spans), 5.0, GT)
    assert result.tor == tor
    assert result.backchannels == (Interval(*segment),)  # <= 3 s always counts


def test_words_in_segment_follow_the_scripts_overlap_rule():
    segments = [Interval(1.0, 1.5), Interval(2.0, 3.0), Interval(5.0, 6.0)]
    spoken = words(
        (2.5, 2.7),  # inside the second (the words need not be in order)
        (0.5, 1.0),  # ends at the first's start: out
        (1.4, 2.2),  # across the first's end and the second's start: in both
        (3.0, 3.3),  # starts at the second's end: in
        (5.0, 5.0),  # no length, at the third's start: in
        (6.5, 7.0),  # after every segment
    )
    assert [words_in_segment(s, spoken) for s in segments] == [1, 3, 1]
    assert words_in_segment(segments[0], []) == 0


def test_backchannel_modes_differ_on_the_last_segment():
    segments = [Interval(1.0, 2.5), Interval(4.0, 4.5)]
    spoken = words((1.0, 1.2), (1.2, 1.5), (1.5, 2.0), (2.0, 2.4), (4.1, 4.3))
    # [1.0, 2.5]: 4 words -> 1; [4.0, 4.5]: 1 word in 0.5 s -> 0
    assert backchannel(segments, spoken, 5.0, GT, "official").tor == 0
    assert backchannel(segments, spoken, 5.0, GT, "corrected").tor == 1


def test_backchannel_modes_differ_after_a_long_segment():
    segments = [Interval(0.0, 0.5), Interval(1.0, 5.0), Interval(6.0, 6.5)]
    official = backchannel(segments, [], 10.0, GT, "official")
    corrected = backchannel(segments, [], 10.0, GT, "corrected")
    assert official.backchannels == (Interval(0.0, 0.5),)
    assert corrected.backchannels == (Interval(0.0, 0.5), Interval(6.0, 6.5))
    # 1 / 10 vs 2 / 10 backchannels per second; TOR 1 in both (the 4 s segment)
    assert (official.frequency, corrected.frequency) == (0.1, 0.2)
    assert official.tor == corrected.tor == 1


def test_jsd_identical_distributions_is_zero():
    # 1.0 s -> int(1.0 / 0.2) + 1 = 6 bins; [0.2, 0.5] fills bins 1..2
    counts = np.array([0, 1, 1, 0, 0, 0]) + 1e-10
    gt = list(counts / counts.sum())
    assert backchannel_jsd([Interval(0.2, 0.5)], 1.0, gt) == pytest.approx(0.0, abs=1e-6)


def test_jsd_without_backchannels_is_one():
    assert backchannel_jsd([], 10.0, GT) == 1.0
    assert backchannel([], [], 10.0, GT).jsd == 1.0


def test_jsd_disjoint_distributions_reach_sqrt_ln2_not_one():
    # the model backchannels in bin 0, humans in bin 5 -> natural-log JSD ~ sqrt(ln 2) = 0.8326
    gt = [0, 0, 0, 0, 0, 1]
    assert backchannel_jsd([Interval(0.0, 0.1)], 1.0, gt) == pytest.approx(
        math.sqrt(math.log(2)), rel=1e-6
    )


def test_jsd_interpolates_the_ground_truth():
    # 2-bin ramp [0, 1] onto 6 bins -> [0, 0.2, 0.4, 0.6, 0.8, 1.0] (then normalised)
    result = backchannel_jsd([Interval(0.8, 1.0)], 1.0, [0.0, 1.0])
    assert result == pytest.approx(hand_jsd([0, 0, 0, 0, 1, 1], [0.0, 1.0]))
    with pytest.raises(ValueError, match="2 bins"):
        backchannel_jsd([Interval(0.0, 0.1)], 1.0, [1.0])


def test_backchannel_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        backchannel([], [], 1.0, GT, "strict")
    with pytest.raises(ValueError, match="mode"):
        backchannel_segments(np.zeros(16_000, dtype=np.float32), 16_000, "strict")
    with pytest.raises(ValueError, match="duration_s"):
        backchannel([], [], 0.0, GT)


# ---------------------------------------------------------------- bad input files


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_asr_json_null_timestamps():
    data = {
        "text": "a b c",
        "chunks": [
            {"text": "a", "timestamp": [None, 1.0]},  # no start: dropped
            {"text": "b", "timestamp": [1.0, 1.5]},
            {"text": "c", "timestamp": [2.0, None]},  # no end: zero-length at 2.0
        ],
    }
    assert parse_asr_words(data) == [Word("b", 1.0, 1.5), Word("c", 2.0, 2.0)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"text": "hi"}', "missing field 'chunks'"),
        ('{"chunks": {}}', "'chunks' must be a list"),
        ('{"chunks": [{"text": "a"}]}', r"chunks\[0\] must be an object"),
        ('{"chunks": [{"text": "a", "timestamp": [1.0]}]}', r"chunks\[0\].timestamp must be"),
        ('{"chunks": [{"text": "a", "timestamp": null}]}', r"chunks\[0\].timestamp must be"),
        ('{"chunks": [{"text": "a", "timestamp": ["1", 2]}]}', r"timestamp\[0\] must be a finite"),
        ('{"chunks": [{"text": "a", "timestamp": [1, true]}]}', r"timestamp\[1\] must be a finite"),
        ('{"chunks": [{"text": "a", "timestamp": [2, 1]}]}', "ends before it starts"),
        ('{"chunks": [{"text": 5, "timestamp": [1, 2]}]}', r"chunks\[0\].text must be a string"),
    ],
)
def test_asr_json_errors_name_file_and_field(tmp_path, text, message):
    path = write(tmp_path, "output.json", text)
    with pytest.raises(ValueError, match=message) as err:
        read_asr_words(path)
    assert str(path) in str(err.value)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"output\.json"):
        read_asr_words(tmp_path / "output.json")
    with pytest.raises(FileNotFoundError, match=r"output\.wav"):
        read_output_wav(tmp_path / "output.wav")


@pytest.mark.parametrize(
    ("reader", "text", "message"),
    [
        (read_label_intervals, "[]", "non-empty list"),
        (read_label_intervals, '[{"text": "[PAUSE]"}]', "'timestamp' field"),
        (read_turn_end, '[{"timestamp": [2.0]}]', r"\[0\].timestamp must be \[start, end\]"),
        (read_interruption, '[{"interrupt": "x", "timestamp": [1, 2]}]', r"\[0\].context"),
        (read_icc_distributions, "[0.5, 0.5]", "mapping sample ids"),
        (read_icc_distributions, '{"0": [1.0]}', "at least 2 numbers"),
        (read_icc_distributions, '{"0": [0.5, -0.5]}', "negative"),
    ],
)
def test_label_errors_name_file_and_field(tmp_path, reader, text, message):
    path = write(tmp_path, "label.json", text)
    with pytest.raises(ValueError, match=message) as err:
        reader(path)
    assert str(path) in str(err.value)


def test_read_output_wav_refuses_stereo(tmp_path):
    path = tmp_path / "output.wav"
    sf.write(path, np.zeros((1600, 2), dtype=np.float32), 16_000)
    with pytest.raises(ValueError, match=r"2 channel\(s\), expected 1"):
        read_output_wav(path)


def test_label_files_round_trip(tmp_path):
    path = write(tmp_path, "turn_taking.json", json.dumps([{"text": "t", "timestamp": [2, 3]}]))
    assert read_turn_end(path) == 2.0
