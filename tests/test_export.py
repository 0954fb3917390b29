"""An exported policy reads back bit-exact through our loader and through moshi's own, offline."""

import copy
import dataclasses
import json

import pytest
import torch
from moshi.models import loaders
from safetensors.torch import load_file

from agents.moshi.export import export_checkpoint, main
from agents.moshi.lora import add_lora, has_lora, lora_layers
from agents.moshi.models import load_checkpoint, tiny_models

FILES = {"config.json", "model.safetensors", "mimi.safetensors", "tokenizer.model"}


def perturbed(models, seed: int = 1):
    """A tiny model whose weights no seed's initialisation reproduces."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in (models.lm, models.mimi):
            for p in module.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.01)
    return models


def with_lora(models, seed: int = 2):
    """A LoRA policy as training leaves it: adapters on, lora_B no longer zero."""
    models = copy.deepcopy(models)
    add_lora(models.lm, rank=4, scaling=1.5)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(models.lm):
            layer.lora_B.weight.copy_(torch.randn(layer.lora_B.weight.shape, generator=gen) * 0.1)
    return models


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        assert torch.equal(sa[name], sb[name]), name


def text_logits(lm) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    text = torch.randint(0, lm.text_card, (1, 1, 4), generator=gen)
    audio = torch.randint(0, lm.card, (1, 16, 4), generator=gen)
    with torch.no_grad():
        return lm(torch.cat([text, audio], dim=1)).text_logits


def pieces(tokenizer) -> list[str]:
    return [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size())]


def moshi_info(folder, **overrides) -> loaders.CheckpointInfo:
    """moshi's own reading of an exported folder, every file given as a local path."""
    paths = {
        "moshi_weights": folder / "model.safetensors",
        "mimi_weights": folder / "mimi.safetensors",
        "tokenizer": folder / "tokenizer.model",
        "config_path": folder / "config.json",
        "mimi_config_path": folder / "mimi_config.json",
    }
    return loaders.CheckpointInfo.from_hf_repo("unused/repo", **(paths | overrides))


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Any download from the hub fails the test: every file must come from the folder."""

    def no_download(*args, **kwargs):
        raise AssertionError(f"tried to download {args} {kwargs}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(loaders, "hf_hub_download", no_download)


@pytest.fixture(scope="module")
def models():
    return perturbed(tiny_models(seed=0))


@pytest.fixture(scope="module")
def lora_models(models):
    return with_lora(models)


@pytest.fixture(scope="module")
def folder(models, tmp_path_factory):
    return export_checkpoint(models, tmp_path_factory.mktemp("plain") / "ckpt")


def test_export_writes_a_moshi_folder(folder, models):
    assert {p.name for p in folder.iterdir()} == FILES | {"mimi_config.json"}
    config = json.loads((folder / "config.json").read_text())
    assert config["moshi_name"] == "model.safetensors"
    assert config["mimi_name"] == "mimi.safetensors"
    assert config["tokenizer_name"] == "tokenizer.model"
    assert config["mimi_config_name"] == "mimi_config.json"
    assert config["dim"] == 64 and "lora" not in config
    assert json.loads((folder / "mimi_config.json").read_text()) == models.mimi_config


def test_our_loader_reads_it_back_bit_exact(folder, models):
    loaded = load_checkpoint(
        moshi_weight=folder / "model.safetensors",
        mimi_weight=folder / "mimi.safetensors",
        tokenizer=folder / "tokenizer.model",
        config_path=folder / "config.json",
    )
    assert_same_state(loaded.lm, models.lm)
    assert_same_state(loaded.mimi, models.mimi)
    assert pieces(loaded.tokenizer) == pieces(models.tokenizer)
    assert loaded.lm_config == models.lm_config
    assert loaded.mimi_config == models.mimi_config


def test_moshis_loader_reads_it_back_bit_exact_offline(folder, models):
    info = moshi_info(folder)
    # moshi casts the LM to the dtype it is asked for (bf16 by default): ask for the saved fp32
    assert_same_state(info.get_moshi(dtype=torch.float32), models.lm)
    assert_same_state(info.get_mimi(), models.mimi)
    assert pieces(info.get_text_tokenizer()) == pieces(models.tokenizer)


def test_separate_lora_round_trips_through_moshis_lora_path(lora_models, tmp_path):
    folder = export_checkpoint(lora_models, tmp_path, fuse_lora=False)
    assert {p.name for p in folder.iterdir()} == FILES | {"mimi_config.json", "lora.safetensors"}
    config = json.loads((folder / "config.json").read_text())
    assert config["lora"] is True and config["lora_rank"] == 4 and config["lora_scaling"] == 1.5
    adapters = load_file(folder / "lora.safetensors")
    assert len(adapters) == 2 * len(lora_layers(lora_models.lm))
    assert all(".lora_A." in k or ".lora_B." in k for k in adapters)
    assert not any("lora" in k or "frozen_W" in k for k in load_file(folder / "model.safetensors"))

    info = moshi_info(folder, lora_weights=folder / "lora.safetensors")
    assert_same_state(info.get_moshi(dtype=torch.float32), lora_models.lm)
    ours = load_checkpoint(
        moshi_weight=folder / "model.safetensors",
        mimi_weight=folder / "mimi.safetensors",
        tokenizer=folder / "tokenizer.model",
        config_path=folder / "config.json",
        lora_weight=folder / "lora.safetensors",
    )
    assert_same_state(ours.lm, lora_models.lm)


def test_fused_lora_computes_the_lora_policy(models, lora_models, tmp_path):
    tuned = text_logits(lora_models.lm)
    assert not torch.allclose(tuned, text_logits(models.lm), atol=1e-3)  # the adapters matter
    fused = export_checkpoint(lora_models, tmp_path / "fused")
    assert {p.name for p in fused.iterdir()} == FILES | {"mimi_config.json"}
    assert "lora" not in json.loads((fused / "config.json").read_text())
    lm = moshi_info(fused).get_moshi(dtype=torch.float32)
    assert not has_lora(lm)
    torch.testing.assert_close(text_logits(lm), tuned, rtol=0, atol=1e-5)

    # the same weights as moshi's own fusing of the separate export (moshi.server's default)
    separate = export_checkpoint(lora_models, tmp_path / "separate", fuse_lora=False)
    info = moshi_info(separate, lora_weights=separate / "lora.safetensors")
    assert_same_state(info.get_moshi(dtype=torch.float32, fuse_lora=True), lm)


def test_the_released_mimi_needs_no_mimi_config(models, tmp_path):
    folder = export_checkpoint(dataclasses.replace(models, mimi_config=None), tmp_path)
    assert {p.name for p in folder.iterdir()} == FILES
    assert "mimi_config_name" not in json.loads((folder / "config.json").read_text())


def test_exporting_onto_a_file_fails_clearly(models, tmp_path):
    target = tmp_path / "model.bin"
    target.write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="is a file"):
        export_checkpoint(models, target)
    assert target.read_text() == "not a folder"


def test_cli_exports_the_tiny_preset(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "tiny"), "--preset", "tiny"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "tiny").iterdir()} == FILES | {"mimi_config.json"}
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "none")])
