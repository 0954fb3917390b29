"""Full-Duplex-Bench v1 folders become scenarios of the matching axis (real human speech)."""

import shutil

import gymnasium as gym
import numpy as np
import pytest
import soundfile as sf

from agents.baselines import SilentAgent
from fdenv.cli import main as fdenv_data
from fdenv.constants import SAMPLE_RATE
from fdenv.fdbench.samples import find_samples, import_fdbench
from fdenv.manifest import Manifest

PAUSE, TURN, INTERRUPT = (
    "pause_handling_example-1",
    "smooth_turn_taking_example-1",
    "user_interruption_example-1",
)


@pytest.fixture(scope="module")
def imported(request):
    from conftest import FIXTURES

    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is not available")
    return import_fdbench(FIXTURES)


def by_id(result):
    return {s.source["sample"]: s for s in result.scenarios}


def test_fixture_samples_map_to_their_axes(imported):
    scenarios = by_id(imported)
    assert imported.skipped == []
    assert {k: s.axis for k, s in scenarios.items()} == {
        PAUSE: "PauseHandling",
        TURN: "TurnTaking",
        INTERRUPT: "UserInterruption",
    }
    assert scenarios[TURN].id == f"fdbench-{TURN}"


def test_fixture_labels(imported):
    scenarios = by_id(imported)
    pause = scenarios[PAUSE]
    assert [tuple(i) for i in pause.pauses] == [(3.319999999999993, 4.0)]  # pause.json
    assert scenarios[TURN].turn_end == pytest.approx(2.01)  # turn_taking.json [0].timestamp[0]
    interrupt = scenarios[INTERRUPT]
    assert tuple(interrupt.interruption) == pytest.approx((10.530666666666667, 13.144))
    assert interrupt.transcripts[0].text.startswith("Can we talk about something else?")
    assert interrupt.source["context"].startswith("Could you suggest some books")
    # the user's question ends well before the interruption starts
    assert 1.5 < interrupt.turn_end < 10.53


def test_fixture_audio_is_resampled_to_24k(imported):
    scenarios = by_id(imported)
    # 48 kHz pause input, 226,560 samples = 4.72 s -> 113,280 samples at 24 kHz
    assert scenarios[PAUSE].source["original_sample_rate"] == 48000
    assert len(scenarios[PAUSE].audio) == 113_280
    assert scenarios[TURN].source["original_sample_rate"] == 16000
    assert scenarios[TURN].duration == pytest.approx(10.4)


def test_fixture_user_speech_agrees_with_the_labels(imported):
    scenarios = by_id(imported)
    # VAD speech starts before the turn end and none of it lies after the turn end
    turn = scenarios[TURN]
    assert turn.user_speech[0].start < 2.01 and turn.user_speech[-1].end < 2.01 + 0.1
    # the labelled pause is (almost) free of speech
    (pause,) = scenarios[PAUSE].pauses
    overlap = sum(
        max(0.0, min(i.end, pause.end) - max(i.start, pause.start))
        for i in scenarios[PAUSE].user_speech
    )
    assert overlap < 0.1


def test_imported_scenarios_play_in_the_env(imported):
    env = gym.make("FullDuplex-TurnTaking-v0", scenarios=imported.scenarios)
    obs, _ = env.reset(seed=0)
    agent = SilentAgent()
    done = False
    while not done:
        obs, reward, done, _, info = env.step(agent.act_one(obs))
    # silence: d = the rest of the window after the turn end, 10.4 - 2.01
    assert reward == pytest.approx(-(10.4 - 2.01), abs=1e-6)
    assert info["metrics"]["tor"] == 0.0


def sample(root, name, label=None, text=None, seconds=1.0, rate=16000):
    folder = root / name / "1"
    folder.mkdir(parents=True)
    sf.write(folder / "input.wav", np.zeros(int(seconds * rate), np.float32), rate)
    if label is not None:
        (folder / label).write_text(text)
    return folder


