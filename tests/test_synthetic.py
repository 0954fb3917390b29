"""Embedded synthetic scenarios: deterministic, labels exact by construction, heard by Silero."""

import numpy as np
import pytest

from fdenv.audio.vad import SileroVAD
from fdenv.constants import SAMPLE_RATE
from fdenv.manifest import Manifest, write_manifest
from fdenv.registration import get_axis
from fdenv.scenarios.synthetic import SyntheticScenarios, make_scenario
from fdenv.timeline import merge, total_duration

AXES = ["PauseHandling", "TurnTaking", "Backchannel", "UserInterruption"]


@pytest.mark.parametrize("axis", AXES)
def test_same_seed_same_scenario_other_seed_other_scenario(axis):
    a, b = make_scenario(get_axis(axis), 0, 3), make_scenario(get_axis(axis), 0, 3)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.labels_json() == b.labels_json()
    assert not np.array_equal(a.audio, make_scenario(get_axis(axis), 1, 3).audio)


def utterance_bounds(scenario):
    """The user utterance(s): speech joined across silences of at most 1 s."""
    return merge(scenario.user_speech, max_gap=1.0)


@pytest.mark.parametrize("index", range(6))
def test_pause_scenarios_meet_the_mining_definition(index):
    s = make_scenario(get_axis("PauseHandling"), 0, index)
    (utterance,) = utterance_bounds(s)  # one utterance ...
    assert utterance.duration >= 4.0  # ... of at least tau_min = 4 s ...
    assert s.pauses and all(0.0 < p.duration <= 1.0 for p in s.pauses)  # ... with pauses <= 1 s
    for pause in s.pauses:  # a pause is silence in the user channel
        a, b = round(pause.start * SAMPLE_RATE), round(pause.end * SAMPLE_RATE)
        assert np.all(s.audio[a:b] == 0.0)


@pytest.mark.parametrize("index", range(6))
def test_turn_taking_scenarios_leave_room_to_answer(index):
    s = make_scenario(get_axis("TurnTaking"), 0, index)
    (utterance,) = utterance_bounds(s)
    assert utterance.duration >= 5.0
    assert s.turn_end == pytest.approx(utterance.end)
    assert s.duration - s.turn_end >= 5.0
    assert np.all(s.audio[round(s.turn_end * SAMPLE_RATE) :] == 0.0)


@pytest.mark.parametrize("index", range(6))
def test_backchannel_truth_lies_in_gaps_of_a_long_utterance(index):
    s = make_scenario(get_axis("Backchannel"), 0, index)
    (utterance,) = utterance_bounds(s)
    assert utterance.duration >= 5.0
    assert s.backchannels
    for bc in s.backchannels:
        assert bc.duration <= 1.0
        assert utterance.start < bc.start < utterance.end


@pytest.mark.parametrize("index", range(6))
def test_interruption_scenarios_follow_x_y_x(index):
    s = make_scenario(get_axis("UserInterruption"), 0, index)
    first, second = utterance_bounds(s)
    assert first.duration >= 3.0 and second.duration >= 3.0
    assert s.interruption == pytest.approx(second)
    assert s.turn_end == pytest.approx(first.end)
    assert s.interruption.start - s.turn_end > 1.0  # the partner's turn in between
    assert s.duration - s.interruption.end >= 4.0


def test_transcripts_carry_word_times_inside_the_speech():
    s = make_scenario(get_axis("TurnTaking"), 0, 0)
    assert len(s.transcripts) == len(s.user_speech)
    for utterance, speech in zip(s.transcripts, s.user_speech, strict=True):
        assert utterance.words and utterance.text
        assert speech.start <= utterance.words[0].start <= utterance.words[-1].end <= speech.end


@pytest.mark.parametrize("axis", AXES)
def test_silero_hears_speech_where_the_labels_say(axis):
    """Silero on the synthetic audio agrees with the constructed labels frame by frame."""
    vad = SileroVAD()
    for index in range(3):
        s = make_scenario(get_axis(axis), 0, index)
        heard = vad.speech_intervals(s.audio)
        labelled = total_duration(s.user_speech)
        overlap = sum(
            max(0.0, min(a.end, b.end) - max(a.start, b.start))
            for a in heard
            for b in s.user_speech
        )
        # Silero pads segments by 30 ms and bridges word gaps; it must cover >= 90 % of the
        # labelled speech and put >= 85 % of what it hears inside the labels
        assert overlap >= 0.9 * labelled
        assert overlap >= 0.85 * total_duration(heard)


def test_pool_is_lazy_indexable_and_named():
    pool = SyntheticScenarios(get_axis("Backchannel"), size=3, seed=5)
    assert len(pool) == 3 and pool.id_of(2) == "Backchannel-s5-000002"
    assert pool[2].id == "Backchannel-s5-000002"
    with pytest.raises(IndexError):
        pool[3]


def test_manifest_round_trip(tmp_path):
    scenarios = [make_scenario(get_axis(axis), 0, 0) for axis in AXES]
    write_manifest(tmp_path, scenarios)
    manifest = Manifest(tmp_path)
    assert len(manifest) == 4 and manifest.axis_of(3) == "UserInterruption"
    for original in scenarios:
        loaded = manifest[[manifest.id_of(i) for i in range(4)].index(original.id)]
        assert loaded.labels_json() == original.labels_json()
        # FLAC stores 16-bit samples: equal to within one quantisation step
        np.testing.assert_allclose(loaded.audio, original.audio, atol=1.0 / 2**15)
