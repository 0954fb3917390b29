"""A tiny Moshi worth post-training: teacher-forced warm start on synthetic dialogues.

A random tiny Moshi talks at random, so every member of a GRPO group scores alike and RL has no
signal to start from. This module scripts what a good partner would have said in fdenv's own
synthetic scenarios (silence through pauses, an answer shortly after the turn end, a one-word
backchannel at the ground-truth moments, yielding to an interruption and answering after it),
turns each dialogue into Moshi's 17-stream sequence frame for frame as :class:`MoshiPolicy`
would have recorded it, and fits the tiny LM to it for a few hundred steps. The result listens,
answers and backchannels imperfectly, which leaves RL something to improve.

    python -m agents.moshi.warmstart [--steps N] [--force] [--eval-episodes 32]

builds the base (or loads it from the cache) and compares it on held-out scenarios with the
random model it started from and with the scripted baselines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F
from moshi.models.compression import MimiModel
from moshi.models.lm import LMModel
from tqdm import tqdm

from agents.baselines import AlwaysTalkAgent, RuleAgent, ScriptedAgent, SilentAgent
from agents.evaluate import AxisResult, compare
from agents.moshi.logprobs import delayed_codes
from agents.moshi.models import TINY_LM_CONFIG, MoshiModels, one_thread, tiny_models
from agents.moshi.policy import MoshiPolicy
from agents.moshi.tokenizer import cache_dir
from fdenv.atomic import atomic_path
from fdenv.audio.espeak import SpeakerStyle, get_engine
from fdenv.axes import PAPER_AXES
from fdenv.constants import DEFAULT_LEAD_IN_S, EPAD_ID, FRAME_S, FRAME_SIZE, PAD_ID, SAMPLE_RATE
from fdenv.engine import make_stream
from fdenv.scenario import Scenario, Word
from fdenv.scenarios.sentences import load_sentence_bank, unmarked
from fdenv.scenarios.synthetic import make_scenario

RECIPE_VERSION = 3
"""Part of the cache key: bump it when the data recipe, the loss or the build settings change
(3: always built on one thread, see :func:`agents.moshi.models.one_thread`)."""

EVAL_SEED = 1000
"""Scenario seed of the held-out evaluation set (training uses ``WarmstartConfig.train_seed``)."""


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
    voice: str = "en-us+m3"
    rate_wpm: int = 120
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
# What the agent says


@dataclass(frozen=True)
class AgentLine:
    """A line the script gives the agent: ``text`` from ``start``, cut at ``stop`` (seconds)."""

    text: str
    start: float
    stop: float | None = None


@dataclass(frozen=True)
class SpokenLine:
    """A line as spoken: its words in scenario seconds and its audio from the first word on."""

    words: tuple[Word, ...]
    audio: np.ndarray | None = None
    stop: float | None = None


def script(
    scenario: Scenario, rng: np.random.Generator, config: WarmstartConfig
) -> list[AgentLine]:
    """What a good partner says in ``scenario``, by its axis' labels."""
    bank = load_sentence_bank()
    statements = [unmarked(s) for s in bank.statements]
    backchannels = [b for b in bank.backchannels if " " not in b and "-" not in b]  # one word

    def statement() -> str:
        return statements[rng.integers(len(statements))]

    def after(t: float) -> float:
        return t + rng.uniform(*config.reply_delay_s)

    if scenario.axis == "PauseHandling":
        return []
    if scenario.axis == "TurnTaking":
        assert scenario.turn_end is not None
        return [AgentLine(statement(), after(scenario.turn_end))]
    if scenario.axis == "Backchannel":
        return [
            AgentLine(backchannels[rng.integers(len(backchannels))], truth.start)
            for truth in scenario.backchannels
        ]
    if scenario.axis == "UserInterruption":
        assert scenario.turn_end is not None and scenario.interruption is not None
        low, high = config.stop_after_frames
        stop = scenario.interruption.start + int(rng.integers(low, high + 1)) * FRAME_S
        # two sentences, so that the answer is still going when the user cuts in
        first = AgentLine(f"{statement()} {statement()}", after(scenario.turn_end), stop)
        return [first, AgentLine(statement(), after(scenario.interruption.end))]
    raise ValueError(f"no agent script for axis {scenario.axis!r}")


def speak(line: AgentLine, style: SpeakerStyle) -> SpokenLine:
    """Speaks ``line`` with espeak, whose word timings pace the text tokens."""
    speech = get_engine().speak(line.text, style)
    words = tuple(Word(w.text, w.start + line.start, w.end + line.start) for w in speech.words)
    return SpokenLine(words, speech.audio, line.stop)


# ---------------------------------------------------------------------------------------------
# Env frames -> Moshi's 17 streams


def frame_of(t: float, lead_in_s: float) -> int:
    """The env frame that contains scenario time ``t`` (frame ``k`` starts at ``0.08 k - lead``)."""
    return math.floor((t + lead_in_s) / FRAME_S + 1e-9)