def test_bad_and_unlabelled_samples_are_skipped_with_reasons(tmp_path):
    sample(tmp_path, "icc_backchannel")
    sample(tmp_path, "broken_pause", "pause.json", "[{]")
    sample(tmp_path, "silent_turn", "turn_taking.json", '[{"timestamp": [0.5, 0.6]}]')
    result = import_fdbench(tmp_path)
    assert result.scenarios == []
    reasons = dict(result.skipped)
    assert "no label file" in reasons[str(tmp_path / "icc_backchannel" / "1")]
    assert "pause.json: not valid JSON" in reasons[str(tmp_path / "broken_pause" / "1")]
    # silence has no user speech, which every axis needs
    assert "user_speech" in reasons[str(tmp_path / "silent_turn" / "1")]


def test_an_ambiguous_folder_is_skipped_with_its_reason_not_fatal(tmp_path):
    folder = sample(tmp_path, "mixed", "pause.json", "[]")
    (folder / "turn_taking.json").write_text("[]")
    sample(tmp_path, "silent_turn", "turn_taking.json", '[{"timestamp": [0.5, 0.6]}]')
    (mixed, silent) = find_samples(tmp_path)
    assert "one label file" in mixed.problem and silent.problem is None
    reasons = dict(import_fdbench(tmp_path).skipped)
    assert "pause.json, turn_taking.json; a sample has one label file" in reasons[str(folder)]
    assert len(reasons) == 2  # the other folder was still tried
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_samples(tmp_path / "nowhere")


def test_samples_whose_ids_collide_are_skipped(tmp_path):
    """``a-b/1`` and ``a/b-1`` both become ``fdbench-a-b-1``: one id for two samples."""
    first = sample(tmp_path, "a-b", "turn_taking.json", '[{"timestamp": [0.5, 0.6]}]')
    second = tmp_path / "a" / "b-1"
    second.mkdir(parents=True)
    for name in ("input.wav", "turn_taking.json"):
        (second / name).write_bytes((first / name).read_bytes())
    reasons = dict(import_fdbench(tmp_path).skipped)
    assert f"also that of {second}" in reasons[str(first)]
    assert f"also that of {first}" in reasons[str(second)]


def test_import_command_writes_a_manifest(imported, tmp_path):
    from conftest import FIXTURES

    src = tmp_path / "src"
    shutil.copytree(FIXTURES, src)
    sample(src, "icc_backchannel")
    assert fdenv_data(["import-fdbench", "--src", str(src), "--out", str(tmp_path / "m")]) == 0
    manifest = Manifest(tmp_path / "m")
    assert len(manifest) == 3
    loaded = {manifest[i].id: manifest[i] for i in range(3)}
    turn = loaded[f"fdbench-{TURN}"]
    assert turn.turn_end == pytest.approx(2.01)
    assert len(turn.audio) == round(10.4 * SAMPLE_RATE)
    assert (
        fdenv_data(
            [
                "import-fdbench",
                "--src",
                str(src / "icc_backchannel"),
                "--out",
                str(tmp_path / "none"),
            ]
        )
        == 1
    )


def test_scoring_finds_sample_folders_without_an_input(tmp_path):
    labelled = tmp_path / "turn" / "1"  # another system's outputs: a label file, no input.wav
    labelled.mkdir(parents=True)
    (labelled / "turn_taking.json").write_text('[{"timestamp": [0.5, 0.6]}]')
    backchannel = tmp_path / "icc" / "1"  # an output.json only
    backchannel.mkdir(parents=True)
    (backchannel / "output.json").write_text('{"text": "", "chunks": []}')
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a sample")
    played = sample(tmp_path, "pause", "pause.json", "[]")
    assert [s.folder for s in find_samples(tmp_path)] == [played]  # importing needs the input
    found = find_samples(tmp_path, needs_input=False)
    assert [(s.folder, s.axis) for s in found] == [
        (backchannel, None),
        (played, "PauseHandling"),
        (labelled, "TurnTaking"),
    ]
