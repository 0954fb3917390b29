"""Scenarios on disk: a JSONL manifest with one scenario's labels per line, audio files beside it.

A line is :meth:`Scenario.labels_json` plus ``"audio"``, a path relative to the manifest's folder
(FLAC or WAV, any sample rate: audio is resampled to 24 kHz on load and the file's rate is kept
in ``source["original_sample_rate"]``). A mined scenario's ``"context"``
(:class:`~fdenv.scenario.ContextRef`) points at a stereo file of the recording before it, also
relative to the manifest's folder; :class:`Manifest` resolves that path on load and
:func:`load_context` reads it.

Every line is checked when the manifest is opened, so that a bad line stops a run at its start,
not hours later when the scenario is first drawn (and again on every resume): field types, the
axis and its required labels, label times against the line's ``duration_s``, unique ids, and
the audio and context files (present, readable headers, channel count, length within
:data:`LENGTH_TOLERANCE_S` of ``duration_s``, which catches a truncated WAV). All bad lines are
reported at once, ``file:line`` each, in one ``ValueError``. Audio itself is read when a
scenario is first used, and its decoded length is checked again then.

Writers (:class:`ManifestWriter`, the ``fdenv-data`` commands) hold the folder's lock
(:func:`fdenv.atomic.folder_lock`) and refuse a folder that holds another kind of set
(:func:`writing_set`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from fdenv.atomic import atomic_path, clean_stale_temporaries, folder_lock, name_problem
from fdenv.audio.io import clip_unit, load_mono, read_channels, resample, write_audio
from fdenv.constants import SAMPLE_RATE
from fdenv.registration import get_axis
from fdenv.scenario import ContextRef, Scenario

MANIFEST_NAME = "manifest.jsonl"
LENGTH_TOLERANCE_S = 0.002
"""How far an audio file's length may differ from its line's ``duration_s`` (a few samples at
any rate: resampling rounds to one 24 kHz sample, a truncated file is short by far more)."""


def _number(value: Any) -> bool:
    """A finite JSON number (``true``/``false`` are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_number(v) for v in value)


def _word(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and all(v is None or _number(v) for v in value[1:])
    )


def _utterance(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("speaker"), str)
        and isinstance(value.get("text"), str)
        and _number(value.get("start"))
        and _number(value.get("end"))
        and isinstance(value.get("words", []), list)
        and all(_word(w) for w in value.get("words", []))
    )


def _context(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("audio"), str)
        and bool(value["audio"])
        and _number(value.get("duration_s"))
        and value["duration_s"] > 0
    )


FIELDS: dict[str, tuple[Any, str]] = {
    "id": (lambda v: name_problem(v) is None, "a non-empty string usable as a file name"),
    "axis": (lambda v: isinstance(v, str), "an axis name (a string)"),
    "audio": (lambda v: isinstance(v, str) and bool(v), "a path relative to the manifest"),
    "duration_s": (lambda v: _number(v) and v > 0, "a positive number of seconds"),
    "user_speech": (lambda v: isinstance(v, list) and all(map(_pair, v)), "[[start, end], ...]"),
    "pauses": (lambda v: isinstance(v, list) and all(map(_pair, v)), "[[start, end], ...]"),
    "backchannels": (lambda v: isinstance(v, list) and all(map(_pair, v)), "[[start, end], ...]"),
    "turn_end": (lambda v: v is None or _number(v), "null or a number of seconds"),
    "interruption": (lambda v: v is None or _pair(v), "null or [start, end]"),
    "transcripts": (
        lambda v: isinstance(v, list) and all(map(_utterance, v)),
        'a list of {"speaker", "text", "start", "end", "words": [[text, start, end], ...]}',
    ),
    "source": (lambda v: isinstance(v, dict), "an object"),
    "context": (lambda v: v is None or _context(v), 'null or {"audio": path, "duration_s": > 0}'),
}
"""Each field a manifest line may hold: the check of its JSON value and what it must be (times
are finite numbers of seconds)."""
REQUIRED = ("id", "axis", "audio", "duration_s")


