"""Mining axis scenarios from two-channel conversations, at corpus scale and resumably.

Two passes over a corpus (:func:`mine_corpus`):

1. **Label** each conversation (in a process pool): speech intervals from the corpus's VAD, or
   from a VAD run where it has none; utterances by the 1 s rule; every axis' candidate segments
   with both speakers tried as the user (:meth:`fdenv.axes.Axis.mine`). Each conversation's
   result is written to ``state/labels/<id>.json`` as soon as it is done, so an interrupted run
   resumes where it stopped and never reruns a VAD.
2. **Select and cut**: per axis, the ``max_per_axis`` candidates with the smallest
   ``blake2b(seed, segment id)`` are kept, a uniform sample that depends only on the seed and
   the candidates (not on worker timing or resume points). Each conversation with kept
   segments is read once more, span by span, and its scenarios (user channel + labels +
   transcripts of both sides) and contexts (the preceding recording, both channels) are
   written, recorded in ``state/cut/<id>.json``. The manifest is rebuilt from those records
   and appears atomically at the end.

A conversation that cannot be used is skipped with a reason (:class:`fdenv.corpora.SkipItem`),
counted in ``summary.json``, and never leaves files behind. Conversation ids become file names
under ``out``, so an id that two listed conversations share (``x.wav`` beside ``x.flac``) skips
both (``duplicate_id``: their audio and labels would be mixed), and one that is not a plain
file name skips its conversation (``bad_id``). A run holds ``out``'s lock, refuses an ``out``
inside the corpus (the next run would mine its own outputs) or holding another kind of set, and
touches no path that a state record places outside ``out``.
"""

from __future__ import annotations

import json
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fdenv.atomic import MAX_NAME, atomic_path, inside, name_problem
from fdenv.corpora import CorpusItem, CorpusReader, SkipItem
from fdenv.manifest import MANIFEST_NAME, ManifestWriter, writing_set
from fdenv.mining.config import MiningConfig, digest
from fdenv.mining.cut import cut_conversation, files_of
from fdenv.mining.label import label_conversation

SEGMENT_ID_ROOM = 60
"""Characters a segment id adds to its conversation's id (axis, user, start time)."""


def unambiguous(items: Iterable[CorpusItem]) -> tuple[list[CorpusItem], list[tuple[str, str]]]:
    """The items whose ids can name their files under ``out``, and ``(reason, detail)`` for each
    one left out: ``bad_id`` (not a plain file name) or ``duplicate_id`` (an id, compared
    without case as some file systems do, that another item has: both are left out)."""
    items = list(items)
    twins: dict[str, list[CorpusItem]] = defaultdict(list)
    for item in items:
        twins[item.id.casefold()].append(item)
    kept, dropped = [], []
    for item in items:
        problem = name_problem(item.id, MAX_NAME - SEGMENT_ID_ROOM)
        others = [f for twin in twins[item.id.casefold()] if twin is not item for f in twin.files]
        if problem is not None:
            dropped.append(("bad_id", f"{', '.join(item.files)}: conversation {problem}"))
        elif others:
            dropped.append(
                (
                    "duplicate_id",
                    f"{item.id}: {', '.join(item.files)} and {', '.join(others)} would be one "
                    "conversation; neither is mined (rename one)",
                )
            )
        else:
            kept.append(item)
    return kept, dropped


def select(candidates: Iterable[dict], max_per_axis: int, seed: int) -> dict[str, list[dict]]:
    """Per axis, the ``max_per_axis`` candidates of smallest ``blake2b(seed, id)`` (uniform)."""
    by_axis: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for candidate in candidates:
        rank = int(digest([seed, candidate["id"]]), 16)
        by_axis[candidate["axis"]].append((rank, candidate))
    return {
        axis: [c for _, c in sorted(ranked, key=lambda rc: rc[0])[:max_per_axis]]
        for axis, ranked in by_axis.items()
    }


@dataclass
class _Job:
    """One conversation's work for a pool worker (picklable)."""

    reader: CorpusReader
    item: CorpusItem
    config: MiningConfig
    state: Path
    out: Path
    chosen: list[dict] = field(default_factory=list)


def _run_label(job: _Job) -> dict:
    return _guarded(job, lambda: label_conversation(job.reader, job.item, job.config), "labels")