def text_track(
    lines: Sequence[SpokenLine],
    num_frames: int,
    lead_in_s: float,
    tokenizer: spm.SentencePieceProcessor,
) -> np.ndarray:
    """The agent's text token per env frame, Moshi's way: a word's pieces in consecutive frames
    from the frame its speech starts in, EPAD in the frame before, PAD everywhere else.

    A word whose frame is still taken by the previous word's pieces (or EPAD) starts later. A
    line is cut before the frame of its ``stop``, mid-word if need be, the way a person breaks
    off; an EPAD is only kept when a piece of its word follows.
    """
    text = np.full(num_frames, PAD_ID, dtype=np.int64)
    free = 0  # first frame not yet taken
    for line in lines:
        stop = num_frames if line.stop is None else frame_of(line.stop, lead_in_s)
        stop = min(stop, num_frames)
        for word in line.words:
            first = max(frame_of(word.start, lead_in_s), free + 1)
            if first >= stop:
                break
            pieces = tokenizer.encode(word.text)[: stop - first]
            text[first - 1] = EPAD_ID
            text[first : first + len(pieces)] = pieces
            free = first + len(pieces)
    return text


@dataclass
class Dialogue:
    """A training dialogue in env frames, before Mimi: the agent's text token per frame, the
    env's user stream, and the agent's speech as ``(first frame, whole-frame audio)`` clips (only
    speech is encoded; the agent's silence gets Mimi's silence codes)."""

    text: np.ndarray
    user_audio: np.ndarray
    clips: list[tuple[int, np.ndarray]]


def make_dialogue(
    scenario: Scenario,
    lines: Sequence[SpokenLine],
    tokenizer: spm.SentencePieceProcessor,
    lead_in_s: float,
) -> Dialogue:
    """Lays the agent's ``lines`` over the env stream of ``scenario``.

    A clip runs from the frame of its first word to a frame past its speech (or to the frame of
    its ``stop``), so its codes cover the frames where the text says the agent talks.
    """
    stream = make_stream(scenario, lead_in_s)
    clips = []
    for line in lines:
        if line.audio is None:
            continue
        first = frame_of(line.words[0].start, lead_in_s)
        stop = first + math.ceil(len(line.audio) / FRAME_SIZE) + 1
        if line.stop is not None:
            stop = min(stop, frame_of(line.stop, lead_in_s))
        stop = min(stop, stream.num_frames)
        if stop > first:
            clip = np.zeros((stop - first) * FRAME_SIZE, dtype=np.float32)
            offset = round((line.words[0].start + lead_in_s) * SAMPLE_RATE) - first * FRAME_SIZE
            speech = line.audio[: len(clip) - offset]
            clip[offset : offset + len(speech)] = speech
            clips.append((first, clip))
    text = text_track(lines, stream.num_frames, lead_in_s, tokenizer)
    return Dialogue(text, stream.audio, clips)


