"""Run a policy over Full-Duplex-Bench sample folders and write what the benchmark scores.

For every ``input.wav`` under a folder (:func:`fdenv.fdbench.samples.find_samples`, any
sample rate, labelled or not, backchannel samples included) this plays the input to the policy
the way the official Moshi client does: resampled to 24 kHz, ``lead_in_s`` of silence first
(the client's 3 s priming, whose output it throws away), then the input in 1920-sample frames,
the last one zero-padded. It writes next to the input:

- ``output.wav``: the agent's audio from the end of the lead-in, at the INPUT's sample rate and
  exactly the input's length, as the benchmark requires. A Moshi policy's audio is its own
  tokens decoded by its Mimi (:class:`fdenv.voice.MimiVoice`). Scripted agents make no audio:
  their ``output.wav`` is silence, so only ``output.json`` says what they did, and the official
  ASR step must not be rerun on their folders (it would overwrite it with nothing).
- ``output.json``: the benchmark's ASR format (``{"text", "chunks": [{"text", "timestamp"}]}``)
  with one chunk per text token (:func:`fdenv.fdbench.metrics.words_from_text_tokens`, whose
  docstring says how token timings differ from ASR), decoded with the policy's tokenizer where it
  has one (the token id otherwise). For an interruption sample, only words after the
  interruption's end are written, as the benchmark's ASR only hears the audio after it.

Many samples play at once in one batched engine, like the env's vector rollouts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from agents.baselines import ScriptedAgent
from agents.evaluate import Agent
from agents.moshi.policy import MoshiPolicy
from fdenv.atomic import atomic_path
from fdenv.audio.io import read_mono, resample, write_audio
from fdenv.constants import DEFAULT_LEAD_IN_S, FRAME_SIZE, SAMPLE_RATE
from fdenv.engine import DuplexEngine, make_stream
from fdenv.episode import Episode
from fdenv.fdbench.metrics import cut_words, episode_words, read_interruption
from fdenv.fdbench.samples import Sample, find_samples
from fdenv.scenario import Scenario, Word
from fdenv.voice import MimiVoice, TextVoice, Voice

OUTPUT_WAV = "output.wav"
OUTPUT_JSON = "output.json"


def asr_json(words: Sequence[Word], decode: Callable[[int], str] | None = None) -> dict:
    """Words in the benchmark's ASR format; ``decode`` maps a token id to its text."""
    chunks = [
        {"text": decode(int(w.text)) if decode else w.text, "timestamp": [w.start, w.end]}
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


def play_samples(
    agent: Agent, scenarios: Sequence[Scenario], voice: Voice, lead_in_s: float
) -> list[Episode]:
    """One episode per scenario, all stepped together until the longest ends."""
    engine = DuplexEngine(len(scenarios), voice, lead_in_s)
    for env, scenario in enumerate(scenarios):
        engine.start(env, make_stream(scenario, lead_in_s))
    if isinstance(agent, MoshiPolicy):
        agent.start(len(scenarios))
    else:
        agent.reset(len(scenarios))
    frames = np.zeros((len(scenarios), FRAME_SIZE), dtype=np.float32)
    while engine.running.any():
        engine.step(agent.act(engine.observe(frames)))
    if isinstance(agent, MoshiPolicy):
        agent.stop()
    return [engine.episode(env) for env in range(len(scenarios))]


def export_folder(
    agent: Agent,
    root: str | Path,
    *,
    lead_in_s: float = DEFAULT_LEAD_IN_S,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = False,
) -> list[Path]:
    """Writes ``output.wav`` and ``output.json`` into every sample folder under ``root``;
    returns the sample folders. Deterministic for a ``seed`` and ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    samples = find_samples(root)
    if not samples:
        raise FileNotFoundError(f"{root}: no sample folder with an input.wav")
    moshi = isinstance(agent, MoshiPolicy)
    if not moshi and not isinstance(agent, ScriptedAgent):
        raise TypeError(f"agent must be a MoshiPolicy or a ScriptedAgent, got {type(agent)}")
    voice = MimiVoice(agent.models.mimi) if moshi else TextVoice()
    decode = agent.models.tokenizer.decode if moshi else None
    torch.manual_seed(seed)
    batches = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    for batch in tqdm(batches, desc="exporting", unit="batch", disable=not progress):
        inputs = [read_mono(s.input) for s in batch]
        scenarios = [
            Scenario(s.name, s.axis or "Backchannel", resample(a, rate, SAMPLE_RATE), [])
            for s, (a, rate) in zip(batch, inputs, strict=True)
        ]
        episodes = play_samples(agent, scenarios, voice, lead_in_s)
        for sample, (audio, rate), episode in zip(batch, inputs, episodes, strict=True):
            write_audio(sample.folder / OUTPUT_WAV, output_audio(episode, len(audio), rate), rate)
            record = asr_json(sample_words(sample, episode), decode)
            with atomic_path(sample.folder / OUTPUT_JSON) as tmp:
                tmp.write_text(json.dumps(record, indent=2) + "\n")
    return [s.folder for s in samples]