def _run_cut(job: _Job) -> dict:
    def work() -> dict:
        record = _read_json(job.state / "labels" / f"{job.item.id}.json")
        if record is None:
            raise SkipItem("missing_labels", f"{job.state}/labels/{job.item.id}.json is gone")
        return cut_conversation(job.reader, job.item, record, job.chosen, job.out, job.config)

    return _guarded(job, work, "cut")


def _guarded(job: _Job, work: Callable[[], dict], stage: str) -> dict:
    """Runs one conversation's work; a skip is recorded (final), an unexpected error is not
    (the next run retries it). Either way the run goes on."""
    try:
        record = work()
    except SkipItem as skip:
        record = {
            "id": job.item.id,
            "status": "skipped",
            "reason": skip.reason,
            "detail": skip.detail,
        }
    except Exception as err:  # a data pipeline must outlive one bad conversation
        detail = "".join(traceback.format_exception_only(type(err), err)).strip()
        return {
            "id": job.item.id,
            "status": "error",
            "reason": f"error_{type(err).__name__}",
            "detail": f"{job.item.files}: {detail}",
        }
    if stage == "labels":
        record.setdefault("key", job.config.label_key())
    else:  # a skipped cut stays final for this selection
        record.setdefault("key", job.config.cut_key())
        record.setdefault("ids", [c["id"] for c in job.chosen])
    _write_json(job.state / stage / f"{job.item.id}.json", record)
    return record


def _slim(record: dict) -> dict:
    """A label record without its IPUs, which only the cutting worker needs (from disk):
    the parent holds one record per conversation of the corpus."""
    return {k: v for k, v in record.items() if k != "ipus"}


def _write_json(path: Path, record: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record), encoding="utf-8")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _contained_files(cut_record: dict, out: Path) -> list[Path] | None:
    """The files a cut record lists, resolved under ``out``; ``None`` if one lies outside it
    or the record is not one the miner writes."""
    try:
        names = files_of(cut_record)
    except (KeyError, TypeError, AttributeError):
        return None
    paths = [inside(out, name) for name in names]
    return None if None in paths else paths  # type: ignore[return-value]


def _pool_map(
    fn: Callable[[_Job], dict], jobs: list[_Job], workers: int, desc: str, progress: bool
) -> Iterator[dict]:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc=desc, unit="conv", disable=not progress or not jobs)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                yield fn(job)
                bar.update()
        else:
            pool = ProcessPoolExecutor(workers)
            try:
                for result in pool.map(fn, jobs, chunksize=1):
                    yield result
                    bar.update()
            finally:  # on an interrupt, finish the running conversations, start no more
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()


