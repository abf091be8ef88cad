"""Compact fine-tuning deltas: low-rank (LoRA-style) updates on frozen linears, merged at load.

The fine-tuned models ship as what training changed, never the whole model: for
each adapted linear its rank-r factors A (r, in) and B (out, r) (scale folded
into B) so that W = W_0 + B A, plus the few small tensors trained in full
(biases, norms, the classifier head). W_0 comes from the installed base model
(the PyPI package or data/taskworld), so data/d2dmoe stays small.
"""
from __future__ import annotations

import torch
from torch import nn


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update B A (B starts at zero)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None):
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        self.base = base
        base.weight.requires_grad_(False)
        self.scale = (alpha if alpha is not None else rank) / rank
        self.lora_A = nn.Parameter(torch.randn(rank, base.in_features) / base.in_features ** 0.5)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """W_0 x + b + scale * B (A x)."""
        return self.base(x) + (x @ self.lora_A.T) @ self.lora_B.T * self.scale

    def merged(self) -> nn.Linear:
        """The plain nn.Linear with the update merged into its weight."""
        with torch.no_grad():
            self.base.weight += self.scale * self.lora_B @ self.lora_A
        return self.base


def _get(model: nn.Module, name: str) -> nn.Module:
    obj = model
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _set(model: nn.Module, name: str, value: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(_get(model, parent) if parent else model, leaf, value)


def add_lora(model: nn.Module, targets: dict[str, int]) -> list[str]:
    """Wrap each named nn.Linear in a LoRALinear of the given rank; return the names wrapped."""
    for name, rank in targets.items():
        lin = _get(model, name)
        if not isinstance(lin, nn.Linear):
            raise ValueError(f"{name} is a {type(lin).__name__}, not an nn.Linear")
        _set(model, name, LoRALinear(lin, rank))
    return list(targets)


def delta_state(model: nn.Module, full: list[str], dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """What training changed: every LoRALinear's factors (scale folded into B) and the named full tensors."""
    state = {}
    for name, m in model.named_modules():
        if isinstance(m, LoRALinear):
            state[f"lora.{name}.A"] = m.lora_A.detach().to(dtype).contiguous()
            state[f"lora.{name}.B"] = (m.lora_B.detach() * m.scale).to(dtype).contiguous()
    params = dict(model.named_parameters())
    for name in full:
        state[f"full.{name.replace('.base.', '.')}"] = params[name].detach().to(dtype).contiguous()
    return state


def merge_all(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear by its merged nn.Linear (in place); returns the model."""
    names = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name in names:
        _set(model, name, _get(model, name).merged())
    return model


def apply_delta(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Merge a delta_state into a base model in place: W += B A for the lora entries, overwrite the full ones."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, v in state.items():
            kind, _, rest = key.partition(".")
            if kind == "lora" and rest.endswith(".A"):
                name = rest[:-2]
                lin = _get(model, name)
                if not isinstance(lin, nn.Linear):
                    raise ValueError(f"delta entry {key}: {name} is not an nn.Linear in this model")
                B = state[f"lora.{name}.B"].float()
                lin.weight += B @ v.float()
            elif kind == "full":
                if rest not in params:
                    raise ValueError(f"delta entry {key}: the model has no parameter {rest}")
                params[rest].copy_(v.float())
            elif kind != "lora":
                raise ValueError(f"unknown delta entry {key}")
    return model
