"""Run a policy over Full-Duplex-Bench sample folders and write what the benchmark scores.

For every ``input.wav`` under a folder (:func:`fdenv.fdbench.samples.find_samples`, any
sample rate, labelled or not, backchannel samples included) this plays the input to the policy
the way the official Moshi client does: resampled to 24 kHz, in 1920-sample frames, the last one
zero-padded. The paper primes the model with 3 s of silence; the official client does not.
fdenv plays ``lead_in_s`` of silence first (3 s by default, the paper's) and drops the output
over it, so the files start at the input's start either way; ``lead_in_s=0`` is the official
client's no priming. It writes next to the input:

- ``output.wav``: the agent's audio from the end of the lead-in, with the input's duration, at
  24 kHz by default as the official client writes it (``round(duration * 24000)`` samples), or
  at the input's own rate and exactly its length (``output_rate=None``). The rate changes the
  scores: the official backchannel script reads every file as if it were 16 kHz, so to compare
  with published numbers keep the client's 24 kHz. A Moshi policy's audio is its own tokens
  decoded by its Mimi (:class:`fdenv.voice.MimiVoice`). Scripted agents make no audio: their
  ``output.wav`` is silence, so only ``output.json`` says what they did, and the official ASR
  step must not be rerun on their folders (it would overwrite it with nothing).
- ``output.json``: the benchmark's ASR format (``{"text", "chunks": [{"text", "timestamp"}]}``)
  with one chunk per audible word of the text stream (:func:`fdenv.fdbench.metrics.episode_words`:
  a word's sub-word tokens joined where the policy's tokenizer says where words start, kept
  where the agent's speech overlaps it; :func:`~fdenv.fdbench.metrics.words_from_text_tokens`
  says how token timings differ from ASR), decoded with the policy's tokenizer where it
  has one (the token ids otherwise). For an interruption sample, only words after the
  interruption's end are written, as the benchmark's ASR only hears the audio after it.

Many samples play at once, in one vector env stepped by :func:`fdenv.play.play`, as in
evaluation. The recordings carry no labels, so they play on the :class:`Playback` axis, which
scores nothing. The caller seeds its agent's randomness (``torch.manual_seed`` for Moshi).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from tqdm import tqdm

from fdenv.agent import Agent, env_for
from fdenv.atomic import atomic_path
from fdenv.audio.io import read_mono, resample, write_audio
from fdenv.axes import Axis, AxisScore
from fdenv.config import EnvConfig
from fdenv.constants import DEFAULT_LEAD_IN_S, SAMPLE_RATE
from fdenv.episode import Episode
from fdenv.fdbench.metrics import cut_words, episode_words, read_interruption
from fdenv.fdbench.samples import OUTPUT_JSON, OUTPUT_WAV, Sample, find_samples
from fdenv.play import play
from fdenv.scenario import Scenario, Word
from fdenv.vector import FullDuplexVectorEnv
from fdenv.voice import Voice

OFFICIAL_OUTPUT_RATE = SAMPLE_RATE
"""The rate of the official Moshi client's ``output.wav`` (24 kHz, Moshi's own)."""


def asr_json(words: Sequence[Word], decode: Callable[[list[int]], str] | None = None) -> dict:
    """Words in the benchmark's ASR format; ``decode`` maps a word's token ids to its text."""
    chunks = [
        {
            "text": decode([int(i) for i in w.text.split()]) if decode else w.text,
            "timestamp": [w.start, w.end],
        }
        for w in words
    ]
    return {"text": " ".join(c["text"] for c in chunks), "chunks": chunks}


def output_audio(episode: Episode, length: int, rate: int) -> np.ndarray:
    """The agent's audio after the lead-in at ``rate``, cut or zero-padded to ``length``."""
    out = np.zeros(length, dtype=np.float32)
    if episode.agent_audio is None:
        return out
    lead = round(episode.lead_in_s * SAMPLE_RATE)
    scenario = len(episode.scenario.audio)
    audio = resample(np.asarray(episode.agent_audio)[lead : lead + scenario], SAMPLE_RATE, rate)
    out[: min(length, len(audio))] = audio[:length]
    return out


