"""Building and loading Moshi models: tiny random presets for CPUs, real checkpoints the moshi way.

Everything goes through ``moshi.models.loaders`` (``get_moshi_lm``, ``get_mimi``,
``CheckpointInfo``), so a tiny model saved to disk and Kyutai's released weights load through the
same code path.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm
import torch
from moshi.models import loaders
from moshi.models.compression import MimiModel
from moshi.models.lm import LMModel
from moshi.quantization.core_vq import EuclideanCodebook
from moshi.utils.compile import no_compile

from agents.moshi.tokenizer import TINY_VOCAB, cache_dir, tiny_tokenizer
from fdenv.atomic import atomic_path
from fdenv.axes import TurnTaking
from fdenv.constants import FRAME_SIZE
from fdenv.scenarios.synthetic import make_scenario

MOSHI_DELAYS = [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1]

TINY_LM_CONFIG: dict[str, Any] = {
    "dim": 64,
    "text_card": TINY_VOCAB,
    "existing_text_padding_id": 3,
    "n_q": 16,
    "dep_q": 8,
    "card": 2048,
    "num_heads": 4,
    "num_layers": 2,
    "hidden_scale": 4.125,
    "causal": True,
    "layer_scale": None,
    "context": 1000,
    "max_period": 10000,
    "gating": "silu",
    "norm": "rms_norm_f32",
    "positional_embedding": "rope",
    "depformer_dim": 64,
    "depformer_dim_feedforward": 256,
    "depformer_num_heads": 4,
    "depformer_num_layers": 2,
    "depformer_layer_scale": None,
    "depformer_multi_linear": True,
    "depformer_context": 8,
    "depformer_max_period": 10000,
    "depformer_gating": "silu",
    "depformer_pos_emb": "none",
    "depformer_weights_per_step": True,
    "delays": MOSHI_DELAYS,
}
"""A 2-layer, 64-wide Moshi with Moshi's streams, delays and audio vocabulary."""


def tiny_mimi_config() -> dict[str, Any]:
    """Mimi's architecture (24 kHz, 12.5 Hz, 2048-entry codebooks) at a fraction of the width."""
    config = copy.deepcopy(loaders._mimi_config)
    config["seanet"] |= {"dimension": 32, "n_filters": 4}
    config["quantizer"] |= {
        "dimension": 16,
        "n_q": 8,
        "input_dimension": 32,
        "output_dimension": 32,
    }
    config["transformer"] |= {
        "d_model": 32,
        "num_heads": 2,
        "num_layers": 1,
        "dim_feedforward": 64,
        "input_dimension": 32,
        "output_dimensions": [32],
    }
    return config


@dataclass
class MoshiModels:
    """An LM, its Mimi codec and its text tokenizer, with the configs needed to save them again."""

    lm: LMModel
    mimi: MimiModel
    tokenizer: spm.SentencePieceProcessor
    lm_config: dict[str, Any]
    mimi_config: dict[str, Any] | None = None
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def text_card(self) -> int:
        return self.lm.text_card

    @property
    def audio_card(self) -> int:
        return self.lm.card

    @property
    def device(self) -> torch.device:
        return self.lm.device

    @cached_property
    def word_starts(self) -> np.ndarray:
        """For each text token id, whether it begins a word (a SentencePiece piece that starts
        with "▁"); ids past the tokenizer's vocabulary begin words. The env joins the pieces
        of a word with it, so the benchmark's word counts see words, not pieces."""
        starts = np.ones(self.text_card, dtype=bool)
        size = min(self.text_card, self.tokenizer.vocab_size())
        starts[:size] = [self.tokenizer.id_to_piece(i).startswith("\u2581") for i in range(size)]
        return starts


def eager_on_cpu(device: str | torch.device) -> AbstractContextManager[None]:
    """Switches moshi's ``torch.compile`` off on a CPU (compiled steps ran 3x slower there) and
    leaves it as moshi sets it on a GPU. The same as ``NO_TORCH_COMPILE=1``, which moshi reads
    only when it is first imported."""
    return no_compile() if torch.device(device).type == "cpu" else nullcontext()


