import copy

import pytest
import torch

from agents.moshi.lora import (
    ReferenceModel,
    adapters_disabled,
    add_lora,
    frozen_copy,
    lora_layers,
)
from agents.moshi.models import tiny_models


def random_codes(lm, batch: int = 2, frames: int = 4, seed: int = 0) -> torch.Tensor:
    """A valid 17-stream sequence: text ids below text_card, audio ids below the card."""
    gen = torch.Generator().manual_seed(seed)
    text = torch.randint(0, lm.text_card, (batch, 1, frames), generator=gen)
    audio = torch.randint(0, lm.card, (batch, lm.num_codebooks - 1, frames), generator=gen)
    return torch.cat([text, audio], dim=1)


def text_logits(lm, codes: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return lm(codes).text_logits


def randomize_adapters(lm, seed: int = 1) -> None:
    """LoRA starts with lora_B = 0, which would make every check below pass trivially."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(lm):
            b = layer.lora_B.weight
            b.copy_(torch.randn(b.shape, generator=gen) * 0.1)


@pytest.fixture(scope="module")
def base_lm():
    return tiny_models(seed=0).lm


@pytest.fixture
def lm(base_lm):
    return copy.deepcopy(base_lm)


def test_codes_are_seventeen_streams(lm):
    assert random_codes(lm).shape == (2, 17, 4)


def test_only_the_adapters_train(lm):
    add_lora(lm, rank=4)
    trainable = {name for name, p in lm.named_parameters() if p.requires_grad}
    lora = {name for name, _ in lm.named_parameters() if ".lora_A." in name or ".lora_B." in name}
    # two matrices per wrapped linear layer, and the tiny LM has 89 of them
    assert len(lora) == 2 * 89
    assert trainable == lora
    assert all(layer.rank == 4 and layer.scaling == 2.0 for layer in lora_layers(lm))


def test_fresh_adapters_leave_the_policy_unchanged(lm):
    codes = random_codes(lm)
    base = text_logits(lm, codes)
    add_lora(lm)
    assert torch.equal(text_logits(lm, codes), base)


def test_disabled_adapters_compute_the_base_model_exactly(lm):
    codes = random_codes(lm)
    base = text_logits(lm, codes)
    add_lora(lm)
    randomize_adapters(lm)
    tuned = text_logits(lm, codes)
    assert not torch.allclose(tuned, base, atol=1e-3)
    with adapters_disabled(lm):
        assert torch.equal(text_logits(lm, codes), base)
    assert torch.equal(text_logits(lm, codes), tuned)


def test_adapters_come_back_after_an_error(lm):
    add_lora(lm, scaling=3.0)
    with pytest.raises(RuntimeError, match="boom"), adapters_disabled(lm):
        assert all(layer.scaling == 0.0 for layer in lora_layers(lm))
        raise RuntimeError("boom")
    assert all(layer.scaling == 3.0 for layer in lora_layers(lm))


def test_lora_cannot_be_added_twice(lm):
    add_lora(lm)
    with pytest.raises(ValueError, match="already"):
        add_lora(lm)


def test_frozen_copy_ignores_optimizer_steps_on_the_original(lm):
    frozen = frozen_copy(lm)
    before = {name: t.clone() for name, t in frozen.state_dict().items()}
    optimizer = torch.optim.SGD(lm.parameters(), lr=0.1)
    lm(random_codes(lm)).text_logits.square().mean().backward()
    optimizer.step()
    assert not torch.equal(lm.text_emb.weight, frozen.text_emb.weight)
    assert all(torch.equal(frozen.state_dict()[name], t) for name, t in before.items())
    assert not any(p.requires_grad for p in frozen.parameters())
    assert not frozen.training


def test_reference_of_a_lora_policy_shares_its_weights(lm):
    codes = random_codes(lm)
    base = text_logits(lm, codes)
    add_lora(lm)
    randomize_adapters(lm)
    reference = ReferenceModel(lm)
    assert reference.mode == "adapters" and reference.frozen is None
    with reference.use() as ref_lm:
        assert ref_lm is lm
        assert torch.equal(text_logits(ref_lm, codes), base)
    assert not torch.equal(text_logits(lm, codes), base)


def test_reference_of_a_fully_tuned_policy_is_a_frozen_copy(lm):
    codes = random_codes(lm)
    base = text_logits(lm, codes)
    reference = ReferenceModel(lm)
    assert reference.mode == "copy"
    with torch.no_grad():
        lm.text_linear.weight.add_(1.0)
    with reference.use() as ref_lm:
        assert ref_lm is not lm
        assert torch.equal(text_logits(ref_lm, codes), base)


def test_adapters_mode_needs_adapters(lm):
    with pytest.raises(ValueError, match="add_lora"):
        ReferenceModel(lm, mode="adapters")