def _line_problems(record: Any) -> list[str]:
    """What is wrong with one parsed line, before its files are looked at."""
    if not isinstance(record, dict):
        return [f"expected a JSON object, got {type(record).__name__}"]
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        return [f"missing field(s) {', '.join(missing)}"]
    problems = [
        f"field {name!r} must be {what}, got {json.dumps(record[name])[:80]}"
        for name, (ok, what) in FIELDS.items()
        if name in record and not ok(record[name])
    ]
    if problems:
        return problems
    try:
        axis = get_axis(record["axis"])
        scenario = Scenario.from_labels(record, audio=None)  # type: ignore[arg-type]
        scenario.check_labels(record["duration_s"])
    except ValueError as err:
        return [str(err)]
    return [
        f"scenario {scenario.id!r}: axis {axis.name} needs the label {label!r}, which is "
        "missing or empty"
        for label in axis.required_labels
        if getattr(scenario, label) is None or getattr(scenario, label) == []
    ]


def _file_problem(path: Path, channels: int, duration_s: float, what: str) -> str | None:
    """Why the audio file at ``path`` cannot be this line's ``what``, from its header alone."""
    if not path.is_file():
        return f"{what} file {path} does not exist"
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        return f"cannot read {what} file {path}: {err}"
    if info.channels != channels:
        layout = "mono" if channels == 1 else "user, partner"
        return f"{what} file {path} has {info.channels} channel(s), expected {channels} ({layout})"
    length = info.frames / info.samplerate
    if abs(length - duration_s) > LENGTH_TOLERANCE_S:
        return (
            f"{what} file {path} lasts {length:.6f} s, the line says {duration_s} s "
            f"(a truncated or replaced file; at most {LENGTH_TOLERANCE_S} s apart)"
        )
    return None


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """Every line of the manifest at ``path``, checked; one ``ValueError`` lists every bad line
    as ``file:line: problem``."""
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    with path.open(encoding="utf-8") as lines:
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                problems.append(f"{where}: not valid JSON ({err.msg} at column {err.colno})")
                continue
            found = _line_problems(record)
            if not found:
                first = first_line.setdefault(record["id"], lineno)
                if first != lineno:
                    found.append(f"duplicate id {record['id']!r} (also on line {first})")
                audio = _file_problem(
                    path.parent / record["audio"], 1, record["duration_s"], "audio"
                )
                context = record.get("context")
                if context is not None:
                    context = _file_problem(
                        path.parent / context["audio"], 2, context["duration_s"], "context"
                    )
                found += [p for p in (audio, context) if p is not None]
            problems += [f"{where}: {problem}" for problem in found]
            if not found:
                records.append(record)
    if problems:
        raise ValueError(
            f"scenario manifest {path}: {len(problems)} problem(s); fix or remove these lines:\n"
            + "\n".join(problems)
        )
    if not records:
        raise ValueError(f"scenario manifest {path} has no scenarios")
    return records


class Manifest:
    """A scenario source backed by a manifest file, with a small cache of loaded audio.

    Opening it checks every line and its files (see the module's documentation)."""

    def __init__(self, path: str | Path, cache_size: int = 128) -> None:
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        if not path.is_file():
            raise FileNotFoundError(f"scenario manifest {path} does not exist")
        self.path = path
        self.records = read_manifest(path)
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
        record = self.records[index]
        path = self.path.parent / record["audio"]
        audio, rate = load_mono(path, f"scenario {record['id']!r}")
        length = len(audio) / SAMPLE_RATE
        if abs(length - record["duration_s"]) > LENGTH_TOLERANCE_S:  # changed since opened
            raise ValueError(
                f"scenario {record['id']!r}: {path} holds {length:.6f} s of audio, the manifest "
                f"says {record['duration_s']} s"
            )
        scenario = Scenario.from_labels(record, audio)
        if rate != SAMPLE_RATE:
            scenario.source["original_sample_rate"] = rate
        if scenario.context is not None:
            resolved = str(self.path.parent / scenario.context.audio)
            scenario.context = dataclasses.replace(scenario.context, audio=resolved)
        get_axis(scenario.axis).validate(scenario)
        return scenario


def load_context(context: ContextRef) -> tuple[np.ndarray, np.ndarray]:
    """A scenario's preceding recording as (user, partner), mono float32 in [-1, 1] at 24 kHz."""
    label = f"context audio {context.audio}"
    (user, partner), rate = read_channels(context.audio, 2, label, "user, partner")
    return (
        clip_unit(resample(user, rate, SAMPLE_RATE)),
        clip_unit(resample(partner, rate, SAMPLE_RATE)),
    )


