"""Corpus readers and the mining VAD backends, on corpora written in each layout."""

import json

import numpy as np
import pytest
import soundfile as sf
from mining_corpus import EXPECTED, SCRIPT, render, write_fisher, write_folder, write_seamless

from fdenv.audio.io import resample
from fdenv.audio.vad import BatchedSileroVAD, SileroVAD, VADConfig, WebRTCVAD
from fdenv.constants import SAMPLE_RATE
from fdenv.corpora import (
    READERS,
    FisherReader,
    FolderReader,
    SeamlessReader,
    SkipItem,
    get_reader,
)
from fdenv.mining import MiningConfig, mine_corpus
from fdenv.timeline import Interval, merge


def windows(out):
    lines = (out / "manifest.jsonl").read_text().splitlines()
    return {
        (r["axis"], r["source"]["user_channel"]): r["source"]["window"]
        for r in map(json.loads, lines)
    }


def assert_known_segments_found(out, tolerance_s):
    found = windows(out)
    for axis, (user, window) in EXPECTED.items():
        assert (axis, user) in found, axis
        assert np.allclose(found[axis, user], window, atol=tolerance_s), (axis, found[axis, user])


def test_registry_names_every_reader():
    assert set(READERS) == {"seamless", "folder", "fisher"}
    assert get_reader("fisher") is FisherReader
    with pytest.raises(ValueError, match="unknown corpus type 'candor'"):
        get_reader("candor")


def test_seamless_scan_pairs_participants_across_folders(tmp_path):
    write_seamless(tmp_path, prefix="V01_S0002_I00000003")
    # The partner of an interaction may sit in another folder; sidecars are not strays.
    (b,) = [p for p in tmp_path.rglob("*_P0002.wav")]
    other = tmp_path / "naturalistic" / "dev" / "0001"
    other.mkdir(parents=True)
    b.rename(other / b.name)
    b.with_suffix(".json").rename(other / b.with_suffix(".json").name)
    (other / "V01_S0002_I00000003_P0002.mp4").write_bytes(b"\0")
    scan = SeamlessReader(tmp_path).scan()
    assert [i.id for i in scan.items] == ["V01_S0002_I00000003"]
    assert [p.split("/")[-1] for p in scan.items[0].files] == [
        "V01_S0002_I00000003_P0001A.wav",
        "V01_S0002_I00000003_P0002.wav",
    ]
    assert scan.skipped == []
    conversation = SeamlessReader(tmp_path).open(scan.items[0])
    assert conversation.duration == pytest.approx(40.0)
    assert conversation.vad[1] == [Interval(*i) for i in SCRIPT[1]]
    assert conversation.transcripts[0][0].words[0].text == "hello"


def test_conversation_reads_exact_spans_at_any_rate(tmp_path):
    write_seamless(tmp_path)
    reader = SeamlessReader(tmp_path)
    conversation = reader.open(reader.scan().items[0])
    block = conversation.read(13.0, 20.2)
    assert block.shape == (2, round(7.2 * SAMPLE_RATE)) and block.dtype == np.float32
    expected = render()[:, 13 * SAMPLE_RATE : round(20.2 * SAMPLE_RATE)]
    assert np.sqrt(np.mean((block - expected) ** 2)) < 1e-3
    assert conversation.read(0.0, 40.0, rate=16_000).shape == (2, 640_000)
    with pytest.raises(ValueError, match=r"span \[39.0, 41.0\) outside \[0, 40.000\]"):
        conversation.read(39.0, 41.0)


def test_folder_reader_uses_its_sidecar(tmp_path):
    write_folder(tmp_path / "corpus", name="nested/conv1")
    summary = mine_corpus(FolderReader(tmp_path / "corpus"), tmp_path / "out", progress=False)
    assert summary["vad_channels"] == {"corpus": 2}
    assert summary["segments_per_axis"] == {a: 1 for a in EXPECTED}
    assert_known_segments_found(tmp_path / "out", 1e-6)
    assert next((tmp_path / "out" / "audio").iterdir()).name.startswith("nested__conv1-")


