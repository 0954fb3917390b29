"""The table decoder that gives the tiny Moshi an audio path: lookups, bad input, and that the
table fitted to the tiny Mimi turns the codes of speech back into audio a VAD hears as speech."""

import numpy as np
import pytest

from agents.moshi.codebook_voice import codebook_voice
from agents.moshi.models import tiny_models
from agents.moshi.warmstart_data import encode, silence_codes
from fdenv.audio.vad import SileroVAD, VADConfig
from fdenv.axes import TurnTaking
from fdenv.constants import FRAME_SIZE, SAMPLE_RATE
from fdenv.scenarios.synthetic import make_scenario
from fdenv.timeline import total_duration
from fdenv.voice import CodebookVoice


def table() -> np.ndarray:
    rows = np.zeros((3, FRAME_SIZE), dtype=np.float32)
    rows[1] = 0.5  # loud: -6 dBFS
    rows[2] = 2.0  # out of range: clipped to 1
    return rows


def test_each_frame_is_the_row_of_its_code():
    voice = CodebookVoice(table())
    voice.reset(3)
    actions = np.zeros((3, 9), dtype=np.int64)
    actions[:, 1] = [0, 1, 2]  # first codebook
    actions[:, 2] = [2, 2, 2]  # other codebooks are not read
    frame = voice.step(actions)
    assert frame.speaking.tolist() == [False, True, True]
    np.testing.assert_array_equal(frame.audio[:, 0], [0.0, 0.5, 1.0])
    assert frame.audio.dtype == np.float32 and frame.audio.shape == (3, FRAME_SIZE)


def test_another_codebook_can_be_read():
    voice = CodebookVoice(table(), codebook=3)
    actions = np.zeros((1, 9), dtype=np.int64)
    actions[0, 4] = 1
    assert voice.step(actions).speaking.tolist() == [True]


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        (np.zeros((4, 100)), {}, "one 1920-sample frame per code"),
        (np.zeros(FRAME_SIZE), {}, "one 1920-sample frame per code"),
        (np.full((2, FRAME_SIZE), np.nan), {}, "NaN or infinite"),
        (np.zeros((2, FRAME_SIZE)), {"codebook": 8}, r"codebook must be in \[0, 7\]"),
    ],
)
def test_bad_tables_are_refused(rows, kwargs, message):
    with pytest.raises(ValueError, match=message):
        CodebookVoice(rows, **kwargs)


@pytest.mark.parametrize("code", [3, -1])
def test_codes_outside_the_table_are_refused(code):
    voice = CodebookVoice(table())
    actions = np.zeros((2, 9), dtype=np.int64)
    actions[1, 1] = code
    with pytest.raises(ValueError, match="outside the voice's table of 3 codes"):
        voice.step(actions)


def test_the_fitted_table_turns_speech_codes_into_speech_and_silence_into_silence():
    # A user's turn (another espeak voice than the table was fitted on), encoded by the tiny
    # Mimi as the policy encodes, decoded through the table and heard by Silero: its speech is
    # where the labels say, and the codes of silence decode to silence.
    mimi = tiny_models(seed=0).mimi
    voice = codebook_voice(mimi)
    scenario = make_scenario(TurnTaking(), 3, 0)
    audio = scenario.audio[: len(scenario.audio) // FRAME_SIZE * FRAME_SIZE]
    codes = encode(mimi, [audio])[0].numpy()  # [8, frames]
    actions = np.concatenate([np.zeros((codes.shape[1], 1), np.int64), codes.T], axis=1)
    decoded = voice.decode(actions[:, 1:]).reshape(-1)
    heard = SileroVAD().speech_intervals(decoded, SAMPLE_RATE)
    said = [s for s in scenario.user_speech if s.end <= len(audio) / SAMPLE_RATE]
    overlap = sum(max(0.0, min(a.end, b.end) - max(a.start, b.start)) for a in heard for b in said)
    assert overlap / total_duration(said) > 0.8  # most of the speech is heard
    assert overlap / total_duration(heard) > 0.8  # and little else
    silence = voice.decode(silence_codes(mimi).numpy()[None])
    assert np.sqrt(np.mean(silence**2)) < 1e-3


def test_batched_silero_gives_each_episode_its_own_result():
    # Episodes that end on the same step are heard in one batched Silero pass; each gets what
    # Silero gives it alone, whatever the others hold (speech, silence, another length).
    voice = codebook_voice(tiny_models(seed=0).mimi)
    speech = make_scenario(TurnTaking(), 3, 1).audio
    frames = len(speech) // FRAME_SIZE
    speech = speech[: frames * FRAME_SIZE]
    shorter = speech[: (frames // 2) * FRAME_SIZE]
    episodes = [(np.zeros(frames, bool), a) for a in (speech, np.zeros_like(speech), shorter)]
    batched = voice.speech_intervals_batch(episodes)
    alone = [voice.speech_intervals(s, a) for s, a in episodes]
    assert batched == alone and len(alone[0]) > 0 and alone[1] == []


def test_the_voice_hears_with_its_vad_config():
    # A voice's VAD settings are the ones its episodes are heard with: SileroVAD with the same
    # config gives the same intervals, and a minimum speech longer than the clip hears none.
    voice_table = codebook_voice(tiny_models(seed=0).mimi).table
    speech = make_scenario(TurnTaking(), 3, 1).audio
    speech = speech[: len(speech) // FRAME_SIZE * FRAME_SIZE]
    episode = (np.zeros(len(speech) // FRAME_SIZE, bool), speech)
    strict = VADConfig(threshold=0.8, min_silence_ms=300)
    heard = CodebookVoice(voice_table, vad_config=strict).speech_intervals(*episode)
    default = CodebookVoice(voice_table).speech_intervals(*episode)
    alone = SileroVAD(strict).speech_intervals(speech, SAMPLE_RATE)
    assert heard == alone and heard != default
    never = VADConfig(min_speech_ms=round(1000 * len(speech) / SAMPLE_RATE) + 1000)
    assert CodebookVoice(voice_table, vad_config=never).speech_intervals(*episode) == []
