"""The tokenizer kinds: each one's typed config, building and loading one, and the code version that marks a
tokenizer trained on other code."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from torch import nn

from ..training.checkpoint import read_checkpoint
from .cnn import CNNTokenizer, CNNTokenizerConfig
from .transformer import TransformerTokenizer, TransformerTokenizerConfig

MODEL_CLASSES = {
    "cnn": (CNNTokenizer, CNNTokenizerConfig),
    "transformer": (TransformerTokenizer, TransformerTokenizerConfig),
}


def model_config(kind: str, model_cfg=None):
    """The typed model config of a tokenizer kind: its defaults, a dict of its fields, or the config itself."""
    cfg_cls = MODEL_CLASSES[kind][1]
    if model_cfg is None:
        return cfg_cls()
    if isinstance(model_cfg, dict):
        unknown = set(model_cfg) - {f.name for f in dataclasses.fields(cfg_cls)}
        if unknown:
            raise ValueError(f"unknown {kind} tokenizer config fields {sorted(unknown)}")
        return cfg_cls(**model_cfg)
    if not isinstance(model_cfg, cfg_cls):
        raise ValueError(f"a {kind} tokenizer needs a {cfg_cls.__name__}, got {type(model_cfg).__name__}")
    return model_cfg


def code_version() -> str:
    """sha256 (first 16 hex) of the tokenizer package sources: changes whenever the model code changes."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def build_tokenizer(kind: str, model_cfg=None) -> nn.Module:
    if kind not in MODEL_CLASSES:
        raise ValueError(f"unknown tokenizer kind {kind!r} (expected one of {sorted(MODEL_CLASSES)})")
    return MODEL_CLASSES[kind][0](model_config(kind, model_cfg))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_tokenizer(path, device="cpu") -> nn.Module:
    ckpt = read_checkpoint(path)
    if ckpt.get("kind") not in MODEL_CLASSES or ckpt.get("config") is None:
        raise ValueError(f"{path} is not a tokenizer checkpoint (kind={ckpt.get('kind')!r})")
    model = build_tokenizer(ckpt["kind"], ckpt["config"])
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval()
