"""The settings tables in the guides are the config dataclasses' own: each table between
``<!-- settings: module.Class -->`` and ``<!-- /settings -->`` must equal
:func:`fdenv.config_flags.settings_table` of that class. Rewrite them with
``python tests/test_settings_tables.py``."""

import importlib
import re
import sys
from pathlib import Path

import pytest

from fdenv.config_flags import settings_table

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"(<!-- settings: ([\w.]+) -->\n)(.*?)(<!-- /settings -->)", re.S)


def generated(path: str) -> str:
    module, _, name = path.rpartition(".")
    return settings_table(getattr(importlib.import_module(module), name)) + "\n"


def rewrite(text: str) -> str:
    return BLOCK.sub(lambda m: m[1] + generated(m[2]) + m[4], text)


GUIDES = sorted(p for p in DOCS.glob("*.md") if BLOCK.search(p.read_text()))


def test_the_guides_have_settings_tables():
    assert {p.name for p in GUIDES} >= {"environment.md", "algorithms.md"}


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_settings_tables_follow_the_dataclasses(guide):
    text = guide.read_text()
    assert text == rewrite(text), f"{guide.name}: run python tests/test_settings_tables.py"


if __name__ == "__main__":
    for guide in GUIDES:
        guide.write_text(rewrite(guide.read_text()))
        print(f"rewrote {guide}")
    sys.exit(0)
