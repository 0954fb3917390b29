"""Every command and snippet in docs/*.md runs, as the page says (see docs/environment.md).

A fenced ``bash`` or ``python`` block must follow a marker comment:
``<!-- tested -->`` (run as written), ``<!-- tested: ARGS -->`` (append ARGS to each command of a
bash block), ``<!-- stand-in: COMMANDS -->`` (run COMMANDS instead: the block needs a GPU or
downloaded weights) or ``<!-- excerpt: FILE -->`` (a shortened piece of FILE, checked against
it). An unmarked block fails, so a new command cannot go untested.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(
    r"(?:<!--[ \t]*(?P<marker>[^\n]*?)[ \t]*-->[ \t]*\n)?```(?P<lang>\w+)\n(?P<body>.*?)```", re.S
)
"""A fenced block and the one-line marker comment right above it, if any."""
RUNNABLE = ("bash", "python")
TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    marker: str | None
    body: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    return [
        Block(
            path.name,
            text.count("\n", 0, m.start("lang")) + 1,
            m["lang"],
            m["marker"],
            m["body"],
        )
        for m in BLOCK.finditer(text)
        if m["lang"] in RUNNABLE
    ]


ALL = [block for page in DOCS for block in blocks(page)]
EXCERPT = "excerpt:"
RUN = [b for b in ALL if not (b.marker or "").startswith(EXCERPT)]
EXCERPTS = [b for b in ALL if (b.marker or "").startswith(EXCERPT)]


def commands(script: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blanks dropped."""
    joined = re.sub(r"\s*\\\n\s*", " ", script)
    found = []
    for line in joined.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            found.append(line)
    return found


def script_for(block: Block) -> tuple[str, str]:
    """(language, code) the test runs for ``block``."""
    marker = block.marker or ""
    if marker.startswith("stand-in:"):
        return "bash", marker.removeprefix("stand-in:").strip()
    if marker == "tested":
        return block.lang, block.body
    if marker.startswith("tested:"):
        assert block.lang == "bash", f"{block}: extra arguments only apply to bash blocks"
        extra = marker.removeprefix("tested:").strip()
        return "bash", "\n".join(f"{c} {extra}" for c in commands(block.body))
    raise AssertionError(
        f"{block}: a {block.lang} block needs a marker comment before it: <!-- tested -->, "
        "<!-- tested: ARGS -->, <!-- stand-in: COMMANDS --> or <!-- excerpt: FILE --> "
        "(see docs/environment.md)"
    )


def test_the_docs_have_runnable_blocks():
    assert {p.name for p in DOCS} >= {
        "environment.md",
        "custom_axis.md",
        "algorithms.md",
        "gpu_7b.md",
    }
    assert all(b.marker for b in ALL), [str(b) for b in ALL if not b.marker]


def test_commands_split_like_bash():
    script = "python a.py \\\n    --x 1  # note\n\n# a comment\nfdenv-train --out o\n"
    assert commands(script) == ["python a.py --x 1", "fdenv-train --out o"]
    block = Block("p.md", 1, "bash", "tested: --iterations 2", script)
    assert (
        script_for(block)[1]
        == "python a.py --x 1 --iterations 2\nfdenv-train --out o --iterations 2"
    )
    with pytest.raises(AssertionError, match="marker"):
        script_for(Block("p.md", 1, "bash", None, script))


@pytest.mark.parametrize("block", EXCERPTS, ids=str)
def test_excerpts_match_their_files(block: Block):
    """An excerpt parses, and the classes and functions it defines exist in its file."""
    source = ROOT / block.marker.removeprefix(EXCERPT).strip()
    tree = ast.parse(textwrap.dedent(block.body))
    names = {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    }
    assert names, f"{block}: an excerpt should show at least one class or function"
    defined = {
        node.name
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    }
    assert names <= defined, f"{block}: {sorted(names - defined)} are not in {source.name}"


@pytest.mark.slow
@pytest.mark.parametrize("block", RUN, ids=str)
def test_doc_block_runs(block: Block, tmp_path):
    lang, code = script_for(block)
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "NO_TORCH_COMPILE": "1",
        "DOCS_TMP": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    command = ["bash", "-e", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert result.returncode == 0, f"{block} failed:\n{code}\n{result.stdout}\n{result.stderr}"
