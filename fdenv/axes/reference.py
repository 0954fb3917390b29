"""What a good partner says in an axis' scenario: the reference behaviour a warm start teaches.

An axis states the behaviour (:meth:`fdenv.axes.Axis.reference_lines`) in terms of a
:class:`ReferencePartner`, which supplies the words and the random timing. The warm start of
:mod:`agents.moshi.warmstart` implements the partner, so the axis knows nothing of how the lines
are spoken and trained on, and the warm start nothing of what an axis' labels mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class AgentLine:
    """A line for the agent: ``text`` from ``start``, cut at ``stop`` (scenario seconds;
    ``None``: said to its end)."""

    text: str
    start: float
    stop: float | None = None


class ReferencePartner(Protocol):
    """Words and timing for reference lines.

    Every call may draw from the partner's random generator, so the order of an axis' calls is
    part of the lines it gets: reorder them and the warm start's data changes.
    """

    def statement(self) -> str:
        """A sentence to say."""

    def backchannel(self) -> str:
        """A one-word backchannel ("yeah")."""

    def reply_at(self, t: float) -> float:
        """When an answer to speech that ended at ``t`` starts: ``t`` plus a reply delay."""

    def stop_at(self, t: float) -> float:
        """When the partner, cut in on at ``t``, breaks off: ``t`` plus a few whole frames."""
