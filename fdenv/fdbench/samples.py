"""Full-Duplex-Bench v1 folders as fdenv scenarios, so that a policy trains or is evaluated on
the benchmark's real human speech under the benchmark's own labels.

A benchmark folder holds one sample folder per example (``<task>/<id>/``, at any depth) with the
user channel ``input.wav`` (any sample rate; resampled to 24 kHz, the file's rate kept in
``source["original_sample_rate"]``) and one label file that names the task:

- ``pause.json`` -> ``PauseHandling``: every labelled interval is a pause (``pauses``);
- ``turn_taking.json`` -> ``TurnTaking``: ``turn_end`` is the START of the first label's
  interval, the time the benchmark measures latency from
  (:func:`fdenv.fdbench.metrics.read_turn_end`);
- ``interrupt.json`` -> ``UserInterruption``: ``interruption`` is the label's interval, and its
  ``interrupt`` text becomes the user's transcript over that interval (the ``context`` text,
  whose timing the file does not give, is kept in ``source``).

Choices: ``user_speech``, which every axis needs and the benchmark does not label, is Silero VAD
on the input (the benchmark's own VAD). ``turn_end`` of an interruption sample (the end of the
user's first utterance) is not in the file: it is the end of the last VAD segment that ends
before the interruption starts (unset when there is none; the interruption reward does not use
it). Backchannel samples carry no label file (their ground truth is a distribution over time
in ``icc_gt_distribution.json``, not backchannel moments) and are skipped with that reason, as
is every sample whose audio or labels are bad; ``transcription.json`` is not read (it does not
say which speaker is the user).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from fdenv.audio.io import load_mono
from fdenv.audio.vad import SileroVAD
from fdenv.fdbench.metrics import read_interruption, read_label_intervals, read_turn_end
from fdenv.manifest import ManifestWriter, writing_set
from fdenv.registration import get_axis
from fdenv.scenario import Scenario, Utterance

INPUT_NAME = "input.wav"
OUTPUT_WAV = "output.wav"
OUTPUT_JSON = "output.json"
LABEL_AXES = {
    "pause.json": "PauseHandling",
    "turn_taking.json": "TurnTaking",
    "interrupt.json": "UserInterruption",
}
"""Label file -> the axis whose scenarios the sample becomes."""


@dataclass(frozen=True)
class Sample:
    """One sample folder: where it is, its id (its path under the benchmark folder) and its
    label file (``None`` for samples without one, such as backchannel samples, or with several).

    ``problem`` says why the sample cannot be imported or scored (several label files), so
    that one ambiguous folder is skipped with its reason instead of aborting the whole folder.
    """

    folder: Path
    name: str
    label_file: Path | None
    problem: str | None = None

    @property
    def input(self) -> Path:
        return self.folder / INPUT_NAME

    @property
    def axis(self) -> str | None:
        return None if self.label_file is None else LABEL_AXES[self.label_file.name]


def find_samples(root: str | Path, needs_input: bool = True) -> list[Sample]:
    """Every folder under ``root`` (``root`` included) that holds an ``input.wav``, sorted.

    ``needs_input=False`` also takes a folder with a label file or an ``output.json`` and no
    ``input.wav``: scoring reads only the output files and the label file, as the official
    scripts do, so another system's output folders need not carry the inputs. Importing and
    exporting play the input, so they keep the default.

    A folder with more than one label file is ambiguous: its sample carries that ``problem``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: Full-Duplex-Bench folder does not exist")
    markers = [INPUT_NAME] if needs_input else [INPUT_NAME, OUTPUT_JSON, *LABEL_AXES]
    samples = []
    for folder in sorted({path.parent for name in markers for path in root.rglob(name)}):
        labels = [folder / name for name in LABEL_AXES if (folder / name).is_file()]
        relative = folder.relative_to(root)
        name = "-".join(relative.parts) if relative.parts else folder.name
        if len(labels) > 1:
            problem = f"has {', '.join(p.name for p in labels)}; a sample has one label file"
            samples.append(Sample(folder, name, None, problem))
        else:
            samples.append(Sample(folder, name, labels[0] if labels else None))
    return samples


def sample_scenario(sample: Sample, vad: SileroVAD | None = None) -> Scenario:
    """The scenario of a labelled sample (validated against its axis); ``ValueError`` or
    ``FileNotFoundError`` naming the file for bad audio or labels."""
    if sample.problem is not None:
        raise ValueError(f"{sample.folder}: {sample.problem}")
    if sample.label_file is None:
        raise ValueError(
            f"{sample.folder}: no label file ({', '.join(LABEL_AXES)}); backchannel samples "
            "have no backchannel moments to import"
        )
    audio, rate = load_mono(sample.input)
    scenario = Scenario(
        id=f"fdbench-{sample.name}",
        axis=str(sample.axis),
        audio=audio,
        user_speech=(vad or SileroVAD()).speech_intervals(audio),
        source={
            "kind": "fdbench",
            "benchmark": "Full-Duplex-Bench v1",
            "sample": sample.name,
            "label_file": sample.label_file.name,
            "original_sample_rate": rate,
            "user_speech": "silero-vad",
        },
    )
    if sample.label_file.name == "pause.json":
        scenario.pauses = read_label_intervals(sample.label_file)
    elif sample.label_file.name == "turn_taking.json":
        scenario.turn_end = read_turn_end(sample.label_file)
    else:
        label = read_interruption(sample.label_file)
        scenario.interruption = label.interval
        before = [i.end for i in scenario.user_speech if i.end <= label.interval.start]
        scenario.turn_end = max(before, default=None)
        scenario.transcripts = [Utterance("user", label.interrupt, *label.interval)]
        scenario.source["context"] = label.context
    get_axis(scenario.axis).validate(scenario)
    return scenario


@dataclass
class ImportResult:
    """The scenarios imported, and each skipped sample folder with its reason."""

    scenarios: list[Scenario] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def import_fdbench(root: str | Path) -> ImportResult:
    """The labelled samples under ``root`` as scenarios; bad or unlabelled ones are skipped, and
    so are samples whose ids collide (``a-b/1`` and ``a/b-1`` are both ``fdbench-a-b-1``)."""
    result = ImportResult()
    vad = SileroVAD()
    samples = find_samples(root)
    folders: dict[str, list[Path]] = {}
    for sample in samples:
        folders.setdefault(sample.name, []).append(sample.folder)
    for sample in samples:
        twins = [str(f) for f in folders[sample.name] if f != sample.folder]
        if twins:
            reason = f"its id fdbench-{sample.name} is also that of {', '.join(twins)}"
            result.skipped.append((str(sample.folder), reason))
            continue
        try:
            result.scenarios.append(sample_scenario(sample, vad))
        except (ValueError, FileNotFoundError) as err:
            result.skipped.append((str(sample.folder), str(err)))
    return result


def import_command(args: argparse.Namespace) -> int:
    """``fdenv-data import-fdbench``: writes the imported scenarios as a manifest folder."""
    result = import_fdbench(args.src)
    for folder, reason in result.skipped:
        print(f"skipped {folder}: {reason}")
    if not result.scenarios:
        print(f"fdenv-data: no labelled Full-Duplex-Bench samples under {args.src}")
        return 1
    claim = writing_set(args.out, "fdbench", args.overwrite)
    with claim, ManifestWriter(args.out, args.format) as writer:
        for scenario in result.scenarios:
            writer.add(scenario)
    axes = sorted({s.axis for s in result.scenarios})
    print(
        f"imported {writer.count} scenarios ({', '.join(axes)}), skipped "
        f"{len(result.skipped)}, to {Path(args.out) / 'manifest.jsonl'}"
    )
    return 0
