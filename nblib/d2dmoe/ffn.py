"""Finding a transformer's FFNs, reading their weights, and switching their activation to ReLU.

Two FFN shapes are recognised (one `FFNSite` per layer):

- BERT-style (MiniLM, BERT, RoBERTa ...): ``layer.intermediate.dense`` -> act ->
  ``layer.output.dense``; the residual add and LayerNorm stay in ``layer.output``.
- Llama-style gated MLP (the task world's models, SmolLM2): ``mlp.down_proj(act(mlp.gate_proj(x)) *
  mlp.up_proj(x))``.

`FFNWeights` is the plain form both reduce to: ``y = W_out · h + b_out`` with
``h = act(W_in x + b_in)`` (or ``act(W_gate x) * (W_in x)`` when gated); its
rows are the hidden neurons that D2DMoE splits into experts.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

ACTIVATIONS = {"relu": torch.relu, "gelu": nn.functional.gelu, "silu": nn.functional.silu}


class UnrecognisedModel(ValueError):
    """A model in which no FFN of a known shape (BERT-style or Llama-style gated MLP) was found."""


@dataclass
class FFNSite:
    """Where one layer's FFN lives: its kind ('bert' or 'gated'), layer index and the layer module."""

    kind: str
    index: int
    layer: nn.Module

    @property
    def act_module(self) -> nn.Module:
        """The module that produces the hidden activation h (hook its output to see h)."""
        return self.layer.intermediate if self.kind == "bert" else self.layer.mlp

    @property
    def d_ff(self) -> int:
        """The FFN's hidden width."""
        if self.kind == "bert":
            return self.layer.intermediate.dense.out_features
        return self.layer.mlp.gate_proj.out_features


def _layers(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks: the first nn.ModuleList whose members hold an FFN of a known shape."""
    for m in model.modules():
        if isinstance(m, nn.ModuleList) and len(m) and _kind(m[0]) is not None:
            return list(m)
    return []


def _kind(layer: nn.Module) -> str | None:
    """'bert', 'gated' or None: the FFN shape a block holds."""
    inter, mlp = getattr(layer, "intermediate", None), getattr(layer, "mlp", None)
    if inter is not None and hasattr(inter, "dense") and hasattr(getattr(layer, "output", None), "dense"):
        return "bert"
    if mlp is not None and all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")):
        return "gated"
    return None


def ffn_sites(model: nn.Module) -> list[FFNSite]:
    """One FFNSite per layer of a BERT-style encoder or a Llama-style decoder; UnrecognisedModel otherwise."""
    sites = [FFNSite(_kind(layer), i, layer) for i, layer in enumerate(_layers(model)) if _kind(layer)]
    if not sites:
        raise UnrecognisedModel(
            f"found no FFN in {type(model).__name__}: D2DMoE converts BERT-style layers (intermediate.dense + "
            "output.dense) and Llama-style gated MLPs (gate_proj/up_proj/down_proj); pass such a model")
    return sites


def activation_name(site: FFNSite) -> str:
    """The FFN's activation as a name in ACTIVATIONS ('relu', 'gelu' or 'silu')."""
    fn = site.layer.intermediate.intermediate_act_fn if site.kind == "bert" else site.layer.mlp.act_fn
    if isinstance(fn, nn.ReLU) or fn is torch.relu:
        return "relu"
    name = type(fn).__name__.lower()
    if "gelu" in name:
        return "gelu"
    if "silu" in name or "swish" in name:
        return "silu"
    raise UnrecognisedModel(f"layer {site.index}'s FFN activation {type(fn).__name__} is not one of "
                            f"{sorted(ACTIVATIONS)}")


def relufy(model: nn.Module) -> nn.Module:
    """Switch every FFN's activation to ReLU in place (D2DMoE step 0); returns the model."""
    for site in ffn_sites(model):
        if site.kind == "bert":
            site.layer.intermediate.intermediate_act_fn = nn.ReLU()
        else:
            site.layer.mlp.act_fn = nn.ReLU()
    return model


@dataclass
class FFNWeights:
    """An FFN as plain tensors: y = w_out h + b_out, h = act(w_in x + b_in) or act(w_gate x) * (w_in x)."""

    w_in: torch.Tensor  # (d_ff, d)
    b_in: torch.Tensor | None  # (d_ff,)
    w_out: torch.Tensor  # (d, d_ff)
    b_out: torch.Tensor | None  # (d,)
    act: str
    w_gate: torch.Tensor | None = None  # (d_ff, d) for gated MLPs

    @property
    def d_ff(self) -> int:
        """Hidden width."""
        return self.w_in.shape[0]

    @property
    def d(self) -> int:
        """Model width."""
        return self.w_in.shape[1]

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden activations h (..., d_ff) of inputs x (..., d)."""
        f = ACTIVATIONS[self.act]
        if self.w_gate is not None:
            return f(x @ self.w_gate.T) * (x @ self.w_in.T)
        pre = x @ self.w_in.T
        return f(pre + self.b_in if self.b_in is not None else pre)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The dense FFN output (..., d)."""
        y = self.hidden(x) @ self.w_out.T
        return y + self.b_out if self.b_out is not None else y


def ffn_weights(site: FFNSite) -> FFNWeights:
    """The FFN of one site as detached FFNWeights (the current activation kept)."""
    act = activation_name(site)
    if site.kind == "bert":
        i, o = site.layer.intermediate.dense, site.layer.output.dense
        return FFNWeights(i.weight.detach(), None if i.bias is None else i.bias.detach(), o.weight.detach(),
                          None if o.bias is None else o.bias.detach(), act)
    m = site.layer.mlp
    for lin in (m.gate_proj, m.up_proj, m.down_proj):
        if lin.bias is not None:
            raise UnrecognisedModel(f"layer {site.index}: gated MLPs with biases are not supported")
    return FFNWeights(m.up_proj.weight.detach(), None, m.down_proj.weight.detach(), None, act,
                      w_gate=m.gate_proj.weight.detach())


def ffn_input_module(site: FFNSite) -> nn.Module:
    """The module whose input is the FFN's input x (a forward pre-hook on it sees x)."""
    return site.layer.intermediate if site.kind == "bert" else site.layer.mlp
