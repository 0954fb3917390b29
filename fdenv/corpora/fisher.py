"""Fisher-style corpora: two-channel 8 kHz NIST SPHERE files, one speaker per channel.

libsndfile (through soundfile) reads SPHERE files whose samples are PCM, u-law or a-law.
Shorten-compressed files (``sample_coding`` ``...embedded-shorten...``, as some LDC releases
ship) cannot be read; they are skipped as ``unsupported_encoding`` (decompress them first, for
example with ``sph2pipe -f wav``, and mine the result with the ``folder`` reader). A transcript
``<stem>.txt`` anywhere under the root, in LDC's Fisher format (``start end A: words`` per line,
``A`` = channel 0, ``B`` = channel 1), is attached when present (a recording with two
transcripts of its name is skipped, ``duplicate_transcript``); Fisher ships no VAD.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from fdenv.corpora.base import (
    ChannelRef,
    Conversation,
    CorpusItem,
    CorpusReader,
    CorpusScan,
    SkipItem,
    probe,
)
from fdenv.scenario import Utterance

LINE = re.compile(r"^\s*([\d.]+)\s+([\d.]+)\s+([AB])\s*:\s*(.*)$")
HEADER_BYTES = 1024


class FisherReader(CorpusReader):
    name = "fisher"
    expected_rates: tuple[int, ...] = (8_000,)

    def scan(self) -> CorpusScan:
        scan = CorpusScan()
        audio: list[Path] = []
        texts: dict[str, list[Path]] = {}
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            suffix = path.suffix.lower()
            if suffix == ".sph":
                audio.append(path)
            elif suffix == ".txt":
                texts.setdefault(path.stem, []).append(path)
            else:
                scan.skipped.append((str(path), "not_audio"))
        for path in audio:
            transcripts = texts.get(path.stem, [])
            if len(transcripts) > 1:  # which one belongs to this recording is unknown
                scan.skipped.append((str(path), "duplicate_transcript"))
                continue
            files = (str(path), *map(str, transcripts))
            scan.items.append(CorpusItem(path.stem, files))
        return scan

    def open(self, item: CorpusItem) -> Conversation:
        path = item.files[0]
        coding = sample_coding(path)
        if "shorten" in coding:
            raise SkipItem(
                "unsupported_encoding", f"{path}: SPHERE sample_coding {coding!r} (decompress it)"
            )
        info = probe(path, self.expected_rates)
        if info.channels != 2:
            raise SkipItem("not_two_channels", f"{path}: {info.channels} channel(s), expected 2")
        notes: Counter[str] = Counter()
        transcripts: tuple[list[Utterance], list[Utterance]] = ([], [])
        if len(item.files) > 1:
            text = Path(item.files[1]).read_text(encoding="utf-8", errors="replace")
            for line in text.splitlines():
                match = LINE.match(line)
                if match is None:
                    if line.strip() and not line.lstrip().startswith("#"):
                        notes["unparsed_transcript_line"] += 1
                    continue
                start, end, side, text = match.groups()
                channel = "AB".index(side)
                transcripts[channel].append(Utterance(str(channel), text, float(start), float(end)))
        return Conversation(
            id=item.id,
            channels=(
                ChannelRef(path, 0, info.samplerate, info.frames),
                ChannelRef(path, 1, info.samplerate, info.frames),
            ),
            transcripts=transcripts,
            source={"corpus": self.name, "files": [Path(f).name for f in item.files]},
            notes=notes,
        )


def sample_coding(path: str | Path) -> str:
    """The ``sample_coding`` field of a SPHERE header (``""`` when absent or not SPHERE)."""
    try:
        with open(path, "rb") as f:
            header = f.read(HEADER_BYTES).decode("ascii", errors="replace")
    except OSError as err:
        raise SkipItem("unreadable_audio", f"{path}: {err}") from err
    for line in header.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0] == "sample_coding":
            return parts[2].strip()
    return ""
