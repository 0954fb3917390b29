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


def leading_audio_logits(
    lm: LMModel, codes: torch.Tensor, codebooks: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Text logits ``[B, T, text_card]``, and logits ``[B, codebooks, T, card]`` with their
    validity ``[B, codebooks, T]`` for the first ``codebooks`` audio codebooks, equal to
    ``lm(codes)``'s.

    The depth transformer is causal over codebooks, so the first ``k`` of its outputs depend on
    its first ``k`` inputs only: scoring the semantic codebook alone (``codebooks=1``) runs it one
    position deep instead of eight, about an eighth of its cost.
    """
    if not 1 <= codebooks <= lm.dep_q:
        raise ValueError(f"codebooks must be in [1, {lm.dep_q}], got {codebooks}")
    delayed = delayed_codes(lm, codes)
    hidden, text = lm.forward_text(delayed[:, :, :-1])
    targets = delayed[:, :, 1:]
    batch, _, frames = codes.shape
    schedule = lm.depformer_weights_per_step_schedule
    inputs = []
    for k in range(codebooks):
        linear = (schedule[k] if schedule is not None else k) if lm.depformer_multi_linear else 0
        previous = (
            lm.depformer_text_emb(targets[:, 0])
            if k == 0
            else lm.depformer_emb[k - 1](targets[:, lm.audio_offset + k - 1])
        )
        inputs.append(previous + lm.depformer_in[linear](hidden))
    depth = lm.depformer(torch.stack(inputs, 2).view(batch * frames, codebooks, -1))
    logits = torch.full(
        (batch, codebooks, frames, lm.card), float("nan"), device=codes.device, dtype=depth.dtype
    )
    valid = torch.zeros(batch, codebooks, frames, dtype=torch.bool, device=codes.device)
    for k in range(codebooks):
        per_frame = lm.linears[k](lm.depformer_norms[k](depth[:, k])).view(batch, frames, -1)
        delay = lm.delays[lm.audio_offset + k]
        logits[:, k, : frames - delay] = per_frame[:, delay:]
        valid[:, k, : frames - delay] = codes[:, lm.audio_offset + k, : frames - delay] >= 0
    return text[:, 0], logits, valid


def sequence_logprobs(
    lm: LMModel,
    codes: torch.Tensor,
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    *,
    trainable: torch.Tensor | None = None,
    audio_codebooks: int = 0,
) -> SequenceLogProbs:
    """Scores ``codes [B, 17, T]`` (from :meth:`MoshiPolicy.sequences`) under ``lm``: the text
    stream and the first ``audio_codebooks`` audio codebooks (0: text only; 1: the semantic
    codebook; 8: all), the rest of ``audio`` 0 and masked.

    ``trainable [B, T]`` marks frames that may carry a loss (for example not the lead-in or a
    prepended context); gradients flow when ``lm`` requires them. Call it outside streaming.
    """
    if lm.is_streaming:
        raise RuntimeError(
            "the LM is still streaming (its cache would leak into the teacher-forced pass); "
            "call MoshiPolicy.stop() after the rollout"
        )
    if audio_codebooks:
        logits, audio_logits, audio_valid = leading_audio_logits(lm, codes, audio_codebooks)
    else:
        logits = text_logits(lm, codes)
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
    if audio_codebooks:
        audio_codes = codes[:, lm.audio_offset : lm.audio_offset + audio_codebooks]
        scored_mask = audio_valid & trainable[:, None] if trainable is not None else audio_valid
        audio_logits = torch.where(scored_mask[..., None], audio_logits, 0.0)
        audio = sampler_logprobs(
            audio_logits, audio_codes, sampling.temp_audio, sampling.top_k_audio
        )
        unscored = (codes.shape[0], lm.dep_q - audio_codebooks, codes.shape[-1])
        result.audio = torch.cat(
            [torch.where(scored_mask, audio, 0.0), audio.new_zeros(unscored)], 1
        )
        result.audio_mask = torch.cat([scored_mask, scored_mask.new_zeros(unscored)], 1)
    return result


class MoshiScorer(torch.nn.Module):
    """The GRPO actor for Moshi: log-probs ``[B, 9, T]`` (text, then 8 audio codebooks).

    Only the first ``audio_codebooks`` audio codebooks are scored; the other rows are 0 and
    masked out, so a text-only objective (the paper's) costs no audio work and one on the
    semantic codebook runs the depth transformer one codebook deep.

    By default the probabilities use the sampling temperatures over the whole vocabulary, not
    the top-k (as TRL scores completions): once the weights move, a sampled token can leave the
    top-k, and its truncated probability, 0, would make the ratio and the KL term infinite.
    ``truncate_top_k=True`` gives the sampler's exact probabilities instead.
    """

    def __init__(
        self,
        lm: LMModel,
        sampling: SamplingConfig = DEFAULT_SAMPLING,
        audio_codebooks: int = 0,
        truncate_top_k: bool = False,
    ):
        super().__init__()
        self.lm = lm
        self.audio_codebooks = audio_codebooks
        self.sampling = (
            sampling if truncate_top_k else replace(sampling, top_k_text=0, top_k_audio=0)
        )

    def forward(
        self, codes: torch.Tensor, trainable: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns log-probs ``[B, 9, T]``, their mask and the text entropy ``[B, T]``."""
        scored = sequence_logprobs(
            self.lm, codes, self.sampling, trainable=trainable, audio_codebooks=self.audio_codebooks
        )
        batch, frames = scored.text.shape
        logprob = scored.text.new_zeros(batch, 1 + self.lm.dep_q, frames)
        mask = torch.zeros_like(logprob, dtype=torch.bool)
        logprob[:, 0], mask[:, 0] = scored.text, scored.text_mask
        if scored.audio is not None and scored.audio_mask is not None:
            logprob[:, 1:], mask[:, 1:] = scored.audio, scored.audio_mask
        return logprob, mask, scored.text_entropy
