"""Scenario sets on disk: nothing silently wrong, nothing lost.

A manifest is checked whole when it is opened (every bad line reported at once), ids are unique,
audio is clipped to the observation space, and one run at a time writes an output folder.
"""

import json
import os
import re
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
import soundfile as sf
from conftest import noise_scenario

from fdenv.atomic import FolderLocked, atomic_path, clean_stale_temporaries, folder_lock
from fdenv.cli import main as fdenv_data
from fdenv.constants import PAD_ID, SAMPLE_RATE
from fdenv.manifest import MANIFEST_NAME, Manifest, ManifestWriter, set_kind, write_manifest


def turn_scenario(scenario_id="turn"):
    scenario = noise_scenario("TurnTaking", 3.0, [(0.5, 2.0)], turn_end=2.0)
    scenario.id = scenario_id
    return scenario


def lines_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_lines(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_duplicate_ids_are_refused_naming_both_lines(tmp_path):
    path = write_manifest(tmp_path, [turn_scenario("a"), turn_scenario("b")])
    first, second = lines_of(path)
    write_lines(path, [first, second, first | {"pauses": []}])
    with pytest.raises(ValueError, match=rf"{path}:3: duplicate id 'a' \(also on line 1\)"):
        Manifest(path)


def test_the_writer_refuses_a_second_line_with_one_id(tmp_path):
    with pytest.raises(ValueError, match="a second scenario with id 'a'"):
        write_manifest(tmp_path, [turn_scenario("a"), turn_scenario("a")])
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_every_bad_line_is_reported_when_the_manifest_is_opened(tmp_path):
    """Each of these used to pass the open and fail (or play wrong) when first drawn."""
    path = write_manifest(tmp_path, [turn_scenario("good")])
    (good,) = lines_of(path)
    bad = {
        "past_the_audio": {"user_speech": [[0.5, 3.5]]},
        "negative": {"user_speech": [[-0.5, 2.0]]},
        "reversed": {"user_speech": [[2.0, 0.5]]},
        "nan": {"turn_end": float("nan")},
        "empty_speech": {"user_speech": []},
        "missing_audio": {"audio": "audio/nowhere.flac"},
        "missing_context": {"context": {"audio": "context/nowhere.flac", "duration_s": 2.0}},
    }
    write_lines(path, [good] + [good | {"id": name} | fields for name, fields in bad.items()])
    with pytest.raises(ValueError) as err:
        Manifest(path)
    message = str(err.value)
    for lineno, expected in enumerate(
        [
            r"user_speech interval \(0.5, 3.5\) must satisfy 0 <= start < end <= 3.000 s",
            r"user_speech interval \(-0.5, 2.0\)",
            r"user_speech interval \(2.0, 0.5\)",
            r"field 'turn_end' must be null or a number of seconds, got NaN",
            r"axis TurnTaking needs the label 'user_speech'",
            r"audio file .*nowhere.flac does not exist",
            r"context file .*nowhere.flac does not exist",
        ],
        start=2,
    ):
        assert any(
            line.startswith(f"{path}:{lineno}: ") and re.search(expected, line)
            for line in message.splitlines()
        ), (lineno, expected, message)
    assert f"{path}:1:" not in message
    assert "7 problem(s)" in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("audio", None, "field 'audio' must be a path relative to the manifest, got null"),
        ("id", None, "field 'id' must be a non-empty string usable as a file name, got null"),
        ("id", "../x", "field 'id' must be a non-empty string usable as a file name"),
        ("turn_end", True, "field 'turn_end' must be null or a number of seconds, got true"),
        ("user_speech", [[0.5, "2"]], "field 'user_speech' must be"),
        ("duration_s", 0, "field 'duration_s' must be a positive number of seconds"),
        ("transcripts", [{"speaker": "user"}], "field 'transcripts' must be"),
        ("source", [], "field 'source' must be an object"),
    ],
)
def test_fields_of_the_wrong_type_are_named_not_coerced(tmp_path, field, value, expected):
    path = write_manifest(tmp_path, [turn_scenario()])
    write_lines(path, [lines_of(path)[0] | {field: value}])
    with pytest.raises(ValueError, match=f"{path}:1: {re.escape(expected)}"):
        Manifest(path)


