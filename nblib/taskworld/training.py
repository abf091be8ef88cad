"""Training a task model from scratch on its task mix (scripts/train_taskworld.py runs it)."""
from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch

from . import problems as T
from .models import EOS, PAD, Arch, build_model, encode, prompt_of

@dataclass(frozen=True)
class TrainSpec:
    """How one task model is trained (stored in its train.json)."""

    name: str
    arch: Arch
    steps: int
    lr: float = 2e-3
    batch: int = 64
    warmup: int = 100
    weight_decay: float = 0.01
    seed: int = 0
    task: T.TaskConfig = field(default_factory=T.TaskConfig)
    focus: str | None = None  # specialists: the kind of step the loss is (mostly) on
    focus_keep: float = 0.1  # share of other-kind step lines that still carry loss


def collate(problems: Sequence[T.Problem], focus: str | None = None, focus_keep: float = 1.0,
            rng: random.Random | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, T) and labels (B, T) with the prompt and padding masked out (-100).

    With `focus` (a kind of step), step lines of other kinds carry loss only with
    probability `focus_keep`: the model is trained mostly on that kind of step.
    """
    rng = rng or random.Random(0)
    seqs, masks = [], []
    for p in problems:
        prompt = encode(prompt_of(p))
        seq, keep = list(prompt), [False] * len(prompt)
        for line, kind in zip(p.step_lines, p.kinds):
            on = focus is None or kind == focus or rng.random() < focus_keep
            ids = encode(line + "\n", bos=False)
            seq += ids
            keep += [on] * len(ids)
        tail = encode(f"{T.ANSWER}{p.answer}", bos=False) + [EOS]
        seq += tail
        keep += [True] * len(tail)
        seqs.append(seq)
        masks.append(keep)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for r, (s, k) in enumerate(zip(seqs, masks)):
        ids[r, :len(s)] = torch.tensor(s)
        labels[r, :len(s)] = torch.where(torch.tensor(k), torch.tensor(s), torch.tensor(-100))
    return ids, labels


def train(spec: TrainSpec, log_every: int = 100, eval_fn=None, verbose: bool = True):
    """Train a task model from scratch on its task mix; return (model, record with losses and wall time)."""
    model = build_model(spec.arch, spec.seed)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": spec.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=spec.lr, betas=(0.9, 0.98))

    def lr_at(step):
        if step < spec.warmup:
            return spec.lr * (step + 1) / spec.warmup
        frac = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
        return spec.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    stream = T.iter_problems("train", spec.seed, spec.task, distinct=False)
    mask_rng = random.Random(spec.seed)
    losses, log = [], []
    t0 = time.perf_counter()
    for step in range(spec.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        ids, labels = collate([next(stream) for _ in range(spec.batch)], spec.focus, spec.focus_keep, mask_rng)
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == spec.steps:
            row = {"step": step + 1, "loss": float(np.mean(losses[-log_every:])),
                   "wall_s": round(time.perf_counter() - t0, 1)}
            if eval_fn is not None:
                model.eval()
                row.update(eval_fn(model))
                model.train()
            log.append(row)
            if verbose:
                print(f"[{spec.name}] " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                   for k, v in row.items()), flush=True)
    model.eval()
    from ..zoo import n_params

    record = {"spec": to_plain(spec), "params": n_params(model), "train_wall_s": round(time.perf_counter() - t0, 1),
              "torch_threads": torch.get_num_threads(), "log": log}
    return model, record


def to_plain(obj):
    """Dataclasses (nested) as plain dicts and lists, for train.json."""
    if hasattr(obj, "__dataclass_fields__"):
        return {k: to_plain(v) for k, v in asdict(obj).items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj
