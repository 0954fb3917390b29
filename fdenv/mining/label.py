"""Pass 1 of mining: a conversation's speech intervals, utterances and candidate segments."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fdenv.audio.vad import SILERO_RATE, BatchedSileroVAD, WebRTCVAD
from fdenv.corpora import Conversation, CorpusItem, CorpusReader
from fdenv.mining.config import MiningConfig
from fdenv.registration import get_axis
from fdenv.segments import ConversationLabels, MiningRules, Segment
from fdenv.timeline import Interval, as_intervals


def conversation_ipus(
    conversation: Conversation, vad: str = "auto", fallback_vad: str = "silero"
) -> tuple[tuple[list[Interval], list[Interval]], list[str]]:
    """Each channel's speech intervals and where they came from (``corpus`` or a backend).

    Channels without corpus VAD (or all, when ``vad`` names a backend) are read whole at
    16 kHz and run through the backend in one batched call.
    """
    backend_name = fallback_vad if vad == "auto" else vad
    ipus: list[list[Interval] | None] = [
        conversation.vad[c] if vad == "auto" else None for c in (0, 1)
    ]
    sources = ["corpus" if v is not None else backend_name for v in ipus]
    missing = [c for c in (0, 1) if ipus[c] is None]
    if missing:
        # soxr: this audio only feeds the VAD, and resampling was a third of labelling
        audio = conversation.read(0.0, conversation.duration, SILERO_RATE, method="soxr")
        backend = BatchedSileroVAD() if backend_name == "silero" else WebRTCVAD()
        found = backend.speech_intervals_batch([audio[c] for c in missing])
        for channel, intervals in zip(missing, found, strict=True):
            ipus[channel] = intervals
    return (ipus[0] or [], ipus[1] or []), sources


def mine_segments(
    labels: ConversationLabels, axes: Iterable[str], rules: MiningRules
) -> list[Segment]:
    """Every axis' segments with each channel as the user, in a fixed order."""
    segments = []
    for name in axes:
        axis = get_axis(name)
        for user in (0, 1):
            segments.extend(axis.mine(labels, user, rules))
    return segments


def segment_id(conversation_id: str, segment: Segment) -> str:
    return (
        f"{conversation_id}-{segment.axis}-u{segment.user}-{round(segment.window.start * 1000):08d}"
    )


def segment_to_json(segment: Segment, sid: str) -> dict[str, Any]:
    return {
        "id": sid,
        "axis": segment.axis,
        "user": segment.user,
        "window": list(segment.window),
        "pauses": [list(i) for i in segment.pauses],
        "turn_end": segment.turn_end,
        "backchannels": [list(i) for i in segment.backchannels],
        "interruption": None if segment.interruption is None else list(segment.interruption),
        "evidence": segment.evidence,
    }


def segment_from_json(record: dict[str, Any]) -> Segment:
    interruption = record["interruption"]
    return Segment(
        axis=record["axis"],
        user=int(record["user"]),
        window=Interval(*record["window"]),
        pauses=tuple(as_intervals(record["pauses"])),
        turn_end=record["turn_end"],
        backchannels=tuple(as_intervals(record["backchannels"])),
        interruption=None if interruption is None else Interval(*interruption),
        evidence=record["evidence"],
    )


def label_conversation(reader: CorpusReader, item: CorpusItem, config: MiningConfig) -> dict:
    """Pass 1 for one conversation: its label record (``status`` ``ok``) or raises SkipItem."""
    conversation = reader.open(item)
    ipus, sources = conversation_ipus(conversation, config.vad, config.fallback_vad)
    labels = ConversationLabels.from_ipus(ipus, conversation.duration, config.rules.max_pause_s)
    notes = dict(conversation.notes)
    candidates: dict[str, dict] = {}
    for segment in mine_segments(labels, config.axes, config.rules):
        sid = segment_id(item.id, segment)
        if sid in candidates:  # two segments of one axis and user starting in the same ms
            notes["duplicate_segment_id"] = notes.get("duplicate_segment_id", 0) + 1
            continue
        candidates[sid] = segment_to_json(segment, sid) | {"conversation": item.id}
    return {
        "id": item.id,
        "key": config.label_key(),
        "status": "ok",
        "duration_s": conversation.duration,
        "vad": sources,
        "ipus": [[list(i) for i in channel.ipus] for channel in labels.channels],
        "notes": notes,
        "candidates": list(candidates.values()),
    }
