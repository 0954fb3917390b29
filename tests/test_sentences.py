"""The packaged sentence bank: sizes, line lengths, pause marks and parse errors."""

from __future__ import annotations

import re

import pytest

from fdenv.scenarios.sentences import SentenceBank, load_sentence_bank, split_at_pause


@pytest.fixture(scope="module")
def bank() -> SentenceBank:
    return load_sentence_bank()


def _words(line: str) -> int:
    return len(line.replace("|", " ").split())


@pytest.mark.parametrize(
    ("section", "count", "words"),
    [
        ("statements", (130, 170), (8, 20)),
        ("questions", (70, 90), (6, 16)),
        ("interruptions", (35, 45), (4, 10)),
        ("backchannels", (12, 20), (1, 2)),
    ],
)
def test_section_sizes_and_line_lengths(
    bank: SentenceBank, section: str, count: tuple[int, int], words: tuple[int, int]
) -> None:
    lines = getattr(bank, section)
    assert count[0] <= len(lines) <= count[1]
    assert len(set(lines)) == len(lines), "duplicate lines"
    too_long_or_short = [line for line in lines if not words[0] <= _words(line) <= words[1]]
    assert too_long_or_short == []
    assert all(line.isascii() for line in lines)


def test_pause_marks(bank: SentenceBank) -> None:
    assert sum("|" in s for s in bank.statements) > 0.7 * len(bank.statements)
    assert 10 <= sum("|" in q for q in bank.questions) < len(bank.questions)
    assert not any("|" in line for line in bank.interruptions + bank.backchannels)
    for line in bank.statements + bank.questions:
        assert line.count("|") <= 1
        first, second = split_at_pause(line)
        assert first and second != ""


def test_all_text_drops_pause_marks(bank: SentenceBank) -> None:
    text = bank.all_text()
    total = len(bank.statements + bank.questions + bank.interruptions + bank.backchannels)
    assert len(text) == total
    assert not any("|" in line or "  " in line for line in text)
    assert "I was thinking that we could maybe go hiking this weekend if the weather holds." in text


def test_default_bank_is_cached(bank: SentenceBank) -> None:
    assert load_sentence_bank() is bank


def test_split_at_pause() -> None:
    assert split_at_pause("a | b") == ("a", "b")
    assert split_at_pause("  I was thinking |maybe later. ") == ("I was thinking", "maybe later.")
    assert split_at_pause(" no pause here ") == ("no pause here", None)


def test_custom_file(tmp_path) -> None:
    path = tmp_path / "bank.txt"
    path.write_text(
        "# comment\n\n[question]\nWhere is it?\n[backchannel]\nyeah\n[question]\nWhy | not?\n"
    )
    bank = load_sentence_bank(path)
    assert bank.questions == ("Where is it?", "Why | not?")
    assert bank.backchannels == ("yeah",)
    assert bank.statements == bank.interruptions == ()


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("# header\nHello there.\n[statement]\n", 2, "outside any section"),
        ("[statement]\nFine.\n\n[questions]\nWhy?\n", 4, "unknown section"),
        ("[statement]\nA full | sentence.\nDangling |\n", 3, "pause mark"),
    ],
)
def test_bad_file_names_file_and_line(tmp_path, content: str, line: int, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(f"{path}:{line}:") + ".*" + message):
        load_sentence_bank(path)
