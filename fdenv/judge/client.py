"""LLM judges of response quality: the paper's R_llm and Full-Duplex-Bench's relevance judge.

A judge reads a transcribed exchange (what came before, the user's turn, the model's reply) and
returns a score per exchange. Timing rewards cannot tell a prompt answer from prompt gibberish;
the paper (Ohashi et al. 2026, arXiv 2606.11167) adds this score on the turn-taking and
interruption axes, and reports that without it the quality of the answers drops most.

:class:`ChatCompletionsJudge` talks to any OpenAI-compatible ``/chat/completions`` server (vLLM,
llama.cpp, SGLang, a hosted API). It is built for a training loop: a failed request never
raises, it yields ``None`` and is counted by reason in :attr:`ChatCompletionsJudge.stats`, so a
flaky server costs a reward term, not a run.

HTTP client: ``httpx``. Its ``Client`` is documented thread-safe with a bounded connection pool,
its exceptions separate timeouts from connection failures, and timeouts are per phase. The
``openai`` package would add retries of its own, but hides which attempts failed and why, wants
an API key even for a local server, and is a larger dependency; the retry policy here is a loop
of a few lines with counters the training log can show. It comes with the ``judge`` extra and is
imported when a :class:`ChatCompletionsJudge` is made, so the rubrics, the :class:`Judge`
protocol and the reward term import without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from string import Formatter
from typing import Any, Protocol

from fdenv.atomic import atomic_path
from fdenv.optional import require

logger = logging.getLogger(__name__)

TEMPLATE_FIELDS = frozenset({"context", "user_turn", "response"})
NO_CONTEXT = "(nothing was said before this turn)"
NO_RESPONSE = "(no reply: the model stayed silent)"


@dataclass(frozen=True)
class JudgeRequest:
    """One exchange to rate, as plain text.

    Attributes:
        context: what was said before the user's turn, one ``Speaker: text`` line each
            (may be empty).
        user_turn: the user's turn the model responds to (an end of turn or an interruption).
        response: what the model said after it (empty when it stayed silent).
    """

    context: str
    user_turn: str
    response: str


class Judge(Protocol):
    """Anything that scores exchanges; ``None`` marks a request it could not score."""

    def score(self, requests: Sequence[JudgeRequest]) -> list[float | None]: ...


# ------------------------------------------------------------------------------------ rubrics


@dataclass(frozen=True)
class Rubric:
    """A scoring prompt: system ``instructions``, a user-message ``template`` with the fields
    ``{context}``, ``{user_turn}`` and ``{response}``, and the integer ``scores`` it allows."""

    name: str
    instructions: str
    template: str
    scores: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.scores or len(set(self.scores)) != len(self.scores):
            raise ValueError(f"rubric {self.name!r}: scores must be distinct, got {self.scores}")
        if any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in self.scores):
            raise ValueError(
                f"rubric {self.name!r}: scores must be non-negative integers, got {self.scores}"
            )
        try:
            fields = {f for _, f, _, _ in Formatter().parse(self.template) if f is not None}
        except ValueError as error:
            raise ValueError(f"rubric {self.name!r}: bad template: {error}") from None
        if fields != TEMPLATE_FIELDS:
            raise ValueError(
                f"rubric {self.name!r}: template fields must be exactly "
                f"{sorted(TEMPLATE_FIELDS)}, got {sorted(fields)}"
            )

    def messages(self, request: JudgeRequest) -> list[dict[str, str]]:
        """The chat messages for one exchange; empty context and silence are said in words."""
        text = self.template.format(
            context=request.context.strip() or NO_CONTEXT,
            user_turn=request.user_turn.strip(),
            response=request.response.strip() or NO_RESPONSE,
        )
        return [{"role": "system", "content": self.instructions}, {"role": "user", "content": text}]

    def parse(self, reply: str) -> int | None:
        """The score in ``reply``, or ``None`` if the reply is anything but a score.

        Accepted: one of the rubric's scores written as plain decimal digits (no sign, no
        leading zero), optionally surrounded by whitespace and followed by one period. Rejected:
        everything else, such as ``"Score: 2"``, ``"2/2"``, ``"2.0"``, ``"**2**"``, ``"1 or 2"``
        or a score outside the scale. A strict parser turns a rambling judge into counted
        failures instead of scores read out of its prose.
        """
        match = re.fullmatch(r"\s*(0|[1-9][0-9]*)\.?\s*", reply)
        if match is None:
            return None
        score = int(match.group(1))
        return score if score in self.scores else None


PAPER_RUBRIC = Rubric(
    name="paper",
    instructions=(
        "You grade one reply in a spoken conversation between a user and a voice assistant. "
        "Both sides were transcribed from speech, so expect missing punctuation and small "
        "recognition errors; do not grade the transcription.\n"
        "Grade only the assistant's reply to the user's last turn:\n"
        "2 = a natural reply that is specific to what the user just said and builds on it.\n"
        "1 = a reply that is loosely related or generic: it would fit many other turns, or "
        "only partly addresses this one.\n"
        "0 = no reply (silence), gibberish, an unnatural reply, or one unrelated to the turn.\n"
        "Answer with a single digit, 0, 1 or 2, and nothing else."
    ),
    template=(
        "Earlier in the conversation:\n{context}\n\n"
        "User's last turn:\n{user_turn}\n\n"
        "Assistant's reply:\n{response}\n\n"
        "Grade (0, 1 or 2):"
    ),
    scores=(0, 1, 2),
)
"""The paper's response-quality rubric (R_llm, 0-2), in this project's words."""

FDBENCH_RELEVANCE = Rubric(
    name="fdbench",
    instructions=(
        "You grade how relevant a voice assistant's reply is after the user interrupted it. "
        "Both sides were transcribed from speech; ignore transcription errors.\n"
        "Grade the reply to the interruption on this scale:\n"
        "5 = fully addresses what the user said when interrupting; coherent and fitting.\n"
        "4 = addresses it well, with a small gap or a slightly odd phrasing.\n"
        "3 = partly addresses it, or answers it only in general terms.\n"
        "2 = touches the topic but misses what the user asked or said.\n"
        "1 = barely connected to the interruption.\n"
        "0 = no reply, gibberish, or unrelated to the interruption.\n"
        "Answer with a single digit from 0 to 5 and nothing else."
    ),
    template=(
        "What the user said before:\n{context}\n\n"
        "The user's interruption:\n{user_turn}\n\n"
        "Assistant's reply after the interruption:\n{response}\n\n"
        "Grade (0 to 5):"
    ),
    scores=(0, 1, 2, 3, 4, 5),
)
"""Full-Duplex-Bench v1's interruption judge scale (relevance 0-5), in this project's words."""

RUBRICS: dict[str, Rubric] = {r.name: r for r in (PAPER_RUBRIC, FDBENCH_RELEVANCE)}


def load_rubric(spec: str) -> Rubric:
    """A rubric by name (``"paper"``, ``"fdbench"``) or from a JSON file with the fields
    ``instructions``, ``template``, ``scores`` and optionally ``name``."""
    if spec in RUBRICS:
        return RUBRICS[spec]
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"rubric {spec!r} is neither one of {sorted(RUBRICS)} nor a JSON file")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a JSON rubric: {error}") from None
    if not isinstance(record, dict) or not {"instructions", "template", "scores"} <= set(record):
        raise ValueError(f"{path}: a rubric needs 'instructions', 'template' and 'scores'")
    if not isinstance(record["scores"], list):
        raise ValueError(f"{path}: 'scores' must be a list of integers")
    return Rubric(
        name=str(record.get("name", path.stem)),
        instructions=str(record["instructions"]),
        template=str(record["template"]),
        scores=tuple(record["scores"]),
    )


# ------------------------------------------------------------------------- the HTTP judge


@dataclass
class JudgeStats:
    """Counters for the training log, cumulative over the judge's life.

    ``requests`` counts exchanges passed to :meth:`ChatCompletionsJudge.score`; identical ones in
    one call are asked once (``duplicates`` counts the rest). Each distinct exchange is either a
    ``cache_hits``, a ``scored`` or a failure (``failures`` by reason: ``timeout``,
    ``connection``, ``http_<status>``, ``malformed`` for a body that is not a chat completion,
    ``unparsable`` for a reply that is not a score). ``http_calls`` counts attempts, ``retries``
    the attempts after a first.
    """

    requests: int = 0
    duplicates: int = 0
    cache_hits: int = 0
    scored: int = 0
    http_calls: int = 0
    retries: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    def as_dict(self, prefix: str = "judge_") -> dict[str, int]:
        """Flat numbers for a JSON log line: ``judge_requests``, ..., ``judge_failures`` (all
        reasons) and ``judge_failures_<reason>``."""
        out = {
            f"{prefix}{name}": getattr(self, name)
            for name in ("requests", "duplicates", "cache_hits", "scored", "http_calls", "retries")
        }
        out[f"{prefix}failures"] = sum(self.failures.values())
        out |= {f"{prefix}failures_{r}": n for r, n in sorted(self.failures.items())}
        return out


class _Failure(Exception):
    """One failed attempt; ``retry`` says whether another attempt may help."""

    def __init__(self, reason: str, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


MAX_BODY_BYTES = 1 << 20
"""A chat completion of a few tokens takes a few kB; a larger body is not one, and is not read
to its end (``malformed``)."""

RETRY_STATUS = frozenset({408, 429})
"""Statuses besides 5xx that are worth another attempt (request timeout, rate limit)."""


class ChatCompletionsJudge:
    """A :class:`Judge` backed by an OpenAI-compatible chat-completions server.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1`` (``/chat/completions`` is
            appended).
        model: the served model's name.
        api_key_env: name of the environment variable holding the API key, sent as a bearer
            token; ``None`` sends no key (local servers need none). The key is read once here
            and never logged, shown by ``repr``, put in exceptions or in the cache key.
        rubric: the scoring prompt and scale (default: the paper's 0-2).
        max_concurrency: requests in flight at once.
        timeout_s: the wall-clock limit of one attempt, from sending the request to the last
            byte of the reply (also httpx's limit per phase: connecting, each read). A server
            that trickles its reply byte by byte, which no per-read timeout ends, is cut off
            at this deadline and counted as a ``timeout``.
        max_retries: further attempts after a timeout, a connection failure, a 5xx, 408 or 429.
            Other statuses and replies that are not a score are not retried: at temperature 0
            the same request gives the same answer.
        backoff_s, backoff_max_s: the wait before retry ``k`` (from 0) is
            ``min(backoff_max_s, backoff_s * 2**k)``, times a random factor in [0.5, 1] so that
            parallel requests do not retry in lockstep.
        cache_dir: where scores are cached on disk, keyed by a hash of the URL, model, messages
            and sampling parameters; ``None`` disables the cache. Only successes are cached.
        temperature, max_tokens: sampling parameters (temperature 0: a repeatable grade; a
            score needs few tokens, and reasoning output would fail the strict parser).
        extra_body: further JSON fields for the request, for server-specific options (e.g.
            vLLM's ``{"chat_template_kwargs": {"enable_thinking": False}}``); part of the cache
            key.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        rubric: Rubric = PAPER_RUBRIC,
        max_concurrency: int = 8,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        cache_dir: str | Path | None = None,
        temperature: float = 0.0,
        max_tokens: int = 8,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        httpx = require("httpx", "ChatCompletionsJudge needs httpx", "judge")
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if not model:
            raise ValueError("model must name the served model")
        checks = {
            "max_concurrency": (max_concurrency, max_concurrency >= 1, ">= 1"),
            "timeout_s": (timeout_s, timeout_s > 0, "> 0"),
            "max_retries": (max_retries, max_retries >= 0, ">= 0"),
            "backoff_s": (backoff_s, backoff_s >= 0, ">= 0"),
            "backoff_max_s": (backoff_max_s, backoff_max_s >= backoff_s, ">= backoff_s"),
            "temperature": (temperature, temperature >= 0, ">= 0"),
            "max_tokens": (max_tokens, max_tokens >= 1, ">= 1"),
        }
        for name, (value, ok, rule) in checks.items():
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {value}")
        headers = {"Content-Type": "application/json"}
        if api_key_env is not None:
            key = os.environ.get(api_key_env, "")
            if not key:
                raise ValueError(f"environment variable {api_key_env} (the API key) is not set")
            headers["Authorization"] = f"Bearer {key}"
        self.endpoint = str(base_url).rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.rubric = rubric
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        extra = dict(extra_body or {})
        if {"model", "messages"} & set(extra):
            raise ValueError("extra_body must not set 'model' or 'messages'")
        self.params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
        self.params |= extra
        try:
            json.dumps(self.params)
        except (TypeError, ValueError) as error:
            raise ValueError(f"extra_body must be JSON-serialisable: {error}") from None
        self.stats = JudgeStats()
        self._lock = threading.Lock()
        self._random = random.Random()
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_concurrency),
        )

    def __repr__(self) -> str:
        return (
            f"ChatCompletionsJudge(endpoint={self.endpoint!r}, model={self.model!r}, "
            f"rubric={self.rubric.name!r}, api_key_env={self.api_key_env!r})"
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ChatCompletionsJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def score(self, requests: Sequence[JudgeRequest]) -> list[float | None]:
        """Scores every request, at most ``max_concurrency`` at a time; ``None`` where it failed."""
        payloads = [self._payload(r) for r in requests]
        keys = [self.cache_key(p) for p in payloads]
        unique = dict(zip(keys, payloads, strict=True))
        with self._lock:
            self.stats.requests += len(requests)
            self.stats.duplicates += len(requests) - len(unique)
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            answers = pool.map(self._score_one, unique.keys(), unique.values())
            outcomes = dict(zip(unique, answers, strict=True))
        failed = Counter(v for v in outcomes.values() if isinstance(v, str))
        if failed:
            reasons = ", ".join(f"{r}: {n}" for r, n in sorted(failed.items()))
            logger.warning(
                "judge: %d of %d requests failed (%s)", failed.total(), len(unique), reasons
            )
        return [o if isinstance(o := outcomes[k], float) else None for k in keys]

    def _payload(self, request: JudgeRequest) -> dict[str, Any]:
        return {"model": self.model, "messages": self.rubric.messages(request), **self.params}

    def cache_key(self, payload: Mapping[str, Any]) -> str:
        """SHA-256 of the endpoint and the request body (model, messages, parameters): every
        input of the answer, and no credentials."""
        blob = json.dumps({"endpoint": self.endpoint, "body": payload}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _score_one(self, key: str, payload: dict[str, Any]) -> float | str:
        """The score, or the reason it failed."""
        cached = self._cached(key)
        if cached is not None:
            self._count("cache_hits")
            return cached
        try:
            score, reply = self._ask(payload)
        except _Failure as failure:
            with self._lock:
                self.stats.failures[failure.reason] += 1
            return failure.reason
        self._count("scored")
        self._store(key, score, reply)
        return float(score)

    def complete(self, messages: list[dict[str, str]]) -> str | None:
        """The server's reply to ``messages``, with the timeouts, retries and counters of
        :meth:`score` but no rubric and no cache (for a simulated user that asks what to say:
        :class:`fdenv.user.llm.LLMUser`); ``None`` if the request failed (counted by reason)."""
        payload = {"model": self.model, "messages": messages, **self.params}
        with self._lock:
            self.stats.requests += 1
        try:
            _, reply = self._ask(payload, parse=lambda text: 0)
        except _Failure as failure:
            with self._lock:
                self.stats.failures[failure.reason] += 1
            return None
        self._count("scored")
        return reply

    def _ask(
        self, payload: dict[str, Any], parse: Callable[[str], int | None] | None = None
    ) -> tuple[int, str]:
        """Posts until a reply parses, a failure is final, or the retries are spent."""
        retry = 0
        while True:
            try:
                return self._attempt(payload, parse or self.rubric.parse)
            except _Failure as failure:
                if not failure.retry or retry == self.max_retries:
                    raise
                logger.debug("judge attempt %d failed (%s), retrying", retry + 1, failure.reason)
            self._count("retries")
            delay = min(self.backoff_max_s, self.backoff_s * 2**retry)
            time.sleep(delay * self._random.uniform(0.5, 1.0))
            retry += 1

    def _attempt(
        self, payload: dict[str, Any], parse: Callable[[str], int | None]
    ) -> tuple[int, str]:
        """One request, bounded by ``timeout_s`` of wall-clock time.

        The request runs in a daemon thread that the caller waits for until the deadline, so
        a server that stalls anywhere (in its headers, in mid-body) costs at most ``timeout_s``.
        The thread itself stops reading at the deadline, or at its next read timeout.
        """
        self._count("http_calls")
        deadline = time.monotonic() + self.timeout_s
        outcome: list[tuple[int, bytes] | _Failure] = []
        worker = threading.Thread(target=self._post, args=(payload, deadline, outcome), daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        if not outcome:
            raise _Failure("timeout", retry=True)
        result = outcome[0]
        if isinstance(result, _Failure):
            raise result
        status, body = result
        if status != 200:
            raise _Failure(f"http_{status}", retry=status >= 500 or status in RETRY_STATUS)
        reply = _reply_text(body)
        if reply is None:
            raise _Failure("malformed", retry=False)
        score = parse(reply)
        if score is None:
            raise _Failure("unparsable", retry=False)
        return score, reply

    def _post(
        self, payload: dict[str, Any], deadline: float, outcome: list[tuple[int, bytes] | _Failure]
    ) -> None:
        """Posts ``payload`` and appends ``(status, body)`` or the failure to ``outcome``; reads
        the body chunk by chunk, so that neither a trickle past ``deadline`` nor a body past
        :data:`MAX_BODY_BYTES` is read to its end."""
        import httpx  # present: __init__ made the client with it

        try:
            with self._client.stream("POST", self.endpoint, json=payload) as response:
                body = bytearray()
                if response.status_code == 200:
                    for chunk in response.iter_bytes():
                        body += chunk
                        if time.monotonic() > deadline:
                            raise _Failure("timeout", retry=True)
                        if len(body) > MAX_BODY_BYTES:
                            raise _Failure("malformed", retry=False)
                outcome.append((response.status_code, bytes(body)))
        except _Failure as failure:
            outcome.append(failure)
        except httpx.TimeoutException:
            outcome.append(_Failure("timeout", retry=True))
        except httpx.TransportError:
            outcome.append(_Failure("connection", retry=True))
        except httpx.HTTPError:  # an undecodable body (bad content encoding), a redirect loop
            outcome.append(_Failure("malformed", retry=False))

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    # --- the on-disk cache: one small JSON file per request, written atomically ---------------

    def _cache_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.json"

    def _cached(self, key: str) -> float | None:
        """The cached score, or ``None`` on a miss; an unreadable entry is a miss."""
        path = self._cache_path(key)
        if path is None or not path.is_file():
            return None
        try:
            score = json.loads(path.read_text(encoding="utf-8"))["score"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return float(score) if score in self.rubric.scores else None

    def _store(self, key: str, score: int, reply: str) -> None:
        path = self._cache_path(key)
        if path is None:
            return
        try:
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps({"score": score, "reply": reply}), encoding="utf-8")
        except OSError as error:  # a full disk costs the cache entry, not the score
            logger.warning("judge cache write failed: %s", type(error).__name__)


def _reply_text(body: bytes) -> str | None:
    """``choices[0].message.content`` of a chat completion, or ``None`` if the body is not one."""
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None
