"""A folder of two-channel WAV/FLAC files, one conversation per file, any sample rate.

Channel 0 and channel 1 are the two speakers. An optional sidecar ``<stem>.json`` next to the
audio gives per-channel labels::

    {"channels": [{"vad": [[start, end], ...],
                   "transcript": [{"text": "...", "start": s, "end": e,
                                   "words": [["word", s, e], ...]}]},
                  {...}]}

``vad`` may be left out per channel (the miner then runs its VAD on that channel); words with
null times are dropped and counted.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from fdenv.corpora.base import (
    ChannelRef,
    Conversation,
    CorpusItem,
    CorpusReader,
    CorpusScan,
    SkipItem,
    probe,
)
from fdenv.scenario import Utterance, Word
from fdenv.timeline import Interval

AUDIO_SUFFIXES = {".wav", ".flac"}


class FolderReader(CorpusReader):
    name = "folder"

    def scan(self) -> CorpusScan:
        scan = CorpusScan()
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            suffix = path.suffix.lower()
            if suffix in AUDIO_SUFFIXES:
                conversation_id = path.relative_to(self.root).with_suffix("").as_posix()
                scan.items.append(CorpusItem(conversation_id.replace("/", "__"), (str(path),)))
            elif suffix != ".json":
                scan.skipped.append((str(path), "not_audio"))
        return scan

    def open(self, item: CorpusItem) -> Conversation:
        (path,) = item.files
        info = probe(path)
        if info.channels != 2:
            raise SkipItem(
                "not_two_channels",
                f"{path}: {info.channels} channel(s), expected 2 (one per speaker)",
            )
        refs = (
            ChannelRef(path, 0, info.samplerate, info.frames),
            ChannelRef(path, 1, info.samplerate, info.frames),
        )
        notes: Counter[str] = Counter()
        vads: list[list[Interval] | None] = [None, None]
        transcripts: list[list[Utterance]] = [[], []]
        sidecar = Path(path).with_suffix(".json")
        if sidecar.is_file():
            try:
                channels = json.loads(sidecar.read_text(encoding="utf-8"))["channels"]
                if len(channels) != 2:
                    raise ValueError(f"'channels' must hold 2 entries, got {len(channels)}")
                for index, channel in enumerate(channels):
                    vads[index], transcripts[index] = _channel_labels(channel, str(index), notes)
            except (ValueError, TypeError, KeyError, AttributeError) as err:
                raise SkipItem("bad_json", f"{sidecar}: {err}") from err
            if any(v is not None and not v for v in vads):
                raise SkipItem("empty_vad", f"{sidecar}: a channel's 'vad' is an empty list")
        return Conversation(
            id=item.id,
            channels=refs,
            vad=(vads[0], vads[1]),
            transcripts=(transcripts[0], transcripts[1]),
            source={"corpus": self.name, "files": [Path(path).name]},
            notes=notes,
        )


def _channel_labels(
    channel: dict[str, Any], speaker: str, notes: Counter[str]
) -> tuple[list[Interval] | None, list[Utterance]]:
    vad = None
    if channel.get("vad") is not None:
        vad = sorted(Interval(float(s), float(e)) for s, e in channel["vad"] if float(s) < float(e))
    utterances = []
    for line in channel.get("transcript") or []:
        words = []
        for text, start, end in line.get("words") or []:
            if start is None or end is None:
                notes["word_without_time"] += 1
                continue
            words.append(Word(str(text), float(start), float(end)))
        start, end = line.get("start"), line.get("end")
        if start is None or end is None:
            notes["utterance_without_time"] += 1
            continue
        utterances.append(
            Utterance(speaker, str(line.get("text", "")), float(start), float(end), tuple(words))
        )
    return vad, utterances