@contextmanager
def one_thread() -> Iterator[None]:
    """Runs torch on one CPU thread inside, whatever the caller set.

    Reductions split over threads round differently, so what a cached build produces (fitted
    codebooks, the warm-started base) would depend on the thread count of whoever built it
    first; built on one thread, it is the same for every caller.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_codebooks(mimi: MimiModel, seed: int) -> None:
    """Gives a random Mimi codebooks fitted to speech, cached on disk per seed.

    An untrained Mimi's codebooks are all zero, so every frame would encode to the same codes
    and a policy could not hear the user. Moshi's own quantizer fits them by k-means on its first
    training batch; this runs that on synthetic speech (a few seconds once, then loaded). K-means
    leaves duplicate centroids where it had too little data; those are moved far away, since
    near-ties would make a frame's code depend on float rounding (and so on the batch size).
    """
    path = cache_dir() / f"tiny_mimi_codebooks_v3_seed{seed}.pt"
    if path.is_file():
        mimi.quantizer.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return
    audio = np.concatenate([make_scenario(TurnTaking(), seed, i).audio for i in range(12)])
    device = next(mimi.parameters()).device
    frames = torch.as_tensor(audio[: len(audio) // FRAME_SIZE * FRAME_SIZE], device=device)
    with torch.no_grad(), one_thread():
        latent = mimi._encode_to_unquantized_latent(frames[None, None])
        mimi.quantizer.train()
        mimi.quantizer(latent, mimi.frame_rate)
        mimi.quantizer.eval()
        for codebook in mimi.quantizer.modules():
            if isinstance(codebook, EuclideanCodebook):
                _retire_duplicates(codebook)
    with atomic_path(path) as tmp:
        torch.save(mimi.quantizer.state_dict(), tmp)


def _retire_duplicates(codebook: EuclideanCodebook, tolerance: float = 1e-3) -> None:
    """Moves every centroid within ``tolerance`` of an earlier one out of reach."""
    embedding = codebook.embedding
    distances = torch.cdist(embedding, embedding)
    earlier = torch.ones_like(distances, dtype=torch.bool).tril(diagonal=-1)
    duplicate = ((distances < tolerance) & earlier).any(dim=1)
    scale = 1e3 * (embedding.norm(dim=1).max() + 1.0)
    far = scale * torch.nn.functional.normalize(torch.randn_like(embedding), dim=1)
    new = torch.where(duplicate[:, None], far, embedding)
    codebook.embedding_sum.copy_(new * codebook.cluster_usage.clamp(min=codebook.epsilon)[:, None])
    codebook.register_buffer("_embedding", None, persistent=False)


def tiny_models(seed: int = 0, device: str | torch.device = "cpu") -> MoshiModels:
    """A random tiny Moshi: steps in a few ms on one CPU core, text tokens decode to words."""
    torch.manual_seed(seed)
    lm = loaders.get_moshi_lm(None, lm_kwargs=TINY_LM_CONFIG, device=device, dtype=torch.float32)
    mimi_config = tiny_mimi_config()
    mimi = loaders.get_mimi(None, mimi_config, device=device, num_codebooks=8)
    fit_codebooks(mimi, seed)
    return MoshiModels(
        lm,
        mimi,
        tiny_tokenizer(TINY_VOCAB),
        dict(TINY_LM_CONFIG),
        mimi_config,
        {"kind": "preset", "name": "tiny", "seed": seed},
    )


def default_dtype(device: str | torch.device) -> torch.dtype:
    """bf16 on GPUs (as Kyutai ships the weights), fp32 on CPUs (bf16 matmuls are slow there)."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def load_checkpoint(
    *,
    hf_repo: str | None = None,
    moshi_weight: str | Path | None = None,
    mimi_weight: str | Path | None = None,
    tokenizer: str | Path | None = None,
    config_path: str | Path | None = None,
    lora_weight: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> MoshiModels:
    """Loads Moshi like ``python -m moshi.server`` does, from a Hugging Face repo or local files.

    With ``hf_repo`` the files come from the hub (downloaded once, then cached) and the local
    paths override single files. Without it, ``moshi_weight``, ``mimi_weight`` and ``tokenizer``
    are required and ``config_path`` is the model's ``config.json`` (omit it for the original
    Moshi 7B architecture).
    """
    if hf_repo is not None:
        info = loaders.CheckpointInfo.from_hf_repo(
            hf_repo,
            moshi_weights=moshi_weight,
            mimi_weights=mimi_weight,
            tokenizer=tokenizer,
            config_path=config_path,
            lora_weights=lora_weight,
        )
    else:
        info = local_checkpoint(moshi_weight, mimi_weight, tokenizer, config_path, lora_weight)
    dtype = dtype or default_dtype(device)
    lm = info.get_moshi(device=device, dtype=dtype)
    return MoshiModels(
        lm=lm,
        mimi=info.get_mimi(device=device),
        tokenizer=info.get_text_tokenizer(),
        lm_config=dict(info.lm_config or loaders._lm_kwargs),
        mimi_config=info.mimi_config,
        source={"kind": "checkpoint", "hf_repo": hf_repo, "moshi_weight": str(info.moshi_weights)},
    )


def local_checkpoint(
    moshi_weight: str | Path | None,
    mimi_weight: str | Path | None,
    tokenizer: str | Path | None,
    config_path: str | Path | None = None,
    lora_weight: str | Path | None = None,
) -> loaders.CheckpointInfo:
    """A ``CheckpointInfo`` for files on disk, read the way ``from_hf_repo`` reads a config."""
    paths = {"moshi_weight": moshi_weight, "mimi_weight": mimi_weight, "tokenizer": tokenizer}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        raise ValueError(f"without hf_repo, give local paths for: {', '.join(missing)}")
    for name, path in [*paths.items(), ("config_path", config_path), ("lora_weight", lora_weight)]:
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{name}: {path} does not exist")
    raw = lm_config = None
    mimi_config = None
    if config_path is not None:
        raw = json.loads(Path(config_path).read_text())
        lm_config = {k: v for k, v in raw.items() if k not in _CONFIG_FILE_KEYS}
        mimi_name = raw.get("mimi_config_name")
        if mimi_name is not None:
            mimi_config = json.loads((Path(config_path).parent / mimi_name).read_text())
    return loaders.CheckpointInfo(
        moshi_weights=Path(moshi_weight),  # type: ignore[arg-type]
        mimi_weights=Path(mimi_weight),  # type: ignore[arg-type]
        tokenizer=Path(tokenizer),  # type: ignore[arg-type]
        lm_config=lm_config,
        raw_config=raw,
        mimi_config=mimi_config,
        lora_weights=None if lora_weight is None else Path(lora_weight),
    )


_CONFIG_FILE_KEYS = {
    "moshi_name",
    "mimi_name",
    "mimi_config_name",
    "tokenizer_name",
    "lora_name",
    "model_type",
    "lm_gen_config",
    "tts_config",
    "stt_config",
    "model_id",
}
"""Keys of a checkpoint's config.json that describe files, not the LM (moshi pops the same)."""
