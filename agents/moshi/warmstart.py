"""A tiny Moshi worth post-training: teacher-forced warm start on synthetic dialogues.

A random tiny Moshi talks at random, so every member of a GRPO group scores alike and RL has no
signal to start from. The warm start takes what a good partner would have said in fdenv's own
synthetic scenarios, as each axis states it (silence through pauses, an answer shortly after the
turn end, a one-word backchannel at the ground-truth moments, yielding to an interruption and
answering after it), as Moshi's 17-stream sequences (:mod:`agents.moshi.warmstart_data`), and
fits the tiny LM to them for a few hundred steps. The result listens, answers and backchannels
imperfectly, which leaves RL something to improve. The base is built once and cached under a
hash of its recipe; ``python -m agents.cli.warmstart`` builds it and compares it with the
random model and the scripted baselines.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from moshi.models.lm import LMModel
from tqdm import tqdm

from agents.moshi.logprobs import delayed_codes
from agents.moshi.models import TINY_LM_CONFIG, MoshiModels, one_thread, tiny_models
from agents.moshi.tokenizer import cache_dir
from agents.moshi.warmstart_data import (
    AGENT_STYLE,
    Dialogue,
    WarmstartPartner,
    encode_dialogues,
    make_dialogue,
    pad_sequences,
    speak,
)
from fdenv.atomic import atomic_path
from fdenv.audio.espeak import SpeakerStyle
from fdenv.axes import PAPER_AXES
from fdenv.constants import DEFAULT_LEAD_IN_S, PAD_ID
from fdenv.scenarios.synthetic import make_scenario

RECIPE_VERSION = 3
"""Part of the cache key: bump it when the data recipe, the loss or the build settings change
(3: always built on one thread, see :func:`agents.moshi.models.one_thread`)."""


@dataclass(frozen=True)
class WarmstartConfig:
    """Everything the warm-started weights depend on; its hash names the cached file."""

    model_seed: int = 0
    """Seed of ``tiny_models``: the random LM the training starts from and the Mimi it keeps."""
    train_seed: int = 0
    scenarios_per_axis: int = 100
    steps: int = 400
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 20
    weight_decay: float = 0.01
    pad_weight: float = 0.3
    """Loss weight of text PAD (EPAD and words weigh 1): PAD is ~90% of the frames."""
    audio_weight: float = 0.05
    """The audio term only keeps the sampled audio tokens, which the LM reads back, in range."""
    audio_frames: int = 16
    """Frames per sequence whose audio is scored (the depth transformer is most of the cost)."""
    reply_delay_s: tuple[float, float] = (0.2, 0.5)
    """Seconds from the end of the user's turn (or interruption) to the agent's first word."""
    stop_after_frames: tuple[int, int] = (1, 3)
    """Frames after an interruption starts in which the agent says its last token."""
    voice: str = AGENT_STYLE.voice
    rate_wpm: int = AGENT_STYLE.rate_wpm
    """espeak's rate; its word timings pace the agent's text at about 2.9 words per second."""
    lead_in_s: float = DEFAULT_LEAD_IN_S

    def key(self) -> str:
        """A short hash of the recipe, the config and the architecture."""
        blob = json.dumps(
            {"recipe": RECIPE_VERSION, "config": asdict(self), "lm": TINY_LM_CONFIG},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# Data


def build_dataset(models: MoshiModels, config: WarmstartConfig, chunk: int = 64) -> torch.Tensor:
    """Training sequences ``[N, 17, T]`` from ``scenarios_per_axis`` scenarios of each of the
    paper's axes, with what the axis says a good partner says in them.

    Dialogues are encoded ``chunk`` at a time, so that their audio never piles up in memory.
    """
    style = SpeakerStyle(config.voice, config.rate_wpm, pitch=AGENT_STYLE.pitch)
    axes = [axis() for axis in PAPER_AXES]  # default settings, whatever is registered
    jobs = [(k, a, i) for k, a in enumerate(axes) for i in range(config.scenarios_per_axis)]
    sequences: list[torch.Tensor] = []
    dialogues: list[Dialogue] = []
    for n, (axis_index, axis, index) in enumerate(tqdm(jobs, desc="dialogues", unit="scenario")):
        scenario = make_scenario(axis, config.train_seed, index)
        rng = np.random.default_rng([config.train_seed, axis_index, index])
        partner = WarmstartPartner(rng, config.reply_delay_s, config.stop_after_frames)
        lines = [speak(line, style) for line in axis.reference_lines(scenario, partner)]
        dialogues.append(make_dialogue(scenario, lines, models.tokenizer, config.lead_in_s))
        if len(dialogues) == chunk or n == len(jobs) - 1:
            sequences += encode_dialogues(models.mimi, dialogues)
            dialogues = []
    return pad_sequences(sequences)


# ---------------------------------------------------------------------------------------------
# Training


def warmstart_loss(
    lm: LMModel,
    codes: torch.Tensor,
    text_weights: torch.Tensor,
    audio_frames: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (text loss, audio loss) of ``codes [B, 17, T]`` (``-1`` = no target).

    The text logits are ``lm(codes).text_logits`` without its depth transformer pass; the audio
    is scored at ``audio_frames`` random frames per sequence, which costs a fraction of scoring
    all of them. Both are cross-entropies in the delayed layout, which is the one the targets
    are predicted in; positions holding the initial token or no token carry no loss.
    """
    sequence = delayed_codes(lm, codes)
    hidden, text_logits = lm.forward_text(sequence[:, :, :-1])
    text_loss = F.cross_entropy(
        text_logits[:, 0].flatten(0, 1), codes[:, 0].flatten(), text_weights, ignore_index=-1
    )
    lengths = (codes[:, 0] >= 0).sum(1)
    rand = torch.rand(len(codes), audio_frames, generator=generator).to(codes.device)
    picked = (rand * lengths[:, None]).long()  # [B, F]
    targets = sequence[:, :, 1:].gather(2, picked[:, None].expand(-1, sequence.shape[1], -1))
    hidden = hidden.gather(1, picked[..., None].expand(-1, -1, hidden.shape[-1]))
    logits = lm.forward_depformer_training(targets, hidden)  # [B, 8, F, card]
    audio = targets[:, 1 : 1 + lm.dep_q]
    audio = torch.where((audio >= 0) & (audio < lm.card), audio, -1)
    audio_loss = F.cross_entropy(logits.flatten(0, 2), audio.flatten(), ignore_index=-1)
    return text_loss, audio_loss


