"""Put the converted MoE layers into a model (and take them out), set one routing rule for all of them.

`convert(model, n_experts)` splits every recognised FFN (`ffn.ffn_sites`) into
experts and installs a `MoEFFN` in its place: a BERT layer's ``intermediate``
becomes the MoE (returning the FFN output) and ``output.dense`` an identity, so
the residual add and LayerNorm of ``layer.output`` are untouched; a gated MLP
is replaced whole. The converted model starts in mode 'all' (exactly the dense
model up to float rounding).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from .experts import check_expert_count, experts_from_partition, split_experts
from .ffn import UnrecognisedModel, ffn_sites, ffn_weights
from .moe import MoEFFN, Router


def moe_layers(model: nn.Module) -> list[MoEFFN]:
    """The MoEFFN layers of a converted model, in layer order; UnrecognisedModel when there are none."""
    layers = [m for m in model.modules() if isinstance(m, MoEFFN)]
    if not layers:
        raise UnrecognisedModel(f"{type(model).__name__} has no MoE layers: convert it first with "
                                "d2dmoe.convert(model, n_experts)")
    return layers


def convert(model: nn.Module, n_experts: int, seed: int = 0, router_hidden: int = 128,
            routers: list[Router] | None = None, partitions: list[torch.Tensor] | None = None) -> list[MoEFFN]:
    """Split every FFN of `model` into `n_experts` experts in place; return the MoE layers (mode 'all').

    The split is balanced k-means (`experts.split_experts`) unless `partitions` gives each layer's
    neuron ids (E, s), e.g. the ones stored with committed routers.
    """
    if any(isinstance(m, MoEFFN) for m in model.modules()):
        raise ValueError("this model is already converted; load a fresh one to convert it again")
    sites = ffn_sites(model)
    for s in sites:
        check_expert_count(s.d_ff, n_experts)
    for name, given in (("routers", routers), ("partitions", partitions)):
        if given is not None and len(given) != len(sites):
            raise ValueError(f"got {len(given)} {name} for {len(sites)} FFN layers")
    layers = []
    for j, site in enumerate(sites):
        if partitions is not None:
            ex = experts_from_partition(ffn_weights(site), partitions[j].long())
            if ex.n_experts != n_experts:
                raise ValueError(f"layer {site.index}: the partition has {ex.n_experts} experts, not {n_experts}")
        else:
            ex = split_experts(ffn_weights(site), n_experts, seed=seed + site.index)
        router = routers[j] if routers is not None else Router(ex.d, ex.n_experts, router_hidden)
        moe = MoEFFN(ex, router)
        if site.kind == "bert":
            site.layer.intermediate = moe
            site.layer.output.dense = nn.Identity()
        else:
            site.layer.mlp = moe
        layers.append(moe)
    return layers


def set_rule(model_or_layers, mode: str, tau: float | None = None, k: int | None = None,
             impl: str | None = None) -> None:
    """Set the same routing rule on every MoE layer ('all', 'dynk' with tau, 'topk' with k, 'oracle')."""
    layers = model_or_layers if isinstance(model_or_layers, list) else moe_layers(model_or_layers)
    for m in layers:
        m.set_rule(mode, tau=tau, k=k, impl=impl)


@contextmanager
def recording(layers: list[MoEFFN], capture: bool = False):
    """Within the block every layer records experts-per-token (and, with capture, its inputs)."""
    for m in layers:
        m.record, m.capture, m.counts, m.inputs = True, capture, [], []
    try:
        yield layers
    finally:
        for m in layers:
            m.record, m.capture = False, False


def router_state(layers: list[MoEFFN], dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """The routers' weights as a flat dict (layer{i}.fc1.weight ...), cast to `dtype` for shipping."""
    state = {f"layer{i}.{k}": v.detach().to(dtype).contiguous()
             for i, m in enumerate(layers) for k, v in m.router.state_dict().items()}
    for i, m in enumerate(layers):
        state[f"layer{i}.neurons"] = m.neurons.to(torch.int16).contiguous()  # the expert split itself
    return state


def partitions_of(state: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The per-layer expert partitions (E, s) stored in a router_state dict."""
    keys = sorted((k for k in state if k.endswith(".neurons")), key=lambda k: int(k[5:].split(".")[0]))
    return [state[k].long() for k in keys]


def load_router_state(layers: list[MoEFFN], state: dict[str, torch.Tensor]) -> None:
    """Load router weights written by router_state into the layers (as float32)."""
    for i, m in enumerate(layers):
        sub = {k.split(".", 1)[1]: v.float() for k, v in state.items()
               if k.startswith(f"layer{i}.") and not k.endswith(".neurons")}
        if not sub:
            raise ValueError(f"the router weights have no entries for layer {i} ({len(layers)} layers)")
        hidden, E = sub["fc1.weight"].shape[0], sub["fc2.weight"].shape[0]
        if E != m.n_experts:
            raise ValueError(f"layer {i}: the router predicts {E} experts but the layer has {m.n_experts}")
        if hidden != m.router.hidden:
            m.router = Router(m.d, E, hidden)
        m.router.load_state_dict(sub)
