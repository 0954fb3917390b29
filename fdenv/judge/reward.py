"""The LLM-judge reward term: transcribe an episode's exchange and have a judge score the reply.

No ASR is needed for the usual case. The user's side comes from the scenario's timed
transcripts (synthetic scenarios carry them by construction, mined ones from the corpus); the
model's side is its own text stream (Moshi's inner monologue), decoded with its tokenizer. An
agent that makes audio without text can pass an ``asr`` hook instead.

What is judged is the axis' business: :meth:`fdenv.axes.Axis.judged_exchange` names the
user's turn and the time the reply starts (the paper applies R_llm to ``TurnTaking``, whose
turn is the one that ends at ``turn_end``, and ``UserInterruption``, whose turn is the
interruption; see their methods). The reply is what the model says from the frame in which that
time falls to the end of the scenario; an axis without the method cannot be judged.

The context is every utterance, user or partner, that starts before the turn does, in time
order, one ``User: ...`` / ``Partner: ...`` line each; partner lines are what the other side of
the source conversation said, the role the model plays. Partner speech during or after the turn
(backchannels, the real answer) is left out. Words the model said before the reply starts are
not shown: speaking over the user is the timing reward's business.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fdenv.axes import Axis, JudgedExchange, TurnTaking, UserInterruption
from fdenv.constants import EPAD_ID, FRAME_S, PAD_ID, SAMPLE_RATE
from fdenv.episode import Episode
from fdenv.judge.client import Judge, JudgeRequest
from fdenv.scenario import Scenario

logger = logging.getLogger(__name__)

TERM = "llm"
"""The reward term's name in ``Rollout.reward_terms``."""
JUDGED_AXES: tuple[Axis, ...] = (TurnTaking(), UserInterruption())
"""The axes the paper judges (any axis with :meth:`~fdenv.axes.Axis.judged_exchange` can be)."""
SPEAKERS = {"user": "User", "partner": "Partner"}

AsrHook = Callable[[np.ndarray, int], str]
"""Transcribes mono float32 audio at the given sample rate (for agents without a text stream)."""


class TextDecoder(Protocol):
    """What is needed of a tokenizer (``sentencepiece.SentencePieceProcessor`` fits)."""

    def decode(self, ids: list[int]) -> str: ...

    def vocab_size(self) -> int: ...


def user_side(scenario: Scenario, exchange: JudgedExchange) -> tuple[str, str] | None:
    """``(context, user turn)`` as text, or ``None`` if the transcripts miss the turn."""
    turn = exchange.user_turn
    if not turn:
        return None
    earlier = sorted(
        (u for u in scenario.transcripts if u.start < turn[0].start),
        key=lambda u: u.start,
    )
    context = "\n".join(f"{SPEAKERS.get(u.speaker, u.speaker)}: {u.text}" for u in earlier)
    return context, " ".join(u.text for u in turn)


def response_from_tokens(episode: Episode, start_s: float, tokenizer: TextDecoder) -> str:
    """The model's text from the frame containing ``start_s`` to the end of the scenario."""
    tokens = np.asarray(episode.text_tokens)
    ends = (np.arange(1, len(tokens) + 1)) * FRAME_S - episode.lead_in_s
    starts = ends - FRAME_S
    keep = (ends > start_s + 1e-9) & (starts < episode.scenario.duration - 1e-9)
    ids = tokens[keep & (tokens != PAD_ID) & (tokens != EPAD_ID)]
    bad = ids[(ids < 0) | (ids >= tokenizer.vocab_size())]
    if bad.size:
        raise ValueError(
            f"scenario {episode.scenario.id!r}: text token {int(bad[0])} outside the "
            f"tokenizer's vocabulary [0, {tokenizer.vocab_size()})"
        )
    return tokenizer.decode([int(i) for i in ids]).strip()


def response_audio(episode: Episode, start_s: float) -> np.ndarray:
    """The model's audio from ``start_s`` to the end of the scenario."""
    if episode.agent_audio is None:
        raise ValueError(
            f"scenario {episode.scenario.id!r}: the episode has no agent audio to transcribe "
            "(use a voice that makes audio, or judge the text tokens)"
        )
    first = round((episode.lead_in_s + max(start_s, 0.0)) * SAMPLE_RATE)
    last = round((episode.lead_in_s + episode.scenario.duration) * SAMPLE_RATE)
    return episode.agent_audio[first:last]


