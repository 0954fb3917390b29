"""Segment mining: the paper's definitions at their thresholds, and the pipeline end to end."""

import json
import shutil

import gymnasium as gym
import numpy as np
import pytest
import soundfile as sf
from mining_corpus import DURATION_S, EXPECTED, SCRIPT, render, write_seamless

from fdenv.axes import Backchannel, PauseHandling, TurnTaking, UserInterruption
from fdenv.constants import PAD_ID, SAMPLE_RATE
from fdenv.corpora import SeamlessReader
from fdenv.manifest import Manifest, load_context
from fdenv.mining import MiningConfig, mine_corpus, select
from fdenv.scenario import ContextRef, Scenario
from fdenv.segments import ConversationLabels, MiningRules, utterances_from_ipus
from fdenv.timeline import Interval

RULES = MiningRules()


def close(a, b) -> bool:
    """Interval lists equal to the microsecond (labels pass through float arithmetic)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and np.allclose(a, b, atol=1e-6)


def labels(a, b, duration=60.0):
    return ConversationLabels.from_ipus(
        ([Interval(*i) for i in a], [Interval(*i) for i in b]), duration
    )


# ------------------------------------------------------------------ utterances: the 1.0 s rule


def test_silence_of_exactly_one_second_is_a_pause_and_longer_ends_the_utterance():
    utts = utterances_from_ipus([Interval(0, 1), Interval(2.0, 3), Interval(4.25, 5)])
    assert [u.span for u in utts] == [Interval(0, 3), Interval(4.25, 5)]
    assert utts[0].pauses == (Interval(1, 2.0),)
    assert utts[1].pauses == ()


def test_overlapping_ipus_make_no_pause():
    (u,) = utterances_from_ipus([Interval(0, 2), Interval(1, 3), Interval(3, 4)])
    assert u.span == Interval(0, 4) and u.pauses == ()


# ------------------------------------------------------------------ the four definitions


def test_pause_needs_tau_an_internal_pause_and_a_silent_partner():
    axis = PauseHandling()
    # 4.0 s with a pause: found; the window is 0.5 s before to 0.2 s after.
    (seg,) = axis.mine(labels([(10, 12), (12.5, 14)], []), 0, RULES)
    assert seg.window == Interval(9.5, 14.2) and seg.pauses == (Interval(12, 12.5),)
    assert axis.mine(labels([(10, 11.9), (12.5, 13.99)], []), 0, RULES) == []  # 3.99 s
    assert axis.mine(labels([(10, 14)], []), 0, RULES) == []  # no pause
    assert axis.mine(labels([(10, 12), (12.5, 14)], [(13.9, 14.5)]), 0, RULES) == []  # Y speaks
    assert len(axis.mine(labels([(10, 12), (12.5, 14)], [(14.0, 14.5)]), 0, RULES)) == 1


def test_turn_needs_both_tau_and_a_gap_of_at_most_0_4_s():
    axis = TurnTaking()
    (seg,) = axis.mine(labels([(10, 15)], [(15.4, 20.4)]), 0, RULES)
    assert seg.turn_end == 15 and seg.window == Interval(9.5, 20.0)
    assert axis.mine(labels([(10, 15)], [(15.41, 20.41)]), 0, RULES) == []  # gap 0.41
    assert axis.mine(labels([(10, 14.99)], [(15.2, 20.2)]), 0, RULES) == []  # X 4.99 s
    assert axis.mine(labels([(10, 15)], [(15.2, 20.19)]), 0, RULES) == []  # Y 4.99 s
    # An overlapping answer is a negative gap; Y's backchannel inside X is not the answer.
    (seg,) = axis.mine(labels([(10, 15)], [(12, 12.4), (14.5, 20)]), 0, RULES)
    assert seg.evidence["y"] == [14.5, 20]
    # Channel 1 as the user: nothing (Y's turn is followed by no X turn).
    assert axis.mine(labels([(10, 15)], [(15.4, 20.4)]), 1, RULES) == []


def test_backchannel_needs_only_short_partner_utterances():
    axis = Backchannel()
    (seg,) = axis.mine(labels([(10, 16)], [(11, 12.0), (14, 14.3)]), 0, RULES)
    assert seg.backchannels == (Interval(11, 12.0), Interval(14, 14.3))
    assert seg.window == Interval(9.5, 16.2)
    assert axis.mine(labels([(10, 16)], [(11, 12.01)]), 0, RULES) == []  # 1.01 s: a takeover
    assert axis.mine(labels([(10, 16)], []), 0, RULES) == []  # no ground truth
    assert axis.mine(labels([(10, 14.99)], [(11, 11.5)]), 0, RULES) == []  # X too short
    # Two partner IPUs 0.9 s apart are one 1.3 s utterance: not a backchannel.
    assert axis.mine(labels([(10, 16)], [(11, 11.2), (12.1, 12.3)]), 0, RULES) == []


def test_interruption_needs_x_y_x_y_with_x2_before_y1_ends():
    axis = UserInterruption()
    x, y = [(10, 13), (15, 18)], [(13.2, 16.5), (19.6, 22.6)]
    (seg,) = axis.mine(labels(x, y), 0, RULES)
    assert seg.interruption == Interval(15, 18) and seg.turn_end == 13
    assert seg.window == Interval(9.5, 23.0)
    x_late = [(10, 13), (16.5, 19.5)]  # X2 starts as Y1 ends: no interruption
    assert axis.mine(labels(x_late, y), 0, RULES) == []
    assert axis.mine(labels([(10, 13), (15, 17.99)], y), 0, RULES) == []  # X2 2.99 s
    assert axis.mine(labels(x, [(13.2, 16.5), (19.6, 22.59)]), 0, RULES) == []  # Y2 2.99 s
    assert axis.mine(labels(x, [(13.2, 16.5)]), 0, RULES) == []  # no Y2
    assert axis.mine(labels(x, y), 1, RULES) == []


def test_windows_are_cut_at_the_conversation_ends():
    rules = MiningRules(response_s=8.0)
    (seg,) = TurnTaking().mine(labels([(0.2, 6)], [(6.1, 11.5)], duration=11.5), 0, rules)
    assert seg.window == Interval(0.0, 11.5)


# ------------------------------------------------------------------ a corpus, end to end


def check_definition(record, ipus):
    """Re-checks a mined scenario against the definition, from the IPUs the miner used."""
    w0 = record["source"]["window"][0]
    user = record["source"]["user_channel"]
    x = utterances_from_ipus([Interval(*i) for i in ipus[user]])
    y = utterances_from_ipus([Interval(*i) for i in ipus[1 - user]])
    y_ipus = [Interval(*i) for i in ipus[1 - user]]
    ev = {k: Interval(*v) for k, v in record["source"]["evidence"].items()}
    assert ev["x"] in [u.span for u in x]
    if record["axis"] == "PauseHandling":
        (u,) = [u for u in x if u.span == ev["x"]]
        assert u.duration >= 4.0 and u.pauses
        assert not any(i.overlaps(u.span) for i in y_ipus)
        assert close(record["pauses"], [(p.start - w0, p.end - w0) for p in u.pauses])
    elif record["axis"] == "TurnTaking":
        assert ev["x"].duration >= 5.0 and ev["y"].duration >= 5.0
        assert ev["y"] in [u.span for u in y] and ev["y"].start - ev["x"].end <= 0.4
        assert record["turn_end"] == pytest.approx(ev["x"].end - w0)
    elif record["axis"] == "Backchannel":
        during = [u for u in y if u.span.overlaps(ev["x"])]
        assert ev["x"].duration >= 5.0 and during and all(u.duration <= 1.0 for u in during)
        assert len(record["backchannels"]) == len(during)
    else:
        spans = [ev[k] for k in ("x", "y", "x2", "y2")]
        assert all(s.duration >= 3.0 for s in spans)
        assert ev["x2"] in [u.span for u in x] and ev["y2"] in [u.span for u in y]
        assert ev["x"].start < ev["y"].start < ev["x2"].start < ev["y"].end
        assert record["interruption"] == pytest.approx([ev["x2"].start - w0, ev["x2"].end - w0])


@pytest.fixture(scope="module")
def seamless_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    write_seamless(root)
    out = tmp_path_factory.mktemp("out")
    summary = mine_corpus(SeamlessReader(root), out, MiningConfig(), progress=False)
    return root, out, summary


def test_known_segments_are_found_exactly_and_satisfy_their_definitions(seamless_run):
    _, out, summary = seamless_run
    assert summary["segments_per_axis"] == {a: 1 for a in EXPECTED}
    assert summary["hours_scanned"] == pytest.approx(DURATION_S / 3600, abs=1e-6)
    assert summary["conversations_used"] == 1 and summary["skipped_by_reason"] == {}
    state = json.loads((out / "state/labels/V00_S0001_I00000001.json").read_text())
    assert state["ipus"] == [[list(i) for i in c] for c in SCRIPT]
    for line in (out / "manifest.jsonl").read_text().splitlines():
        record = json.loads(line)
        user, window = EXPECTED[record["axis"]]
        assert record["source"]["user_channel"] == user
        assert record["source"]["window"] == pytest.approx(window)
        assert record["duration_s"] == pytest.approx(window[1] - window[0])
        check_definition(record, state["ipus"])


def test_scenario_labels_audio_transcripts_and_context(seamless_run):
    _, out, _ = seamless_run
    manifest = Manifest(out / "manifest.jsonl")
    by_axis = {manifest.axis_of(i): manifest[i] for i in range(len(manifest))}
    bc = by_axis["Backchannel"]  # window [13.0, 20.2]
    assert close(bc.user_speech, [(0.5, 7.0)])
    assert close(bc.backchannels, [(2.0, 2.4), (4.5, 5.1)])
    turn = by_axis["TurnTaking"]  # window [0.5, 11.0]
    assert turn.turn_end == pytest.approx(5.5)
    assert close(turn.user_speech, [(0.5, 2.5), (3.1, 5.5)])
    assert close(by_axis["PauseHandling"].pauses, [(2.5, 3.1)])
    interruption = by_axis["UserInterruption"]  # window [21.5, 38.0]
    assert close(interruption.interruption, (8.0, 11.5))
    assert interruption.turn_end == pytest.approx(4.5)
    # The user channel is channel 0 at 24 kHz; the partner's speech is not in it.
    expected = render()[0, 13 * SAMPLE_RATE : round(20.2 * SAMPLE_RATE)]  # 24 kHz original
    assert bc.audio.size == expected.size
    # 24k -> 48k PCM_16 -> 24k: equal but for filter ringing at the IPUs' hard cuts.
    assert np.sqrt(np.mean((bc.audio - expected) ** 2)) < 1e-3 < np.sqrt(np.mean(expected**2))
    assert np.all(interruption.audio[round(5.0 * SAMPLE_RATE) : round(7.5 * SAMPLE_RATE)] == 0)
    # Both sides' transcripts, partner lines named as such, clipped to the window.
    speakers = {(u.speaker, round(u.start, 3)) for u in turn.transcripts}
    assert ("user", 0.5) in speakers and ("partner", 5.8) in speakers
    assert all(0 <= u.start < u.end <= turn.duration + 1e-6 for u in turn.transcripts)
    # Context: both channels, ending where the scenario starts (channel 0 = the user).
    assert interruption.context.duration_s == pytest.approx(21.5)
    user, partner = load_context(interruption.context)
    assert user.size == partner.size == round(21.5 * SAMPLE_RATE)
    assert np.abs(user[-SAMPLE_RATE * 8 : -SAMPLE_RATE * 7]).max() > 0.01  # A speaks at 13.5-20
    assert np.abs(partner[round(6.5 * SAMPLE_RATE) : round(11.9 * SAMPLE_RATE)]).max() > 0.01


def test_env_plays_a_mined_manifest_with_acoustics(seamless_run):
    from fdenv.audio.acoustics import Acoustics, RoomConfig

    _, out, _ = seamless_run
    acoustics = Acoustics(room=RoomConfig(num_rirs=2, seed=1))
    for env_id in ("FullDuplex-TurnTaking-v0", "FullDuplex-UserInterruption-v0"):
        env = gym.make(env_id, scenarios=str(out / "manifest.jsonl"), acoustics=acoustics)
        env.reset(seed=0)
        action = np.full(env.action_space.shape, PAD_ID)
        done = False
        while not done:
            _, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        assert info["scenario_id"].startswith("V00_S0001_I00000001")
        assert reward == pytest.approx(-5.0, abs=0.1)  # silence: the whole response window
        env.close()


def test_context_round_trips_through_labels_json():
    scenario = Scenario(
        "x",
        "TurnTaking",
        np.zeros(SAMPLE_RATE, np.float32),
        [Interval(0.1, 0.5)],
        turn_end=0.5,
        context=ContextRef("context/x.flac", 2.5),
    )
    record = json.loads(json.dumps(scenario.labels_json()))
    assert record["context"] == {"audio": "context/x.flac", "duration_s": 2.5}
    assert Scenario.from_labels(record, scenario.audio).context == scenario.context
    record.pop("context")
    assert Scenario.from_labels(record, scenario.audio).context is None
    with pytest.raises(ValueError, match="duration_s must be > 0"):
        ContextRef.from_json({"audio": "a.flac", "duration_s": 0})


# ------------------------------------------------------------------ caps, seeds, resume


@pytest.fixture(scope="module")
def five_conversations(tmp_path_factory):
    root = tmp_path_factory.mktemp("five")
    for k in range(5):
        write_seamless(root, prefix=f"V00_S0001_I{k:08d}")
    return root


def manifest_ids(out):
    return sorted(json.loads(x)["id"] for x in (out / "manifest.jsonl").read_text().splitlines())


def test_cap_and_seed_pick_a_reproducible_subset(five_conversations, tmp_path):
    config = MiningConfig(max_per_axis=2, context_s=0.0)
    a = mine_corpus(SeamlessReader(five_conversations), tmp_path / "a", config, progress=False)
    assert a["candidates_per_axis"] == {axis: 5 for axis in EXPECTED}
    assert a["segments_per_axis"] == {axis: 2 for axis in EXPECTED}
    assert len(list((tmp_path / "a" / "audio").iterdir())) == 8
    assert not (tmp_path / "a" / "context").exists()  # context_s = 0 keeps none
    mine_corpus(SeamlessReader(five_conversations), tmp_path / "b", config, progress=False)
    assert manifest_ids(tmp_path / "a") == manifest_ids(tmp_path / "b")
    other = MiningConfig(max_per_axis=2, context_s=0.0, seed=1)
    mine_corpus(SeamlessReader(five_conversations), tmp_path / "c", other, progress=False)
    assert manifest_ids(tmp_path / "a") != manifest_ids(tmp_path / "c")


def test_selection_is_bottom_k_of_a_seeded_hash():
    candidates = [{"id": f"c{k}", "axis": "A"} for k in range(100)]
    first = select(candidates, 10, seed=3)["A"]
    assert len(first) == 10
    assert select(list(reversed(candidates)), 10, seed=3)["A"] == first  # order-free
    assert select(candidates, 11, seed=3)["A"][:10] == first  # a larger cap extends it


def test_resume_skips_finished_conversations_and_recovers_from_a_crash(
    five_conversations, tmp_path, monkeypatch
):
    import fdenv.mining.run as mining

    root = tmp_path / "corpus"
    shutil.copytree(five_conversations, root)
    out = tmp_path / "out"
    config = MiningConfig(max_per_axis=3)
    calls = []
    real_cut = mining.cut_conversation

    def crash_on_second(*args, **kwargs):
        calls.append(args[1].id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_cut(*args, **kwargs)

    monkeypatch.setattr(mining, "cut_conversation", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        mine_corpus(SeamlessReader(root), out, config, progress=False)
    assert not (out / "manifest.jsonl").exists()  # no manifest from a crashed run
    assert len(list((out / "state" / "labels").iterdir())) == 5
    monkeypatch.setattr(mining, "cut_conversation", real_cut)
    label_times = {p.name: p.stat().st_mtime_ns for p in (out / "state/labels").iterdir()}
    summary = mine_corpus(SeamlessReader(root), out, config, progress=False)
    assert summary["conversations_resumed"] == 5
    assert {p.name: p.stat().st_mtime_ns for p in (out / "state/labels").iterdir()} == label_times
    fresh = mine_corpus(SeamlessReader(root), tmp_path / "fresh", config, progress=False)
    assert manifest_ids(out) == manifest_ids(tmp_path / "fresh")
    assert summary["segments_per_axis"] == fresh["segments_per_axis"]
    # A finished run reruns without cutting anything again.
    cut_times = {p.name: p.stat().st_mtime_ns for p in (out / "state/cut").iterdir()}
    mine_corpus(SeamlessReader(root), out, config, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "state/cut").iterdir()} == cut_times
    # A smaller cap drops the files of segments no longer chosen.
    mine_corpus(SeamlessReader(root), out, MiningConfig(max_per_axis=1), progress=False)
    assert len(manifest_ids(out)) == 4
    assert len(list((out / "audio").iterdir())) == 4
    assert len(list((out / "context").iterdir())) == 4


def test_mining_acoustics_change_audio_not_labels_and_follow_the_seed(five_conversations, tmp_path):
    from fdenv.audio.acoustics import Acoustics, RoomConfig

    acoustics = Acoustics(snr_db_range=(10.0, 10.0), room=RoomConfig(num_rirs=3, seed=2))
    config = MiningConfig(max_per_axis=1, acoustics=acoustics, axes=("Backchannel",))
    dry = MiningConfig(max_per_axis=1, axes=("Backchannel",))
    for name, cfg in (("wet", config), ("wet2", config), ("dry", dry)):
        mine_corpus(SeamlessReader(five_conversations), tmp_path / name, cfg, progress=False)
    wet, wet2, plain = (
        Manifest(tmp_path / n / "manifest.jsonl")[0] for n in ("wet", "wet2", "dry")
    )
    assert wet.id == plain.id and wet.backchannels == plain.backchannels
    assert wet.source["acoustics"]["snr_db"] == 10.0 and "acoustics" not in plain.source
    assert np.array_equal(wet.audio, wet2.audio)
    assert not np.allclose(wet.audio, plain.audio, atol=1e-3)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="max_per_axis must be >= 1"):
        MiningConfig(max_per_axis=0)
    with pytest.raises(ValueError, match=r"MiningConfig\.vad"):
        MiningConfig(vad="energy")
    with pytest.raises(ValueError, match="lead_s must be >= 0"):
        MiningRules(lead_s=-1)


def test_cli_mine_writes_a_summary(five_conversations, tmp_path, capsys):
    from fdenv.cli import main

    out = tmp_path / "cli"
    argv = ["mine", "--corpus", "seamless", "--root", str(five_conversations), "--out", str(out)]
    assert main([*argv, "--max-per-axis", "1", "--workers", "2", "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["segments_per_axis"] == {axis: 1 for axis in EXPECTED}
    assert summary["conversations_listed"] == 5
    assert '"hours_scanned"' in capsys.readouterr().out
    written = sf.info(str(out / "audio" / (manifest_ids(out)[0] + ".flac")))
    assert written.samplerate == SAMPLE_RATE


def test_axes_without_mine_are_refused_clearly(monkeypatch):
    from fdenv.axes import Axis
    from fdenv.mining import config as mining_config

    class Silent(Axis):
        name = "Silent"

        def synthesize(self, rng, scenario_id):
            raise NotImplementedError

        def score(self, episode):
            raise NotImplementedError

    with pytest.raises(NotImplementedError, match=r"axis Silent defines no mine\(labels"):
        Silent().mine(labels([(0, 5)], []), 0, RULES)
    monkeypatch.setattr(mining_config, "get_axis", lambda name: Silent())
    with pytest.raises(ValueError, match="axis Silent defines no mine"):
        MiningConfig(axes=("Silent",))


def test_a_channel_without_corpus_vad_falls_back_to_silero(tmp_path):
    a, _ = write_seamless(tmp_path / "corpus")
    a.with_suffix(".json").unlink()  # participant A has no JSON: no VAD, no transcript
    summary = mine_corpus(SeamlessReader(tmp_path / "corpus"), tmp_path / "out", progress=False)
    assert summary["vad_channels"] == {"silero": 1, "corpus": 1}
    assert summary["defects"] == {"missing_json": 1}
    lines = (tmp_path / "out/manifest.jsonl").read_text().splitlines()
    found = {(json.loads(x)["axis"], json.loads(x)["source"]["vad"]) for x in lines}
    assert {axis for axis, _ in found} == set(EXPECTED)
    assert {vad for _, vad in found} == {"silero"}  # the user channel is A in every one
