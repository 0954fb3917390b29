"""Full-Duplex-Bench's JSON files: ASR word timings (``output.json``) and a strict JSON reader.

The benchmark's scripts index these files blindly and fail with a bare ``KeyError`` or
``TypeError`` on the first odd file; here every problem is a ``ValueError`` that names the file
and the field, so a bad sample in a run of thousands is found at once.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from fdenv.scenario import Word


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from err


def finite_number(value: Any, where: str) -> float:
    """A finite JSON number; ``bool`` is refused although Python counts it as an ``int``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def parse_asr_words(data: Any, source: str = "ASR JSON") -> list[Word]:
    """Timed words from ``{"text": ..., "chunks": [{"text": w, "timestamp": [s, e]}, ...]}``.

    Words keep the file's order: the benchmark takes its first and last chunk as the start and
    end of the response. Null timestamps, which Whisper-style pipelines write when a word's
    time is lost, are handled as follows:

    - a null start drops the chunk, because the word cannot be placed in time (the official
      scripts crash on a null first start and would count the chunk as a word otherwise);
    - a null end becomes the start, a zero-length word: the pause script does the same with the
      last chunk, and the backchannel script does it before matching words to speech segments
      (there it also ignores such a word unless it starts exactly at a segment's end; here it
      counts in any segment it falls in). The turn-taking and interruption scripts crash.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
    if "chunks" not in data:
        raise ValueError(f"{source}: missing field 'chunks' (the word timings)")
    chunks = data["chunks"]
    if not isinstance(chunks, list):
        raise ValueError(f"{source}: 'chunks' must be a list, got {type(chunks).__name__}")
    words = []
    for i, chunk in enumerate(chunks):
        where = f"{source}: chunks[{i}]"
        if not isinstance(chunk, dict) or "timestamp" not in chunk or "text" not in chunk:
            raise ValueError(f"{where} must be an object with 'text' and 'timestamp'")
        if not isinstance(chunk["text"], str):
            raise ValueError(f"{where}.text must be a string, got {chunk['text']!r}")
        stamp = chunk["timestamp"]
        if not isinstance(stamp, list | tuple) or len(stamp) != 2:
            raise ValueError(f"{where}.timestamp must be [start, end], got {stamp!r}")
        if stamp[0] is None:
            continue
        start = finite_number(stamp[0], f"{where}.timestamp[0]")
        end = start if stamp[1] is None else finite_number(stamp[1], f"{where}.timestamp[1]")
        if end < start:
            raise ValueError(f"{where}.timestamp ends before it starts: {stamp!r}")
        words.append(Word(chunk["text"], start, end))
    return words


def read_asr_words(path: str | Path) -> list[Word]:
    return parse_asr_words(read_json(path), str(path))
