"""Saves a (trained) policy as a Moshi checkpoint folder that moshi's own loaders read back.

The folder has the layout of a Kyutai Hugging Face repo: ``model.safetensors`` (the LM),
``mimi.safetensors``, ``tokenizer.model``, ``config.json`` naming them, plus
``lora.safetensors`` when the adapters are kept apart and ``mimi_config.json`` for a Mimi that
is not the released one. Serve it with moshi's server (``--static none`` skips downloading the
web UI; ``--lora-weight`` only for a folder with ``lora.safetensors``)::

    python -m moshi.server --config-path DIR/config.json \\
        --moshi-weight DIR/model.safetensors --mimi-weight DIR/mimi.safetensors \\
        --tokenizer DIR/tokenizer.model [--lora-weight DIR/lora.safetensors] --device cuda

or upload the folder to the hub and run ``python -m moshi.server --hf-repo USER/REPO``. The
server loads the LM in bf16 (``--half``: fp16) whatever the saved dtype. It has no flag for a
Mimi config: it looks ``mimi_config.json`` up in ``--hf-repo``, so folders with a non-default
Mimi (the tiny preset) serve from the hub only; locally, read them with
:func:`agents.moshi.models.load_checkpoint`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from moshi.models import loaders
from moshi.modules.lora import LoRALinear
from safetensors.torch import save_file

from agents.moshi.lora import is_lora_weight, lora_layers
from agents.moshi.models import MoshiModels, load_checkpoint, tiny_models
from fdenv.atomic import atomic_path

MODEL_FILE = "model.safetensors"
LORA_FILE = "lora.safetensors"
MIMI_FILE = "mimi.safetensors"
TOKENIZER_FILE = "tokenizer.model"
CONFIG_FILE = "config.json"
MIMI_CONFIG_FILE = "mimi_config.json"

_LORA_KEYS = ("lora", "lora_rank", "lora_scaling")
"""LM-config keys that describe the adapters: rewritten from the model, never trusted."""


def export_checkpoint(models: MoshiModels, folder: str | Path, *, fuse_lora: bool = True) -> Path:
    """Writes ``models`` to ``folder`` as a Moshi checkpoint and returns the folder.

    LoRA adapters are merged into the linear weights (``fuse_lora``, what the server does
    anyway) or saved apart in ``lora.safetensors`` over the untouched base weights, which
    keeps the adapters small to ship and the base reusable. Tensors keep the model's dtype.
    Each file is written atomically and ``config.json`` last, so a folder whose config is
    new has all its files new.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"cannot export a checkpoint to {folder}: it is a file")
    config = {k: v for k, v in models.lm_config.items() if k not in _LORA_KEYS}
    config |= {"moshi_name": MODEL_FILE, "mimi_name": MIMI_FILE, "tokenizer_name": TOKENIZER_FILE}
    base, adapters = split_lora(models.lm)
    if fuse_lora:
        base |= fused_weights(models.lm)
    elif adapters:
        rank, scaling = lora_settings(models.lm)
        _save_tensors(adapters, folder / LORA_FILE)
        config |= {"lora": True, "lora_rank": rank, "lora_scaling": scaling, "lora_name": LORA_FILE}
    _save_tensors(base, folder / MODEL_FILE)
    _save_tensors(models.mimi.state_dict(), folder / MIMI_FILE)
    _write_bytes(folder / TOKENIZER_FILE, models.tokenizer.serialized_model_proto())
    if models.mimi_config is not None and models.mimi_config != loaders._mimi_config:
        _write_bytes(folder / MIMI_CONFIG_FILE, _json(models.mimi_config))
        config["mimi_config_name"] = MIMI_CONFIG_FILE
    _write_bytes(folder / CONFIG_FILE, _json(config))
    return folder


def split_lora(lm: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The base weights under the names of a plain LM (as moshi loads them before adding
    adapters), and the adapter weights under the names moshi's ``lora_weights`` file uses."""
    base, adapters = {}, {}
    for name, tensor in lm.state_dict().items():
        if is_lora_weight(name):
            adapters[name] = tensor
        else:
            base[name.replace("frozen_W.", "")] = tensor
    return base, adapters


def fused_weights(lm: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``W + scaling * B @ A`` per LoRA layer, bit for bit what ``replace_lora_with_linear``
    (moshi's ``fuse_lora``) computes, without copying the model to fuse it."""
    return {
        f"{name}.weight": module.merge_weight()
        for name, module in lm.named_modules()
        if isinstance(module, LoRALinear)
    }


def lora_settings(lm: torch.nn.Module) -> tuple[int, float]:
    """The one rank and scaling of ``lm``'s adapters: moshi's config has room for no more."""
    settings = {(layer.rank, layer.scaling) for layer in lora_layers(lm)}
    if len(settings) != 1:
        raise ValueError(f"moshi's config needs one LoRA rank and scaling, got {settings}")
    return settings.pop()


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    cpu = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(cpu, str(tmp))


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _json(data: dict) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode()


CHECKPOINT_ARGS = (
    "hf_repo",
    "moshi_weight",
    "mimi_weight",
    "tokenizer",
    "config_path",
    "lora_weight",
)
"""``load_checkpoint``'s arguments; their flags (``--hf-repo``...) are moshi.server's."""


def main(argv: list[str] | None = None) -> int:
    """Exports the tiny preset, or re-exports a checkpoint (for example with its LoRA fused)."""
    parser = argparse.ArgumentParser(
        prog="python -m agents.moshi.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, type=Path, help="folder to write")
    parser.add_argument("--preset", choices=["tiny"], help="a random tiny model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tiny preset")
    checkpoint = parser.add_argument_group("or a checkpoint, as for moshi.server")
    for name in CHECKPOINT_ARGS:
        checkpoint.add_argument("--" + name.replace("_", "-"))
    parser.add_argument(
        "--dtype",
        choices=["bfloat16", "float32"],
        default="bfloat16",
        help="dtype to load (and so save) a checkpoint in; bf16 as Kyutai ships it",
    )
    parser.add_argument("--no-fuse-lora", action="store_false", dest="fuse_lora")
    args = parser.parse_args(argv)
    paths = {name: getattr(args, name) for name in CHECKPOINT_ARGS}
    if (args.preset is None) == all(path is None for path in paths.values()):
        parser.error("give either --preset or a checkpoint (--hf-repo and/or local paths)")
    if args.preset == "tiny":
        models = tiny_models(args.seed)
    else:
        models = load_checkpoint(**paths, dtype=getattr(torch, args.dtype))
    print(f"wrote {export_checkpoint(models, args.out, fuse_lora=args.fuse_lora)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