@torch.no_grad()
def encode(
    mimi: MimiModel, tracks: Sequence[np.ndarray], batch_size: int = 64
) -> list[torch.Tensor]:
    """Mimi codes ``[8, frames]`` of whole-frame tracks, computed as the policy computes them.

    The policy encodes a batch of envs frame by frame with a streaming Mimi; so does this, over
    batches of tracks of similar length. One non-streaming pass per track is no shortcut: it is
    slower on a CPU, and the tiny Mimi's nearest-centroid search is not bit-stable (codes of
    near-duplicate centroids flip with the shape of the distance matmul, so a few percent of
    codes differ, as they do between a batch of one and a larger batch). Batches therefore
    have at least two rows (a lone track gets a silent companion), like the rollouts.
    """
    order = sorted(range(len(tracks)), key=lambda i: len(tracks[i]))
    codes: list[torch.Tensor] = [torch.empty(0)] * len(tracks)
    device = next(mimi.parameters()).device
    for first in range(0, len(order), batch_size):
        chunk = order[first : first + batch_size]
        frames = max(len(tracks[i]) for i in chunk) // FRAME_SIZE
        audio = torch.zeros(max(len(chunk), 2), 1, frames * FRAME_SIZE)
        for row, i in enumerate(chunk):
            audio[row, 0, : len(tracks[i])] = torch.from_numpy(tracks[i])
        audio = audio.to(device)
        with mimi.streaming(len(audio)):
            out = torch.cat(
                [
                    mimi.encode(audio[..., k * FRAME_SIZE : (k + 1) * FRAME_SIZE])
                    for k in range(frames)
                ],
                dim=2,
            ).cpu()
        for row, i in enumerate(chunk):
            codes[i] = out[row, :, : len(tracks[i]) // FRAME_SIZE]
    return codes


@torch.no_grad()
def silence_codes(mimi: MimiModel) -> torch.Tensor:
    """The codes ``[8]`` a streaming Mimi settles on for silence (what the policy's step 0 says)."""
    device = next(mimi.parameters()).device
    with mimi.streaming(1):
        for _ in range(2):
            codes = mimi.encode(torch.zeros(1, 1, FRAME_SIZE, device=device))
    return codes[0, :, 0].cpu()


def encode_dialogues(mimi: MimiModel, dialogues: Sequence[Dialogue]) -> list[torch.Tensor]:
    """Moshi's ``[17, frames - 1]`` sequence of each dialogue.

    Moshi frame ``j`` holds what the agent says in env frame ``j + 1`` and the user codes of env
    frame ``j + 1`` (see :class:`MoshiPolicy`); env frame 0 belongs to no Moshi frame.
    """
    clips = [
        (d, first, clip) for d, dialogue in enumerate(dialogues) for first, clip in dialogue.clips
    ]
    codes = encode(mimi, [d.user_audio for d in dialogues] + [clip for _, _, clip in clips])
    user, spoken = codes[: len(dialogues)], codes[len(dialogues) :]
    silence = silence_codes(mimi)[:, None]
    agent = [silence.repeat(1, len(d.text)) for d in dialogues]
    for (d, first, _), clip_codes in zip(clips, spoken, strict=True):
        agent[d][:, first : first + clip_codes.shape[1]] = clip_codes
    return [
        torch.cat([torch.as_tensor(dialogue.text)[None], agent[d], user[d]])[:, 1:]
        for d, dialogue in enumerate(dialogues)
    ]


def pad_sequences(sequences: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[17, T_i]`` sequences as one ``[N, 17, max T]`` batch, ``-1`` (the zero token) after."""
    out = torch.full((len(sequences), 17, max(s.shape[1] for s in sequences)), -1)
    for i, sequence in enumerate(sequences):
        out[i, :, : sequence.shape[1]] = sequence
    return out


def build_dataset(models: MoshiModels, config: WarmstartConfig, chunk: int = 64) -> torch.Tensor:
    """Training sequences ``[N, 17, T]`` from ``scenarios_per_axis`` scenarios of each axis.

    Dialogues are encoded ``chunk`` at a time, so that their audio never piles up in memory.
    """
    style = SpeakerStyle(config.voice, config.rate_wpm, pitch=50)
    jobs = [
        (k, a.name, i) for k, a in enumerate(PAPER_AXES) for i in range(config.scenarios_per_axis)
    ]
    sequences: list[torch.Tensor] = []
    dialogues: list[Dialogue] = []
    for n, (axis_index, axis, index) in enumerate(tqdm(jobs, desc="dialogues", unit="scenario")):
        scenario = make_scenario(axis, config.train_seed, index)
        rng = np.random.default_rng([config.train_seed, axis_index, index])
        lines = [speak(line, style) for line in script(scenario, rng, config)]
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
    state = torch.load(path, map_location=device)
    models.lm.load_state_dict(state["lm"])
    models.mimi.load_state_dict(state["mimi"])
    models.lm.eval()
    models.source = {"kind": "warmstart", "path": str(path), **asdict(config)}
    return models


# ---------------------------------------------------------------------------------------------
# Evaluation on held-out scenarios


def evaluate(
    agents: dict[str, ScriptedAgent | MoshiModels], episodes: int, seed: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """Rewards per agent and axis on the same held-out episodes (scenario seed ``EVAL_SEED``),
    through :func:`agents.evaluate.compare`."""
    policies = {
        name: agent if isinstance(agent, ScriptedAgent) else MoshiPolicy(agent)
        for name, agent in agents.items()
    }
    axes = [a.name for a in PAPER_AXES]
    results = compare(policies, axes, episodes, EVAL_SEED, seed, progress=True)
    return {
        name: {axis: np.array(r.rewards) for axis, r in by_axis.items()}
        for name, by_axis in results.items()
    }


def table(results: dict[str, dict[str, np.ndarray]]) -> str:
    """One row per agent, one ``mean [95% bootstrap interval]`` cell per axis."""
    axes = [a.name for a in PAPER_AXES]
    lines = [f"{'agent':<12}" + "".join(f"{a:>26}" for a in axes)]
    for name, rewards in results.items():
        cells = [str(AxisResult(a, tuple(rewards[a]))) for a in axes]
        lines.append(f"{name:<12}" + "".join(f"{c:>26}" for c in cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=WarmstartConfig.steps)
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    parser.add_argument("--eval-episodes", type=int, default=32, help="per axis; 0 skips")
    args = parser.parse_args()
    if args.steps < 1 or args.eval_episodes < 0:
        parser.error("--steps must be >= 1 and --eval-episodes >= 0")
    torch.set_num_threads(1)  # the tiny model is fastest on one thread
    config = replace(WarmstartConfig(), steps=args.steps)
    base = tiny_base_models(config=config, force=args.force)
    print(f"base: {base_path(config)}")
    if args.eval_episodes == 0:
        return
    word = base.tokenizer.encode("right")[0]  # the scripted agents' word, inside the tiny vocab
    agents: dict[str, ScriptedAgent | MoshiModels] = {
        "base": base,
        "random": tiny_models(config.model_seed),
        "Silent": SilentAgent(word),
        "AlwaysTalk": AlwaysTalkAgent(word),
        "Rule": RuleAgent(word_id=word),
    }
    results = evaluate(agents, args.eval_episodes)
    print(
        f"mean reward [95% bootstrap interval], {args.eval_episodes} held-out episodes per axis "
        f"(scenario seed {EVAL_SEED}, episodes seeded 0..{args.eval_episodes - 1})"
    )
    print(table(results))


if __name__ == "__main__":
    main()
