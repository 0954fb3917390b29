"""Pass 2 of mining: a chosen segment becomes a scenario (and its context) on disk."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fdenv.atomic import name_problem
from fdenv.audio.acoustics import augment
from fdenv.audio.io import write_audio
from fdenv.constants import SAMPLE_RATE
from fdenv.corpora import Conversation, CorpusItem, CorpusReader, SkipItem
from fdenv.mining.config import MiningConfig, digest
from fdenv.mining.label import segment_from_json
from fdenv.registration import get_axis
from fdenv.scenario import ContextRef, Scenario, Utterance, Word
from fdenv.segments import ConversationLabels, Segment
from fdenv.timeline import Interval, as_intervals, clip


def build_scenario(
    conversation: Conversation,
    labels: ConversationLabels,
    segment: Segment,
    sid: str,
    audio: np.ndarray,
    vad_sources: list[str],
) -> Scenario:
    """The scenario of ``segment``: the user channel's window and labels in scenario time.

    ``audio`` is the user channel over the window at 24 kHz. Transcripts of both speakers that
    overlap the window are kept (partner lines as ``speaker="partner"``), words outside it
    dropped, times clipped to it.
    """
    offset = segment.window.start
    end = offset + audio.size / SAMPLE_RATE

    def local(intervals: Iterable[Interval]) -> list[Interval]:
        return [i.shift(-offset) for i in clip(intervals, offset, end)]

    user = segment.user
    source = {
        "kind": "mined",
        **conversation.source,
        "conversation": conversation.id,
        "user_channel": user,
        "window": [offset, end],
        "vad": vad_sources[user],
        "partner_vad": vad_sources[1 - user],
        "evidence": segment.evidence,
    }
    interruption = None
    if segment.interruption is not None:
        interruption = local([segment.interruption])[0]
    return Scenario(
        id=sid,
        axis=segment.axis,
        audio=audio,
        user_speech=local(labels.channels[user].ipus),
        pauses=local(segment.pauses),
        turn_end=None if segment.turn_end is None else segment.turn_end - offset,
        backchannels=local(segment.backchannels),
        interruption=interruption,
        transcripts=_transcripts(conversation, user, offset, end),
        source=source,
    )


def _transcripts(
    conversation: Conversation, user: int, start: float, end: float
) -> list[Utterance]:
    lines = []
    for channel in (0, 1):
        speaker = "user" if channel == user else "partner"
        for u in conversation.transcripts[channel]:
            if not (u.start < end and start < u.end):
                continue
            words = tuple(
                Word(w.text, w.start - start, w.end - start)
                for w in u.words
                if w.start >= start and w.end <= end
            )
            lines.append(
                Utterance(
                    speaker, u.text, max(u.start, start) - start, min(u.end, end) - start, words
                )
            )
    return sorted(lines, key=lambda u: (u.start, u.speaker))


def cut_conversation(
    reader: CorpusReader,
    item: CorpusItem,
    label_record: dict,
    chosen: list[dict],
    out: Path,
    config: MiningConfig,
) -> dict:
    """Pass 2 for one conversation: writes the chosen scenarios and contexts, returns the record.

    Everything is read and checked before the first file is written, so a conversation that
    fails half-way (a truncated file) leaves nothing behind.
    """
    conversation = reader.open(item)
    labels = ConversationLabels.from_ipus(
        (as_intervals(label_record["ipus"][0]), as_intervals(label_record["ipus"][1])),
        conversation.duration,
        config.rules.max_pause_s,
    )
    prepared = []
    for record in chosen:
        segment = segment_from_json(record)
        sid = record["id"]
        problem = name_problem(sid)
        if problem is not None:  # a tampered label record: its files would land elsewhere
            raise SkipItem("bad_id", f"{item.id}: segment {problem}")
        context_start = max(segment.window.start - config.context_s, 0.0)
        block = conversation.read(context_start, segment.window.end)
        context_n = round((segment.window.start - context_start) * SAMPLE_RATE)
        user = segment.user
        scenario = build_scenario(
            conversation, labels, segment, sid, block[user, context_n:], label_record["vad"]
        )
        if config.acoustics is not None:
            rng = np.random.default_rng([config.seed, int(digest(sid), 16)])
            scenario.audio, applied = augment(
                scenario.audio, scenario.user_speech, config.acoustics, rng
            )
            scenario.source["acoustics"] = applied
        context = block[[user, 1 - user], :context_n].T if context_n > 0 else None
        if context is not None:
            scenario.context = ContextRef(f"context/{sid}.flac", context_n / SAMPLE_RATE)
        get_axis(scenario.axis).validate(scenario)
        prepared.append((scenario, context))
    records = []
    for scenario, context in prepared:
        relative = f"audio/{scenario.id}.{config.audio_format}"
        write_audio(out / relative, scenario.audio)
        if context is not None:
            write_audio(out / scenario.context.audio, context)  # type: ignore[union-attr]
        records.append(scenario.labels_json() | {"audio": relative})
    return {
        "id": item.id,
        "key": config.cut_key(),
        "ids": [r["id"] for r in chosen],
        "records": records,
    }


def files_of(cut_record: dict) -> list[str]:
    files = []
    for record in cut_record.get("records", []):
        files.append(record["audio"])
        if record.get("context"):
            files.append(record["context"]["audio"])
    return files
