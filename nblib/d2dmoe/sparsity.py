"""D2DMoE step 2: activation-sparsity fine-tuning, and the measurements of how sparse the FFNs are.

The penalty is added to the task loss:
``L = L_task + w(t) * mean over FFN layers of [mean over tokens of R(h)]`` with R the
square Hoyer measure ``||h||_1^2 / ||h||_2^2`` or plain L1 ``sum |h|`` of the
post-ReLU activations h; w(t) ramps linearly from 0 to the target weight over the
run ('linear'), over its first half ('linear_warmup'), or is constant.
`capture_activations` hooks every FFN's hidden activations; `zero_fraction` and
`activation_sample` measure them.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch
from torch import nn

from .. import training
from .ffn import ffn_sites

PENALTIES = ("l1", "hoyer")
WEIGHT_SCHEDULES = ("constant", "linear", "linear_warmup")


def square_hoyer(h: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Square Hoyer measure per row (...,): ||h||_1^2 / ||h||_2^2 (1 for one-hot, n for a constant vector)."""
    return h.abs().sum(-1) ** 2 / (h.pow(2).sum(-1) + eps)


def l1(h: torch.Tensor) -> torch.Tensor:
    """L1 norm per row (...,): sum |h|."""
    return h.abs().sum(-1)


def penalty_weight(step: int, steps: int, weight: float, schedule: str = "linear") -> float:
    """w(t): the sparsity weight at `step` of `steps` ('constant', 'linear' ramp, 'linear_warmup' half ramp)."""
    if schedule not in WEIGHT_SCHEDULES:
        raise ValueError(f"schedule must be one of {WEIGHT_SCHEDULES}, got {schedule!r}")
    if schedule == "constant" or steps <= 0:
        return float(weight)
    ramp = steps if schedule == "linear" else max(steps // 2, 1)
    return float(weight) * min(1.0, step / ramp)


@contextmanager
def capture_activations(model: nn.Module, detach: bool = False):
    """Within the block, list[i] collects every forward's hidden FFN activations of layer i, shape (B, T, d_ff)."""
    sites = ffn_sites(model)
    acts: list[list[torch.Tensor]] = [[] for _ in sites]
    handles = []
    for i, site in enumerate(sites):
        if site.kind == "bert":
            def hook(_m, _inp, out, i=i):
                acts[i].append(out.detach() if detach else out)
            handles.append(site.layer.intermediate.register_forward_hook(hook))
        else:
            def pre(_m, inp, i=i):
                acts[i].append(inp[0].detach() if detach else inp[0])
            handles.append(site.layer.mlp.down_proj.register_forward_pre_hook(pre))
    try:
        yield acts
    finally:
        for h in handles:
            h.remove()


def sparsity_penalty(acts: list[torch.Tensor], kind: str = "l1", mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over layers of the mean over (unmasked) tokens of R(h); `acts` one (B, T, d_ff) tensor per layer."""
    if kind not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {kind!r}")
    fn = l1 if kind == "l1" else square_hoyer
    vals = []
    for h in acts:
        r = fn(h)  # (B, T)
        if mask is not None:
            m = mask.to(r.dtype)
            vals.append((r * m).sum() / m.sum().clamp(min=1))
        else:
            vals.append(r.mean())
    return torch.stack(vals).mean()


@torch.no_grad()
def activation_stats(model: nn.Module, batches, forward: Callable, sample: int = 20000, seed: int = 0) -> dict:
    """Fraction of exactly-zero and of non-positive FFN activations per layer, and a random sample of them.

    `batches` yields dicts with an 'attention_mask' (or None); `forward(model, batch)` runs the model.
    """
    g = torch.Generator().manual_seed(seed)
    zero, nonpos, total, kept = None, None, None, []
    for batch in batches:
        with capture_activations(model, detach=True) as acts:
            forward(model, batch)
        mask = batch.get("attention_mask") if isinstance(batch, dict) else None
        rows = [a[0].reshape(-1, a[0].shape[-1]) if mask is None else a[0][mask.bool()] for a in acts]
        z = torch.tensor([float((r == 0).sum()) for r in rows])
        p = torch.tensor([float((r <= 0).sum()) for r in rows])
        n = torch.tensor([float(r.numel()) for r in rows])
        zero, nonpos, total = (z, p, n) if zero is None else (zero + z, nonpos + p, total + n)
        flat = torch.cat([r.reshape(-1) for r in rows])
        kept.append(flat[torch.randint(0, flat.numel(), (min(sample, flat.numel()),), generator=g)])
    if zero is None:
        raise ValueError("activation_stats got no batches")
    pool = torch.cat(kept)
    pool = pool[torch.randperm(pool.numel(), generator=g)[:sample]]
    return {"zero_fraction": float(zero.sum() / total.sum()), "nonpositive_fraction": float(nonpos.sum() / total.sum()),
            "zero_fraction_per_layer": (zero / total).tolist(),
            "nonpositive_fraction_per_layer": (nonpos / total).tolist(), "sample": pool.numpy()}


def sparsify_finetune(model: nn.Module, task_loss: Callable[[int], tuple[torch.Tensor, torch.Tensor | None]],
                      params, steps: int | None, *, lr: float, penalty: str = "l1", weight: float = 1e-4,
                      weight_schedule: str = "linear", max_seconds: float | None = None, **fit_kwargs):
    """Fine-tune with L_task + w(t) * sparsity penalty on the FFN activations (nblib.training.fit); a History.

    `task_loss(step)` returns (task loss, attention mask or None) for one batch; the
    activations of that forward are penalised. With ``steps=None`` the run is
    time-boxed by `max_seconds` and w(t) follows the share of time spent.
    """
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")
    penalty_weight(0, 1, weight, weight_schedule)  # validates the schedule name
    import time

    t0 = time.perf_counter()

    def loss_fn(step: int):
        with capture_activations(model) as acts:
            task, mask = task_loss(step)
        pen = sparsity_penalty([a[-1] for a in acts], penalty, mask)
        if steps is None:
            frac_steps, total = int(1000 * (time.perf_counter() - t0) / max_seconds), 1000
        else:
            frac_steps, total = step, steps
        w = penalty_weight(frac_steps, total, weight, weight_schedule)
        return {"task": task, "sparsity": pen, "loss": task + w * pen}

    return training.fit(params, loss_fn, steps, lr=lr, max_seconds=max_seconds, model=model, **fit_kwargs)
