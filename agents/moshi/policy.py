"""MoshiPolicy: Moshi acting in fdenv, one 80 ms frame per call, for a whole batch of envs.

Each call encodes the batch's user frames with a streaming Mimi, steps a streaming ``LMGen``
once and returns the env actions ``[B, 9]``. Moshi answers with a one-frame delay: the output of
step ``s`` belongs to frame ``s - 1`` (and so does the user audio fed at step ``s``, as far as the
LM's teacher-forced pass is concerned), so step 0 has nothing to say and the policy returns
silence there. The policy records, per env, the 17-stream sequence
``[text, 8 Moshi audio, 8 user audio]`` frame by frame, which is exactly what
``LMModel.forward`` needs to score the rollout later (see :mod:`agents.moshi.logprobs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from moshi.models.lm import LMGen

from agents.moshi.codebook_voice import audio_voice
from agents.moshi.models import MoshiModels
from fdenv.constants import FRAME_SIZE, NUM_CODEBOOKS, PAD_ID
from fdenv.voice import DecodingVoice


@dataclass(frozen=True)
class SamplingConfig:
    """Moshi's sampling settings; the defaults are the paper's (text 0.7, audio 0.8 / top-k 250)."""

    temp_text: float = 0.7
    """Temperature of the text token."""
    temp_audio: float = 0.8
    """Temperature of the audio codebooks."""
    top_k_text: int = 25
    """Text tokens sampled among the most likely this many."""
    top_k_audio: int = 250
    """Audio tokens sampled among the most likely this many."""
    use_sampling: bool = True
    """Sample; off: take the most likely token (greedy)."""


class Forced(NamedTuple):
    """Tokens to write instead of the sampled ones in one step, where the masks say so."""

    text: torch.Tensor  # [B] bool: write PAD
    audio_mask: torch.Tensor  # [B, 8] bool
    audio: torch.Tensor  # [B, 8] long


class MoshiPolicy(torch.nn.Module):
    """A batched streaming Moshi that maps user frames ``[B, 1920]`` to actions ``[B, 9]``.

    Call :meth:`start` with the batch size once (or let the first :meth:`act` do it), then
    :meth:`act` once per env step and :meth:`reset` with a mask when envs start new episodes.
    :meth:`sequences` returns what was played since each env's last reset.

    ``shared_inputs`` (G > 1) says that consecutive envs come in groups of G that hear the same
    user audio, as the rollouts of a GRPO group on a replayed scenario do: Mimi then encodes
    one row per group and the group shares its codes, G times less encoding. Each step checks
    that a group's rows are equal, and a ``ValueError`` says so if they are not (a user who
    reacts to each rollout differently cannot share).
    """

    def __init__(
        self,
        models: MoshiModels,
        sampling: SamplingConfig = SamplingConfig(),
        shared_inputs: int = 1,
    ):
        super().__init__()
        if shared_inputs < 1:
            raise ValueError(f"shared_inputs must be >= 1, got {shared_inputs}")
        self.shared_inputs = shared_inputs
        self.models = models
        self.sampling = sampling
        models.lm.eval()
        models.mimi.eval()
        self.lm_gen = LMGen(
            models.lm,
            use_sampling=sampling.use_sampling,
            temp=sampling.temp_audio,
            temp_text=sampling.temp_text,
            top_k=sampling.top_k_audio,
            top_k_text=sampling.top_k_text,
            support_out_of_sync=True,
            on_text_hook=self._force_text,
            on_audio_hook=self._force_audio,
        )
        self._streams: ExitStack | None = None
        self.batch_size = 0
        self._silence = self._silent_action()
        self._history: list[torch.Tensor] = []
        self._first_step = np.zeros(0, dtype=np.int64)
        self._partners: dict[int, tuple[torch.Tensor, int]] = {}
        self._forced: Forced | None = None

    @property
    def device(self) -> torch.device:
        return self.models.device

    @property
    def text_card(self) -> int:
        return self.models.text_card

    @property
    def audio_card(self) -> int:
        return self.models.audio_card

    @property
    def word_starts(self) -> np.ndarray:
        """Which text token ids begin a word (``fdenv.agent.env_for`` hands it to the env)."""
        return self.models.word_starts

    def audio_voice(self) -> DecodingVoice:
        """The paper's way to hear this policy: its audio tokens decoded by its model's decoder
        (a copy of its Mimi; a table fitted to the tiny Mimi, whose decoder is random), then
        Silero VAD; a new voice per env (``fdenv.agent.env_for`` calls it for
        ``voice="audio"``)."""
        return audio_voice(self.models)

    def check_env(self, env) -> None:
        """Raises ``ValueError`` if the env's action sizes differ from the model's vocabularies."""
        space = getattr(env, "single_action_space", None) or env.action_space
        nvec = [int(n) for n in space.nvec]
        expected = [self.text_card] + [self.audio_card] * NUM_CODEBOOKS
        if nvec != expected:
            raise ValueError(
                f"env action sizes {nvec[:2]}... do not match the model (text_card "
                f"{self.text_card}, audio_card {self.audio_card}); make the env with "
                f"text_card={self.text_card}, audio_card={self.audio_card}"
            )

    @torch.no_grad()
    def _silent_action(self) -> torch.Tensor:
        """PAD text and the audio codes Mimi gives to silence: what Moshi says before it can."""
        mimi = self.models.mimi
        with mimi.streaming(1):
            for _ in range(2):
                codes = mimi.encode(torch.zeros(1, 1, FRAME_SIZE, device=self.device))
        return torch.cat([torch.tensor([PAD_ID], device=self.device), codes[0, :, 0]])

    def start(
        self, batch_size: int, partners: Mapping[int, tuple[np.ndarray, int]] | None = None
    ) -> None:
        """Enters streaming mode for ``batch_size`` envs, all at the start of an episode.

        ``partners`` maps an env to audio (whole 80 ms frames) and the stream frame it starts
        at: the partner's side of a recorded context (:class:`fdenv.engine.Stream`). Over those
        frames the policy plays the partner's part, as the paper's context curriculum does:
        its audio tokens are the partner audio's Mimi codes and its text is PAD (the corpus'
        words are not aligned to Moshi's text stream). Those frames are never trained.
        """
        self.stop()
        if batch_size % self.shared_inputs:
            raise ValueError(
                f"a batch of {batch_size} envs does not split into groups of "
                f"{self.shared_inputs} that share their inputs"
            )
        self._partners = {
            env: (self._encode(audio), first) for env, (audio, first) in (partners or {}).items()
        }
        self._streams = ExitStack()
        self._streams.enter_context(self.models.mimi.streaming(batch_size // self.shared_inputs))
        self._streams.enter_context(self.lm_gen.streaming(batch_size))
        self.batch_size = batch_size
        self._history = []
        self._first_step = np.zeros(batch_size, dtype=np.int64)

    @torch.no_grad()
    def _encode(self, audio: np.ndarray) -> torch.Tensor:
        """Mimi codes ``[8, frames]`` of a stretch of whole frames (outside streaming)."""
        if audio.size == 0 or audio.size % FRAME_SIZE:
            raise ValueError(f"partner audio must be whole {FRAME_SIZE}-sample frames")
        wave = torch.as_tensor(audio, dtype=torch.float32, device=self.device)[None, None]
        return self.models.mimi.encode(wave)[0, :NUM_CODEBOOKS]

    def _forcing(self) -> Forced | None:
        """This step's forced tokens. Step ``s`` of an env samples the text and codebook 0 of
        stream frame ``s + 1`` and codebooks 1-7 of frame ``s`` (Moshi's acoustic delay)."""
        if not self._partners:
            return None
        text = torch.zeros(self.batch_size, dtype=torch.bool)
        mask = torch.zeros(self.batch_size, NUM_CODEBOOKS, dtype=torch.bool)
        audio = torch.zeros(self.batch_size, NUM_CODEBOOKS, dtype=torch.long)
        for env, (codes, first) in self._partners.items():
            step = len(self._history) - int(self._first_step[env])
            frames = codes.shape[1]
            if 0 <= step + 1 - first < frames:
                text[env] = mask[env, 0] = True
                audio[env, 0] = codes[0, step + 1 - first]
            if 0 <= step - first < frames:
                mask[env, 1:] = True
                audio[env, 1:] = codes[1:, step - first]
        if not mask.any():
            return None
        return Forced(text.to(self.device), mask.to(self.device), audio.to(self.device))

    def _force_text(self, tokens: torch.Tensor) -> None:
        if self._forced is not None:
            tokens.copy_(torch.where(self._forced.text, PAD_ID, tokens))

    def _force_audio(self, tokens: torch.Tensor) -> None:
        if self._forced is not None:
            tokens.copy_(torch.where(self._forced.audio_mask, self._forced.audio, tokens))

    def stop(self) -> None:
        if self._streams is not None:
            self._streams.close()
            self._streams = None

    def reset(self, mask: np.ndarray | torch.Tensor | None = None) -> None:
        """Starts new episodes in the envs where ``mask`` is true (all when ``None``)."""
        if self._streams is None:
            raise RuntimeError("call start(batch_size) before reset()")
        if mask is None:
            mask = np.ones(self.batch_size, dtype=bool)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.batch_size,):
            raise ValueError(f"reset mask must have shape ({self.batch_size},), got {mask.shape}")
        if not mask.any():
            return
        for env in np.flatnonzero(mask):
            self._partners.pop(int(env), None)
        groups = mask.reshape(-1, self.shared_inputs)
        if (groups != groups[:, :1]).any():
            raise ValueError(
                f"a reset must restart whole groups of {self.shared_inputs} envs that share "
                "their inputs"
            )
        torch_mask = torch.as_tensor(mask, device=self.device)
        self.models.mimi.reset_streaming(torch.as_tensor(groups[:, 0], device=self.device))
        self.lm_gen.reset_streaming(torch_mask)
        self._first_step[mask] = len(self._history)
        if mask.all():
            self._history = []
            self._first_step[:] = 0

    @torch.no_grad()
    def act(self, user_frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """One step for every env: user audio ``[B, 1920]`` in, actions ``[B, 9]`` (int64) out."""
        frames = torch.as_tensor(np.asarray(user_frames), dtype=torch.float32, device=self.device)
        if frames.ndim != 2 or frames.shape[1] != FRAME_SIZE:
            raise ValueError(f"expected user frames [B, {FRAME_SIZE}], got {tuple(frames.shape)}")
        if self._streams is None or frames.shape[0] != self.batch_size:
            self.start(frames.shape[0])
        codes = self._encode_step(frames)
        self._forced = self._forcing()
        try:
            out = self.lm_gen.step(codes)[:, :, 0]
        finally:
            self._forced = None
        actions = torch.where(out >= 0, out, self._silence)
        self._history.append(torch.cat([out, codes[:, :, 0]], dim=1))
        return actions.cpu().numpy()

    def _encode_step(self, frames: torch.Tensor) -> torch.Tensor:
        """This step's user codes ``[B, 8, 1]``, one Mimi row per group of shared inputs."""
        shared = self.shared_inputs
        if shared == 1:
            return self.models.mimi.encode(frames[:, None, :])
        grouped = frames.view(-1, shared, FRAME_SIZE)
        if not torch.equal(grouped, grouped[:, :1].expand_as(grouped)):
            raise ValueError(
                f"the envs of a group of {shared} heard different user audio, so they cannot "
                "share its encoding; make the policy with shared_inputs=1"
            )
        codes = self.models.mimi.encode(grouped[:, :1])
        return codes.repeat_interleave(shared, dim=0)

    def sequences(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The 17-stream frames played since each env's reset, for ``LMModel.forward``.

        Returns ``codes [B, 17, T]`` (long; ``-1``, the zero token, after an env's last frame)
        and ``lengths [B]``. Frame ``j`` of env ``b`` is the output and user codes of its step
        ``j + 1``; its step 0 belongs to no frame and its last step's frame is not finished.
        """
        if not self._history:
            return torch.zeros(self.batch_size, 17, 0, dtype=torch.long), torch.zeros(
                self.batch_size, dtype=torch.long
            )
        history = torch.stack(self._history, dim=2)  # [B, 17, steps]
        lengths = torch.as_tensor(len(self._history) - self._first_step - 1).clamp(min=0)
        frames = int(lengths.max())
        codes = torch.full(
            (self.batch_size, 17, frames), self.models.lm.zero_token_id, dtype=torch.long
        )
        for env in range(self.batch_size):
            first = int(self._first_step[env]) + 1
            codes[env, :, : lengths[env]] = history[env, :, first : first + int(lengths[env])]
        return codes.to(self.device), lengths
