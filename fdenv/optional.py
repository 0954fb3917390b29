"""Optional third-party dependencies, imported where they are used.

``pip install fdenv`` gives the environments without torch: Silero VAD, WebRTC VAD and the
LLM judge's HTTP client come with extras, so their modules are imported only by the features
that need them. :func:`require` turns a missing one into an error that names the extra to
install, instead of a bare ``ModuleNotFoundError`` from deep inside a call.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, needed_by: str, extra: str) -> ModuleType:
    """Imports ``module``, or raises an ``ImportError`` saying which fdenv extra provides it.

    ``needed_by`` says what needs it, e.g. ``"SileroVAD needs torch and silero-vad"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{needed_by}: pip install 'fdenv[{extra}]' ({error})") from error