def mine_corpus(
    reader: CorpusReader,
    out: str | Path,
    config: MiningConfig | None = None,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Mines ``reader``'s corpus into ``out`` (manifest, audio/, context/, state/, summary.json).

    Rerunning the same command resumes: conversations with a label or cut record made under
    the same settings are not redone. Returns the summary (also written to ``summary.json``).
    ``ValueError`` for an ``out`` inside the corpus root; :class:`fdenv.atomic.FolderLocked`
    while another run writes ``out``; ``FileExistsError`` when ``out`` holds another kind of
    scenario set, unless ``overwrite``.
    """
    out = Path(out)
    root = reader.root.resolve()
    if out.resolve().is_relative_to(root):
        raise ValueError(
            f"output folder {out} lies inside the corpus root {reader.root}: the next run would "
            "mine its own outputs as conversations; choose an output folder outside it"
        )
    with writing_set(out, "mined", overwrite):
        return _mine(reader, out, config or MiningConfig(), workers, progress)


def _mine(
    reader: CorpusReader, out: Path, config: MiningConfig, workers: int, progress: bool
) -> dict[str, Any]:
    started = time.perf_counter()
    state = out / "state"
    scan = reader.scan()
    skipped: Counter[str] = Counter(reason for _, reason in scan.skipped)
    errors: list[str] = [f"{what}: {reason}" for what, reason in scan.skipped]
    scan.items, dropped = unambiguous(scan.items)
    skipped.update(reason for reason, _ in dropped)
    errors += [detail for _, detail in dropped]

    label_key = config.label_key()
    labels: dict[str, dict] = {}
    todo = []
    for item in scan.items:
        record = _read_json(state / "labels" / f"{item.id}.json")
        if record is not None and record.get("key") == label_key:
            labels[item.id] = _slim(record)
        else:
            todo.append(_Job(reader, item, config, state, out))
    resumed = len(labels)
    for record in _pool_map(_run_label, todo, workers, "labelling", progress):
        labels[record["id"]] = _slim(record)
    labelled = time.perf_counter()
    for record in labels.values():
        if record["status"] != "ok":
            skipped[record["reason"]] += 1
            errors.append(f"{record['id']}: {record['detail']}")

    ok = [labels[i.id] for i in scan.items if labels.get(i.id, {}).get("status") == "ok"]
    chosen = select((c for r in ok for c in r["candidates"]), config.max_per_axis, config.seed)
    by_conversation: dict[str, list[dict]] = defaultdict(list)
    for axis_choice in chosen.values():
        for candidate in axis_choice:
            by_conversation[candidate["conversation"]].append(candidate)
    cut_key = config.cut_key()
    cuts: dict[str, dict] = {}
    refused: list[str] = []
    jobs = []
    items = {i.id: i for i in scan.items}
    for item in scan.items:
        wanted = sorted(by_conversation.get(item.id, []), key=lambda c: c["id"])
        path = state / "cut" / f"{item.id}.json"
        previous = _read_json(path)
        files = [] if previous is None else _contained_files(previous, out)
        if files is None:  # a tampered record: its paths are never touched, it is redone
            refused.append(f"{path}: names a file outside {out} (or is malformed); ignored")
            previous, files = None, []
            path.unlink(missing_ok=True)
        ids = [c["id"] for c in wanted]
        if previous is not None and previous.get("key") == cut_key and previous.get("ids") == ids:
            cuts[item.id] = previous
            continue
        for file in files:  # settings or selection changed: drop the old files
            file.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        if wanted:
            jobs.append(_Job(reader, items[item.id], config, state, out, wanted))
    for record in _pool_map(_run_cut, jobs, workers, "cutting", progress):
        cuts[record["id"]] = record
    cut = time.perf_counter()
    for record in cuts.values():
        if record.get("status") in ("skipped", "error"):
            skipped[record["reason"]] += 1
            errors.append(f"{record['id']}: {record['detail']}")

    segments: Counter[str] = Counter()
    used = 0
    with ManifestWriter(out, config.audio_format) as writer:
        for item in scan.items:
            records = cuts.get(item.id, {}).get("records", [])
            used += bool(records)
            for record in records:
                writer.add_record(record)
                segments[record["axis"]] += 1
    if not segments:
        (out / MANIFEST_NAME).unlink(missing_ok=True)  # an empty manifest cannot be loaded

    candidates = Counter(c["axis"] for r in ok for c in r["candidates"])
    defects: Counter[str] = Counter()
    vad_channels: Counter[str] = Counter()
    for record in ok:
        defects.update(record["notes"])
        vad_channels.update(record["vad"])
    summary = {
        "corpus": reader.name,
        "root": str(reader.root),
        "out": str(out),
        "manifest": str(out / MANIFEST_NAME) if segments else None,
        "hours_scanned": round(sum(r["duration_s"] for r in ok) / 3600, 6),
        "conversations_listed": len(scan.items),
        "conversations_labelled": len(ok),
        "conversations_resumed": resumed,
        "conversations_used": used,
        "candidates_per_axis": {a: candidates.get(a, 0) for a in config.axes},
        "segments_per_axis": {a: segments.get(a, 0) for a in config.axes},
        "max_per_axis": config.max_per_axis,
        "skipped_by_reason": dict(sorted(skipped.items())),
        "defects": dict(sorted(defects.items())),
        "vad_channels": dict(vad_channels),
        "elapsed_s": round(time.perf_counter() - started, 3),
        "label_s": round(labelled - started, 3),
        "cut_s": round(cut - labelled, 3),
        "scenarios_cut": sum(len(job.chosen) for job in jobs),
        "state_records_refused": len(refused),
        "skipped_examples": (refused + errors)[:50],
    }
    _write_json(out / "summary.json", summary)
    return summary
