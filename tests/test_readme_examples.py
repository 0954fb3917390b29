"""Every Python example in README.md runs as pasted into a fresh interpreter.

Each ```python block runs in its own ``python`` process, in an empty folder: an example that
leans on an import or a variable from an earlier block, or on a file of this checkout, fails.
A block whose first line is a ``# needs: ...`` comment (a GPU, a server, downloads, the user's
own files) is only compiled. ``FDENV_CACHE`` is passed through, so cached tiny models are reused.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```python\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
"""A fenced Python block, also one indented inside a list item."""
NEEDS = "# needs:"
SLOW = ("tiny_models(", "GymEnv(")
"""Blocks that build a Moshi or a TorchRL env take more than a few seconds."""
TIMEOUT_S = 120


@dataclass(frozen=True)
class Example:
    line: int
    source: str

    @property
    def needs(self) -> bool:
        return self.source.startswith(NEEDS)


def examples() -> list[Example]:
    text = README.read_text()
    return [
        Example(text.count("\n", 0, m.start()) + 1, textwrap.dedent(m["body"]))
        for m in FENCE.finditer(text)
    ]


def param(example: Example):
    slow = not example.needs and any(s in example.source for s in SLOW)
    return pytest.param(
        example, id=f"README.md:{example.line}", marks=[pytest.mark.slow] if slow else []
    )


ALL = examples()


def test_the_readme_has_examples():
    assert len([e for e in ALL if not e.needs]) >= 4


@pytest.mark.parametrize("example", [param(e) for e in ALL])
def test_readme_example(example: Example, tmp_path):
    if example.needs:
        compile(example.source, f"README.md:{example.line}", "exec")
        return
    result = subprocess.run(
        [sys.executable, "-c", example.source],
        cwd=tmp_path,
        # one torch thread, as conftest sets for the suite: on shared cores a second thread
        # made the tiny Moshi's rollout 12x slower
        env={**os.environ, "NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, f"README.md:{example.line}\n{result.stderr}"
