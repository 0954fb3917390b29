"""Meta's Seamless Interaction: one 48 kHz WAV per participant, a JSON of labels beside each.

File ids are ``V<vendor>_S<session>_I<interaction>_P<participant>``; the two participants of a
conversation share the ``V_S_I`` prefix and may sit in different folders. Each
``<id>.json`` holds ``metadata:vad`` (a list of ``{"start", "end"}`` in seconds) and
``metadata:transcript`` (segments ``{"transcript", "start", "end", "words": [{"word", "start",
"end", "score"}]}``). Known defects, each counted: interactions with one participant (or more
than two, or one participant's file twice, in two folders), empty VAD lists (the conversation
is skipped: an empty list is as likely a missing annotation as a silent participant), and words
with null times (dropped).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from fdenv.corpora.base import (
    ChannelRef,
    Conversation,
    CorpusItem,
    CorpusReader,
    CorpusScan,
    SkipItem,
    check_lengths,
    probe,
)
from fdenv.scenario import Utterance, Word
from fdenv.timeline import Interval

FILE_ID = re.compile(r"^(V\d+_S\d+_I\d+)_P(\w+)$")
SIDECAR_SUFFIXES = {".json", ".mp4", ".npz", ".npy", ".jsonl"}
"""Files the release ships next to the audio; they are not counted as stray files."""


class SeamlessReader(CorpusReader):
    name = "seamless"
    expected_rates: tuple[int, ...] = (48_000,)

    def scan(self) -> CorpusScan:
        scan = CorpusScan()
        groups: dict[str, list[Path]] = defaultdict(list)
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            suffix = path.suffix.lower()
            if suffix == ".wav":
                match = FILE_ID.match(path.stem)
                if match is None:
                    scan.skipped.append((str(path), "unrecognised_name"))
                else:
                    groups[match.group(1)].append(path)
            elif suffix not in SIDECAR_SUFFIXES:
                scan.skipped.append((str(path), "not_audio"))
        for prefix, paths in sorted(groups.items()):
            if len(paths) == 1:
                scan.skipped.append((prefix, "one_participant"))
            elif len(paths) > 2:
                scan.skipped.append((prefix, "more_than_two_participants"))
            elif paths[0].stem == paths[1].stem:  # one participant's file in two folders
                scan.skipped.append((prefix, "duplicate_participant"))
            else:
                paths.sort(key=lambda p: p.stem)
                scan.items.append(CorpusItem(prefix, tuple(str(p) for p in paths)))
        return scan

    def open(self, item: CorpusItem) -> Conversation:
        refs: list[ChannelRef] = []
        vads: list[list[Interval] | None] = []
        transcripts: list[list[Utterance]] = []
        notes: Counter[str] = Counter()
        for index, path in enumerate(item.files):
            info = probe(path, self.expected_rates)
            if info.channels != 1:
                raise SkipItem(
                    "not_mono", f"{path}: {info.channels} channels, a participant file is mono"
                )
            refs.append(ChannelRef(path, 0, info.samplerate, info.frames))
            vad, words = _read_labels(Path(path).with_suffix(".json"), str(index), notes)
            vads.append(vad)
            transcripts.append(words)
        channels = (refs[0], refs[1])
        check_lengths(item.id, channels, self.length_tolerance_s)
        return Conversation(
            id=item.id,
            channels=channels,
            vad=(vads[0], vads[1]),
            transcripts=(transcripts[0], transcripts[1]),
            source={"corpus": self.name, "files": [Path(p).name for p in item.files]},
            notes=notes,
        )


def _read_labels(
    path: Path, speaker: str, notes: Counter[str]
) -> tuple[list[Interval] | None, list[Utterance]]:
    """VAD (``None`` without a JSON) and transcript of one participant."""
    if not path.is_file():
        notes["missing_json"] += 1
        return None, []
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError(f"expected a JSON object, got {type(record).__name__}")
        vad = _vad(record.get("metadata:vad"), notes)
        utterances = _transcript(record.get("metadata:transcript") or [], speaker, notes)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise SkipItem("bad_json", f"{path}: {err}") from err
    if vad is not None and not vad:
        raise SkipItem("empty_vad", f"{path}: metadata:vad is an empty list")
    return vad, utterances


def _vad(entries: Any, notes: Counter[str]) -> list[Interval] | None:
    if entries is None:
        return None
    vad = []
    for entry in entries:
        start, end = entry.get("start"), entry.get("end")
        if start is None or end is None or not float(start) < float(end):
            notes["bad_vad_interval"] += 1
            continue
        vad.append(Interval(max(float(start), 0.0), float(end)))
    return sorted(vad)


def _transcript(segments: Any, speaker: str, notes: Counter[str]) -> list[Utterance]:
    utterances = []
    for segment in segments:
        words = []
        for word in segment.get("words") or []:
            start, end = word.get("start"), word.get("end")
            if start is None or end is None:
                notes["word_without_time"] += 1
                continue
            words.append(Word(str(word.get("word", "")), float(start), float(end)))
        start, end = segment.get("start"), segment.get("end")
        if start is None or end is None:
            if not words:
                notes["utterance_without_time"] += 1
                continue
            start, end = words[0].start, words[-1].end
        text = str(segment.get("transcript") or " ".join(w.text for w in words))
        utterances.append(Utterance(speaker, text, float(start), float(end), tuple(words)))
    return utterances