def train(lm: LMModel, data: torch.Tensor, config: WarmstartConfig) -> list[float]:
    """Fits ``lm`` to ``data [N, 17, T]`` with AdamW; returns the loss per step."""
    generator = torch.Generator().manual_seed(config.model_seed)
    weights = torch.ones(lm.text_card, device=lm.device)
    weights[PAD_ID] = config.pad_weight
    optimizer = torch.optim.AdamW(lm.parameters(), config.lr, weight_decay=config.weight_decay)

    def schedule(step: int) -> float:
        warm = min(1.0, (step + 1) / config.warmup_steps)
        return warm * 0.5 * (1 + math.cos(math.pi * step / config.steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    lengths = (data[:, 0] >= 0).sum(1)
    lm.train()
    losses = []
    bar = tqdm(range(config.steps), desc="training", unit="step")
    for _ in bar:
        rows = torch.randint(len(data), (config.batch_size,), generator=generator)
        batch = data[rows, :, : int(lengths[rows].max())]
        text_loss, audio_loss = warmstart_loss(lm, batch, weights, config.audio_frames, generator)
        loss = text_loss + config.audio_weight * audio_loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        bar.set_postfix(text=f"{text_loss.item():.3f}", audio=f"{audio_loss.item():.2f}")
    lm.eval()
    return losses


# ---------------------------------------------------------------------------------------------
# The cached base


def base_path(config: WarmstartConfig) -> Path:
    return cache_dir() / f"warmstart_tiny_{config.key()}.pt"


def build_base(config: WarmstartConfig, device: str | torch.device = "cpu") -> MoshiModels:
    """Trains a base from ``tiny_models(config.model_seed)`` and writes it to the cache."""
    started = time.perf_counter()
    models = tiny_models(config.model_seed, device)
    data = build_dataset(models, config).to(device)
    built = time.perf_counter()
    tqdm.write(
        f"{len(data)} dialogues, {int((data[:, 0] >= 0).sum())} frames, {built - started:.0f} s"
    )
    train(models.lm, data, config)
    tqdm.write(f"trained {config.steps} steps in {time.perf_counter() - built:.0f} s")
    state = {
        "lm": models.lm.state_dict(),
        "mimi": models.mimi.state_dict(),
        "config": asdict(config),
    }
    with atomic_path(base_path(config)) as tmp:
        torch.save(state, tmp)
    tqdm.write(f"built the base in {time.perf_counter() - started:.0f} s: {base_path(config)}")
    models.source = {"kind": "warmstart", "path": str(base_path(config)), **asdict(config)}
    return models


def tiny_base_models(
    device: str | torch.device = "cpu",
    config: WarmstartConfig = WarmstartConfig(),
    force: bool = False,
) -> MoshiModels:
    """The warm-started tiny Moshi, built on first use (a few minutes on a CPU), then cached."""
    path = base_path(config)
    if force or not path.is_file():
        with one_thread():
            return build_base(config, device)
    models = tiny_models(config.model_seed, device)
    state = torch.load(path, map_location=device, weights_only=True)  # a cache file: data only
    models.lm.load_state_dict(state["lm"])
    models.mimi.load_state_dict(state["mimi"])
    models.lm.eval()
    models.source = {"kind": "warmstart", "path": str(path), **asdict(config)}
    return models
