"""A model's audio path: Mimi's decoder where it is trained, a fitted table where it is not.

The paper rewards what the generated audio says: Mimi decodes the model's audio tokens and a VAD
finds its speech. A real checkpoint's Mimi does that (:class:`~fdenv.voice.MimiVoice`). The tiny
CPU model's Mimi has a random decoder that turns every code into the same tone, so no VAD could
hear it speak; its encoder and codebooks, though, are what the warm start taught the LM to emit:
the codes of espeak speech while it talks and of silence while it does not. Fitting a table from
those codes back to the frames of speech they came from gives the tiny model a decoder that makes
speech where it talks (:class:`~fdenv.voice.CodebookVoice`), so the CPU demo is rewarded on the
same path as the 7B: actions -> audio -> Silero -> intervals. The table is fitted once per Mimi
(a few seconds) and cached.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from moshi.models.compression import MimiModel

from agents.moshi.models import MoshiModels, tiny_mimi_config
from agents.moshi.tokenizer import cache_dir
from agents.moshi.warmstart_data import AGENT_STYLE, encode
from fdenv.atomic import atomic_path
from fdenv.audio.espeak import SpeakerStyle, get_engine
from fdenv.constants import FRAME_SIZE
from fdenv.scenarios.sentences import load_sentence_bank, unmarked
from fdenv.voice import CodebookVoice, DecodingVoice, MimiVoice

TABLE_VERSION = 1
"""Part of the cache key: bump it when the fitting recipe changes."""
PADDING_FRAMES = 3
"""Frames of silence around each fitted line, so the table learns the codes of silence too."""


def fitting_audio(style: SpeakerStyle) -> list[np.ndarray]:
    """Every statement and backchannel of the sentence bank, spoken in ``style`` with silence
    around it (about 15 minutes of audio), in whole frames."""
    bank = load_sentence_bank()
    engine = get_engine()
    pad = np.zeros(PADDING_FRAMES * FRAME_SIZE, dtype=np.float32)
    tracks = []
    for line in [unmarked(s) for s in bank.statements] + list(bank.backchannels):
        audio = np.concatenate([pad, engine.speak(line, style).audio.astype(np.float32), pad])
        tracks.append(audio[: len(audio) // FRAME_SIZE * FRAME_SIZE])
    return tracks


def first_codebook(mimi: MimiModel) -> np.ndarray:
    """The centroids ``[codes, dim]`` of Mimi's first (semantic) codebook."""
    codebook = mimi.quantizer.rvq_first.vq.layers[0]._codebook
    return codebook.embedding.detach().float().cpu().numpy()


def fit_table(mimi: MimiModel, tracks: list[np.ndarray]) -> np.ndarray:
    """A frame of audio ``[codes, 1920]`` per code of the first codebook.

    The tracks are encoded the way the policy encodes (streaming, batched); each code seen gets
    the frame of median loudness among the frames it was given to, so a code of speech stands
    for an ordinary frame of speech and a code of silence for silence. A code never seen borrows
    the frame of the nearest seen centroid, as the nearest code is what Mimi itself would pick.
    """
    codes = encode(mimi, tracks)
    frames = np.concatenate([t.reshape(-1, FRAME_SIZE) for t in tracks])
    first = np.concatenate([c[0].numpy() for c in codes])
    loudness = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    centroids = first_codebook(mimi)
    seen = np.unique(first)
    table = np.zeros((len(centroids), FRAME_SIZE), dtype=np.float32)
    for code in seen:
        given = np.flatnonzero(first == code)
        table[code] = frames[given[np.argsort(loudness[given], kind="stable")[len(given) // 2]]]
    distances = ((centroids[:, None, :] - centroids[None, seen, :]) ** 2).sum(axis=-1)
    return table[seen[distances.argmin(axis=1)]]


def mimi_key(mimi: MimiModel, style: SpeakerStyle) -> str:
    """A short hash of everything the table depends on: the Mimi's weights and the speech."""
    digest = hashlib.sha256(f"{TABLE_VERSION}|{style}".encode())
    for name, tensor in sorted(mimi.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:12]


def table_path(mimi: MimiModel, style: SpeakerStyle) -> Path:
    return cache_dir() / f"codebook_voice_{mimi_key(mimi, style)}.npy"


def codebook_voice(mimi: MimiModel, style: SpeakerStyle | None = None) -> CodebookVoice:
    """A :class:`~fdenv.voice.CodebookVoice` fitted to ``mimi`` on speech in ``style`` (the
    warm start's agent voice by default), fitted on first use and then loaded from the cache."""
    style = style or AGENT_STYLE
    path = table_path(mimi, style)
    if not path.is_file():
        with torch.no_grad():
            table = fit_table(mimi, fitting_audio(style))
        with atomic_path(path) as tmp, tmp.open("wb") as file:
            np.save(file, table)
    return CodebookVoice(_load_table(path))


@functools.lru_cache(maxsize=4)
def _load_table(path: Path) -> np.ndarray:
    """A fitted table, read once per process: every evaluation builds fresh voices from it."""
    table = np.load(path)
    table.flags.writeable = False  # shared by every voice made from it
    return table


def has_trained_decoder(models: MoshiModels) -> bool:
    """Whether the models' Mimi decodes speech: every Mimi but the tiny architecture's, whose
    decoder weights are random (only its encoder's codebooks are fitted)."""
    as_saved = json.loads(json.dumps(models.mimi_config))  # a loaded config has lists for tuples
    return as_saved != json.loads(json.dumps(tiny_mimi_config()))


def audio_voice(models: MoshiModels) -> DecodingVoice:
    """A fresh voice that hears the models' audio tokens: Mimi's decoder (a copy of it), or
    for the tiny architecture the table fitted to its Mimi."""
    if has_trained_decoder(models):
        return MimiVoice(models.mimi)
    return codebook_voice(models.mimi)
