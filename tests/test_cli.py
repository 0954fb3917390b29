"""fdenv-data synth writes a manifest that environments load through their scenarios kwarg."""

import gymnasium as gym
import numpy as np

from fdenv.audio.acoustics import Acoustics, RoomConfig
from fdenv.cli import main
from fdenv.constants import PAD_ID
from fdenv.manifest import Manifest


def test_synth_writes_every_axis_and_env_plays_it(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--num", "3", "--workers", "2"]) == 0
    assert "wrote 12 scenarios" in capsys.readouterr().out
    manifest = Manifest(tmp_path)
    assert sorted({manifest.axis_of(i) for i in range(len(manifest))}) == [
        "Backchannel",
        "PauseHandling",
        "TurnTaking",
        "UserInterruption",
    ]
    assert not list(tmp_path.glob(".tmp-*"))  # no temporary files left behind
    env = gym.make("FullDuplex-Mixed-v0", scenarios=tmp_path / "manifest.jsonl")
    _, info = env.reset(seed=0)
    assert info["scenario_id"] in {manifest.id_of(i) for i in range(12)}


def test_synth_is_reproducible_and_applies_acoustics(tmp_path):
    args = ["synth", "--num", "2", "--workers", "1", "--axes", "TurnTaking", "--reverb"]
    main([*args, "--out", str(tmp_path / "a"), "--snr-db", "10", "20"])
    main([*args, "--out", str(tmp_path / "b"), "--snr-db", "10", "20"])
    a, b = Manifest(tmp_path / "a")[0], Manifest(tmp_path / "b")[0]
    np.testing.assert_array_equal(a.audio, b.audio)
    assert 10.0 <= a.source["acoustics"]["snr_db"] <= 20.0


def test_env_acoustics_change_audio_not_labels():
    small = Acoustics(room=RoomConfig(num_rirs=4))
    dry = gym.make("FullDuplex-TurnTaking-v0", num_scenarios=1)
    wet = gym.make("FullDuplex-TurnTaking-v0", num_scenarios=1, acoustics=small)
    frames = []
    for env in (dry, wet, wet):
        env.reset(seed=4)
        for _ in range(60):  # past the 3 s lead-in
            obs, *_ = env.step(np.full(9, PAD_ID))
        frames.append(obs)
        turn_end = env.unwrapped.episode().scenario.turn_end
        assert turn_end == dry.unwrapped.episode().scenario.turn_end
    assert not np.array_equal(frames[0], frames[1])  # reverb and noise applied
    np.testing.assert_array_equal(frames[1], frames[2])  # the same seed, the same room