def test_folder_reader_without_sidecar_runs_silero(tmp_path):
    write_folder(tmp_path / "corpus", sidecar=False)
    summary = mine_corpus(FolderReader(tmp_path / "corpus"), tmp_path / "out", progress=False)
    assert summary["vad_channels"] == {"silero": 2}
    assert_known_segments_found(tmp_path / "out", 0.25)


@pytest.mark.parametrize("subtype", ["PCM_16", "ULAW"])
def test_fisher_sphere_with_silero_finds_the_known_segments(tmp_path, subtype):
    write_fisher(tmp_path / "corpus", subtype=subtype)
    reader = FisherReader(tmp_path / "corpus")
    (item,) = reader.scan().items
    conversation = reader.open(item)
    assert conversation.vad == (None, None)
    assert conversation.channels[0].sample_rate == 8_000
    assert [u.start for u in conversation.transcripts[1]] == [s for s, _ in SCRIPT[1]]
    summary = mine_corpus(reader, tmp_path / "out", progress=False)
    assert summary["vad_channels"] == {"silero": 2}
    assert_known_segments_found(tmp_path / "out", 0.25)


def test_webrtc_backend_finds_the_known_segments(tmp_path):
    write_seamless(tmp_path / "corpus")
    config = MiningConfig(vad="webrtc")  # ignore the corpus's VAD, run webrtc on both channels
    summary = mine_corpus(
        SeamlessReader(tmp_path / "corpus"), tmp_path / "out", config, progress=False
    )
    assert summary["vad_channels"] == {"webrtc": 2}
    assert_known_segments_found(tmp_path / "out", 0.25)


def test_shorten_compressed_sphere_is_an_unsupported_encoding(tmp_path):
    header = (
        b"NIST_1A\n   1024\nchannel_count -i 2\nsample_rate -i 8000\nsample_n_bytes -i 2\n"
        b"sample_count -i 80000\nsample_coding -s26 pcm,embedded-shorten-v2.00\nend_head\n"
    )
    (tmp_path / "fe_03_00002.sph").write_bytes(header.ljust(1024, b" ") + b"\x01" * 4000)
    reader = FisherReader(tmp_path)
    (item,) = reader.scan().items
    with pytest.raises(SkipItem, match="unsupported_encoding") as err:
        reader.open(item)
    assert err.value.reason == "unsupported_encoding"


# ------------------------------------------------------------------ VAD backends


def test_batched_silero_equals_silero_and_is_independent_of_batching():
    audio = render()[0]
    audio16 = resample(audio, SAMPLE_RATE, 16_000)
    reference = SileroVAD().speech_intervals(audio)
    # The network split at its recurrence: Silero's own intervals.
    (whole,) = BatchedSileroVAD().speech_intervals_batch([audio16])
    assert np.allclose(whole, reference, atol=1e-9)
    # Small extractor blocks and several streams of different lengths in one call: each
    # stream's own result (a shorter stream's zero padding never reaches it).
    short = BatchedSileroVAD(block=7).speech_intervals_batch([audio16[:80_000], audio16])
    assert np.allclose(short[1], reference, atol=1e-9)
    (alone,) = BatchedSileroVAD().speech_intervals_batch([audio16[:80_000]])
    assert np.allclose(short[0], alone, atol=1e-9)
    # The speech found is the script's channel 0, up to padding and gaps between words.
    assert np.allclose(merge(reference, max_gap=0.3), SCRIPT[0], atol=0.15)


def test_batched_silero_probabilities_equal_the_model_stepped_chunk_by_chunk():
    import torch

    from fdenv.audio.vad import _silero

    audio16 = resample(render()[0], SAMPLE_RATE, 16_000)[: 40 * 512 + 100]
    (probs,) = BatchedSileroVAD(block=16).probabilities([audio16])
    padded = np.zeros(41 * 512, dtype=np.float32)
    padded[: audio16.size] = audio16
    model, _ = _silero()
    with torch.inference_mode():
        model.reset_states()
        chunks = torch.from_numpy(padded).reshape(41, 1, 512)
        stepped = np.array([float(model(chunk, 16_000)[0, 0]) for chunk in chunks])
        model.reset_states()
    assert probs.shape == (41,)  # the partial last chunk counts, zero-padded
    assert np.abs(probs - stepped).max() < 1e-4
    assert probs.max() > 0.5 > probs.min()  # speech and silence both in the span


