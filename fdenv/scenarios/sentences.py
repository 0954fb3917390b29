"""The packaged sentence bank that synthetic scenarios speak.

Lines keep their ``|`` pause marks: the pause axis splits a sentence there and speaks the two
halves with a silence between them, so the pause falls where a person would plausibly hesitate.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

SECTIONS = ("statement", "question", "interruption", "backchannel")
PAUSE_MARK = "|"


@dataclass(frozen=True)
class SentenceBank:
    statements: tuple[str, ...]
    questions: tuple[str, ...]
    interruptions: tuple[str, ...]
    backchannels: tuple[str, ...]

    def all_text(self) -> list[str]:
        """Every line as it would be spoken, without pause marks (for tokenizer training)."""
        lines = self.statements + self.questions + self.interruptions + self.backchannels
        return [unmarked(line) for line in lines]


def load_sentence_bank(path: str | Path | None = None) -> SentenceBank:
    """Parses a bank file; without ``path``, the one shipped in ``fdenv/data``."""
    if path is None:
        return _packaged_bank()
    path = Path(path)
    return _parse(path.read_text(encoding="utf-8"), str(path))


@lru_cache(maxsize=1)
def _packaged_bank() -> SentenceBank:
    resource = resources.files("fdenv") / "data" / "sentences.txt"
    return _parse(resource.read_text(encoding="utf-8"), str(resource))


def _parse(content: str, name: str) -> SentenceBank:
    lines: dict[str, list[str]] = {section: [] for section in SECTIONS}
    section: str | None = None
    for number, raw in enumerate(content.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            if section not in lines:
                raise ValueError(
                    f"{name}:{number}: unknown section [{section}]; expected one of "
                    + ", ".join(f"[{s}]" for s in SECTIONS)
                )
            continue
        if section is None:
            raise ValueError(f"{name}:{number}: line outside any section: {line!r}")
        first, second = split_at_pause(line)
        if not first or second == "" or (second and PAUSE_MARK in second):
            raise ValueError(
                f"{name}:{number}: at most one pause mark, with words on both sides: {line!r}"
            )
        lines[section].append(line)
    return SentenceBank(
        statements=tuple(lines["statement"]),
        questions=tuple(lines["question"]),
        interruptions=tuple(lines["interruption"]),
        backchannels=tuple(lines["backchannel"]),
    )


def unmarked(sentence: str) -> str:
    """The sentence as spoken in one go: pause mark removed, spaces squeezed."""
    return " ".join(sentence.replace(PAUSE_MARK, " ").split())


def split_at_pause(sentence: str) -> tuple[str, str | None]:
    """Splits at the pause mark; ``(sentence, None)`` when the line has no pause to place."""
    first, mark, second = sentence.partition(PAUSE_MARK)
    if not mark:
        return sentence.strip(), None
    return first.strip(), second.strip()
