"""Export: a policy's output.wav and output.json for Full-Duplex-Bench folders."""

import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from agents.baselines import RuleAgent
from agents.evaluate import evaluate
from agents.moshi import MoshiPolicy, tiny_models
from agents.moshi.codebook_voice import audio_voice
from fdenv.audio.io import resample
from fdenv.constants import FRAME_SIZE, PAD_ID
from fdenv.episode import Episode
from fdenv.fdbench.asr_json import read_asr_words
from fdenv.fdbench.export import export_folder, output_audio
from fdenv.fdbench.samples import import_fdbench
from fdenv.fdbench.score import score_folder
from fdenv.scenario import Scenario
from fdenv.voice import Voice, VoiceFrame

TASKS = ("pause_handling_example", "smooth_turn_taking_example", "user_interruption_example")


@pytest.fixture
def bench(tmp_path, fixtures_dir):
    root = tmp_path / "bench"
    shutil.copytree(fixtures_dir, root)
    for task in TASKS:  # the fixtures' own outputs must not survive the export unnoticed
        (root / task / "1" / "output.wav").unlink()
        (root / task / "1" / "output.json").unlink()
    return root


def test_outputs_have_the_inputs_duration_at_24k_or_at_the_inputs_rate(bench):
    (bench / "icc_backchannel" / "7").mkdir(parents=True)  # an unlabelled sample is exported too
    sf.write(bench / "icc_backchannel" / "7" / "input.wav", np.zeros(22050, np.float32), 22050)
    for output_rate in (24000, None):
        folders = export_folder(RuleAgent(), bench, output_rate=output_rate)
        assert len(folders) == 4
        for folder in folders:
            source, output = sf.info(folder / "input.wav"), sf.info(folder / "output.wav")
            if output_rate is None:  # the input's own rate and length
                assert (output.samplerate, output.frames) == (source.samplerate, source.frames)
            else:
                frames = round(source.frames / source.samplerate * 24000)
                assert (output.samplerate, output.frames) == (24000, frames)
            audio, _ = sf.read(folder / "output.wav")
            assert not audio.any()  # a scripted agent has no voice: silence
            read_asr_words(folder / "output.json")  # the benchmark's format


class FrameClockVoice(Voice):
    """A voice whose audio in its k-th frame of an episode is k / 256 (exact in 16-bit WAV), so
    that a file's content says which frames of the episode it holds."""

    makes_audio = True

    def reset(self, num_envs: int) -> None:
        self.frames = np.zeros(num_envs, np.int64)

    def reset_envs(self, mask: np.ndarray) -> None:
        self.frames[mask] = 0

    def step(self, actions: np.ndarray) -> VoiceFrame:
        audio = np.repeat((self.frames / 256).astype(np.float32)[:, None], FRAME_SIZE, axis=1)
        self.frames += 1
        return VoiceFrame(np.zeros(len(actions), bool), audio)


def test_the_written_audio_is_the_agents_after_the_lead_in(tmp_path):
    # 1.01 s at 16 kHz (16,160 samples) -> 24,240 samples at 24 kHz: 12 frames of 1,920 and 1,200
    # samples of a 13th; a 0.24 s lead-in is 3 frames, so the file starts at episode frame 3
    folder = tmp_path / "turn" / "1"
    folder.mkdir(parents=True)
    sf.write(folder / "input.wav", np.zeros(16160, np.float32), 16000)

    def export(lead_in_s: float, output_rate: int | None) -> tuple[np.ndarray, int]:
        voice = FrameClockVoice()
        export_folder(
            RuleAgent(), tmp_path, voice=voice, lead_in_s=lead_in_s, output_rate=output_rate
        )
        return sf.read(folder / "output.wav", dtype="float32")

    frames = np.arange(24240) // 1920
    audio, rate = export(0.24, 24000)
    assert (rate, len(audio)) == (24000, 24240)
    np.testing.assert_array_equal(audio, (3 + frames) / 256)
    assert audio[0] == 3 / 256 and audio[-1] == 15 / 256
    audio, rate = export(0.0, 24000)  # no priming, as the official client: from frame 0
    np.testing.assert_array_equal(audio, frames / 256)
    audio, rate = export(0.24, None)  # the input's rate and length, resampled from 24 kHz
    assert (rate, len(audio)) == (16000, 16160)
    expected = resample(((3 + frames) / 256).astype(np.float32), 24000, 16000)
    np.testing.assert_allclose(audio, expected, atol=1 / 32768)
    assert audio[1000] == 3 / 256  # mid-frame, away from the resampler's ripple at the steps


def test_our_scoring_of_the_export_equals_the_env_metrics(bench):
    export_folder(RuleAgent(), bench)
    scores = score_folder(bench)
    assert scores.skipped == []
    for scenario in import_fdbench(bench).scenarios:
        (result,) = evaluate(RuleAgent(), [scenario.axis], 1, scenarios=[scenario]).values()
        ((_, from_files),) = scores.by_axis[scenario.axis]
        np.testing.assert_equal(from_files, {k: v[0] for k, v in result.metrics.items()})
    # the interruption sample keeps only the words after the interruption's end (13.144 s)
    words = read_asr_words(bench / TASKS[2] / "1" / "output.json")
    assert words and min(w.start for w in words) >= 13.144