def write_scenario_audio(folder: Path, scenario: Scenario, audio_format: str = "flac") -> dict:
    """Writes a scenario's audio under ``folder/audio/`` and returns its manifest line; an id
    that cannot be a file name there (``../x``, ``a/b``) is a ``ValueError``."""
    problem = name_problem(scenario.id)
    if problem is not None:
        raise ValueError(f"scenario {problem}")
    relative = f"audio/{scenario.id}.{audio_format}"
    write_audio(folder / relative, scenario.audio)
    return scenario.labels_json() | {"audio": relative}


def set_kind(folder: str | Path) -> str | None:
    """What kind of scenario set ``folder`` holds: its manifest's first ``source["kind"]``
    (``"synthetic"``, ``"mined"``, ``"fdbench"``; ``"custom"`` without one, ``"unreadable"``),
    ``"mined"`` for a mining run's state without a manifest, ``None`` for no set."""
    folder = Path(folder)
    manifest = folder / MANIFEST_NAME
    if manifest.is_file():
        with manifest.open(encoding="utf-8", errors="replace") as lines:
            first = next((line for line in lines if line.strip()), "")
        try:
            source = json.loads(first).get("source") or {}
            kind = source.get("kind") or ("fdbench" if "benchmark" in source else "custom")
        except (ValueError, AttributeError):
            return "unreadable"
        return str(kind)
    if (folder / "state").is_dir() or (folder / "summary.json").is_file():
        return "mined"
    return None


@contextmanager
def writing_set(folder: str | Path, kind: str, overwrite: bool = False) -> Iterator[Path]:
    """Claims ``folder`` for a run that writes a scenario set of ``kind``.

    Holds the folder's lock for the block (a second run fails at once, naming the holder's
    pid), refuses with ``FileExistsError`` a folder that holds another kind of set (its manifest
    would be replaced; ``overwrite=True``, the commands' ``--overwrite``, allows it: the other
    set's files then stay, unlisted), and removes temporaries that killed runs left behind.
    """
    folder = Path(folder)
    with folder_lock(folder):
        found = set_kind(folder)
        if found not in (None, kind) and not overwrite:
            raise FileExistsError(
                f"{folder} holds a {found} scenario set ({folder / MANIFEST_NAME}); writing a "
                f"{kind} set there would replace it. Choose another folder, or pass --overwrite "
                "to replace its manifest"
            )
        subfolders = ("", "audio", "context", "state/labels", "state/cut")
        clean_stale_temporaries(*(folder / sub for sub in subfolders))
        yield folder


class ManifestWriter:
    """Writes scenarios to ``folder/manifest.jsonl`` and ``folder/audio/``.

    The manifest appears only when the writer closes without error (written to a temporary file
    of its own, then renamed), so a crashed run never leaves a manifest that points at missing
    audio. The writer holds the folder's lock while open (:func:`fdenv.atomic.folder_lock`), and
    refuses a second line with an id it already wrote.
    """

    def __init__(self, folder: str | Path, audio_format: str = "flac") -> None:
        if audio_format not in ("flac", "wav"):
            raise ValueError(f"audio_format must be 'flac' or 'wav', got {audio_format!r}")
        self.folder = Path(folder)
        self.audio_format = audio_format
        self._ids: set[str] = set()
        self._stack = ExitStack()
        try:
            self._stack.enter_context(folder_lock(self.folder))
            tmp = self._stack.enter_context(atomic_path(self.folder / MANIFEST_NAME))
            self._lines = self._stack.enter_context(tmp.open("w", encoding="utf-8"))
        except BaseException:
            self._stack.close()
            raise
        self.count = 0

    def add(self, scenario: Scenario) -> None:
        self._check_id(scenario.id)
        self.add_record(write_scenario_audio(self.folder, scenario, self.audio_format))

    def add_record(self, record: dict[str, Any]) -> None:
        """Adds a line whose audio is already in place (written by a worker process)."""
        self._check_id(record["id"])
        self._lines.write(json.dumps(record) + "\n")
        self._ids.add(record["id"])
        self.count += 1

    def _check_id(self, scenario_id: str) -> None:
        if scenario_id in self._ids:
            raise ValueError(
                f"{self.folder / MANIFEST_NAME}: a second scenario with id {scenario_id!r}; "
                "ids must be unique"
            )

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stack.__exit__(exc_type, exc, tb)


def write_manifest(folder: str | Path, scenarios: Iterable[Scenario]) -> Path:
    """Writes scenarios as a manifest folder and returns the manifest's path."""
    with ManifestWriter(folder) as writer:
        for scenario in scenarios:
            writer.add(scenario)
    return Path(folder) / MANIFEST_NAME
