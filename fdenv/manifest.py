"""Scenarios on disk: a JSONL manifest with one scenario's labels per line, audio files beside it.

A line is :meth:`Scenario.labels_json` plus ``"audio"``, a path relative to the manifest's folder
(FLAC or WAV, any sample rate: audio is resampled to 24 kHz on load and the file's rate is kept
in ``source["original_sample_rate"]``). Labels are read and checked up front; audio is read when
a scenario is first used. A mined scenario's ``"context"`` (:class:`~fdenv.scenario.ContextRef`)
points at a stereo file of the recording before it, also relative to the manifest's folder;
:class:`Manifest` resolves that path on load and :func:`load_context` reads it.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from fdenv.audio.io import load_mono, read_channels, resample, write_audio
from fdenv.constants import SAMPLE_RATE
from fdenv.scenario import ContextRef, Scenario

MANIFEST_NAME = "manifest.jsonl"


def _parse_line(path: Path, lineno: int, line: str) -> dict[str, Any]:
    from fdenv.registration import get_axis

    where = f"{path}:{lineno}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [key for key in ("id", "axis", "audio") if key not in record]
    if missing:
        raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
    try:
        get_axis(record["axis"])
        Scenario.from_labels(record, audio=None)  # type: ignore[arg-type]
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"{where}: {err}") from None
    return record


class Manifest:
    """A scenario source backed by a manifest file, with a small cache of loaded audio."""

    def __init__(self, path: str | Path, cache_size: int = 128) -> None:
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        if not path.is_file():
            raise FileNotFoundError(f"scenario manifest {path} does not exist")
        self.path = path
        self.records: list[dict[str, Any]] = []
        with path.open(encoding="utf-8") as lines:
            for lineno, line in enumerate(lines, start=1):
                if line.strip():
                    self.records.append(_parse_line(path, lineno, line))
        if not self.records:
            raise ValueError(f"scenario manifest {path} has no scenarios")
        self._cache: OrderedDict[int, Scenario] = OrderedDict()
        self._cache_size = cache_size

    def __len__(self) -> int:
        return len(self.records)

    def axis_of(self, index: int) -> str:
        return str(self.records[index]["axis"])

    def id_of(self, index: int) -> str:
        return str(self.records[index]["id"])

    def __getitem__(self, index: int) -> Scenario:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        scenario = self._load(index)
        self._cache[index] = scenario
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return scenario

    def _load(self, index: int) -> Scenario:
        from fdenv.registration import get_axis

        record = self.records[index]
        audio, rate = load_mono(self.path.parent / record["audio"], f"scenario {record['id']!r}")
        scenario = Scenario.from_labels(record, audio)
        if rate != SAMPLE_RATE:
            scenario.source["original_sample_rate"] = rate
        if scenario.context is not None:
            resolved = str(self.path.parent / scenario.context.audio)
            scenario.context = dataclasses.replace(scenario.context, audio=resolved)
        get_axis(scenario.axis).validate(scenario)
        return scenario


def load_context(context: ContextRef) -> tuple[np.ndarray, np.ndarray]:
    """A scenario's preceding recording as (user, partner), mono float32 at 24 kHz each."""
    label = f"context audio {context.audio}"
    (user, partner), rate = read_channels(context.audio, 2, label, "user, partner")
    return resample(user, rate, SAMPLE_RATE), resample(partner, rate, SAMPLE_RATE)


def write_scenario_audio(folder: Path, scenario: Scenario, audio_format: str = "flac") -> dict:
    """Writes a scenario's audio under ``folder/audio/`` and returns its manifest line."""
    relative = f"audio/{scenario.id}.{audio_format}"
    write_audio(folder / relative, scenario.audio)
    return scenario.labels_json() | {"audio": relative}


class ManifestWriter:
    """Writes scenarios to ``folder/manifest.jsonl`` and ``folder/audio/``.

    The manifest appears only when the writer closes without error (written to a temporary file,
    then renamed), so a crashed run never leaves a manifest that points at missing audio.
    """

    def __init__(self, folder: str | Path, audio_format: str = "flac") -> None:
        if audio_format not in ("flac", "wav"):
            raise ValueError(f"audio_format must be 'flac' or 'wav', got {audio_format!r}")
        self.folder = Path(folder)
        self.audio_format = audio_format
        self.folder.mkdir(parents=True, exist_ok=True)
        self._tmp = self.folder / f".tmp-{MANIFEST_NAME}"
        self._lines = self._tmp.open("w", encoding="utf-8")
        self.count = 0

    def add(self, scenario: Scenario) -> None:
        self.add_record(write_scenario_audio(self.folder, scenario, self.audio_format))

    def add_record(self, record: dict[str, Any]) -> None:
        """Adds a line whose audio is already in place (written by a worker process)."""
        self._lines.write(json.dumps(record) + "\n")
        self.count += 1

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._lines.close()
        if exc_type is None:
            self._tmp.replace(self.folder / MANIFEST_NAME)
        else:
            self._tmp.unlink(missing_ok=True)


def write_manifest(folder: str | Path, scenarios: Iterable[Scenario]) -> Path:
    """Writes scenarios as a manifest folder and returns the manifest's path."""
    with ManifestWriter(folder) as writer:
        for scenario in scenarios:
            writer.add(scenario)
    return Path(folder) / MANIFEST_NAME