@dataclass(frozen=True)
class JudgeTerms:
    """The judge's reward term for a batch of episodes, and what happened on the way.

    ``scores [B]`` is NaN where there is no score: an axis not judged, transcripts that miss the
    user's turn (``untranscribed``), a failed judge request or ASR call (``failed``). A silent
    reply gets ``silence_score`` without a request (``silent``).
    """

    scores: np.ndarray
    failed: int
    untranscribed: int
    silent: int

    def as_dict(self, prefix: str = "llm_") -> dict[str, int | float | None]:
        """Numbers for a log line (``llm_mean`` is NaN-free: ``None`` when nothing scored)."""
        scored = self.scores[~np.isnan(self.scores)]
        return {
            f"{prefix}scored": int(scored.size),
            f"{prefix}failed": self.failed,
            f"{prefix}untranscribed": self.untranscribed,
            f"{prefix}silent": self.silent,
            f"{prefix}mean": float(scored.mean()) if scored.size else None,
        }


def judge_terms(
    judge: Judge,
    episodes: Sequence[Episode],
    tokenizer: TextDecoder | None = None,
    *,
    axes: Sequence[Axis] = JUDGED_AXES,
    asr: AsrHook | None = None,
    silence_score: float | None = 0.0,
) -> JudgeTerms:
    """Scores the reply of every episode on ``axes`` with ``judge``, in one batch.

    Episodes are matched to ``axes`` by name; the others are not judged. What is judged is each
    axis' :meth:`~fdenv.axes.Axis.judged_exchange` (``NotImplementedError`` for an axis that
    does not define it).
    The reply is decoded from the episode's text tokens with ``tokenizer``, or transcribed from
    its audio with ``asr`` when given. A reply without words gets ``silence_score`` (every rubric
    here gives silence its lowest grade) without asking the judge; ``None`` asks anyway, and NaN
    leaves silent replies unscored (as FD-Bench judges only replies that take the turn). Neither
    a failing judge nor a failing ASR hook raises: the episode's score is NaN and counted.
    Configuration errors raise ``ValueError``.
    """
    if tokenizer is None and asr is None:
        raise ValueError("judge_terms needs a tokenizer (text tokens) or an asr hook (audio)")
    scores = np.full(len(episodes), np.nan)
    failed = untranscribed = silent = 0
    pending: list[tuple[int, JudgeRequest]] = []
    by_name = {axis.name: axis for axis in axes}
    for index, episode in enumerate(episodes):
        if episode.axis not in by_name:
            continue
        exchange = by_name[episode.axis].judged_exchange(episode.scenario)
        side = user_side(episode.scenario, exchange)
        if side is None:
            untranscribed += 1
            continue
        start = exchange.reply_start
        if asr is None:
            assert tokenizer is not None
            response = response_from_tokens(episode, start, tokenizer)
        else:
            audio = response_audio(episode, start)
            try:
                response = asr(audio, SAMPLE_RATE).strip()
            except Exception as error:  # an ASR hiccup costs this rollout's term, not the run
                logger.warning("judge: ASR failed on %s: %r", episode.scenario.id, error)
                failed += 1
                continue
        if not response and silence_score is not None:
            scores[index] = silence_score
            silent += 1
            continue
        pending.append((index, JudgeRequest(*side, response)))
    results = _ask(judge, [r for _, r in pending])
    for (index, _), score in zip(pending, results, strict=True):
        if score is None or not np.isfinite(score):
            failed += 1
        else:
            scores[index] = score
    return JudgeTerms(scores, failed, untranscribed, silent)


def _ask(judge: Judge, requests: list[JudgeRequest]) -> list[float | None]:
    """``judge.score`` that turns an exception into failed requests: a judge written against
    the protocol without its no-raise promise must not end a training run either."""
    if not requests:
        return []
    try:
        results = judge.score(requests)
    except Exception as error:
        logger.warning("judge: score() raised %r; %d requests failed", error, len(requests))
        return [None] * len(requests)
    if len(results) != len(requests):
        raise ValueError(f"the judge returned {len(results)} scores for {len(requests)} requests")
    return results
