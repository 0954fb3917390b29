"""Files that appear whole or not at all, in folders that one run writes at a time.

A crash never leaves half a WAV, manifest or plot (:func:`atomic_path`); a second run on the
same output folder stops at once instead of interleaving its files with the first one's
(:func:`folder_lock`); temporaries of writers killed with ``kill -9`` are removed by the next
run (:func:`clean_stale_temporaries`); and names and paths that come from data (a corpus's ids,
a state record) cannot reach outside the output folder (:func:`name_problem`, :func:`inside`).
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".fdenv.lock"
TEMPORARY = re.compile(r"^\.tmp-(\d+)-[0-9a-f]{8}-")
"""Names :func:`atomic_path` gives its temporaries; the number is the writer's pid."""
MAX_NAME = 240
"""Longest id used in a file name (file systems allow 255 bytes; a suffix needs the rest)."""


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` that is renamed to ``path`` if the block succeeds.

    The temporary name keeps the suffix, since writers such as soundfile and matplotlib choose
    the format by it, and is unique per writer, so processes that build the same cached file at
    once (torchrun ranks, test workers) do not take each other's temporary file; the last rename
    wins with a whole file. It carries the writer's pid, so that a later run can tell a dead
    writer's leftover (:func:`clean_stale_temporaries`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class FolderLocked(FileExistsError):
    """Another live process is writing the folder (its lock file names the pid)."""


_held: dict[Path, tuple[int, int]] = {}
"""Locked folder -> (lock file descriptor, depth): a process may nest its own locks."""
_held_guard = threading.Lock()


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Holds ``folder/.fdenv.lock`` for the block, so that one run at a time writes ``folder``.

    The lock is an advisory ``flock`` on the file, which the kernel releases when its holder
    exits, however it exits: a lock left by a killed run is free again (its file, holding the
    dead pid, is simply taken over). A second run raises :class:`FolderLocked` at once, naming
    the lock file and the holder's pid and host. Nested locks of one process on one folder are
    allowed (a command and the manifest writer it uses both lock). Yields the lock file's path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    path = key / LOCK_NAME
    with _held_guard:
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
        else:
            _held[key] = (_acquire(path), 1)
    try:
        yield path
    finally:
        with _held_guard:
            fd, depth = _held[key]
            if depth > 1:
                _held[key] = (fd, depth - 1)
            else:
                del _held[key]
                path.unlink(missing_ok=True)  # while still locked, then released
                os.close(fd)


def _acquire(path: Path) -> int:
    """Locks ``path`` (created if needed) and writes this process's pid and host into it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "an unknown pid"
            os.close(fd)
            raise FolderLocked(
                f"{path}: another run is writing {path.parent} (lock held by pid {holder}); "
                "wait for it to finish or choose another output folder"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file its last holder unlinked between our open and our lock
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} on {socket.gethostname()}\n".encode(), 0)
            return fd
        os.close(fd)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_stale_temporaries(*folders: str | Path) -> int:
    """Removes the temporaries (:func:`atomic_path`) in ``folders`` (not below them) whose writer
    is no longer running, such as those of a run killed with ``kill -9``; returns how many.
    Call it at the start of a run, while holding the folder's :func:`folder_lock`."""
    removed = 0
    for folder in folders:
        for path in Path(folder).glob(".tmp-*"):
            match = TEMPORARY.match(path.name)
            if match is not None and path.is_file() and not _alive(int(match.group(1))):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def name_problem(name: object, max_length: int = MAX_NAME) -> str | None:
    """Why ``name`` (an id from data) cannot be used as a file name, or ``None`` if it can.

    Accepted: a non-empty string of at most ``max_length`` characters without path separators
    or NUL that does not start with a dot (no ``..``, no hidden or temporary names).
    """
    if not isinstance(name, str) or not name:
        return f"id {name!r} must be a non-empty string"
    if "/" in name or "\\" in name or "\0" in name:
        return f"id {name!r} must not contain '/', '\\' or NUL (it names files)"
    if name.startswith("."):
        return f"id {name!r} must not start with '.' (it names files)"
    if len(name) > max_length:
        return f"id {name[:40]!r}... is {len(name)} characters long, at most {max_length} allowed"
    return None


def inside(folder: str | Path, relative: object) -> Path | None:
    """``folder / relative`` resolved, or ``None`` unless it is a string path that lies under
    ``folder`` (``..``, absolute paths and symlinks out are refused)."""
    if not isinstance(relative, str) or not relative:
        return None
    root = Path(folder).resolve()
    path = (root / relative).resolve()
    return path if path.is_relative_to(root) and path != root else None