def sample_words(sample: Sample, episode: Episode) -> list[Word]:
    """The words the benchmark's ASR would report for ``sample``'s output."""
    words = episode_words(episode)
    if sample.label_file is not None and sample.label_file.name == "interrupt.json":
        words = cut_words(words, read_interruption(sample.label_file).interval.end)
    return words


@dataclass(frozen=True)
class Playback(Axis):
    """Plays a given recording and scores nothing: the axis of unlabelled benchmark inputs (not
    registered, so it makes no env id)."""

    name: ClassVar[str] = "Playback"

    def synthesize(self, rng: np.random.Generator, scenario_id: str) -> Scenario:
        raise ValueError("the Playback axis plays given recordings; it synthesises none")

    def score(self, episode: Episode) -> AxisScore:
        return AxisScore(terms={})


def play_samples(agent: Agent, scenarios: Sequence[Scenario], config: EnvConfig) -> list[Episode]:
    """One episode per scenario (each of the :class:`Playback` axis), all stepped together."""
    env = FullDuplexVectorEnv(
        len(scenarios),
        Playback(),
        autoreset_mode="Disabled",
        config=config.replace(scenarios=list(scenarios)),
    )
    played = play(agent, env, options={"scenario": [s.id for s in scenarios]})
    env.close()
    return played.episodes


def export_folder(
    agent: Agent,
    root: str | Path,
    *,
    voice: Voice | None = None,
    decode: Callable[[list[int]], str] | None = None,
    lead_in_s: float = DEFAULT_LEAD_IN_S,
    output_rate: int | None = OFFICIAL_OUTPUT_RATE,
    batch_size: int = 8,
    progress: bool = False,
) -> list[Path]:
    """Writes ``output.wav`` and ``output.json`` into every sample folder under ``root``;
    returns the sample folders. ``voice`` makes the agent's audio (e.g.
    ``MimiVoice(models.mimi)``; the default :class:`fdenv.voice.TextVoice` makes none, so
    ``output.wav`` is silence) and ``decode`` turns a word's token ids into its text (a
    tokenizer's ``decode``; the default writes token ids). ``lead_in_s`` of silence primes the
    agent and its output over it is dropped (0: no priming, as the official client).
    ``output_rate`` is ``output.wav``'s rate, with the input's duration: the official client's
    24 kHz by default, ``None`` for the input's own rate and length. Deterministic for a
    seeded agent and a ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if output_rate is not None and output_rate < 1:
        raise ValueError(f"output_rate must be a positive rate or None, got {output_rate}")
    if not isinstance(agent, Agent):
        raise TypeError(
            f"agent must follow fdenv.agent.Agent (start, act, reset, stop), got {type(agent)}"
        )
    samples = find_samples(root)
    if not samples:
        raise FileNotFoundError(f"{root}: no sample folder with an input.wav")
    config = env_for(agent, EnvConfig(lead_in_s=lead_in_s, voice=voice or "text"))
    batches = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    for batch in tqdm(batches, desc="exporting", unit="batch", disable=not progress):
        inputs = [read_mono(s.input) for s in batch]
        scenarios = [
            Scenario(str(i), Playback.name, resample(audio, rate, SAMPLE_RATE), [])
            for i, (audio, rate) in enumerate(inputs)
        ]
        episodes = play_samples(agent, scenarios, config)
        for sample, (audio, rate), episode in zip(batch, inputs, episodes, strict=True):
            out_rate = rate if output_rate is None else output_rate
            length = round(len(audio) * out_rate / rate)  # the input's duration at out_rate
            audio_out = output_audio(episode, length, out_rate)
            write_audio(sample.folder / OUTPUT_WAV, audio_out, out_rate)
            record = asr_json(sample_words(sample, episode), decode)
            with atomic_path(sample.folder / OUTPUT_JSON) as tmp:
                tmp.write_text(json.dumps(record, indent=2) + "\n")
    return [s.folder for s in samples]
