"""Files that appear whole or not at all: a crash never leaves half a WAV, manifest or plot."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` that is renamed to ``path`` if the block succeeds.

    The temporary name keeps the suffix, since writers such as soundfile and matplotlib choose
    the format by it, and is unique per writer, so processes that build the same cached file at
    once (torchrun ranks, test workers) do not take each other's temporary file; the last rename
    wins with a whole file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