def test_vad_backends_on_silence_and_bad_settings():
    silent = np.zeros(16_000, dtype=np.float32)
    assert BatchedSileroVAD().speech_intervals_batch([silent, silent[:100]]) == [[], []]
    assert WebRTCVAD().speech_intervals_batch([silent]) == [[]]
    with pytest.raises(ValueError, match="mode must be 0, 1, 2 or 3"):
        WebRTCVAD(mode=4)
    with pytest.raises(ValueError, match="frame_ms must be 10, 20 or 30"):
        WebRTCVAD(frame_ms=25)
    with pytest.raises(ValueError, match="block must be >= 1"):
        BatchedSileroVAD(block=0)


def test_probability_smoothing_follows_silero_rules():
    from fdenv.audio.vad import probabilities_to_intervals

    hop = 0.032
    probs = np.zeros(100, dtype=np.float32)
    probs[10:20] = 0.9  # speech
    probs[20:22] = 0.4  # above the 0.35 release threshold: still speech
    probs[23:25] = 0.9  # after a 1-hop silence (< 100 ms): bridged
    probs[60:62] = 0.45  # never reaches 0.5: not speech
    probs[80:84] = 0.9  # 128 ms: kept (>= 250 ms? no) -> dropped by min_speech
    config = VADConfig(speech_pad_ms=0)
    found = probabilities_to_intervals(probs, hop, config, duration=3.2)
    assert np.allclose(found, [(10 * hop, 25 * hop)])


def test_silences_end_speech_as_silero_counts_them():
    """Silero's get_speech_timestamps confirms a silence at a hop still below the release
    threshold, min_silence_ms (100) after it began: 4 silent hops of 32 ms (the 4th at 96 ms)
    are bridged, 5 (the 5th at 128 ms) end the speech. Pads (30 ms) are added in whole
    samples, and two intervals closer than two pads share their silence."""
    from fdenv.audio.vad import probabilities_to_intervals

    hop = 0.032
    probs = np.zeros(100, dtype=np.float32)
    probs[10:20] = 0.9
    probs[24:34] = 0.9  # after 4 silent hops: one interval
    probs[39:52] = 0.9  # after 5 silent hops: a new one
    probs[52:55] = 0.2  # below the release threshold
    probs[55] = 0.4  # back between the thresholds: the silence that began at 52 goes on
    probs[56] = 0.2  # 4 hops (128 ms) after 52: the speech ended at hop 52
    probs[58:70] = 0.9
    no_pad = VADConfig(speech_pad_ms=0)
    found = probabilities_to_intervals(probs, hop, no_pad, duration=3.2)
    assert np.allclose(found, [(10 * hop, 34 * hop), (39 * hop, 52 * hop), (58 * hop, 70 * hop)])
    # Pads: 480 samples each side; the first start and the last end stop at the audio's ends.
    padded = probabilities_to_intervals(probs, hop, VADConfig(), duration=70 * hop)
    assert np.allclose(
        padded,
        [(0.29, 34 * hop + 0.03), (39 * hop - 0.03, 52 * hop + 0.03), (58 * hop - 0.03, 70 * hop)],
    )
    # Closer than two pads (a 20 ms min silence allows it): the 40 ms between are shared.
    close = np.zeros(40, dtype=np.float32)
    close[5:15] = close[17:30] = 0.9
    tight = VADConfig(min_speech_ms=100, min_silence_ms=20, speech_pad_ms=30)
    assert np.allclose(
        probabilities_to_intervals(close, 0.02, tight, duration=0.8),
        [(0.07, 0.32), (0.32, 0.63)],
    )


def test_sphere_files_are_written_and_read_by_soundfile(tmp_path):
    path = write_fisher(tmp_path, subtype="ULAW")
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.channels) == ("NIST", "ULAW", 2)
