"""The agent's voice: how its tokens become speech activity (and audio, where it can).

The environment calls a voice once per step for a whole batch of envs, so a voice keeps its
state per env and must be cheap. At the end of an episode the environment asks the voice for
the episode's speech intervals; a voice that makes audio can answer from the audio (for
example with a VAD, the paper's way) rather than from its per-frame guess.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from fdenv.audio.io import resample
from fdenv.audio.vad import SILERO_RATE, BatchedSileroVAD, EnergyVAD, VADConfig
from fdenv.constants import EPAD_ID, FRAME_S, FRAME_SIZE, NUM_CODEBOOKS, PAD_ID, SAMPLE_RATE
from fdenv.timeline import Interval, mask_to_intervals

if TYPE_CHECKING:
    from moshi.models.compression import MimiModel


class VoiceFrame(NamedTuple):
    """One step of a batch of voices: who is speaking, and their audio if the voice makes any."""

    speaking: np.ndarray
    audio: np.ndarray | None = None


class Voice(ABC):
    """Turns a batch of actions ``[N, 9]`` (text token + 8 audio tokens) into speech."""

    makes_audio: bool = False

    @abstractmethod
    def reset(self, num_envs: int) -> None:
        """Prepares state for ``num_envs`` envs, all silent."""

    @abstractmethod
    def reset_envs(self, mask: np.ndarray) -> None:
        """Forgets the state of the envs where ``mask`` is true (their episodes start over)."""

    @abstractmethod
    def step(self, actions: np.ndarray) -> VoiceFrame:
        """Consumes one frame of actions for every env."""

    def step_one(self, action: np.ndarray) -> tuple[bool, np.ndarray | None]:
        """:meth:`step` for a voice of one env and its action ``[9]``: whether it speaks, and
        its audio frame if the voice makes any. The single env calls this every step; a voice
        whose step is a few array operations can answer in Python scalars, several times
        faster than numpy on one row."""
        frame = self.step(action[None])
        return bool(frame.speaking[0]), None if frame.audio is None else frame.audio[0]

    def speech_intervals(
        self, speaking: np.ndarray, audio: np.ndarray | None = None
    ) -> list[Interval]:
        """An episode's speech, in seconds from the start of its stream.

        ``speaking`` is what :meth:`step` reported frame by frame; ``audio`` is the voice's
        audio over the episode when it makes any. The default trusts the per-frame activity.
        """
        return mask_to_intervals(speaking, FRAME_S)

    def speech_intervals_batch(
        self, episodes: Sequence[tuple[np.ndarray, np.ndarray | None]]
    ) -> list[list[Interval]]:
        """:meth:`speech_intervals` of several episodes ``(speaking, audio)`` at once (the
        episodes that end on the same step); a voice that runs a model batches them."""
        return [self.speech_intervals(speaking, audio) for speaking, audio in episodes]


class TextVoice(Voice):
    """Speech activity from the text stream alone: cheap, deterministic, no audio.

    The agent speaks in a frame if it emitted a word token (any text token other than PAD and
    EPAD) in that frame or in the ``hold_frames - 1`` frames before. Moshi emits a word's tokens
    when the word starts and pads until the next one, so the hold stands for the word's duration:
    the default 5 frames (0.4 s) keeps fluent speech (about 2.5 words per second) continuous
    while a lone backchannel token stays a short interval.
    """

    def __init__(self, hold_frames: int = 5, pad_id: int = PAD_ID, epad_id: int = EPAD_ID):
        if hold_frames < 1:
            raise ValueError(f"hold_frames must be >= 1, got {hold_frames}")
        self.hold_frames = hold_frames
        self.pad_id = pad_id
        self.epad_id = epad_id
        self._since_word = np.zeros(0, dtype=np.int64)

    def reset(self, num_envs: int) -> None:
        self._since_word = np.full(num_envs, self.hold_frames, dtype=np.int64)

    def reset_envs(self, mask: np.ndarray) -> None:
        self._since_word[mask] = self.hold_frames

    def step(self, actions: np.ndarray) -> VoiceFrame:
        text = actions[:, 0]
        word = (text != self.pad_id) & (text != self.epad_id)
        self._since_word = np.where(word, 0, self._since_word + 1)
        return VoiceFrame(self._since_word < self.hold_frames)

    def step_one(self, action: np.ndarray) -> tuple[bool, np.ndarray | None]:
        text = int(action[0])
        word = text != self.pad_id and text != self.epad_id
        since = 0 if word else int(self._since_word[0]) + 1
        self._since_word[0] = since
        return since < self.hold_frames, None


class DecodingVoice(Voice):
    """A voice that decodes the agent's audio tokens to audio and hears its speech with a VAD,
    as the paper measures the generated audio.

    The rewards' speech intervals come from Silero VAD over the episode's audio, post-processed
    with ``vad_config`` (by default ``get_speech_timestamps``' settings, which
    Full-Duplex-Bench's backchannel script uses). The per-frame ``speaking`` is
    provisional: a frame whose RMS exceeds ``threshold_db`` dBFS, cheap enough for every step
    but unable to tell speech from noise; it only feeds the per-step infos.
    """

    makes_audio = True

    def __init__(self, *, threshold_db: float = -40.0, vad_config: VADConfig | None = None) -> None:
        self.energy = EnergyVAD(threshold_db)
        self.vad_config = vad_config or VADConfig()

    @abstractmethod
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Audio frames ``[N, 1920]`` of one frame of codes ``[N, 8]`` for every env."""

    def step(self, actions: np.ndarray) -> VoiceFrame:
        audio = self.decode(actions[:, 1 : 1 + NUM_CODEBOOKS])
        return VoiceFrame(self.energy.frame_activity(audio), audio)

    def speech_intervals(
        self, speaking: np.ndarray, audio: np.ndarray | None = None
    ) -> list[Interval]:
        return self.speech_intervals_batch([(speaking, audio)])[0]

    def speech_intervals_batch(
        self, episodes: Sequence[tuple[np.ndarray, np.ndarray | None]]
    ) -> list[list[Interval]]:
        """Silero over the episodes' audio in one pass (:class:`BatchedSileroVAD`, each
        episode whole): a GRPO group's rollouts end on the same step. One episode alone takes
        the same path, so a single env and a vector env hear the same speech."""
        heard = {i: audio for i, (_, audio) in enumerate(episodes) if audio is not None}
        streams = [resample(audio, SAMPLE_RATE, SILERO_RATE) for audio in heard.values()]
        found = BatchedSileroVAD(self.vad_config).speech_intervals_batch(streams)
        # No frame played yet, no audio: the per-frame activity, as any voice
        result = [Voice.speech_intervals(self, speaking) for speaking, _ in episodes]
        for index, intervals in zip(heard, found, strict=True):
            # Times on Silero's sample grid, as SileroVAD reports them, to the last bit
            result[index] = [Interval(_on_grid(i.start), _on_grid(i.end)) for i in intervals]
        return result


def _on_grid(seconds: float) -> float:
    """``seconds`` as a whole number of Silero's 16 kHz samples over the rate."""
    return round(seconds * SILERO_RATE) / SILERO_RATE


class CodebookVoice(DecodingVoice):
    """A codec decoder that is a table: each code of one codebook (Mimi's first, semantic one)
    stands for an 80 ms frame of audio it was fitted on.

    For a model whose own decoder cannot speak, such as a tiny Moshi whose Mimi has random
    decoder weights (it decodes every code to the same tone): fitted on real speech encoded by
    the model's own Mimi (``agents.moshi.codebook_voice``), the table turns the codes the model
    learned to emit while it talks into speech a VAD hears as speech, and its silence codes into
    silence. Stateless, so a step is one array lookup. The audio is frames of real speech laid
    side by side, not intelligible speech: what it measures is when the agent speaks.
    """

    def __init__(
        self,
        table: np.ndarray,
        *,
        codebook: int = 0,
        threshold_db: float = -40.0,
        vad_config: VADConfig | None = None,
    ) -> None:
        table = np.asarray(table)
        if table.ndim != 2 or table.shape[1] != FRAME_SIZE or len(table) < 1:
            raise ValueError(
                f"a CodebookVoice table holds one {FRAME_SIZE}-sample frame per code, "
                f"shape [codes, {FRAME_SIZE}]; got {table.shape}"
            )
        if not np.isfinite(table).all():
            raise ValueError("the CodebookVoice table holds NaN or infinite samples")
        if not 0 <= codebook < NUM_CODEBOOKS:
            raise ValueError(f"codebook must be in [0, {NUM_CODEBOOKS - 1}], got {codebook}")
        super().__init__(threshold_db=threshold_db, vad_config=vad_config)
        self.table = np.clip(table, -1.0, 1.0).astype(np.float32)
        self.codebook = codebook

    def reset(self, num_envs: int) -> None:
        """Nothing to keep: a frame's audio depends on its own code alone."""

    def reset_envs(self, mask: np.ndarray) -> None:
        """Nothing to forget."""

    def decode(self, codes: np.ndarray) -> np.ndarray:
        column = codes[:, self.codebook]
        if column.min() < 0 or column.max() >= len(self.table):
            raise ValueError(
                f"audio token {column.max() if column.max() >= 0 else column.min()} is outside "
                f"the voice's table of {len(self.table)} codes"
            )
        return self.table[column]


class MimiVoice(DecodingVoice):
    """The agent's audio tokens decoded by a streaming Mimi: the paper's way of hearing the agent.

    Every step decodes one frame for all envs in one batched call. Mimi's decoder is causal with
    no lookahead: its first call already returns a full 80 ms frame, and the frames joined equal
    a non-streaming decode of the whole token sequence, so decoded frame ``k`` is episode frame
    ``k`` with no delay to undo.

    The voice decodes with its own copy of ``mimi``: Mimi keeps its streaming state inside the
    module, so the Mimi a policy encodes the user with cannot stream for the env too.
    """

    def __init__(
        self, mimi: MimiModel, *, threshold_db: float = -40.0, vad_config: VADConfig | None = None
    ) -> None:
        if mimi.is_streaming:
            raise ValueError(
                "MimiVoice copies its Mimi and cannot copy one mid-stream; make the voice before "
                "a policy starts streaming with the same Mimi"
            )
        if (mimi.sample_rate, mimi.frame_size) != (SAMPLE_RATE, FRAME_SIZE):
            raise ValueError(
                f"MimiVoice needs a {SAMPLE_RATE} Hz Mimi with {FRAME_SIZE}-sample frames, got "
                f"{mimi.sample_rate} Hz and {mimi.frame_size}"
            )
        if mimi.total_codebooks < NUM_CODEBOOKS:
            raise ValueError(f"Mimi has {mimi.total_codebooks} codebooks, needs {NUM_CODEBOOKS}")
        super().__init__(threshold_db=threshold_db, vad_config=vad_config)
        self.mimi = copy.deepcopy(mimi).eval()
        self.audio_card = int(mimi.cardinality)
        self._stream: ExitStack | None = None

    def reset(self, num_envs: int) -> None:
        if self._stream is not None:
            self._stream.close()
        self._stream = self.mimi.streaming(num_envs)

    def reset_envs(self, mask: np.ndarray) -> None:
        import torch

        self.mimi.reset_streaming(torch.as_tensor(mask, dtype=torch.bool))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        import torch

        if codes.max() >= self.audio_card:
            # F.embedding would raise an IndexError on CPU and a device assert on CUDA
            raise ValueError(
                f"audio token {codes.max()} is outside Mimi's codebooks [0, {self.audio_card - 1}]"
                f"; make the env with audio_card={self.audio_card}"
            )
        device = next(self.mimi.parameters()).device
        with torch.no_grad():
            audio = self.mimi.decode(torch.as_tensor(codes, device=device)[:, :, None])
        return audio[:, 0].float().cpu().numpy()
