"""A simulated user that asks a language model what to say next, at turn boundaries only.

The user's timing (when it speaks, yields, re-prompts) stays the planned user's; only the
content of its next turn comes from the model, which reads the conversation so far: the
user's lines and, with a ``decode`` function, the agent's words (its text tokens). Any
OpenAI-compatible server works through :class:`fdenv.judge.client.ChatCompletionsJudge`'s
:meth:`~fdenv.judge.client.ChatCompletionsJudge.complete`. A turn is synthesised when it is
first said (tens of milliseconds with espeak), never per frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from fdenv.constants import EPAD_ID, PAD_ID
from fdenv.user.plan import Line, Turn
from fdenv.user.policy import UserContext, UserPolicy

END = "END"
"""What the model answers to end the conversation."""
MAX_CHARS = 300
"""Longer replies are cut (at a word) so that one turn stays a turn."""
SYSTEM_PROMPT = (
    "You play the user in a spoken conversation with a voice assistant. Given the conversation "
    "so far, write the next thing the user says: one or two short spoken sentences, no stage "
    f"directions, no quotes. Write {END} alone if the user has nothing more to say."
)


class ChatClient(Protocol):
    def complete(self, messages: list[dict[str, str]]) -> str | None: ...


class LLMUser(UserPolicy):
    """The planned user, whose turns after the first are written by a language model.

    Args:
        client: answers chat messages (``ChatCompletionsJudge(url, model, max_tokens=64)``).
        decode: token ids -> text, to show the model what the agent said (a Moshi tokenizer's
            ``decode``); ``None`` shows only that the agent spoke.
        max_turns: turns before the user ends the conversation (default: the plan's).
        fallback: when the model fails or answers nothing usable, say the plan's next turn
            (``True``, counted in :attr:`fallbacks`) or end the conversation.
    """

    def __init__(
        self,
        client: ChatClient,
        decode: Callable[[list[int]], str] | None = None,
        *,
        max_turns: int | None = None,
        fallback: bool = True,
    ) -> None:
        if max_turns is not None and max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        self.client = client
        self.decode = decode
        self.max_turns = max_turns
        self.fallback = fallback
        self.fallbacks = 0
        """Turns taken from the plan because the model failed or gave nothing usable."""

    def next_turn(self, context: UserContext) -> Turn | None:
        planned = super().next_turn(context)
        limit = self.max_turns or len(context.plan.turns)
        if context.turns_taken == 0 or context.turns_taken >= limit:
            return planned if context.turns_taken < limit else None
        reply = self.client.complete(self.messages(context))
        text = clean(reply)
        if text == END:
            return None
        if text is None:
            self.fallbacks += 1
            return planned if self.fallback else None
        style = context.plan.turns[0].parts[0].style
        return Turn((Line("turn", text, style),))

    def messages(self, context: UserContext) -> list[dict[str, str]]:
        """The chat so far: the user's lines as the user's, the agent's words as the other
        side's, in the order they were said."""
        said = [line.text for line in context.said if line.kind in ("turn", "interruption")]
        agent = self._agent_words(context)
        lines = [f"User: {text}" for text in said]
        if agent:
            lines.append(f"Assistant: {agent}")
        conversation = "\n".join(lines) or "(nothing yet)"
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Conversation so far:\n{conversation}\n\nUser says:"},
        ]

    def _agent_words(self, context: UserContext) -> str:
        tokens = [int(t) for t in context.agent_tokens if t not in (PAD_ID, EPAD_ID)]
        if not tokens:
            return ""
        if self.decode is None:
            return "(speaks)"
        return self.decode(tokens).strip()

    def __repr__(self) -> str:
        return f"LLMUser(client={self.client!r})"


def clean(reply: str | None) -> str | None:
    """The reply as one user turn: first line, quotes and a ``User:`` prefix removed, at most
    ``MAX_CHARS``; ``END`` as is; ``None`` if nothing speakable is left."""
    if reply is None:
        return None
    text = reply.strip().splitlines()[0].strip() if reply.strip() else ""
    if text.lower().startswith("user:"):
        text = text[5:].strip()
    text = text.strip("\"'")
    if text.rstrip(".").upper() == END:
        return END
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS].rsplit(" ", 1)[0]
    return text if any(c.isalpha() for c in text) else None
