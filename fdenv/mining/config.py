"""Mining settings, with the paper's defaults, and the fingerprints that make runs resumable."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from fdenv.audio.acoustics import Acoustics
from fdenv.axes import PAPER_AXES, Axis
from fdenv.registration import get_axis
from fdenv.segments import MiningRules

VAD_BACKENDS = ("silero", "webrtc")
VAD_MODES = ("auto", *VAD_BACKENDS)
"""``auto``: the corpus's VAD where it has one, else ``fallback_vad``; a backend: always run it."""


@dataclass(frozen=True)
class MiningConfig:
    """What to mine and how; every default is the paper's (Ohashi et al. 2026, arXiv 2606.11167,
    section "Segment mining")."""

    axes: tuple[str, ...] = tuple(a.name for a in PAPER_AXES)
    """Registered axis names; each must implement :meth:`~fdenv.axes.Axis.mine`."""
    max_per_axis: int = 2_000
    """Cap of scenarios per axis over the whole corpus."""
    seed: int = 0
    """Which candidates the cap keeps, and the acoustics draw."""
    rules: MiningRules = field(default_factory=MiningRules)
    """Windows around the mined utterances."""
    vad: str = "auto"
    """``auto``: the corpus's VAD where it has one, else ``fallback_vad``; ``silero`` or
    ``webrtc``: always run that one."""
    fallback_vad: str = "silero"
    """``silero`` or ``webrtc``: the VAD of channels without the corpus's (with ``auto``)."""
    context_s: float = 30.0
    """Longest preceding recording kept per scenario (the curriculum's l_max; 0 keeps none)."""
    acoustics: Acoustics | None = None
    """Reverb and noise baked into the user channel; ``None``: dry."""
    audio_format: str = "flac"
    """``flac`` or ``wav``."""

    def __post_init__(self) -> None:
        if not self.axes:
            raise ValueError("MiningConfig.axes must name at least one axis")
        for name in self.axes:
            if type(get_axis(name)).mine is Axis.mine:
                raise ValueError(
                    f"MiningConfig.axes: axis {name} defines no mine(); minable axes implement "
                    "Axis.mine(labels, user, rules)"
                )
        if self.max_per_axis < 1:
            raise ValueError(f"MiningConfig.max_per_axis must be >= 1, got {self.max_per_axis}")
        if self.vad not in VAD_MODES:
            raise ValueError(f"MiningConfig.vad must be one of {VAD_MODES}, got {self.vad!r}")
        if self.fallback_vad not in VAD_BACKENDS:
            raise ValueError(
                f"MiningConfig.fallback_vad must be one of {VAD_BACKENDS}, "
                f"got {self.fallback_vad!r}"
            )
        if self.context_s < 0:
            raise ValueError(f"MiningConfig.context_s must be >= 0 s, got {self.context_s}")
        if self.audio_format not in ("flac", "wav"):
            raise ValueError(
                f"MiningConfig.audio_format must be flac or wav, got {self.audio_format}"
            )

    def label_key(self) -> str:
        """Fingerprint of what pass 1 depends on (a label record with another key is redone):
        the axes with their thresholds, the rules and the VAD choice."""
        axes = [[name, _settings(get_axis(name))] for name in self.axes]
        return digest([axes, dataclasses.asdict(self.rules), self.vad, self.fallback_vad])

    def cut_key(self) -> str:
        """Fingerprint of what pass 2 depends on beyond the chosen segment ids."""
        acoustics = None if self.acoustics is None else repr(self.acoustics)
        return digest([self.label_key(), self.seed, self.context_s, acoustics, self.audio_format])


def _settings(axis: Axis) -> Any:
    return dataclasses.asdict(axis) if dataclasses.is_dataclass(axis) else repr(axis)


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