def test_scoring_the_fixture_outputs_gives_the_official_numbers(fixtures_dir, tmp_path):
    scores = score_folder(fixtures_dir)
    # the official scripts print: pause TOR 1; turn TOR 1, latency 3.36 - 2.01 = 1.35;
    # interruption TOR 1, latency 17.224 - 13.144 = 4.08 (see test_metrics.py)
    assert scores.by_axis["PauseHandling"] == [("pause_handling_example-1", {"tor": 1.0})]
    ((_, turn),) = scores.by_axis["TurnTaking"]
    assert turn == {"tor": 1.0, "latency": pytest.approx(1.35)}
    ((_, interruption),) = scores.by_axis["UserInterruption"]
    assert interruption == {"tor": 1.0, "latency": pytest.approx(4.08)}


def test_scoring_needs_no_input_wav(fixtures_dir, tmp_path):
    # the official scripts read output.json, output.wav and the label file, never input.wav
    shutil.copytree(fixtures_dir, tmp_path / "bench")
    for task in TASKS:
        (tmp_path / "bench" / task / "1" / "input.wav").unlink()
    without = score_folder(tmp_path / "bench")
    assert without.skipped == []
    assert without.by_axis == score_folder(fixtures_dir).by_axis
    ((_, turn),) = without.by_axis["TurnTaking"]
    ((_, interruption),) = without.by_axis["UserInterruption"]
    assert (turn["latency"], interruption["latency"]) == (pytest.approx(1.35), pytest.approx(4.08))


def test_scoring_a_backchannel_sample(fixtures_dir, tmp_path):
    # the pause example's output as backchannel sample "1": test_metrics.py works out
    # TOR 1, 2 backchannels / 4.7 s and the official JSD 0.4125986075436097
    sample = tmp_path / "1"
    shutil.copytree(fixtures_dir / TASKS[0] / "1", sample)
    (sample / "pause.json").unlink()
    (sample / "input.wav").unlink()  # the output's own duration is what the rules divide by
    shutil.copy(fixtures_dir / "icc_gt_distribution.json", tmp_path)
    ((name, metrics),) = score_folder(tmp_path).by_axis["Backchannel"]
    assert name == "1"
    assert metrics == {
        "tor": 1.0,
        "frequency": pytest.approx(2 / 4.7),
        "jsd": pytest.approx(0.4125986075436097),
    }
    (tmp_path / "icc_gt_distribution.json").unlink()
    (tmp_path / "2").mkdir()
    shutil.copy(fixtures_dir / TASKS[0] / "1" / "input.wav", tmp_path / "2")
    scores = score_folder(tmp_path)
    assert scores.by_axis == {}
    reasons = dict(scores.skipped)
    assert "no icc_gt_distribution.json entry '1'" in reasons[str(sample)]
    assert "output.json: file does not exist" in reasons[str(tmp_path / "2")]


def test_output_audio_skips_the_lead_in_and_resamples():
    # 0.08 s lead-in (1,920 samples) + 0.16 s scenario (3,840) at 24 kHz -> 2,560 at 16 kHz
    ramp = np.linspace(-0.5, 0.5, 1920 + 3840 + 1920).astype(np.float32)
    scenario = Scenario("s", "TurnTaking", np.zeros(3840, np.float32), [], turn_end=0.1)
    ep = Episode(scenario, 0.08, np.zeros(4, bool), np.full(4, PAD_ID), [], ramp)
    expected = resample(ramp[1920 : 1920 + 3840], 24000, 16000)
    np.testing.assert_array_equal(output_audio(ep, 2560, 16000), expected)
    np.testing.assert_array_equal(output_audio(ep, 3000, 16000)[2560:], 0.0)  # padded
    silent = Episode(scenario, 0.08, np.zeros(4, bool), np.full(4, PAD_ID), [])
    assert not output_audio(silent, 100, 16000).any()


@pytest.mark.slow
def test_moshi_export_decodes_audio_and_text(bench):
    for task in TASKS[1:]:
        shutil.rmtree(bench / task)
    models = tiny_models()
    decode = models.tokenizer.decode

    def export() -> None:
        torch.manual_seed(0)  # the caller seeds the agent
        # the tiny model's audio path (a random Mimi decoder makes a tone no VAD hears, and the
        # benchmark's words are the audible ones)
        export_folder(MoshiPolicy(models), bench, voice=audio_voice(models), decode=decode)

    export()
    folder = bench / TASKS[0] / "1"
    audio, rate = sf.read(folder / "output.wav", dtype="float32")
    # the 48 kHz input's 4.72 s (226,560 samples) at the official client's 24 kHz
    assert rate == 24000 and len(audio) == 113_280 and np.abs(audio).max() > 0
    first = (folder / "output.json").read_text()
    words = read_asr_words(folder / "output.json")
    assert words and not any(w.text.isdigit() for w in words)  # decoded by the tokenizer
    export()
    assert (folder / "output.json").read_text() == first


def test_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="no sample folder"):
        export_folder(RuleAgent(), tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        export_folder(RuleAgent(), tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="output_rate"):
        export_folder(RuleAgent(), tmp_path, output_rate=0)
    with pytest.raises(TypeError, match=r"fdenv\.agent\.Agent"):
        (tmp_path / "s").mkdir()
        sf.write(tmp_path / "s" / "input.wav", np.zeros(100, np.float32), 16000)
        export_folder(object(), tmp_path)
