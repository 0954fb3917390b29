"""Log-probabilities of a recorded rollout under a Moshi LM, by one teacher-forced pass.

GRPO needs ``log p(token)`` for the tokens the policy sampled, under the current, the old and the
reference weights. ``LMModel.forward`` over the recorded 17-stream sequence reproduces the
streaming logits, so scoring a rollout costs one batched forward pass instead of a replay. The
probabilities are those of the sampler: logits divided by the temperature, restricted to the
top-k and renormalised.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from moshi.models.lm import LMModel

from agents.moshi.policy import SamplingConfig

DEFAULT_SAMPLING = SamplingConfig()


@dataclass
class SequenceLogProbs:
    """Per-frame log-probabilities and where they are valid.

    ``text`` is ``[B, T]``; ``audio`` is ``[B, 8, T]`` when requested. A mask is false at
    positions the model cannot predict (delays, padding after an env's last frame) and at frames
    the caller marks as not trainable. Invalid positions hold 0, never NaN. ``text_entropy`` is
    the entropy of the text distribution the tokens were scored under (a diagnostic).
    """

    text: torch.Tensor
    text_mask: torch.Tensor
    audio: torch.Tensor | None = None
    audio_mask: torch.Tensor | None = None
    text_entropy: torch.Tensor | None = None


def sampler_logprobs(
    logits: torch.Tensor, tokens: torch.Tensor, temp: float, top_k: int
) -> torch.Tensor:
    """``log p(tokens)`` under ``softmax(logits / temp)`` restricted to the top ``top_k``.

    ``logits`` is ``[..., card]``, ``tokens`` ``[...]``. A token outside the top-k gets -inf.
    """
    log_p = sampler_log_distribution(logits, temp, top_k)
    return log_p.gather(-1, tokens.clamp(min=0)[..., None])[..., 0]


def sampler_log_distribution(logits: torch.Tensor, temp: float, top_k: int) -> torch.Tensor:
    """The sampler's log-distribution: ``log_softmax(logits / temp)`` over the top ``top_k``."""
    scaled = logits.float() / temp
    if 0 < top_k < scaled.shape[-1]:
        kth = scaled.topk(top_k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    return scaled.log_softmax(dim=-1)


def entropy(log_p: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of distributions given as log-probabilities (-inf entries contribute 0)."""
    return -torch.where(log_p.isfinite(), log_p.exp() * log_p, 0.0).sum(dim=-1)


def delayed_codes(lm: LMModel, codes: torch.Tensor) -> torch.Tensor:
    """``codes [B, 17, T]`` laid out as ``LMModel.forward`` feeds them: ``[B, 17, T + 1]``, each
    stream shifted right by its delay behind the initial token; position ``t`` is the input that
    predicts position ``t + 1``."""
    batch, _, frames = codes.shape
    initial = [lm.text_initial_token_id] + [lm.initial_token_id] * lm.num_audio_codebooks
    out = torch.tensor(initial, device=codes.device)[None, :, None].repeat(batch, 1, frames + 1)
    for k, delay in enumerate(lm.delays):
        out[:, k, 1 + delay :] = codes[:, k, : frames - delay]
    return out


def text_logits(lm: LMModel, codes: torch.Tensor) -> torch.Tensor:
    """``lm(codes).text_logits[:, 0]`` without the depth transformer, which only audio needs
    (and which costs about ten times the rest on a tiny model)."""
    _, logits = lm.forward_text(delayed_codes(lm, codes)[:, :, :-1])
    return logits[:, 0]


def sequence_logprobs(
    lm: LMModel,
    codes: torch.Tensor,
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    *,
    trainable: torch.Tensor | None = None,
    with_audio: bool = False,
) -> SequenceLogProbs:
    """Scores ``codes [B, 17, T]`` (from :meth:`MoshiPolicy.sequences`) under ``lm``.

    ``trainable [B, T]`` marks frames that may carry a loss (for example not the lead-in or a
    prepended context); gradients flow when ``lm`` requires them. Call it outside streaming.
    """
    if lm.is_streaming:
        raise RuntimeError(
            "the LM is still streaming (its cache would leak into the teacher-forced pass); "
            "call MoshiPolicy.stop() after the rollout"
        )
    output = lm(codes) if with_audio else None
    logits = output.text_logits[:, 0] if output is not None else text_logits(lm, codes)
    text_mask = codes[:, 0] >= 0  # the text stream has no delay: every frame is predictable
    if trainable is not None:
        text_mask &= trainable
    logits = torch.where(text_mask[..., None], logits, 0.0)
    log_p = sampler_log_distribution(logits, sampling.temp_text, sampling.top_k_text)
    text = log_p.gather(-1, codes[:, 0].clamp(min=0)[..., None])[..., 0]
    result = SequenceLogProbs(
        torch.where(text_mask, text, 0.0),
        text_mask,
        text_entropy=torch.where(text_mask, entropy(log_p.detach()), 0.0),
    )
    if output is not None:
        audio_codes = codes[:, 1 : 1 + lm.dep_q]
        audio_mask = output.mask & (audio_codes >= 0)
        if trainable is not None:
            audio_mask &= trainable[:, None]
        logits = torch.where(audio_mask[..., None], output.logits, 0.0)
        audio = sampler_logprobs(logits, audio_codes, sampling.temp_audio, sampling.top_k_audio)
        result.audio = torch.where(audio_mask, audio, 0.0)
        result.audio_mask = audio_mask
    return result


class MoshiScorer(torch.nn.Module):
    """The GRPO actor for Moshi: log-probs ``[B, 9, T]`` (text, then 8 audio codebooks).

    Audio codebooks are scored only when ``with_audio`` is set; otherwise their rows are 0 and
    masked out, so a text-only objective (the paper's) costs no audio work.

    By default the probabilities use the sampling temperatures over the whole vocabulary, not
    the top-k (as TRL scores completions): once the weights move, a sampled token can leave the
    top-k, and its truncated probability, 0, would make the ratio and the KL term infinite.
    ``truncate_top_k=True`` gives the sampler's exact probabilities instead.
    """

    def __init__(
        self,
        lm: LMModel,
        sampling: SamplingConfig = DEFAULT_SAMPLING,
        with_audio: bool = False,
        truncate_top_k: bool = False,
    ):
        super().__init__()
        self.lm = lm
        self.with_audio = with_audio
        self.sampling = (
            sampling if truncate_top_k else replace(sampling, top_k_text=0, top_k_audio=0)
        )

    def forward(
        self, codes: torch.Tensor, trainable: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns log-probs ``[B, 9, T]``, their mask and the text entropy ``[B, T]``."""
        scored = sequence_logprobs(
            self.lm, codes, self.sampling, trainable=trainable, with_audio=self.with_audio
        )
        batch, frames = scored.text.shape
        logprob = scored.text.new_zeros(batch, 1 + self.lm.dep_q, frames)
        mask = torch.zeros_like(logprob, dtype=torch.bool)
        logprob[:, 0], mask[:, 0] = scored.text, scored.text_mask
        if scored.audio is not None and scored.audio_mask is not None:
            logprob[:, 1:], mask[:, 1:] = scored.audio, scored.audio_mask
        return logprob, mask, scored.text_entropy
