"""Bad corpus input: every case is skipped and counted with its reason, and the run goes on."""

import json

import numpy as np
import pytest
import soundfile as sf
from mining_corpus import EXPECTED, render, write_fisher, write_folder, write_seamless

from fdenv.cli import main as fdenv_data
from fdenv.corpora import CorpusItem, FisherReader, FolderReader, SeamlessReader, SkipItem
from fdenv.manifest import Manifest
from fdenv.mining import mine_corpus

GOOD = "V00_S0001_I00000001"


def seamless_json(path):
    return path.with_suffix(".json")


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory):
    """One good interaction and one interaction per defect, in the Seamless layout."""
    root = tmp_path_factory.mktemp("bad")
    write_seamless(root, prefix=GOOD)
    audio48 = render(rate=48_000)

    # Unreadable audio: a participant's WAV holds text.
    a, _ = write_seamless(root, prefix="V00_S0002_I00000001", audio=audio48)
    a.write_text("not audio at all")
    # Truncated audio: the file stops half-way through its declared data.
    a, _ = write_seamless(root, prefix="V00_S0002_I00000002", audio=audio48)
    a.write_bytes(a.read_bytes()[: a.stat().st_size // 2])
    # One participant only.
    _, b = write_seamless(root, prefix="V00_S0002_I00000003", audio=audio48)
    b.unlink()
    seamless_json(b).unlink()
    # Channels of different lengths: 2 s apart (tolerance 0.5 s).
    a, _ = write_seamless(root, prefix="V00_S0002_I00000004", audio=audio48)
    sf.write(a, audio48[0, : -2 * 48_000], 48_000, subtype="PCM_16")
    # Empty VAD list.
    a, _ = write_seamless(root, prefix="V00_S0002_I00000005", audio=audio48)
    record = json.loads(seamless_json(a).read_text())
    record["metadata:vad"] = []
    seamless_json(a).write_text(json.dumps(record))
    # A sample rate the reader does not expect (44.1 kHz).
    a, _ = write_seamless(root, prefix="V00_S0002_I00000006", audio=audio48)
    sf.write(a, np.zeros(44_100 * 40, dtype=np.float32), 44_100)
    # Malformed JSON.
    a, _ = write_seamless(root, prefix="V00_S0002_I00000007", audio=audio48)
    seamless_json(a).write_text("{not json")
    # Null word times: usable, the words are dropped and counted.
    a, _ = write_seamless(root, prefix="V00_S0003_I00000001", audio=audio48)
    record = json.loads(seamless_json(a).read_text())
    record["metadata:transcript"][0]["words"][0]["start"] = None
    record["metadata:transcript"][1]["words"][1]["end"] = None
    record["metadata:transcript"][2]["start"] = None
    seamless_json(a).write_text(json.dumps(record))
    # Non-audio files in the tree, and a WAV whose name is not a Seamless id.
    (root / "README.txt").write_text("notes")
    (root / "improvised" / "train" / "0000" / "thumbs.db").write_bytes(b"\0\1")
    sf.write(root / "stray.wav", audio48[0], 48_000)
    out = tmp_path_factory.mktemp("out")
    summary = mine_corpus(SeamlessReader(root), out, progress=False)
    return root, out, summary


def test_every_defect_is_skipped_with_its_reason(bad_corpus):
    _, _, summary = bad_corpus
    assert summary["skipped_by_reason"] == {
        "bad_json": 1,
        "empty_vad": 1,
        "length_mismatch": 1,
        "not_audio": 2,
        "one_participant": 1,
        "truncated_audio": 1,
        "unexpected_sample_rate": 1,
        "unreadable_audio": 1,
        "unrecognised_name": 1,
    }
    assert summary["conversations_listed"] == 8  # pairs; the lone participant is no pair
    assert summary["conversations_labelled"] == 2
    assert summary["defects"] == {"word_without_time": 2}
    assert summary["hours_scanned"] == pytest.approx(2 * 40 / 3600, abs=1e-6)


def test_outputs_stay_consistent(bad_corpus):
    _, out, summary = bad_corpus
    assert summary["segments_per_axis"] == {a: 2 for a in EXPECTED}
    manifest = Manifest(out / "manifest.jsonl")
    assert len(manifest) == 8
    files = {p.name for p in (out / "audio").iterdir()}
    assert files == {f"{manifest.id_of(i)}.flac" for i in range(len(manifest))}
    assert all(n.startswith((GOOD, "V00_S0003_I00000001")) for n in files)
    for i in range(len(manifest)):
        manifest[i]  # every scenario loads and validates against its axis
    # The scenario from the interaction with null word times keeps its other words.
    turn = next(
        manifest[i]
        for i in range(len(manifest))
        if manifest.id_of(i).startswith("V00_S0003") and manifest.axis_of(i) == "TurnTaking"
    )
    first = next(u for u in turn.transcripts if u.speaker == "user")
    assert [w.text for w in first.words] == ["ch0"]


def test_a_rerun_keeps_skips_final_and_counts_them_again(bad_corpus):
    root, out, summary = bad_corpus
    again = mine_corpus(SeamlessReader(root), out, progress=False)
    assert again["skipped_by_reason"] == summary["skipped_by_reason"]
    assert again["conversations_resumed"] == 8


def test_folder_layout_defects(tmp_path):
    corpus = tmp_path / "corpus"
    write_folder(corpus, name="good")
    sf.write(corpus / "mono.wav", render()[0], 24_000)  # one channel
    (corpus / "broken.flac").write_bytes(b"fLaC but not really")
    write_folder(corpus, name="badjson")
    (corpus / "badjson.json").write_text(json.dumps({"channels": [{}]}))  # one entry
    write_folder(corpus, name="emptyvad")
    sidecar = json.loads((corpus / "emptyvad.json").read_text())
    sidecar["channels"][1]["vad"] = []
    (corpus / "emptyvad.json").write_text(json.dumps(sidecar))
    (corpus / "notes.md").write_text("# notes")
    summary = mine_corpus(FolderReader(corpus), tmp_path / "out", progress=False)
    assert summary["skipped_by_reason"] == {
        "bad_json": 1,
        "empty_vad": 1,
        "not_audio": 1,
        "not_two_channels": 1,
        "unreadable_audio": 1,
    }
    assert summary["segments_per_axis"] == {a: 1 for a in EXPECTED}


def test_a_file_truncated_after_listing_skips_only_its_conversation(tmp_path):
    """A file that shrinks between labelling and cutting: caught when its spans are read."""
    write_seamless(tmp_path / "corpus", prefix=GOOD)
    reader = SeamlessReader(tmp_path / "corpus")
    conversation = reader.open(reader.scan().items[0])
    path = conversation.channels[0].path
    sf.write(path, render(rate=48_000)[0, : 48_000 * 10], 48_000, subtype="PCM_16")
    with pytest.raises(SkipItem) as err:
        conversation.read(20.0, 30.0)
    assert err.value.reason in ("truncated_audio", "unreadable_audio")


def test_reader_and_root_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"corpus root .*missing is not a folder"):
        SeamlessReader(tmp_path / "missing")
    with pytest.raises(ValueError, match="length_tolerance_s must be >= 0"):
        SeamlessReader(tmp_path, length_tolerance_s=-1)


def test_files_that_would_share_a_conversation_id_are_skipped_not_merged(tmp_path):
    """``x.wav`` beside ``x.flac`` and ``a/b.flac`` beside ``a__b.flac`` name one id each:
    mining them would mix audio of one file with labels of the other."""
    corpus = tmp_path / "corpus"
    write_folder(corpus, name="good")
    flac = write_folder(corpus, name="x")
    sf.write(flac.with_suffix(".wav"), render().T, 24_000)
    write_folder(corpus, name="a__b")
    write_folder(corpus / "a", name="b")
    summary = mine_corpus(FolderReader(corpus), tmp_path / "out", progress=False)
    assert summary["skipped_by_reason"] == {"duplicate_id": 4}
    assert any("x.wav" in e and "x.flac" in e for e in summary["skipped_examples"])
    ids = [json.loads(line)["id"] for line in (tmp_path / "out/manifest.jsonl").open()]
    assert len(ids) == len(set(ids)) == len(EXPECTED)
    assert all(i.startswith("good-") for i in ids)


def test_unsafe_conversation_ids_from_a_reader_are_skipped(tmp_path):
    """A reader's id becomes file names under ``--out``: one that is not a plain name is skipped."""
    write_folder(tmp_path / "corpus", name="good")

    class Escaping(FolderReader):
        def scan(self):
            scan = super().scan()
            (item,) = scan.items
            scan.items = [item, CorpusItem("../escaped", item.files), CorpusItem("", item.files)]
            return scan

    summary = mine_corpus(Escaping(tmp_path / "corpus"), tmp_path / "out", progress=False)
    assert summary["skipped_by_reason"] == {"bad_id": 2}
    assert not (tmp_path / "escaped.json").exists()
    assert not any(p.name.startswith("escaped") for p in tmp_path.rglob("*"))


def test_an_output_folder_inside_the_corpus_is_refused(tmp_path):
    """The next run would mine the first run's outputs as new conversations."""
    write_folder(tmp_path / "corpus", name="good")
    with pytest.raises(ValueError, match=r"output folder .*corpus/mined lies inside the corpus"):
        mine_corpus(FolderReader(tmp_path / "corpus"), tmp_path / "corpus" / "mined")
    assert not (tmp_path / "corpus" / "mined").exists()
    assert fdenv_data(
        ["mine", "--corpus", "folder", "--root", str(tmp_path / "corpus"), "--out",
         str(tmp_path / "corpus"), "--no-progress"]
    ) == 2  # fmt: skip


def test_a_tampered_cut_record_cannot_touch_files_outside_out(tmp_path):
    write_folder(tmp_path / "corpus", name="good")
    out = tmp_path / "out"
    mine_corpus(FolderReader(tmp_path / "corpus"), out, progress=False)
    victims = [tmp_path / "victim.txt", tmp_path / "absolute.txt"]
    for victim in victims:
        victim.write_text("keep me")
    record_path = out / "state" / "cut" / "good.json"
    record = json.loads(record_path.read_text())
    record["key"] = "changed settings"  # makes the rerun drop the record's files
    record["records"][0]["audio"] = "../victim.txt"
    record["records"][1]["audio"] = str(victims[1])
    record_path.write_text(json.dumps(record))
    summary = mine_corpus(FolderReader(tmp_path / "corpus"), out, progress=False)
    assert all(v.read_text() == "keep me" for v in victims)
    assert summary["state_records_refused"] == 1
    assert "good.json: names a file outside" in summary["skipped_examples"][0]
    assert len(Manifest(out)) == len(EXPECTED)  # the conversation was cut again


def test_mining_into_a_folder_of_another_kind_needs_overwrite(tmp_path):
    write_folder(tmp_path / "corpus", name="good")
    out = tmp_path / "synth"
    assert fdenv_data(["synth", "--out", str(out), "--num", "1", "--axes", "TurnTaking"]) == 0
    with pytest.raises(FileExistsError, match="holds a synthetic scenario set"):
        mine_corpus(FolderReader(tmp_path / "corpus"), out, progress=False)
    summary = mine_corpus(FolderReader(tmp_path / "corpus"), out, progress=False, overwrite=True)
    assert summary["segments_per_axis"] == {a: 1 for a in EXPECTED}


def test_one_participant_twice_is_not_a_pair(tmp_path):
    a, b = write_seamless(tmp_path, prefix=GOOD)
    b.unlink()
    seamless_json(b).unlink()
    copy = tmp_path / "elsewhere" / a.name
    copy.parent.mkdir()
    copy.write_bytes(a.read_bytes())
    scan = SeamlessReader(tmp_path).scan()
    assert scan.items == [] and scan.skipped == [(GOOD, "duplicate_participant")]


def test_two_transcripts_of_one_fisher_recording_are_not_guessed_between(tmp_path):
    path = write_fisher(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "fe_03_00001.txt").write_text("0.0 1.0 A: someone else\n")
    scan = FisherReader(tmp_path).scan()
    assert scan.items == [] and scan.skipped == [(str(path), "duplicate_transcript")]
