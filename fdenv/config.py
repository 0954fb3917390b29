"""EnvConfig: the settings of an environment, in one place.

Both env classes, the GRPO trainer and the evaluator take an :class:`EnvConfig`, and the command
lines derive their flags from it, so a new setting is one field here. Constructor keywords of the
envs (``gym.make(id, lead_in_s=2.0)``) are the same fields.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import numpy as np

from fdenv.audio.acoustics import Acoustics
from fdenv.axes import Axis
from fdenv.constants import AUDIO_CARD, DEFAULT_LEAD_IN_S, TEXT_CARD
from fdenv.sampler import ScenariosArg
from fdenv.scenario import Scenario
from fdenv.voice import TextVoice, Voice

VOICES = ("text", "audio", "auto")
"""Voices by name: ``text`` (:class:`fdenv.voice.TextVoice`, the env builds it); ``audio`` (the
agent's audio tokens decoded by the agent's own decoder, then Silero VAD: built from the agent
by :func:`fdenv.agent.env_for`, as the GRPO trainer and the evaluator do); ``auto`` (``audio``
for an agent that has a decoder, ``text`` for one that has none, such as a scripted baseline).
Other voices are passed as objects."""


@dataclass(frozen=True)
class EnvConfig:
    """What an environment plays and how it hears the agent; the defaults reproduce the paper's
    setting on the embedded synthetic scenarios."""

    scenarios: ScenariosArg = None
    """A manifest path (``fdenv-data synth``/``mine``/``import-fdbench``), a list of scenarios
    or a scenario source; ``None``: the embedded synthetic scenarios."""
    num_scenarios: int = 64
    """Synthetic scenarios per axis (when ``scenarios`` is ``None``)."""
    scenario_seed: int = 0
    """Seed of the synthetic scenarios; another seed is a held-out set."""
    lead_in_s: float = DEFAULT_LEAD_IN_S
    """Silence before each scenario, so Moshi can say its opening phrase (the paper's 3 s)."""
    text_card: int = TEXT_CARD
    """Size of the text vocabulary, action[0] (Moshi's 32000)."""
    audio_card: int = AUDIO_CARD
    """Size of each audio codebook, action[1:] (Mimi's 2048)."""
    acoustics: Acoustics | None = None
    """Room reverb and noise applied to the user channel per episode; ``None``: dry."""
    axis_weights: Mapping[str, float] | None = None
    """Relative weights of the axes when several are mixed (missing axes weigh 1)."""
    voice: str | Voice = "text"
    """How the agent's actions become speech: ``"text"`` (a word token held 0.4 s,
    :class:`fdenv.voice.TextVoice`), ``"audio"`` (the agent's audio tokens decoded by its own
    decoder, then Silero VAD: the paper's way; built from the model by the trainer and the
    evaluator), ``"auto"`` (``audio`` for a model, ``text`` for a scripted agent) or a
    :class:`fdenv.voice.Voice` object."""
    word_starts: np.ndarray | None = field(default=None, compare=False, repr=False)
    """Which text token ids begin a word (a boolean per id: SentencePiece pieces that start
    with "▁"), so that Full-Duplex-Bench's word counts count words, not sub-word tokens (Moshi's
    tokenizer may split a "yeah" into three); ``None``: every token is a word. Set from the
    agent's tokenizer by :func:`fdenv.agent.env_for` (a Moshi policy has one)."""
    info_metrics: bool = True
    """Whether an episode's last info carries the axis' benchmark metrics (``info["metrics"]``:
    Full-Duplex-Bench's, or a closed-loop axis' interaction metrics). They are about a third
    of the work at an episode's end; a cheap policy stepping millions of frames can go without
    (the evaluator computes them from the episodes either way)."""

    def __post_init__(self) -> None:
        for name in ("num_scenarios", "scenario_seed", "text_card", "audio_card"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"EnvConfig.{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.num_scenarios < 1:
            raise ValueError(f"EnvConfig.num_scenarios must be >= 1, got {self.num_scenarios}")
        if self.text_card < 4 or self.audio_card < 1:
            raise ValueError(
                "EnvConfig.text_card must be >= 4 and audio_card >= 1, "
                f"got {self.text_card}, {self.audio_card}"
            )
        if not isinstance(self.lead_in_s, int | float) or not math.isfinite(self.lead_in_s):
            raise ValueError(f"EnvConfig.lead_in_s must be a finite number, got {self.lead_in_s}")
        if self.lead_in_s < 0:
            raise ValueError(f"EnvConfig.lead_in_s must be >= 0, got {self.lead_in_s}")
        if not isinstance(self.info_metrics, bool | np.bool_):
            raise ValueError(
                f"EnvConfig.info_metrics must be True or False, got {self.info_metrics!r}"
            )
        object.__setattr__(self, "info_metrics", bool(self.info_metrics))
        if self.word_starts is not None:
            starts = np.asarray(self.word_starts)
            if starts.ndim != 1 or starts.dtype != np.bool_:
                raise ValueError(
                    "EnvConfig.word_starts must be None or a 1-D boolean array (one per text "
                    f"token id), got {starts.dtype} {starts.shape}"
                )
            starts = starts.copy()
            starts.flags.writeable = False
            object.__setattr__(self, "word_starts", starts)
        if self.voice is None:  # the envs' keyword default before EnvConfig
            object.__setattr__(self, "voice", "text")
        if isinstance(self.voice, str) and self.voice not in VOICES:
            raise ValueError(
                f"EnvConfig.voice must be one of {VOICES} or a Voice object, got {self.voice!r}"
            )
        if not isinstance(self.voice, str | Voice):
            raise ValueError(
                f"EnvConfig.voice must be one of {VOICES} or a Voice, got {self.voice!r}"
            )

    def make_voice(self) -> Voice:
        """The voice object the env steps (a fresh :class:`TextVoice` for ``"text"``)."""
        if self.voice in ("audio", "auto"):
            raise ValueError(
                f"EnvConfig.voice {self.voice!r} decodes the agent's audio with the agent's own "
                "decoder, which the env does not have: use fdenv.agent.env_for(agent, config) "
                "(the trainer and the evaluator do), or pass a Voice object such as "
                "MimiVoice(mimi)"
            )
        return TextVoice() if isinstance(self.voice, str) else self.voice

    def replace(self, **changes: Any) -> EnvConfig:
        """A copy with ``changes``; an unknown setting is a ``TypeError``, as an unknown keyword
        argument is in Python (wrappers such as TorchRL's ``GymEnv`` rely on that message)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            known = ", ".join(f.name for f in dataclasses.fields(self))
            raise TypeError(
                f"EnvConfig got an unexpected keyword argument {unknown[0]!r}; "
                f"the env settings are: {known}"
            )
        return dataclasses.replace(self, **changes)


def plain(value: Any) -> Any:
    """``value`` as JSON data, for run records (``config.json``, checkpoints): dataclasses become
    dicts, tuples lists, paths strings; an axis is its name and a voice its class name (objects
    are recorded by what they are, not rebuilt from the record); scenarios held in memory are
    recorded by count."""
    if isinstance(value, Axis):
        return value.name
    if isinstance(value, Voice):
        return "text" if type(value) is TextVoice else type(value).__name__
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of {value.size}"
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, Scenario) for v in value):
            return f"{len(value)} scenarios in memory"
        return [plain(v) for v in value]
    return repr(value)


def changed_settings(before: Any, after: Any) -> dict[str, tuple[Any, Any]]:
    """The settings that differ between two configs as :func:`plain` records them: dotted name
    (``env.lead_in_s``) -> (before, after); a setting one side lacks is ``None`` there."""
    if isinstance(before, dict) and isinstance(after, dict):
        changed = {}
        for key in dict.fromkeys([*before, *after]):
            inner = changed_settings(before.get(key), after.get(key))
            changed |= {f"{key}.{name}" if name else key: v for name, v in inner.items()}
        return changed
    return {} if before == after else {"": (before, after)}
