"""Training a task model from scratch on its task mix (scripts/train_taskworld.py runs it)."""
from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

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
        for line, kind in zip(p.step_lines, p.kinds, strict=True):
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
    for r, (s, k) in enumerate(zip(seqs, masks, strict=True)):
        ids[r, :len(s)] = torch.tensor(s)
        labels[r, :len(s)] = torch.where(torch.tensor(k), torch.tensor(s), torch.tensor(-100))
    return ids, labels


def train(spec: TrainSpec, log_every: int = 100, eval_fn=None, verbose: bool = True):
    """Train a task model from scratch on its task mix; return (model, record with losses and wall time).

    The loop is `nblib.training.fit`: AdamW (betas 0.9/0.98, weight decay on matrices
    only), clip 1.0, transformers' "cosine_warmup_with_min_lr" schedule (warmup
    (step+1)/warmup, then cosine to a 5 % floor). The committed checkpoints were
    trained by the earlier hand-written loop, whose cosine phase ran one step
    behind: progress (step - warmup)/(steps - warmup) instead of transformers'
    (step - warmup + 1)/(steps - warmup); the warmup is identical. Over the
    committed step counts the learning rate differs by at most 1.11 % (mid; tiny
    1.02 %, large 0.60 %), in the cosine tail.
    """
    from tqdm.auto import tqdm

    from ..training import fit, format_row
    from ..zoo import n_params

    model = build_model(spec.arch, spec.seed)
    groups = [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": spec.weight_decay},
              {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]
    stream = T.iter_problems("train", spec.seed, spec.task, distinct=False)
    mask_rng = random.Random(spec.seed)

    def loss_fn(step):
        ids, labels = collate([next(stream) for _ in range(spec.batch)], spec.focus, spec.focus_keep, mask_rng)
        return model(input_ids=ids, labels=labels).loss

    t0 = time.perf_counter()
    hist = fit(groups, loss_fn, spec.steps, lr=spec.lr, optimizer_kwargs={"betas": (0.9, 0.98)},
               schedule="cosine_warmup_with_min_lr", warmup=spec.warmup, schedule_kwargs={"min_lr_rate": 0.05},
               clip=1.0, log_every=log_every, progress=verbose, desc=f"train {spec.name}",
               eval_fn=eval_fn, model=model,
               on_log=(lambda row: tqdm.write(format_row(row, f"[{spec.name}]"))) if verbose else None)
    model.eval()
    record = {"spec": to_plain(spec), "params": n_params(model), "train_wall_s": round(time.perf_counter() - t0, 1),
              "torch_threads": torch.get_num_threads(), "log": hist.log}
    return model, record


def to_plain(obj):
    """Dataclasses (nested) as plain dicts and lists, for train.json."""
    if hasattr(obj, "__dataclass_fields__"):
        return {k: to_plain(v) for k, v in asdict(obj).items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj
