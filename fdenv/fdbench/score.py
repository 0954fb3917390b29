"""Score the model outputs of a Full-Duplex-Bench v1 folder with :mod:`fdenv.fdbench.metrics`,
as the official scripts score them, from the files they read: ``output.json`` (ASR word timings),
``output.wav`` (backchannel samples only, for Silero) and the sample's label file.

Any model's outputs can be scored this way (ours, written by :mod:`fdenv.fdbench.export`, or
another system's). A sample's task is its label file (:mod:`fdenv.fdbench.samples`); a
sample without one is a backchannel sample, scored against its entry in
``icc_gt_distribution.json`` (the entry named like the sample's folder).

No ``input.wav`` is read, as none of the official scripts reads one: a sample folder is one with
a label file or an ``output.json`` (:func:`fdenv.fdbench.samples.find_samples` with
``needs_input=False``), so another system's output folders score without the inputs. The
backchannel rules need no input either: the duration they divide by is the output's own, and
the ground truth is the ``icc_gt_distribution.json`` entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fdenv.fdbench.asr_json import read_asr_words
from fdenv.fdbench.metrics import (
    Mode,
    backchannel,
    backchannel_segments,
    pause_handling,
    read_icc_distributions,
    read_interruption,
    read_output_wav,
    read_turn_end,
    turn_taking,
    user_interruption,
)
from fdenv.fdbench.samples import OUTPUT_JSON, OUTPUT_WAV, Sample, find_samples

ICC_NAME = "icc_gt_distribution.json"


def _turn(tor: int, latency: float | None) -> dict[str, float]:
    return {"tor": float(tor), "latency": float("nan") if latency is None else latency}


def score_sample(
    sample: Sample, icc: dict[str, list[float]] | None, mode: Mode = "official"
) -> tuple[str, dict[str, float]]:
    """(axis, metrics) of one sample's output, named as :meth:`fdenv.axes.Axis.metrics` names
    them; ``ValueError``/``FileNotFoundError`` naming the file when something is missing."""
    if sample.problem is not None:  # several label files: which task it is, is unknown
        raise ValueError(f"{sample.folder}: {sample.problem}")
    words = read_asr_words(sample.folder / OUTPUT_JSON)
    label = sample.label_file
    if label is None:
        if icc is None or sample.folder.name not in icc:
            raise ValueError(
                f"{sample.folder}: no label file and no {ICC_NAME} entry "
                f"{sample.folder.name!r} to score it as a backchannel sample"
            )
        audio, rate = read_output_wav(sample.folder / OUTPUT_WAV)
        segments = backchannel_segments(audio, rate, mode)
        result = backchannel(segments, words, audio.size / rate, icc[sample.folder.name], mode)
        metrics = {"tor": float(result.tor), "frequency": result.frequency, "jsd": result.jsd}
        return "Backchannel", metrics
    if label.name == "pause.json":
        return "PauseHandling", {"tor": float(pause_handling(words).tor)}
    if label.name == "turn_taking.json":
        result = turn_taking(words, read_turn_end(label))
        return "TurnTaking", _turn(result.tor, result.latency)
    result = user_interruption(words, read_interruption(label).interval.end)
    return "UserInterruption", _turn(result.tor, result.latency)


@dataclass
class FolderScores:
    """Per-axis lists of (sample, metrics) in sample order, and skipped samples with reasons."""

    by_axis: dict[str, list[tuple[str, dict[str, float]]]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def score_folder(
    root: str | Path, icc_path: str | Path | None = None, mode: Mode = "official"
) -> FolderScores:
    """Scores every sample under ``root``; ``icc_path`` defaults to ``root``'s own
    ``icc_gt_distribution.json`` where there is one."""
    root = Path(root)
    if icc_path is None and (root / ICC_NAME).is_file():
        icc_path = root / ICC_NAME
    icc = None if icc_path is None else read_icc_distributions(icc_path)
    scores = FolderScores()
    for sample in find_samples(root, needs_input=False):
        try:
            axis, metrics = score_sample(sample, icc, mode)
        except (ValueError, FileNotFoundError) as err:
            scores.skipped.append((str(sample.folder), str(err)))
            continue
        scores.by_axis.setdefault(axis, []).append((sample.name, metrics))
    return scores