def test_a_truncated_wav_is_refused_when_opened(tmp_path):
    """A WAV cut to a third used to play as a 1 s scenario without a word."""
    scenario = turn_scenario()
    path = write_manifest(tmp_path, [scenario])
    wav = tmp_path / "audio/turn.wav"
    sf.write(wav, scenario.audio, SAMPLE_RATE)
    wav.write_bytes(wav.read_bytes()[: wav.stat().st_size // 3])
    write_lines(path, [lines_of(path)[0] | {"audio": "audio/turn.wav"}])
    with pytest.raises(ValueError, match=rf"{path}:1: audio file .*turn.wav lasts 0.99.* s, the"):
        Manifest(path)


def test_audio_replaced_after_opening_is_refused_when_loaded(tmp_path):
    path = write_manifest(tmp_path, [turn_scenario()])
    manifest = Manifest(path)
    sf.write(tmp_path / "audio/turn.flac", np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    with pytest.raises(ValueError, match=r"holds 1.000000 s of audio, the manifest says 3.0 s"):
        manifest[0]


def test_audio_above_full_scale_is_clipped_where_it_enters(tmp_path):
    """Observations must lie in the env's Box(-1, 1), whatever a float WAV holds."""
    scenario = turn_scenario()
    loud = scenario.audio * 30.0  # noise at +-3
    path = write_manifest(tmp_path, [scenario])
    sf.write(tmp_path / "audio/turn.wav", loud, SAMPLE_RATE, subtype="FLOAT")
    write_lines(path, [lines_of(path)[0] | {"audio": "audio/turn.wav"}])
    loaded = Manifest(path)[0]
    assert loaded.audio.max() == 1.0 and loaded.audio.min() == -1.0
    in_memory = turn_scenario()
    in_memory.audio = loud.copy()
    for scenarios in (str(path), [in_memory]):
        env = gym.make("FullDuplex-TurnTaking-v0", scenarios=scenarios)
        env.reset(seed=0)
        done, seen = False, []
        while not done:
            obs, _, done, _, _ = env.step(np.full(9, PAD_ID))
            assert env.observation_space.contains(obs)
            seen.append(np.abs(obs).max())
        assert max(seen) == 1.0


def hold_lock(folder):
    """A separate process holding ``folder``'s lock until killed; returns it once it holds it."""
    code = (
        "import sys, time\n"
        "from fdenv.atomic import folder_lock\n"
        "with folder_lock(sys.argv[1]):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(120)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_run_on_one_folder_fails_at_once_naming_the_lock_and_pid(tmp_path, capsys):
    holder = hold_lock(tmp_path / "race")
    try:
        started = time.perf_counter()
        args = ["synth", "--out", str(tmp_path / "race"), "--num", "1", "--workers", "1"]
        assert fdenv_data([*args, "--axes", "TurnTaking"]) == 2
        assert time.perf_counter() - started < 5
        error = capsys.readouterr().err
        assert f"{tmp_path / 'race' / '.fdenv.lock'}" in error
        assert f"lock held by pid {holder.pid} on " in error
        with (
            pytest.raises(FolderLocked, match=f"pid {holder.pid}"),
            ManifestWriter(tmp_path / "race"),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    # killed with SIGKILL: its lock file (and pid) stays, and is taken over
    assert (tmp_path / "race" / ".fdenv.lock").read_text().startswith(str(holder.pid))
    assert fdenv_data([*args, "--axes", "TurnTaking"]) == 0
    assert len(Manifest(tmp_path / "race")) == 1
    assert not (tmp_path / "race" / ".fdenv.lock").exists()


def test_nested_locks_of_one_process_are_allowed(tmp_path):
    with folder_lock(tmp_path), folder_lock(tmp_path):
        write_manifest(tmp_path, [turn_scenario()])
    assert not (tmp_path / ".fdenv.lock").exists()


def test_manifest_writers_do_not_share_a_temporary_file(tmp_path):
    """Two writers in two processes used to share ``.tmp-manifest.jsonl``."""
    with ManifestWriter(tmp_path) as writer:
        (tmp,) = tmp_path.glob(".tmp-*")
        assert tmp.name.startswith(f".tmp-{os.getpid()}-") and tmp.name.endswith(MANIFEST_NAME)
        writer.add(turn_scenario())
    assert not list(tmp_path.glob(".tmp-*"))


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_temporaries_of_killed_writers_are_removed_by_the_next_run(tmp_path):
    out = tmp_path / "set"
    (out / "audio").mkdir(parents=True)
    stale = out / "audio" / f".tmp-{dead_pid()}-0123abcd-x.flac"
    stale_manifest = out / f".tmp-{dead_pid()}-89abcdef-{MANIFEST_NAME}"
    live = out / "audio" / f".tmp-{os.getpid()}-0123abcd-y.flac"
    for path in (stale, stale_manifest, live):
        path.write_bytes(b"half a file")
    args = ["synth", "--out", str(out), "--num", "1", "--workers", "1", "--axes", "TurnTaking"]
    assert fdenv_data(args) == 0
    assert not stale.exists() and not stale_manifest.exists()
    assert live.exists()  # this process is alive: not stale
    assert clean_stale_temporaries(out / "audio") == 0


def test_atomic_temporaries_carry_the_writers_pid(tmp_path):
    with atomic_path(tmp_path / "x.json") as tmp:
        assert tmp.name.startswith(f".tmp-{os.getpid()}-")
        tmp.write_text("{}")


def test_a_set_of_another_kind_is_not_replaced_without_overwrite(tmp_path, capsys):
    mined = tmp_path / "mined"
    scenario = turn_scenario()
    scenario.source = {"kind": "mined"}
    write_manifest(mined, [scenario])
    before = (mined / MANIFEST_NAME).read_text()
    args = ["synth", "--out", str(mined), "--num", "1", "--workers", "1", "--axes", "TurnTaking"]
    assert fdenv_data(args) == 2
    assert "holds a mined scenario set" in capsys.readouterr().err
    assert (mined / MANIFEST_NAME).read_text() == before
    assert fdenv_data([*args, "--overwrite"]) == 0
    assert set_kind(mined) == "synthetic"
    assert fdenv_data(args) == 0  # a set of the same kind is rewritten as before
    assert set_kind(tmp_path / "nothing") is None
